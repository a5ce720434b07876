# On-target tests for supervisor.wake(), within() and drop_waits(): a sleeping task woken at once
# without a task or an exception of its own, a cancelled one never turned back into a plain
# wake-up, a wait with a limit that neither outlives it nor swallows a real cancel, and
# asyncio's wait_for module out of the heap again once a connection's set-up is done with it;
# fw_version(), which reads version.py and lets it go.
import asyncio
import sys
import time

import supervisor


async def test_wake_ends_a_sleep_at_once():
    woken = []

    async def napper():
        t0 = time.ticks_ms()
        await asyncio.sleep_ms(5000)
        woken.append(time.ticks_diff(time.ticks_ms(), t0))

    t = asyncio.create_task(napper())
    await asyncio.sleep_ms(10)
    supervisor.wake(t)
    await t
    assert woken and woken[0] < 1000, woken


async def test_wake_leaves_a_cancelled_task_cancelled():
    # Task.cancel() puts the task at the front with CancelledError to throw in; a wake() before
    # it runs (an answer, an edge) must not clear that, or the task would sleep on uncancelled.
    ran_on = []

    async def napper():
        await asyncio.sleep_ms(5000)
        ran_on.append(True)

    t = asyncio.create_task(napper())
    await asyncio.sleep_ms(10)
    t.cancel()
    supervisor.wake(t)
    try:
        await t
        raise AssertionError("not cancelled")
    except asyncio.CancelledError:
        pass
    assert not ran_on


async def test_drop_waits_unloads_wait_for_and_it_loads_again_on_use():
    async def quick():
        return 7

    assert await asyncio.wait_for_ms(quick(), 100) == 7
    assert "asyncio.funcs" in sys.modules
    supervisor.drop_waits()
    assert "asyncio.funcs" not in sys.modules and "wait_for_ms" not in asyncio.__dict__
    assert await asyncio.wait_for_ms(quick(), 100) == 7
    async def slow():
        await asyncio.sleep_ms(1000)

    try:
        await asyncio.wait_for_ms(slow(), 10)
        raise AssertionError("no timeout")
    except asyncio.TimeoutError:
        pass


async def test_turns_go_in_order_and_a_cancelled_or_late_taker_holds_none():
    # supervisor.Turns, the link's lock (rpc.py's calls, ws.py's frames): one holder at a time,
    # the next woken as the turn is given; a waiter cancelled or out of time never holds it, and
    # a turn handed to a task cancelled meanwhile goes on to the next.
    t = supervisor.Turns()
    log = []

    async def user(name, hold_ms, limit_ms=10000):
        if not await t.take(limit_ms):
            log.append(name + " late")
            return
        try:
            log.append(name)
            await asyncio.sleep_ms(hold_ms)
        finally:
            t.give()

    a = asyncio.create_task(user("a", 50))
    await asyncio.sleep_ms(0)
    b = asyncio.create_task(user("b", 0))
    c = asyncio.create_task(user("c", 0, limit_ms=10))  # out of time behind a
    d = asyncio.create_task(user("d", 0))
    await asyncio.sleep_ms(20)
    b.cancel()  # waiting: out of the line
    await a
    await d
    await c
    assert log == ["a", "c late", "d"], log
    assert not t.busy and not t.waiting
    # Given to a task whose cancel came first: handed on, not lost.
    await t.take()
    e = asyncio.create_task(user("e", 0))
    f = asyncio.create_task(user("f", 0))
    await asyncio.sleep_ms(10)
    e.cancel()
    t.give()
    await f
    assert log[-1] == "f" and "e" not in log and not t.busy, log


async def test_within_gives_the_result_and_its_alarm_never_rings_after():
    async def quick():
        await asyncio.sleep_ms(5)
        return 42

    supervisor.drop_waits()  # (whatever ran before may have loaded it)
    assert await supervisor.within(quick(), 50) == 42
    # The alarm was stopped: sleeping past its limit, this task is not cancelled.
    await asyncio.sleep_ms(120)
    assert "asyncio.funcs" not in sys.modules, "within() loaded asyncio's wait_for"


async def test_within_cancels_a_slow_wait_and_says_timeout():
    ended = []

    async def slow():
        try:
            await asyncio.sleep_ms(5000)
        finally:
            ended.append(True)

    t0 = time.ticks_ms()
    try:
        await supervisor.within(slow(), 60)
    except asyncio.TimeoutError:
        pass
    else:
        raise AssertionError("no TimeoutError")
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert ended and 50 <= took < 1000, (ended, took)
    ev = asyncio.Event()  # an Event waited on under a limit leaves its queue when it passes
    try:
        await supervisor.within(ev.wait(), 20)
    except asyncio.TimeoutError:
        pass
    ev.set()
    await asyncio.sleep_ms(10)


async def test_within_leaves_a_cancel_from_elsewhere_a_cancel():
    seen = []

    async def waiter():
        try:
            await supervisor.within(asyncio.sleep_ms(5000), 3000)
        except asyncio.TimeoutError:
            seen.append("timeout")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    t = asyncio.create_task(waiter())
    await asyncio.sleep_ms(20)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    assert seen == ["cancelled"], seen


async def test_fw_version_reads_version_py_and_lets_it_go():
    # The running firmware's version for the BootNotification, the hotspot, MQTT and the rest:
    # read at each use, the module out of the heap again after.
    import version

    expected = version.VERSION
    supervisor.drop("version")
    assert supervisor.fw_version() == expected
    assert "version" not in sys.modules
    assert supervisor.fw_version("0") == expected  # the fallback only where there is none
