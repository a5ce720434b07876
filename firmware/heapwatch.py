# Heap sampling for the memory benchmark: the simulation enables it (board.diag); a charger
# never runs it, since a collection every period costs CPU for nothing there.
import asyncio
import gc


async def run(board, period_ms=50, code=0):
    # code: heap held by loaded modules (app.CODE_HEAP), reported beside the peak
    peak = 0
    while True:
        gc.collect()
        used = gc.mem_alloc()
        if used > peak:
            peak = used
            board.telemetry("heap", {"peak": peak, "total": used + gc.mem_free(), "code": code})
        await asyncio.sleep_ms(period_ms)
