# On-target tests for meter.meter.Meter (plausibility, PowerMeterFailure, never inventing
# energy) and meter.pulse.PulseMeter.
import asyncio
import time

import micropython

from link import Link
from meter import maps
from meter.meter import Meter, ModbusMeter
from meter.modbus import Master
from meter.pulse import PulseMeter
from store import Store
from fakewire import Wire, MiniModbus
from mphelp import Logs
from meterscript import Scripted, vals


def test_plausible_reading_passes():
    m = Meter(None, max_current_a=32, phases=3)
    assert m.check(vals(), 0) is None
    assert m.check(vals(i=(16.0, 0.0, 0.0), u=(230.0, 0.0, 0.0), p=3680.0), 0) is None  # 1 phase


def test_implausible_readings_are_rejected_with_reasons():
    m = Meter(None, max_current_a=32, phases=3)
    cases = (
        (vals(e=-5), "negative energy"),
        (vals(p=1000000.0), "beyond the circuit"),  # 1 MW on a 32 A circuit
        (vals(i=(45.0, 1.0, 1.0)), "current L1"),
        (vals(u=(400.0, 230.0, 230.0)), "voltage L1"),
        (vals(u=(0.0, 230.0, 230.0)), "voltage L1"),
        (vals(u=(230.0, 0.0, 230.0), i=(1.0, 9.0, 1.0)), "without voltage"),
        (vals(p=20000.0, i=(5.0, 5.0, 5.0)), "V x I"),
        (vals(f=0.0), "frequency"),
        (vals(e=None), "no energy"),
    )
    for v, why in cases:
        got = m.check(v, 0)
        assert got and why in got, (why, got)


async def test_energy_never_backwards_nor_faster_than_the_circuit():
    src = Scripted()
    m = Meter(src, max_current_a=32, phases=3)
    src.next = vals(e=50000)
    assert await m.poll()
    src.next = vals(e=49999)
    with Logs() as logs:
        assert not await m.poll()
    assert logs.warned("energy went backwards")
    src.next = vals(e=50000 + 100000)  # 100 kWh in a moment
    with Logs() as logs:
        assert not await m.poll()
    assert logs.warned("energy rose")
    await asyncio.sleep_ms(200)
    src.next = vals(e=50001)
    assert await m.poll()
    assert m.latest["energy_wh"] == 50001 and m.rejected == 2


async def test_failure_is_reported_once_and_energy_is_never_invented():
    src = Scripted()
    seen = []
    m = Meter(src, fail_after=3, on_failure=seen.append)
    src.next = vals(e=1234)
    assert await m.poll()
    ts = m.latest["ts"]
    assert m.energy_wh() == 1234
    src.next = OSError("bus dead")
    for _ in range(5):
        assert not await m.poll()
    assert seen == [True] and m.failed
    assert m.latest["ok"] is False and m.latest["energy_wh"] == 1234 and m.latest["ts"] == ts
    assert m.energy_wh() is None
    src.next = vals(e=1240)
    assert await m.poll()
    assert seen == [True, False] and m.energy_wh() == 1240


async def test_meter_on_a_modbus_line_that_disappears_and_returns():
    dev = MiniModbus(only=4)
    import struct

    def f32(x):
        return list(struct.unpack(">HH", struct.pack(">f", x)))

    dev.set(0, f32(230.0) * 3 + f32(0.0) * 3)
    dev.set(0x34, f32(0.0) * 11)
    dev.set(0x46, f32(50.0) + f32(42.0))
    seen = []
    m = Meter(ModbusMeter(Master(Link(Wire(dev), baud=115200), 30, 0), "sdm630"),
              on_failure=seen.append)
    assert await m.poll() and m.latest["energy_wh"] == 42000
    assert m.latest["current_a"] == [0.0, 0.0, 0.0] and m.latest["voltage_v"][2] == 230.0
    dev.silent = True
    for _ in range(3):
        assert not await m.poll()
    assert seen == [True]
    dev.silent = False
    assert await m.poll()
    assert seen == [True, False]


class Pulses:
    def __init__(self):
        self.count = 0
        self.flag = asyncio.ThreadSafeFlag()

    def pulse(self, n=1):
        self.count += n
        self.flag.set()


async def test_pulse_meter():
    p = Pulses()
    p.count = 500  # the board counted before the meter was built: not energy of ours
    src = PulseMeter(p, wh_per_pulse=1.0, store=Store("flash"))
    m = Meter(src)
    assert await m.poll() and m.latest["energy_wh"] == 0 and m.latest["power_w"] == 0.0
    assert m.latest["voltage_v"] == [None, None, None], "unknown, never invented"
    p.pulse()
    await m.poll()
    await asyncio.sleep_ms(200)
    p.pulse()
    assert await m.poll()
    assert m.latest["energy_wh"] == 2
    # 1 Wh in ~200 ms is ~18 kW: the estimate follows the pulse interval
    assert 12000 < m.latest["power_w"] < 19000, m.latest["power_w"]
    src.checkpoint()
    p2 = Pulses()  # reboot: the count restarts, the stored base carries the register
    src2 = PulseMeter(p2, wh_per_pulse=1.0, store=Store("flash"))
    p2.pulse(10)
    v = [None] * maps.NVALUES
    await src2.read(v)
    assert v[maps.E] == 12


async def test_fresh_reading_comes_from_a_poll_begun_after_the_request():
    # At a session's end the register is read once more (the relay is open, it stopped
    # moving): fresh() must return that poll's value promptly, not the stale one, and not
    # only after its timeout.
    src = Scripted()
    m = Meter(src, period_ms=5000)  # the loop would otherwise sleep 5 s between polls
    task = asyncio.create_task(m.run())
    await asyncio.sleep_ms(50)
    assert m.energy_wh() == 1000
    src.next = vals(e=1003)
    t0 = time.ticks_ms()
    e = await m.fresh(timeout_ms=2000)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert e == 1003, e
    assert took < 500, "fresh() took %d ms: it waited for its timeout" % took
    e = await m.fresh(timeout_ms=2000)  # and again: its counters survive a good poll
    assert time.ticks_diff(time.ticks_ms(), t0) < 1000
    task.cancel()


class _NoHeap:
    # A source whose reads find the heap exhausted: every allocation fails from the moment it
    # raises (micropython.heap_lock()) until the test gives the heap back.
    def __init__(self):
        self.out = False
        self.e = vals(e=1000)

    async def read(self, out):
        if self.out:
            exc = MemoryError()
            micropython.heap_lock()
            raise exc
        for k in range(maps.NVALUES):
            out[k] = self.e[k]


async def test_polls_out_of_memory_are_no_meter_failure_and_the_task_lives_on():
    # A heap squeezed while charging: the polls find no memory, which is no meter failure (no
    # PowerMeterFailure), and the meter task neither dies nor waits a restart's backoff: once
    # memory is back the session's end reads the register as it is (the owner is billed it).
    src = _NoHeap()
    seen = []
    m = Meter(src, period_ms=20, fail_after=3, on_failure=seen.append)
    task = asyncio.create_task(m.run())
    await asyncio.sleep_ms(30)
    assert m.energy_wh() == 1000
    src.out = True
    await asyncio.sleep_ms(200)  # ~10 polls with no memory
    while micropython.heap_unlock():
        pass
    src.out = False
    src.e = vals(e=1016)
    e = await m.fresh(timeout_ms=2000)
    assert e == 1016, e
    assert not task.done(), "the meter task ended"
    assert seen == [] and not m.failed and m.errors >= 3, (seen, m.errors)
    task.cancel()
