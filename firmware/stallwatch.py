# The event loop's longest stall, for the benchmarks (`borne bench mqtt-stall`): a task that asks
# to run again every millisecond and measures how late it runs. The simulation enables it
# (board.stallwatch); a charger never runs it. Telemetry "stall" once a second: the report's
# number, the longest lateness (ms) since boot and within the last second.
import asyncio
import sys
import time


async def run(board, period_ms=1):
    worst = 0  # since boot
    window = 0  # since the last report
    last = time.ticks_ms()
    reported = last
    n = 0
    prof = None
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
            n += 1
            rep = {"n": n, "max_ms": worst, "last_s_ms": window}
            mod = sys.modules.get("mqtt.prof")
            if mod is not None:
                if prof is None:
                    prof = mod.PROF = {}
                rep["mqtt_us"] = prof  # the MQTT feature's longest stretches without a yield
            board.telemetry("stall", rep)
            window = 0
            reported = now
