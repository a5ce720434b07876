# The application slots and the boot record, from the application's side (main.py reads the
# record at every boot and describes its files). Every write is temp + rename, so a power cut
# leaves the old record or the new one; the order of the steps below keeps a complete, signed
# application bootable after a cut at any of them.
import os

import log

_TAG = "ota"
SLOTS = ("a", "b")


def _read(p, n=64):
    try:
        with open(p) as f:
            return f.read(n).strip()
    except OSError:
        return None


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def write(p, text):
    with open(p + ".tmp", "w") as f:
        f.write(text)
    try:
        os.rename(p + ".tmp", p)
    except OSError:  # FAT: rename cannot replace a file
        remove(p)
        os.rename(p + ".tmp", p)


def makedirs(p):
    cur = "/" if p[:1] == "/" else ""
    for part in p.split("/"):
        if not part:
            continue
        cur = cur + part if cur in ("", "/") else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass


class Slots:
    def __init__(self, root=""):
        self.root = root.rstrip("/") + "/" if root else ""

    def path(self, name):
        return self.root + name

    def committed(self):
        s = _read(self.path("boot_slot"))
        return s if s in SLOTS else None

    def trial(self):
        # The slot on trial (this boot runs it: main.py drops the record when it gives up).
        t = _read(self.path("boot_trial"))
        if not t:
            return None
        s = t.split()[0]
        return s if s in SLOTS and s != self.committed() else None

    def running(self):
        return self.trial() or self.committed()

    def inactive(self):
        return "b" if self.running() == "a" else "a"

    def dir(self, s):
        return self.path("app_" + s)

    def manifest_path(self, s):
        return self.dir(s) + "/.manifest"

    def take_note(self):
        # Why main.py gave up a trial, once (the file is removed).
        p = self.path("boot_note")
        note = _read(p, 300)
        if note is not None:
            remove(p)
        return note

    def start_trial(self, s):
        # The slot is complete (its .manifest written last): the next boot tries it.
        write(self.path("boot_trial"), "%s 0" % s)
        log.info(_TAG, "slot %s set for a trial boot", s)

    def commit(self, s):
        # Make the trial slot the committed one. A cut between the two steps leaves boot_trial
        # naming the committed slot, which main.py drops.
        write(self.path("boot_slot"), s)
        remove(self.path("boot_trial"))
        log.info(_TAG, "slot %s committed", s)

    def free_bytes(self):
        try:
            st = os.statvfs(self.root or ".")
            return st[0] * st[4]
        except (OSError, AttributeError):
            return None

    def tree_bytes(self, p):
        # Bytes used by a folder tree (what removing the inactive slot gives back).
        try:
            st = os.stat(p)
        except OSError:
            return 0
        if not st[0] & 0x4000:
            return st[6]
        n = 0
        for name in os.listdir(p):
            n += self.tree_bytes(p + "/" + name)
        return n
