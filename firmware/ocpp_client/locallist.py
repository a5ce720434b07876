# The Local Authorization List (OCPP 1.6 Local Auth List Management), kept on flash, not in RAM:
# the tags are spread over _BUCKETS small files by a hash of the idTag, one line per tag
# ("<IDTAG>\t<json idTagInfo>\n"). A lookup reads one bucket line by line (about 1/32 of the
# list); nothing holds the whole list in memory.
#
# A Full update is written into a fresh folder and swapped in with renames; a Differential update
# rewrites only the buckets it touches (each atomically, through the store's temp+rename rule)
# and is idempotent, so one cut short by a power cut is simply applied again when the CSMS
# repeats it (the version only moves once every bucket is written).
#
# Flash budget: a Full update writes the whole list once; a Differential one rewrites one small
# bucket per changed tag. Updates come from the CSMS, rarely.
import os
from binascii import crc32
import json

import log

_TAG = "locallist"
_BUCKETS = const(32)
_DOC = "locallist"
_BUF = const(2048)  # RAM for lines on their way to flash during a Full update


def _bucket(id_tag):
    return crc32(id_tag.upper().encode()) % _BUCKETS


def _rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        try:
            os.remove(path + "/" + n)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class LocalList:
    def __init__(self, store, max_length=1000):
        self.store = store
        self.max = max_length
        self.dir = store.path("ll", "")
        meta = store.load(_DOC, {"version": 0, "count": 0})
        self.version = meta["version"]
        self.count = meta["count"]
        self._recover()
        try:
            os.mkdir(self.dir)
        except OSError:
            pass

    def _recover(self):
        # A Full update cut between its renames: finish or drop it.
        new, old = self.dir + ".new", self.dir + ".old"
        if _exists(new + "/done"):
            if _exists(self.dir):
                _rmtree(old)
                os.rename(self.dir, old)
            os.rename(new, self.dir)
            meta = self.store.load(_DOC + "_new", {})
            if meta:
                self.version, self.count = meta["version"], meta["count"]
                self._save_meta()
                self.store.remove(_DOC + "_new")
            log.warn(_TAG, "finished a Full update cut short by a power cut")
        _rmtree(new)
        _rmtree(old)
        if _exists(self.dir + "/done"):
            os.remove(self.dir + "/done")

    def _save_meta(self):
        self.store.save(_DOC, {"version": self.version, "count": self.count})

    def _path(self, b, base=None):
        return "%s/%02d" % (base or self.dir, b)

    def lookup(self, id_tag):
        # -> idTagInfo dict, or None when the tag is not on the list
        if not self.count:
            return None
        key = id_tag.upper().encode() + b"\t"
        try:
            f = open(self._path(_bucket(id_tag)), "rb")
        except OSError:
            return None
        with f:
            while True:
                line = f.readline()
                if not line:
                    return None
                if line.startswith(key):
                    try:
                        return json.loads(line[len(key):])
                    except ValueError:
                        log.warn(_TAG, "bad line for %s: treated as not listed", id_tag)
                        return None

    # -- SendLocalList -----------------------------------------------------------------------
    def update(self, version, kind, entries):
        # entries: an iterable of {"idTag", "idTagInfo"?}. -> Accepted / Failed / VersionMismatch
        if kind == "Differential" and version <= self.version:
            return "VersionMismatch"
        try:
            if kind == "Full":
                return self._full(version, entries)
            return self._differential(version, entries)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.exc(_TAG, "update failed", e)
            return "Failed"

    def _full(self, version, entries):
        # Streams the entries into bucket files, buffering at most _BUF bytes in RAM; a tag
        # listed twice is kept once (the lookup finds the first line).
        new = self.dir + ".new"
        _rmtree(new)
        os.mkdir(new)
        bufs = {}
        size = 0
        n = 0
        try:
            for e in entries:
                info = e.get("idTagInfo")
                if info is None:
                    continue  # Full: an entry without info is not on the list
                n += 1
                if n > self.max:
                    raise ValueError("list longer than LocalAuthListMaxLength")
                tag = e["idTag"]
                line = tag.upper().encode() + b"\t" + json.dumps(info).encode() + b"\n"
                bufs.setdefault(_bucket(tag), []).append(line)
                size += len(line)
                if size > _BUF:
                    self._flush(bufs, new)
                    size = 0
            self._flush(bufs, new)
        except Exception:
            _rmtree(new)
            raise
        self.store.save(_DOC + "_new", {"version": version, "count": n})
        with open(new + "/done", "wb"):
            pass
        self._recover()
        return "Accepted"

    def _flush(self, bufs, base):
        for b, lines in bufs.items():
            with open(self._path(b, base), "ab") as f:
                for line in lines:
                    f.write(line)
        bufs.clear()

    def _differential(self, version, entries):
        # Group changes by bucket so each bucket is rewritten once.
        changes = {}
        for e in entries:
            tag = e["idTag"].upper()
            changes.setdefault(_bucket(tag), {})[tag] = e.get("idTagInfo")
        count = self.count
        for b, ch in changes.items():
            path = self._path(b)
            tmp = path + ".tmp"
            with open(tmp, "wb") as out:
                try:
                    src = open(path, "rb")
                except OSError:
                    src = None
                if src is not None:
                    with src:
                        while True:
                            line = src.readline()
                            if not line:
                                break
                            tag = line.split(b"\t", 1)[0].decode()
                            if tag in ch:
                                count -= 1  # replaced or deleted below
                                continue
                            out.write(line)
                for tag, info in ch.items():
                    if info is not None:
                        out.write(tag.encode() + b"\t" + json.dumps(info).encode() + b"\n")
                        count += 1
            if count > self.max:
                os.remove(tmp)
                raise ValueError("list longer than LocalAuthListMaxLength")
            os.rename(tmp, path)
        self.version = version
        self.count = count
        self._save_meta()
        return "Accepted"
