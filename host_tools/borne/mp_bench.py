# Driver benchmarks run INSIDE MicroPython (the unix port), against the host's device emulators
# (borne.sim.emu_serve): `micropython mp_bench.py '<emu_serve JSON line>'`. Prints one JSON
# line of figures. Not imported by CPython: borne.bench runs it.
#
# - meter poll: one full reading (every block of the map, decoded and checked by the meter task)
#   at 9600 baud 8E1 (the meters' default: the link waits for the bytes' time on the wire, as on
#   RS-485) and at 115200; heap allocated per poll (micropython.mem_total, GC disabled while
#   measuring), after a warm-up.
# - reader poll: one InListPassiveTarget exchange with no card, and its heap.
import asyncio
import gc
import json
import socket
import sys
import time

import micropython
from link import Link
from meter.meter import Meter, ModbusMeter
from meter.modbus import Master
from rfid.pn532 import Hsu, Pn532

CFG = json.loads(sys.argv[1])
N = 20


def connect(port):
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.setblocking(False)
    return s


async def measure(fn, n=N):
    # -> (ms per call, bytes allocated per call)
    for _ in range(3):
        await fn()
    gc.collect()
    gc.disable()
    try:
        a0 = micropython.mem_total()
        t0 = time.ticks_us()
        for _ in range(n):
            await fn()
        t1 = time.ticks_us()
        a1 = micropython.mem_total()
    finally:
        gc.enable()
    return time.ticks_diff(t1, t0) / n / 1000, (a1 - a0) // n


async def main():
    out = {"meter": {}, "reader": {}}
    for model, port in CFG["meters"].items():
        for baud in (9600, 115200):
            link = Link(connect(port), baud=baud, bits_per_char=11)
            src = ModbusMeter(Master(link), model)
            m = Meter(src)

            async def poll(m=m):
                if not await m.poll():
                    raise RuntimeError("poll failed")

            ms, heap = await measure(poll)
            out["meter"][f"{model}@{baud}"] = {"ms": round(ms, 1), "heap": heap,
                                                     "blocks": len(src.map["blocks"])}
    d = Pn532(Hsu(Link(connect(CFG["pn532"]), baud=115200)))
    await d.init()
    uid = bytearray(10)

    async def rpoll():
        await d.poll(uid)

    ms, heap = await measure(rpoll)
    out["reader"] = {"ms": round(ms, 2), "heap": heap}

    async def bare():
        await asyncio.sleep_ms(1)

    out["sleep_heap"] = (await measure(bare))[1]
    print(json.dumps(out))


asyncio.run(main())
