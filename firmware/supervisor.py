# Task supervision: every long-lived task of the agent is started by start(), so a MemoryError
# (or a bug) in one is logged and the task restarted, and the rest of the charger never runs on
# without it. A task that returns normally is done (a board without a radio has no hotspot).
#
# One keeper for all (keep(): app.py's main task; started by the first start() otherwise), no
# wrapper per task: a supervised task is the function's own coroutine in an asyncio Task whose
# completion callback (`state`, as asyncio.gather sets it) is _ended(). The callback allocates
# nothing (it runs inside the scheduler: an exception there would stop the loop): it marks the
# task's slot and wakes the keeper, which logs and restarts it. Each task costs one slot of _W
# words in one list (name, fn, args, the Task, its failure counts and a time): no generator
# frame, closure or bound method per task beyond the function given.
#
# A failure is logged once per burst (a log line needs memory too, and a task failing again and
# again must not flood the agent log); the restart waits a backoff (100 ms, doubling, at most
# 5 s: never a busy loop) after a gc.collect(). A task that then runs _CALM_MS without failing
# ends its burst: the next failure is logged again, with the count of the burst before it. A
# restart that finds no memory to make the task counts as a failure of it (the next try later).
import asyncio
import gc
import time

import log

_TAG = const("app")
_FIRST_MS = const(100)
_MAX_MS = const(5000)
_CALM_MS = const(30000)
_LONG_MS = const(0x7FFFFFF)  # a wait without a limit: ~1.5 days, within ticks_add()'s range

restarts = {}  # task name -> restarts since boot (the console and the tests read it)

# The slots, _W entries each: _RUN is the Task while it runs, the exception that ended it until
# the keeper saw it, None while it waits for its restart (or for ever once ended, fn None: the
# slot is free); _MS the time it started, then when it failed, then when it restarts.
_NAME = const(0)
_FN = const(1)
_ARGS = const(2)
_RUN = const(3)
_FAILS = const(4)
_BURST = const(5)
_MS = const(6)
_W = const(7)
_slots = []
_wake = asyncio.Event()
_kept = False  # a keep() loop runs


def start(name, fn, *args):
    # Starts `fn(*args)` as a supervised task: restarted after a failure until it returns.
    # -> its slot (for stop()).
    global _kept
    s = _slots
    i = 0
    while i < len(s) and s[i + _FN] is not None:
        i += _W
    if i == len(s):
        s.extend((None, None, (), None, 0, 0, 0))
    s[i + _NAME] = name
    s[i + _FN] = fn
    s[i + _ARGS] = args
    s[i + _FAILS] = 0
    s[i + _BURST] = 0
    try:
        _run(i)
    except BaseException:
        s[i + _FN] = None  # the slot back: the caller gets the error
        s[i + _ARGS] = ()
        raise
    if not _kept:
        _kept = True
        asyncio.create_task(keep())
    return i


def _run(i):
    s = _slots
    t = asyncio.create_task(s[i + _FN](*s[i + _ARGS]))
    t.state = _ended  # called by the scheduler when it ends (no one awaits it)
    s[i + _RUN] = t
    s[i + _MS] = time.ticks_ms()


def _ended(t, er):
    # The scheduler's completion callback: no allocation, nothing raised.
    try:
        s = _slots
        for i in range(0, len(s), _W):
            if s[i + _RUN] is t:
                if isinstance(er, StopIteration) or not isinstance(er, Exception):
                    s[i + _RUN] = None  # returned (or cancelled): done, the slot free
                    s[i + _FN] = None
                    s[i + _ARGS] = ()
                else:
                    now = time.ticks_ms()
                    if time.ticks_diff(now, s[i + _MS]) >= _CALM_MS:
                        s[i + _FAILS] = 0
                    s[i + _RUN] = er
                    s[i + _MS] = now
                    _wake.set()
                return
    except Exception:
        pass


