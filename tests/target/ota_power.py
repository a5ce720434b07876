# MicroPython driver of tests/test_ota_power.py: a whole firmware update (download from a real
# HTTP or FTP server, check, install, trial boot, commit) with the power cut at the k-th file-system
# mutation, then boots until the update settles; after every cut and every boot it checks that
# what main.py would boot is a complete, signed version. One JSON line per round.
# Usage: micropython ota_power.py <scratch> <url> <keyring file> <cut> [<cut> ...]
import asyncio
import json
import os
import sys

from otafakes import Board, Conn, Events, Reset
import slotchoice
import mphelp
from mphelp import Cut
from ota import bundle, keys, slots, update
import store as store_mod
from store import Store
from store import wipe
from store.wipe import rmtree
import net.http as http_mod
import net.ftp as ftp_mod


class Power(mphelp.Power):
    # mphelp's power model, with the calls the updater makes besides
    def listdir(self, p):
        return os.listdir(p)

    def rmdir(self, p):
        if not self.step():
            raise Cut()
        os.rmdir(p)

    def mkdir(self, p):
        if not self.step():
            raise Cut()
        os.mkdir(p)

    def statvfs(self, p):
        return os.statvfs(p)


class PFile(mphelp.PFile):
    def flush(self):
        self.f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


mphelp.PFile = PFile
_MODS = (slotchoice, slots, bundle, wipe, store_mod, http_mod, ftp_mod)


def power(pw):
    for m in _MODS:
        mphelp.powered(m, pw)


def unpower():
    for m in _MODS:
        if "open" in m.__dict__:
            mphelp.unpowered(m)


def bootable(ring):
    # What main.py boots now: None (the factory application, in flash) or a slot, which must
    # verify against the keyring file by file. -> (slot, on trial, version)
    s, trial = slotchoice.choose()
    if s is None:
        return None, trial, "factory"
    m = run(bundle.verify_slot("app_" + s, ring))
    return s, trial, m["version"]


def run(coro):
    # A fresh loop each time: a cut leaves tasks and socket waits behind, as a reboot would not.
    asyncio.new_event_loop()
    return asyncio.run(coro)


def updater():
    st = Store("data")
    return update.Updater(st, Board(), {}, Conn(), Events(), "unix_sim")


async def job(u):
    try:
        await u._job()
    except Reset:
        return "reset"
    return "done"


def one_round(k, url, ring):
    cuts = 0
    pw = Power(k)
    power(pw)
    seen = []
    accepted = False  # UpdateFirmware answered (its job stored): the CSMS expects the update
    # boot 1: the factory version takes the update
    try:
        u = updater()
        u.request(url, 0, 2, 0)
        accepted = True
        r = run(job(u))
        if u.trial is None and r == "reset":
            pass
        s, trial = slotchoice.choose()  # boot 2 starts: the trial, if any
        u = updater()
        if u.trial:
            u.commit("test")
    except Cut:
        cuts += 1
    ops = pw.n
    unpower()
    # boots after the cut, until nothing is left to do
    final = None
    for boot in range(8):
        s, trial, ver = bootable(ring)
        seen.append(ver)
        u = updater()
        if u.trial:
            u.commit("test")
        elif u.doc["phase"] != "idle":
            if run(job(u)) == "reset":
                continue
        if u.doc["phase"] == "idle":
            final = u.doc["status"]
            break
    s, trial, ver = bootable(ring)
    return {"k": k, "ops": ops, "cut": cuts, "accepted": accepted, "boots": seen, "final": final, "version": ver,
            "slot": s, "why": u.doc["why"], "left": sorted(os.listdir("."))}


def rmall(p):
    rmtree(p, True, True)


def main_(argv):
    scratch, url, keyfile = argv[1], argv[2], argv[3]
    with open(keyfile) as f:
        ring_text = f.read()
    ring = keys._parse(json.loads(ring_text))
    for k in argv[4:]:
        d = "%s/r%s" % (scratch, k)
        os.mkdir(d)
        os.chdir(d)
        with open("ota_keys.json", "w") as f:
            f.write(ring_text)
        try:
            out = one_round(int(k), url, ring)
        except Exception as e:
            sys.print_exception(e)
            out = {"k": int(k), "error": "%s: %s" % (type(e).__name__, e)}
        print("ROUND " + json.dumps(out))
        os.chdir(scratch)
        rmall(d)
    print("DONE")


main_(sys.argv)
