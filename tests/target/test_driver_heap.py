# emulators: host
# The drivers' polls allocate (next to) nothing, measured against the host's emulators (the bench
# `drivers` reports the same figures), so a change that brings back per-poll allocation fails
# here instead of showing up as GC pauses on the charger.
#
# Per poll, with the GC off: "garbage" is the growth of gc.mem_alloc() (what the GC would have to
# collect), "own" is every byte allocated (micropython.mem_total(), blocks freed at once
# included) less what asyncio's scheduler allocates and frees at each pass (the frame of its
# wait_io_event: its passes are counted by wrapping it, its cost measured with sleep_ms(0)).
#
# The bounds: a coroutine per call is >= 64 bytes of garbage here, a heap-allocated function
# frame >= 100 bytes of "own", a float 32 bytes of garbage (16 requested). The PN532 poll and the
# reader task are held to nothing at all; a meter poll with steady registers to one float: the
# unix port's time.time() (clock.now(), for the reading's timestamp) is a float (an int on the
# ESP32). Registers that change make a float per value, which is what a meter's value is.
import asyncio
import gc
import micropython
import time
from asyncio import core

from link import Link
from meter.meter import Meter, ModbusMeter
from meter.modbus import Master
from rfid.pn532 import Hsu, Pn532
from rfid.reader import Reader
import emu

_passes = [0]
_wait_io_event = core._io_queue.wait_io_event


def _counted(dt):
    _passes[0] += 1
    _wait_io_event(dt)


class Heap:
    def __init__(self):
        self.a0 = self.m0 = 0

    def start(self):
        gc.collect()
        gc.disable()
        core._io_queue.wait_io_event = _counted
        _passes[0] = 0
        self.a0 = micropython.mem_total()
        self.m0 = gc.mem_alloc()

    def stop(self):
        # -> (bytes allocated, garbage, scheduler passes)
        a = micropython.mem_total() - self.a0
        m = gc.mem_alloc() - self.m0
        del core._io_queue.wait_io_event
        gc.enable()
        return a, m, _passes[0]


async def pass_bytes():
    h = Heap()
    h.start()
    for _ in range(100):
        await asyncio.sleep_ms(0)
    a, _, p = h.stop()
    return a // p


def float_bytes():
    # What one float costs in GC blocks here (32 on a 64-bit port, 16 on the ESP32).
    keep = [None]
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    keep[0] = time.ticks_ms() * 1.5
    m = gc.mem_alloc() - m0
    gc.enable()
    return m


async def per_poll(make, n=10):
    # (own, garbage) per poll of make() (the poll's awaitable: no wrapper coroutine).
    per_pass = await pass_bytes()
    for _ in range(3):
        await make()
    h = Heap()
    h.start()
    for _ in range(n):
        await make()
    a, m, p = h.stop()
    return (a - p * per_pass) // n, m // n


async def test_meter_poll_allocates_at_most_the_timestamp():
    emu.ctl("flow 0")  # steady registers
    one_float = float_bytes()
    for model in ("sdm630", "sdm120", "abb_b23", "em340"):
        link = Link(emu.meter(model), baud=115200, bits_per_char=11)
        m = Meter(ModbusMeter(Master(link, 200, 2), model))
        own, garbage = await per_poll(m.poll)
        assert m.rejected == 0 and m.errors == 0 and m.energy_wh() is not None
        assert garbage <= one_float, (model, garbage, one_float)
        assert own <= 16, (model, own)  # at most the float's 16 requested bytes


async def test_meter_poll_with_the_register_moving():
    # 16 A flowing: the SDM630's energy register (a float, in kWh) changes at every poll and
    # becomes whole Wh: decoding, scaling, rounding are a float each.
    emu.ctl("flow 16")
    try:
        link = Link(emu.meter("sdm630"), baud=115200, bits_per_char=11)
        m = Meter(ModbusMeter(Master(link, 200, 2), "sdm630"))
        _, garbage = await per_poll(m.poll)
        e0 = m.energy_wh()
        await asyncio.sleep_ms(500)  # (~1.5 Wh at 16 A on three phases)
        await m.poll()
        assert m.energy_wh() > e0
        assert garbage <= 4 * float_bytes(), garbage
    finally:
        emu.ctl("flow 0")


async def test_pn532_poll_allocates_nothing():
    emu.ctl("untap")
    d = Pn532(Hsu(Link(emu.pn532(), baud=115200)))
    await d.init()
    uid = bytearray(10)
    own, garbage = await per_poll(lambda: d.poll(uid), 30)
    assert (own, garbage) == (0, 0)


async def test_the_tasks_allocate_nothing_between_polls():
    # Reader.run() and Meter.run() as the charger runs them (their pauses shortened).
    emu.ctl("untap")
    emu.ctl("flow 0")
    r = Reader(Pn532(Hsu(Link(emu.pn532(), baud=115200))), lambda tag: None, poll_ms=20)
    m = Meter(ModbusMeter(Master(Link(emu.meter("em340"), 115200, 11), 200, 2), "em340"),
              period_ms=30)
    polls = [0]
    poll = r.drv.poll

    def counting(uid):
        polls[0] += 1
        return poll(uid)

    r.drv.poll = counting
    tasks = [asyncio.create_task(r.run()), asyncio.create_task(m.run())]
    try:
        while polls[0] < 5 or m.polls < 5:
            await asyncio.sleep_ms(10)
        h = Heap()
        r0, m0 = polls[0], m.polls
        h.start()
        await asyncio.sleep_ms(600)
        _, garbage, _ = h.stop()
        n = m.polls - m0
        assert polls[0] - r0 >= 15 and n >= 10, (polls[0] - r0, n)
        # the meter's timestamps only (one more: a poll under way when measuring began)
        assert garbage <= (n + 1) * float_bytes(), (garbage, n)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.sleep_ms(10)
