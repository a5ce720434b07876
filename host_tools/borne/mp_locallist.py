# Local list benchmark run INSIDE MicroPython (the unix port): `micropython mp_locallist.py N`.
# Prints one JSON line of figures. Not imported by CPython: borne.bench runs it.
#
# A SendLocalList Full of N entries (updateType after the list) is written to the spool file and
# handed to the RPC layer as ws.py hands up a message over its RAM limit, with the real handler
# and the local list; the flash is LittleFS (the charger's file system, ESP32 port defaults:
# 4 KiB blocks, 32-byte read/program size) on a RAM block device that counts erases and
# programmed bytes, so the flash work is the charger's, whatever this host's disk is.
# - time: the whole CALL (pass 1: parse and check every entry; pass 2: parse again and write the
#   buckets; the answer), and pass 1 alone;
# - heap: the live heap (after a collection) sampled every 20th entry parsed, over what was live
#   before the message was handled; in a separate run (the sampling costs time);
# - flash: blocks erased and bytes programmed by the update, and by writing the spool file.
import asyncio
import gc
import json
import sys
import time

import vfs

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


class CountingFlash:
    # A block device in RAM with LittleFS's extended interface; counts what wears the flash.
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
        if off is None:  # a whole-block write: erase and program
            self.erases += 1
            off = 0
        a = block * self.size + off
        self.data[a : a + len(buf)] = buf
        self.programmed += len(buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.size
        if op == 6:  # erase
            self.erases += 1
            return 0
        return None


dev = CountingFlash(256)  # 1 MiB
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev, readsize=32, progsize=32, lookahead=32), "/flash")

from ocpp_client import authorization, spooled  # noqa: E402  (after the mount: the store is there)
from ocpp_client.config import Config  # noqa: E402
from ocpp_client.rpc import Rpc, load_checker  # noqa: E402
from ocpp_client.ws import Spooled, WsClosed  # noqa: E402
from store import Store  # noqa: E402


class FakeWs:
    def __init__(self, msg):
        self.q = [msg]
        self.sent = []

    async def recv_msg(self):
        if not self.q:
            raise WsClosed("eof")
        return self.q.pop(0)

    async def send(self, text):
        self.sent.append(json.loads(text))


class Session:
    # What the authorization feature takes from the OCPP session (and the connector's hook).
    def __init__(self, store):
        self.config = Config(store)
        self.store = store
        self.features = {}
        self.connector = self
        self._sent = [None, None]  # connector 0's last report (a LocalListConflict to clear)

    def online(self):
        return False


class Peak:
    # Stands in for the json module in spooled.py.
    def __init__(self):
        self.n = 0
        self.peak = 0

    def loads(self, text):
        self.n += 1
        if self.n % 20 == 0:
            gc.collect()
            self.peak = max(self.peak, gc.mem_alloc())
        return json.loads(text)


store = Store("/flash/data")
RX = bytearray(2048)  # the WebSocket's receive buffer, lent to the reader


def spool(version):
    sp = store.spool("rx")
    size = 0
    with sp.create() as f:
        head = '[2, "sll-%d", "SendLocalList", {"listVersion": %d, "localAuthorizationList": ['
        size += f.write((head % (version, version)).encode())
        for i in range(N):
            e = {"idTag": f"TAG{i:05d}", "idTagInfo": {
                "status": "Accepted", "expiryDate": "2031-01-01T00:00:00Z",
                "parentIdTag": f"FAMILY{i % 7}"}}
            size += f.write(((", " if i else "") + json.dumps(e)).encode())
        size += f.write(b'], "updateType": "Full"}]')
    with sp.open() as f:
        return Spooled(sp, size, 16384, f.read(128), RX)


async def main():
    rpc = Rpc(authorization.attach(Session(store)))
    load_checker()  # as the client does once connected (kept: the reader stays loaded too)
    out = {"entries": N}
    # the spool file, as ws.py writes it while the message arrives
    e0, p0 = dev.erases, dev.programmed
    m = spool(1)
    out["bytes"] = m.size
    out["spool_erases"] = dev.erases - e0
    out["spool_programmed"] = dev.programmed - p0
    # pass 1 alone
    t = time.ticks_us()
    with m.open() as f:
        await spooled.read(f, RX, "SendLocalList")
    out["pass1_ms"] = time.ticks_diff(time.ticks_us(), t) / 1000
    # the whole CALL, flash counted
    gc.collect()
    e0, p0 = dev.erases, dev.programmed
    ws = FakeWs(m)
    t = time.ticks_us()
    await rpc.serve(ws)
    out["call_ms"] = time.ticks_diff(time.ticks_us(), t) / 1000
    out["status"] = ws.sent[0][2].get("status") if ws.sent and ws.sent[0][0] == 3 else ws.sent
    out["erases"] = dev.erases - e0
    out["programmed"] = dev.programmed - p0
    # again with the heap sampled
    m = spool(2)
    ws = FakeWs(m)
    peak = Peak()
    spooled.json = peak
    gc.collect()
    base = gc.mem_alloc()
    await rpc.serve(ws)
    spooled.json = json
    out["heap_growth"] = peak.peak - base
    out["status2"] = ws.sent[0][2].get("status") if ws.sent and ws.sent[0][0] == 3 else ws.sent
    print(json.dumps(out))


asyncio.run(main())
