# Firmware update benchmark run INSIDE MicroPython (the unix port):
#   micropython mp_ota.py <bundle URL> <keyring JSON file> <board>
# Prints one JSON line of figures. Not imported by CPython: borne.bench runs it.
#
# The real updater (ota/update.py) downloads the bundle from a real HTTP server, checks it and
# installs it into a slot, on LittleFS (ESP32 port defaults: 4 KiB blocks, 32-byte read/program)
# over a RAM block device that counts erases and programmed bytes, so the flash work is the
# charger's, whatever this host's disk is.
# - heap: the live heap (after a collection), sampled every 5 ms by a task, over what was live
#   before the phase started: download, check (signature + every file's hash), install;
# - time: each phase, and the RSA-2048 signature check alone (mean of 50);
# - flash: blocks erased and bytes programmed per phase, and for the boot record and commit.
import asyncio
import gc
import hashlib
import json
import sys
import time

import vfs

URL, KEYS, BOARD = sys.argv[1], sys.argv[2], sys.argv[3]


class CountingFlash:
    def __init__(self, blocks, size=4096):
        self.size = size
        self.blocks = blocks
        self.data = bytearray(blocks * size)
        self.erases = 0
        self.programmed = 0

    def readblocks(self, block, buf, off=0):
        a = block * self.size + off
        buf[:] = memoryview(self.data)[a : a + len(buf)]

    def writeblocks(self, block, buf, off=None):
        if off is None:
            self.erases += 1
            off = 0
        a = block * self.size + off
        self.data[a : a + len(buf)] = buf
        self.programmed += len(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return self.size
        if op == 6:
            self.erases += 1
            return 0
        return None


with open(KEYS) as f:
    RING = f.read()
dev = CountingFlash(640)  # 2.5 MiB: the ESP32 4 MB layout's filesystem is ~2 MiB
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=32, lookahead=32), "/flash")
import os  # noqa: E402

os.chdir("/flash")
with open("ota_keys.json", "w") as f:
    f.write(RING)

import log  # noqa: E402
from ota import keys, rsa, update  # noqa: E402
from store import Store  # noqa: E402

log.level = 30


class Reset(Exception):
    pass


class Board:
    def reset(self, hard):
        raise Reset()

    def dns_server(self):
        return None  # (the board contract's: names resolved by getaddrinfo; the bench uses none)


class Conn:
    session = None

    def started(self):
        return True

    def hold(self, on):
        pass


class Events:
    def add(self, kind, **kw):
        pass


class Peak:
    def __init__(self):
        self.run = True
        gc.collect()
        self.base = gc.mem_alloc()
        self.peak = self.base

    async def sample(self):
        while self.run:
            gc.collect()
            a = gc.mem_alloc()
            if a > self.peak:
                self.peak = a
            await asyncio.sleep_ms(5)


async def phase(name, coro, out):
    p = Peak()
    sampler = asyncio.create_task(p.sample())
    e0, w0 = dev.erases, dev.programmed
    t0 = time.ticks_ms()
    try:
        r = await coro
    except Reset:
        r = "reset"
    out[name + "_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    p.run = False
    await sampler
    out[name + "_heap"] = p.peak - p.base
    out[name + "_erases"] = dev.erases - e0
    out[name + "_programmed"] = dev.programmed - w0
    return r


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()


async def main():
    out = {}
    u = update.Updater(Store("data"), Board(), {}, Conn(), Events(), BOARD)
    u.request(URL, 0, 1, 0)
    d = u.doc
    d["phase"] = "download"
    ok = await phase("download", u._download(), out)
    assert ok, d["why"]
    out["bundle_bytes"] = os.stat(update.BUNDLE)[6]
    b = await phase("check", u._check(), out)
    assert b is not None, d["why"]
    out["files"] = len(b.manifest["files"])
    out["app_bytes"] = b.size()
    u._phase("install")
    await phase("install", u._install(), out)
    assert u.doc["phase"] == "trial", u.doc
    # the next boot: main.py's trial record, then the commit after proof
    import slotchoice

    e0 = dev.erases
    slotchoice.choose()
    u2 = update.Updater(Store("data"), Board(), {}, Conn(), Events(), BOARD)
    u2.commit("bench")
    out["boot_commit_erases"] = dev.erases - e0
    # the signature check alone
    ring = keys.load()
    n, e = ring[b.kid]
    dig = _digest("app_a/.manifest")
    t0 = time.ticks_us()
    for _ in range(50):
        assert rsa.verify(n, e, b.sig, dig)
    out["rsa_us"] = time.ticks_diff(time.ticks_us(), t0) // 50
    out["total_erases"] = dev.erases
    print(json.dumps(out))


asyncio.run(main())