def _failed(i, e):
    # A failure of slot i's task (`e`): logged once per burst, its restart scheduled.
    s = _slots
    name = s[i + _NAME]
    fails = s[i + _FAILS]
    if not fails:
        try:
            if s[i + _BURST]:
                log.warn(_TAG, "task %s: %d failure(s) in its last burst", name, s[i + _BURST])
            log.exc(_TAG, "task %s failed, restarting it" % name, e)
        except MemoryError:
            pass
        s[i + _BURST] = 0
    fails += 1
    s[i + _FAILS] = fails
    s[i + _BURST] += 1
    try:
        restarts[name] = restarts.get(name, 0) + 1
    except MemoryError:
        pass
    s[i + _RUN] = None
    s[i + _MS] = time.ticks_add(s[i + _MS], min(_MAX_MS, _FIRST_MS << min(fails - 1, 6)))


def _check():
    # Handles the failures the callback marked and makes the restarts that are due; -> ms to
    # the next restart, or -1 when none waits.
    s = _slots
    nxt = -1
    for i in range(0, len(s), _W):
        if s[i + _FN] is None:
            continue
        r = s[i + _RUN]
        if r is not None and not isinstance(r, Exception):
            continue  # running
        if r is not None:
            gc.collect()
            _failed(i, r)
            r = None
        wait = time.ticks_diff(s[i + _MS], time.ticks_ms())
        if wait <= 0:
            try:
                _run(i)
                continue
            except Exception as e:  # no memory to make it: a failure, tried again later
                s[i + _MS] = time.ticks_ms()
                _failed(i, e)
                wait = time.ticks_diff(s[i + _MS], time.ticks_ms())
        if nxt < 0 or wait < nxt:
            nxt = wait
    return nxt


async def keep(tasks=None):
    # The keeper: starts `tasks` (a list of (name, fn) pairs, emptied), then restarts any
    # supervised task that failed, for ever (app.py's main task; the first start() makes one
    # otherwise). Waits on the callback's event while nothing is to restart, else sleeps till
    # the next restart, at most 100 ms at a time (a failure meanwhile is due no earlier).
    global _kept
    _kept = True
    while tasks:  # emptied as started: no frame of this loop keeps the list or its pairs
        start(*tasks[0])
        tasks.pop(0)
    tasks = None
    while True:
        try:
            _wake.clear()
            wait = _check()
            if wait < 0:
                await _wake.wait()
            else:
                await asyncio.sleep_ms(min(wait, _FIRST_MS))
        except Exception:
            gc.collect()
            await asyncio.sleep_ms(_FIRST_MS)


def stop(i):
    # Ends the supervised task of slot i (cancelled, not restarted).
    s = _slots
    r = s[i + _RUN]
    if r is not None and not isinstance(r, Exception):
        r.cancel()  # _ended() frees the slot
    else:
        s[i + _RUN] = None
        s[i + _FN] = None
        s[i + _ARGS] = ()


def drop(*names):
    # Modules loaded on use, out of the heap again: removed from sys.modules and from their
    # package (which keeps each imported submodule as an attribute); their code is freed once
    # nothing refers to it, and the next use imports them again.
    import sys

    for n in names:
        if sys.modules.pop(n, None) is not None:
            pkg, _, leaf = n.rpartition(".")
            try:
                delattr(sys.modules[pkg], leaf)
            except (KeyError, AttributeError):
                pass


def fw_version(missing="dev"):
    # The running firmware's version: version.py (one string, which `borne release` writes)
    # read at each use and out of the heap again; `missing` where there is none (a source tree).
    try:
        import version
    except ImportError:
        return missing
    drop("version")
    return version.VERSION


async def within(coro, ms):
    # -> what coro gives, or asyncio.TimeoutError once `ms` passed (coro cancelled): what
    # asyncio.wait_for_ms does, without loading its module (asyncio/funcs.py, ~0.5 KB) and its
    # runner: the caller's own task awaits coro, and an alarm task cancels it at the limit (it
    # can only find the caller suspended inside coro: the alarm is stopped before this returns).
    # A cancel from elsewhere stays a cancel.
    a = asyncio.create_task(_alarm(asyncio.current_task(), ms))
    try:
        return await coro
    except asyncio.CancelledError:
        if a.done():  # the alarm rang
            raise asyncio.TimeoutError
        raise
    finally:
        a.cancel()


async def _alarm(task, ms):
    await asyncio.sleep_ms(ms)
    task.cancel()


