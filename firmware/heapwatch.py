# Heap sampling for the memory benchmarks: the simulation enables it (board.diag); a charger
# never runs it, since a collection every period costs CPU for nothing there.
#
# Every period: a collection (timed), then the heap in use. Telemetry "heap" (the simulation's
# `state` shows it): "peak" and "used" (after a collection; sent about once a second and at once
# when the peak rises), "total", "code" (heap held by the modules app.py imports), "rom" (bytes
# of the heap that hold a ROMFS image under `borne sim --rom`: the image is ROM on a charger,
# so peak/used leave it out), "gc_us" (the collection at the peak), "gc_max_us".
# With a file "heapmap.on" in the working folder (the flash), each time the peak rises by 2 KiB
# the heap's block map is printed between "@heapmap <peak>" and "@heapmap end" lines
# (micropython.mem_info(1): one character per block, its type; the memory benchmark reads the
# largest allocations from the one with the highest peak), and before the end line "@modules"
# and the modules loaded at that moment, then the qstr pools' figures ("qstr pool: n_pool=...").
# On a unix port built with boards/unix_sim/cmodules (the frozen interpreter), "@mem" lines
# follow the map: the heap by object type (memtypes.c).
import asyncio
import gc
import os
import sys
import time


def _maps():
    try:
        os.stat("heapmap.on")
        return True
    except OSError:
        return False


async def run(board, period_ms=50, code=0):
    import micropython

    try:
        rom = ROM_HELD  # noqa: F821 (set in builtins by the ROM boot stub)
    except NameError:
        rom = 0
    code -= rom if code else 0
    maps = _maps()
    try:
        import memtypes  # only in a diagnostic build (boards/unix_sim/cmodules)
    except ImportError:
        memtypes = None
    peak = 0
    mapped = 0
    gc_peak = 0
    gc_max = 0
    n = 0
    while True:
        t = time.ticks_us()
        gc.collect()
        dt = time.ticks_diff(time.ticks_us(), t)
        used = gc.mem_alloc() - rom
        n += 1
        if dt > gc_max:
            gc_max = dt
        if used > peak or n * period_ms >= 1000:
            n = 0
            if used > peak:
                peak = used
                gc_peak = dt
            board.telemetry("heap", {"peak": peak, "used": used,
                                     "total": used + gc.mem_free(), "code": code, "rom": rom,
                                     "gc_us": gc_peak, "gc_max_us": gc_max})
            if maps and peak >= mapped + 2048:
                mapped = peak
                print("@heapmap", peak)
                micropython.mem_info(1)
                if memtypes:
                    memtypes.dump()
                print("@modules", " ".join(sorted(sys.modules)))
                micropython.qstr_info()
                print("@heapmap end")
        await asyncio.sleep_ms(period_ms)
