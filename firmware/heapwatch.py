# Heap sampling for the memory benchmark: the simulation enables it (board.diag); a charger
# never runs it, since a collection every period costs CPU for nothing there.
import asyncio
import gc


async def run(board, period_ms=50, code=0):
    # code: heap held by loaded modules (app.CODE_HEAP), reported beside the peak
    # "used": the heap in use after a collection, sent about once a second (the simulation's
    # `state` shows it, so campaigns can watch for a leak), and at once when the peak rises.
    peak = 0
    n = 0
    while True:
        gc.collect()
        used = gc.mem_alloc()
        n += 1
        if used > peak or n * period_ms >= 1000:
            n = 0
            peak = max(peak, used)
            board.telemetry("heap", {"peak": peak, "used": used, "total": used + gc.mem_free(),
                                     "code": code})
        await asyncio.sleep_ms(period_ms)
