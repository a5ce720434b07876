# Task supervision: every long-lived task of the agent runs under supervise(), so a MemoryError
# (or a bug) in one is logged and the task restarted, and the rest of the charger never runs on
# without it. A task that returns normally is done (a board without a radio has no hotspot).
#
# A failure is logged once per burst (a log line needs memory too, and a task failing again and
# again must not flood the agent log); the restart waits a backoff (100 ms, doubling, at most
# 5 s: never a busy loop) after a gc.collect(). A task that then runs CALM_MS without failing
# ends its burst: the next failure is logged again, with the count of the burst before it.
import asyncio
import gc
import time

import log

_TAG = "app"
_FIRST_MS = const(100)
_MAX_MS = const(5000)
CALM_MS = const(30000)

restarts = {}  # task name -> restarts since boot (the console and the tests read it)


async def supervise(name, fn, *args):
    # Runs `await fn(*args)` until it returns; restarts it after a failure.
    fails = 0
    burst = 0
    while True:
        t0 = time.ticks_ms()
        try:
            await fn(*args)
            return
        except Exception as e:
            gc.collect()
            if time.ticks_diff(time.ticks_ms(), t0) >= CALM_MS:
                fails = 0
            if not fails:
                try:
                    if burst:
                        log.warn(_TAG, "task %s: %d failure(s) in its last burst", name, burst)
                    log.exc(_TAG, "task %s failed, restarting it" % name, e)
                except MemoryError:
                    pass
                burst = 0
            fails += 1
            burst += 1
            try:
                restarts[name] = restarts.get(name, 0) + 1
            except MemoryError:
                pass
            await asyncio.sleep_ms(min(_MAX_MS, _FIRST_MS << min(fails - 1, 6)))


def heap_room(need, block, count=1):
    # Has the heap room for a feature? -> (yes?, free bytes): at least `need` bytes free after a
    # collection, and `count` contiguous blocks of `block` bytes at once (its largest buffers: a
    # fragmented heap can have plenty free in holes too small for them), probed by allocating
    # them once.
    gc.collect()
    free = gc.mem_free()
    if free < need:
        return False, free
    held = None
    try:
        for _ in range(count):
            held = (held, bytearray(block))
    except MemoryError:
        return False, free
    held = None
    return True, free

