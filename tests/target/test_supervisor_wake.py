# On-target tests for supervisor.wake() and drop_waits(): a sleeping task woken at once without
# a task or an exception of its own, a cancelled one never turned back into a plain wake-up, and
# asyncio's wait_for module out of the heap again once a connection's set-up is done with it.
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
