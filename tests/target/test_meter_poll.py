# On-target tests for meter.meter.Meter's poll loop: fresh() wakes it at once (no Event under
# wait_for_ms: the loop's sleep is cut short), and the V x I check settled in integers gives the
# exact verdicts.
import asyncio
import time

from meter import maps
from meter.meter import Meter
from meterscript import Scripted, vals


async def test_fresh_reads_the_register_now_not_after_a_timeout():
    # At a session's end the connector asks for the register as it is now: the poll loop is
    # woken from its pause and fresh() answers after that one poll.
    src = Scripted()
    m = Meter(src, period_ms=10000)
    task = asyncio.create_task(m.run())
    try:
        await asyncio.sleep_ms(50)
        assert m.polls == 1 and m.energy_wh() == 1000
        src.next = vals(e=1002)
        t0 = time.ticks_ms()
        assert await m.fresh() == 1002
        assert time.ticks_diff(time.ticks_ms(), t0) < 200
        assert m.polls == 2
        await asyncio.sleep_ms(50)
        assert m.polls == 2, "then the loop keeps its period"
    finally:
        task.cancel()
    await asyncio.sleep_ms(10)
    # cancelled while it paused: a later fresh() finds no loop to wake and times out cleanly
    assert await m.fresh(timeout_ms=30) == 1002


class Slow(Scripted):
    # A source whose reading takes 100 ms.
    async def read(self, out):
        await asyncio.sleep_ms(100)
        await super().read(out)


async def test_fresh_during_a_poll_waits_for_the_next_one():
    src = Slow()
    m = Meter(src, period_ms=10000)
    task = asyncio.create_task(m.run())
    try:
        await asyncio.sleep_ms(30)  # the first poll is under way
        src.next = vals(e=1005)  # (the poll under way may or may not see this)
        t0 = time.ticks_ms()
        e = asyncio.create_task(m.fresh())
        await asyncio.sleep_ms(0)
        src.next = vals(e=1007)  # only a poll begun after fresh() is sure to
        assert await e == 1007
        assert 100 <= time.ticks_diff(time.ticks_ms(), t0) < 400
        assert m.polls == 2
    finally:
        task.cancel()


def test_power_against_v_x_i_in_integers_and_exactly():
    # The V x I check settles most readings with whole volts x whole amps (no float made) and
    # works out the exact sum when that is not enough: the verdicts are the exact ones.
    m = Meter(None, max_current_a=32, phases=3)
    cases = (
        (vals(p=3 * 230.9 * 10.9 * 1.1 + 49.0, i=(10.9,) * 3, u=(230.9,) * 3), None),
        (vals(p=3 * 230.9 * 10.9 * 1.1 + 51.0, i=(10.9,) * 3, u=(230.9,) * 3), "V x I"),
        (vals(p=-(3 * 230.0 * 0.9 * 1.1 + 49.0), i=(0.9,) * 3), None),  # below 1 A: exact
        (vals(p=-(3 * 230.0 * 0.9 * 1.1 + 51.0), i=(0.9,) * 3), "V x I"),
        (vals(p=60.0, i=(-0.3, 0.0, 0.0), u=(230.0, 0.0, 0.0)), "V x I"),  # a negative current
        (vals(p=40.0, i=(-0.3, None, 0.0)), None),  # unknown: not checked
        (vals(p=40.0, i=(0.0, 0.0, 0.0)), None),
        (vals(p=60.0, i=(0.0, 0.0, 0.0)), "V x I"),
    )
    for v, why in cases:
        got = m.check(v, 0)
        assert (got is None) if why is None else (got and why in got), (v, got)