def drop_waits():
    # asyncio's wait_for, wait_for_ms and gather out of the heap again: asyncio loads their
    # module (asyncio/funcs.py) at the first use of one and keeps them in its globals for good
    # (~0.4 KB); the firmware's own waits use within() instead, the HTTP client and FTP (net/)
    # and the firmware update's job still use them.
    import asyncio

    g = asyncio.__dict__
    for n in ("wait_for", "wait_for_ms", "gather"):
        g.pop(n, None)
    drop("asyncio.funcs")


def wake(task):
    # Ends a task's asyncio.sleep now: it goes from its place in asyncio's run queue (its wake-up
    # time) to the front, as Task.cancel() moves a sleeping task, but without the exception. A
    # loop that pauses between polls and must also answer an event at once sleeps, and whoever
    # sees the event wakes it: an Event or a ThreadSafeFlag under wait_for_ms would do it too, at
    # the cost of a task, two coroutines and a TimeoutError at every pause. A task with an
    # exception to throw in (cancelled: asyncio put it at the front already) is left as it is:
    # push() would clear it.
    if task.data is not None:
        return
    from asyncio import core

    q = core._task_queue
    q.remove(task)
    q.push(task)


class Turns:
    # One holder at a time, the others asleep in the order they came; give() hands the turn to
    # the first of them and wakes it (wake()). A lock for the link's users (rpc.py's calls,
    # ws.py's frames, the hotspot's request bodies) without asyncio's Lock: no module of its own
    # in the heap, no waiting queue object, and a wait with a limit without wait_for's task.
    def __init__(self):
        self.busy = False
        self.waiting = []

    async def take(self, limit_ms=_LONG_MS):
        # -> True once this task holds the turn; False if `limit_ms` passed first (nothing held).
        if not self.busy:
            self.busy = True
            return True
        me = asyncio.current_task()
        w = self.waiting
        w.append(me)
        try:
            await asyncio.sleep_ms(limit_ms)
        except BaseException:  # cancelled: out of the line, or the turn handed on if it came
            if me in w:
                w.remove(me)
            else:
                self.give()
            raise
        if me in w:
            w.remove(me)
            return False
        return True

    def give(self):
        w = self.waiting
        if w:
            wake(w.pop(0))
        else:
            self.busy = False


def rare(mod, name, *args):
    # -> mod.name(*args), the module (a seldom-run path: set-up at boot, recovery, a rare
    # command) imported for the call and dropped after it: with .mpy files, its bytecode is in
    # the heap only meanwhile. A coroutine function's coroutine runs after the drop (it holds its
    # code). A MemoryError (or an ImportError) loading it reaches the caller, nothing run.
    try:
        return getattr(__import__(mod, None, None, (name,)), name)(*args)
    finally:
        drop(mod)


async def supervise(name, fn, *args):
    # start() awaited: returns once `fn(*args)` returned; cancelled, it stops the task (a
    # wrapper frame while it runs: for the tests and short work; the agent's tasks use start()).
    done = asyncio.Event()

    async def once():
        await fn(*args)
        done.set()

    i = start(name, once)
    try:
        await done.wait()
    finally:
        if not done.state:
            stop(i)


def code_in_heap():
    # Is the application's bytecode in the heap? It is when read from a file (.py or .mpy); not
    # when run in place from a ROMFS image (mounted at /rom) or frozen into the firmware (its
    # __file__ then names no file, or there is none). Where it is not, loading a module makes
    # only small objects (functions, classes, its globals): it needs no large free block.
    try:
        f = __file__
        if f.startswith("/rom/"):
            return False
        import os

        os.stat(f)
    except (NameError, OSError):
        return False
    return True


growth = None  # board.heap_growth (app.py): what the GC heap can still add


def heap_free():
    # Free heap after a collection, with the room the heap can still grow by: on the ESP32 the
    # port adds areas on demand, and gc.mem_free() counts only those made so far.
    gc.collect()
    free = gc.mem_free()
    if growth is not None:
        try:
            free += growth()
        except Exception:
            pass
    return free


def heap_room(need, block, count=1):
    # Has the heap room for a feature? -> (yes?, free bytes): at least `need` bytes free after a
    # collection (heap_free()), and `count` contiguous blocks of `block` bytes at once (its
    # largest buffers: a fragmented heap can have plenty free in holes too small for them),
    # probed by allocating them once (on the ESP32 that grows the heap if it can).
    free = heap_free()
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
