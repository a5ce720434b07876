# The event loop's longest stall, for the benchmarks (`borne bench mqtt-stall`): a task that asks
# to run again every millisecond and measures how late it runs. The simulation enables it
# (board.stallwatch); a charger never runs it. Telemetry "stall": the longest lateness (ms) since
# the last `reset` line on the I/O socket... kept simple: the longest since boot and since the
# last report, reported when it grows and once a second.
import asyncio
import time


async def run(board, period_ms=1):
    worst = 0  # since boot
    window = 0  # since the last report
    last = time.ticks_ms()
    reported = last
    while True:
        await asyncio.sleep_ms(period_ms)
        now = time.ticks_ms()
        late = time.ticks_diff(now, last) - period_ms
        last = now
        if late > window:
            window = late
        if late > worst:
            worst = late
        if time.ticks_diff(now, reported) >= 1000:
            board.telemetry("stall", {"max_ms": worst, "last_s_ms": window})
            window = 0
            reported = now
