# Driver benchmarks run INSIDE MicroPython (the unix port), against the host's device emulators
# (borne.sim.emu_serve): `micropython mp_bench.py '<emu_serve JSON line>'`. Prints one JSON
# line of figures. Not imported by CPython: borne.bench runs it.
#
# - meter poll: one full reading (every block of the map, decoded and checked by the meter task)
#   at 9600 baud 8E1 (the meters' default: the link waits for the bytes' time on the wire, as on
#   RS-485) and at 115200, the meter idle (registers steady) and measuring 16 A (the energy
#   register moving).
# - reader poll: one InListPassiveTarget exchange with no card.
# - the tasks as they run on the charger: Meter.run() and Reader.run() over many polls.
#
# Heap, per poll, after a warm-up, with the GC disabled while measuring:
# - "garbage": growth of gc.mem_alloc(), what a poll leaves for the GC to collect;
# - "total": growth of micropython.mem_total(), every byte allocated, including blocks freed at
#   once (a function frame over ~11 slots is allocated on the heap and freed at its return);
# - "passes": asyncio scheduler passes (calls of its wait_io_event, counted by wrapping it),
#   each of which allocates and frees that method's frame: "pass_bytes" (measured with bare
#   sleep_ms(0) loops). "own" is total - passes x pass_bytes: what our code allocates itself.
import asyncio
import gc
import json
import socket
import sys
import time
from asyncio import core

import micropython
from link import Link
from meter.meter import Meter, ModbusMeter
from meter.modbus import Master
from rfid.pn532 import Hsu, Pn532
from rfid.reader import Reader

CFG = json.loads(sys.argv[1])
N = 20
_ctl = None


def connect(port, blocking=False):
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.setblocking(blocking)
    return s


def ctl(line):
    global _ctl
    if _ctl is None:
        _ctl = connect(CFG["control"], True)
    _ctl.write(line.encode() + b"\n")  # answered with one line ("ok")
    while _ctl.read(1) != b"\n":
        pass


_passes = 0
_wait_io_event = core._io_queue.wait_io_event


def _counted(dt):
    global _passes
    _passes += 1
    _wait_io_event(dt)


class Heap:
    # Heap figures over a stretch of code (GC off): start(), then stop(n) -> per unit.
    def __init__(self):
        self.t0 = self.a0 = self.m0 = 0  # (set now: a first store would grow the object)

    def start(self):
        global _passes
        gc.collect()
        gc.disable()
        core._io_queue.wait_io_event = _counted
        _passes = 0
        self.t0 = time.ticks_us()
        self.a0 = micropython.mem_total()
        self.m0 = gc.mem_alloc()

    def stop(self, n):
        a1 = micropython.mem_total()
        m1 = gc.mem_alloc()
        t1 = time.ticks_us()
        del core._io_queue.wait_io_event
        gc.enable()
        return {"ms": time.ticks_diff(t1, self.t0) / n / 1000, "total": (a1 - self.a0) // n,
                "garbage": (m1 - self.m0) // n, "passes": _passes / n}


async def measure(make, n=N):
    # make() -> the awaitable of one poll (no wrapper coroutine: it would be counted too);
    # a poll that gives False (a meter's failed reading) stops the benchmark.
    for _ in range(3):
        await make()
    h = Heap()
    h.start()
    for _ in range(n):
        if await make() is False:
            raise RuntimeError("poll failed")
    return h.stop(n)


async def pass_bytes():
    # What one scheduler pass allocates (and frees): a coroutine looping on sleep_ms(0), which
    # makes one pass per iteration.
    async def loop(n):
        for _ in range(n):
            await asyncio.sleep_ms(0)

    await loop(5)
    h = Heap()
    h.start()
    await loop(200)
    f = h.stop(200)
    return f["total"] / f["passes"], f["garbage"]


def own(f, per_pass):
    f["own"] = max(0, round(f["total"] - f["passes"] * per_pass))
    f["ms"] = round(f["ms"], 2)
    return f


async def run_task(make, count, n):
    # A driver task as the charger runs it, measured over n of its polls (count() tells them).
    task = asyncio.create_task(make())
    t = time.ticks_ms()
    while count() < 5 and time.ticks_diff(time.ticks_ms(), t) < 5000:
        await asyncio.sleep_ms(20)
    h = Heap()
    k0 = count()
    h.start()
    while count() < k0 + n:
        await asyncio.sleep_ms(20)
    f = h.stop(count() - k0)
    task.cancel()
    await asyncio.sleep_ms(10)
    return f


async def main():
    per_pass, _ = await pass_bytes()
    out = {"meter": {}, "reader": {}, "pass_bytes": round(per_pass)}
    for flow in (0, 16):
        ctl(f"flow {flow}")
        for model, port in CFG["meters"].items():
            for baud in (9600, 115200):
                link = Link(connect(port), baud=baud, bits_per_char=11)
                src = ModbusMeter(Master(link), model)
                m = Meter(src)
                f = own(await measure(m.poll), per_pass)
                f["blocks"] = len(src.map["blocks"])
                out["meter"][f"{model}@{baud}/{flow}A"] = f
    # the meter task, polling every 50 ms (the charger: every second; the work is the same)
    ctl("flow 16")
    m = Meter(ModbusMeter(Master(Link(connect(CFG["meters"]["sdm630"]), 9600, 11)), "sdm630"),
              period_ms=50)
    out["meter_run"] = own(await run_task(m.run, lambda: m.polls, N), per_pass)
    ctl("flow 0")

    d = Pn532(Hsu(Link(connect(CFG["pn532"]), baud=115200)))
    await d.init()
    uid = bytearray(10)
    out["reader"] = own(await measure(lambda: d.poll(uid), 50), per_pass)
    r = Reader(Pn532(Hsu(Link(connect(CFG["pn532"]), baud=115200))), lambda tag: None,
               poll_ms=20)
    polls = [0]
    poll = r.drv.poll

    def counting(uid):
        polls[0] += 1
        return poll(uid)

    r.drv.poll = counting
    out["reader_run"] = own(await run_task(r.run, lambda: polls[0], 50), per_pass)

    out["sleep"] = own(await measure(lambda: asyncio.sleep_ms(1)), per_pass)
    print(json.dumps(out))


asyncio.run(main())
