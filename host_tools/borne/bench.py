"""`borne bench`: speed and memory figures, measured in the simulation and printed.

Each benchmark is a function registered in BENCHES; later work adds its own. Figures are
reported, never asserted: the tests check behaviour, the benchmarks measure it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from borne import paths
from borne.sim.simulator import Simulator

Bench = Callable[[], Awaitable[list[str]]]
BENCHES: dict[str, Bench] = {}
WORD = struct.calcsize("P")  # the unix port's word size: "NwK" is N*WORD/4 KiB here


def bench(name: str) -> Callable[[Bench], Bench]:
    def deco(fn: Bench) -> Bench:
        BENCHES[name] = fn
        return fn

    return deco


async def boot_scenario(heapsize: str | None, timeout: float = 15) -> dict[str, object] | None:
    """Boot the agent against the embedded CSMS until both connectors are reported.

    Returns the agent's heap telemetry on success, None if the agent failed (out of memory,
    crashed, or did not finish in time)."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp), heapsize=heapsize, diag=True)
        await sim.start()
        try:
            assert sim.csms is not None and sim.agent is not None
            csms = sim.csms
            booted = asyncio.ensure_future(
                csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout)
            )
            died = asyncio.ensure_future(
                sim.agent.wait_line(r"^\[sim\] agent (reset|exited)", timeout)
            )
            done, pending = await asyncio.wait({booted, died}, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            if booted not in done or booted.exception() is not None:
                return None
            # Let the agent settle into its idle loop, then read its heap peak.
            await asyncio.sleep(0.5)
            if sim.agent.exit_codes or sim.agent.boots != 1:
                return None
            heap = dict(sim.hw.telemetry.get("heap") or {})
            heap["boot_s"] = round(csms.calls("StatusNotification")[-1].t - csms.frames[0].t, 3)
            return heap
        finally:
            await sim.stop()


async def smallest_heap(lo: int = 8, hi: int = 512) -> int | None:
    """Smallest N (in wK) under which the boot scenario completes: bisection, N a whole number."""
    if await boot_scenario(f"{hi}wK") is None:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await boot_scenario(f"{mid}wK") is not None:
            hi = mid
        else:
            lo = mid
    return hi


@bench("boot-memory")
async def boot_memory() -> list[str]:
    n = await smallest_heap()
    lines = []
    if n is None:
        return ["boot-memory: the agent did not complete the boot scenario even at 512wK"]
    lines.append(
        f"boot-memory: smallest heap for the boot scenario: -X heapsize={n}wK "
        f"(= {n} KiB on a 32-bit ESP32)"
    )
    heap = await boot_scenario("256wK")
    if heap and "peak" in heap:
        peak = int(str(heap["peak"]))
        lines.append(
            f"boot-memory: peak heap in use during boot: {peak} bytes on this {WORD * 8}-bit port "
            f"(~{peak * 4 / WORD / 1024:.1f} KiB in 32-bit words); boot to status in "
            f"{heap['boot_s']} s"
        )
    return lines


async def tap_latencies(taps: int = 8) -> list[float]:
    """Seconds from the simulator's `tap` to the connector's tag event in the agent's log."""
    out: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp))
        await sim.start()
        try:
            assert sim.agent is not None
            await sim.agent.wait_line(r"rfid: reader ready", 20)
            for i in range(taps):
                uid = f"04{i:02X}B3C4"
                start = len(sim.agent.all_lines)
                t0 = time.monotonic()
                await sim.command({"cmd": "tap", "uid": uid, "hold": 0.4})
                await sim.agent.wait_line(f"evse: tag {uid} presented", 5, start=start)
                out.append(time.monotonic() - t0)
                await asyncio.sleep(0.9)  # the card leaves; the next one is a new presentation
        finally:
            await sim.stop()
    return out


@bench("rfid-latency")
async def rfid_latency() -> list[str]:
    lat = [x * 1000 for x in await tap_latencies()]
    return [
        f"rfid-latency: card presented -> idTag event at the connector: median "
        f"{statistics.median(lat):.0f} ms, max {max(lat):.0f} ms over {len(lat)} taps "
        f"(PN532 emulator, HSU socket; the reader polls every 150 ms)"
    ]


def driver_figures() -> dict[str, object]:
    """Run mp_bench.py inside MicroPython against the host's device emulators."""
    emu = subprocess.Popen([sys.executable, "-m", "borne.sim.emu_serve"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert emu.stdout is not None
        ports = emu.stdout.readline().strip()
        env = dict(os.environ, MICROPYPATH=paths.micropypath())
        r = subprocess.run(
            [paths.micropython(), str(Path(__file__).with_name("mp_bench.py")), ports],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        if r.returncode != 0 or not r.stdout.strip():
            raise RuntimeError(f"mp_bench failed: {r.stdout[-500:]} {r.stderr[-1500:]}")
        figures: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
        return figures
    finally:
        if emu.stdin:
            emu.stdin.close()
        try:
            emu.wait(5)
        except subprocess.TimeoutExpired:
            emu.kill()


@bench("drivers")
async def drivers() -> list[str]:
    f = await asyncio.get_running_loop().run_in_executor(None, driver_figures)
    lines = []
    meter = f["meter"]
    assert isinstance(meter, dict)
    for key in sorted(meter):
        m = meter[key]
        model, baud = key.split("@")
        lines.append(
            f"meter-poll: {model:8} at {baud:>6} baud: full reading ({m['blocks']} requests) in "
            f"{m['ms']:.1f} ms, heap allocated per poll {m['heap']} bytes"
        )
    rd = f["reader"]
    assert isinstance(rd, dict)
    lines.append(
        f"reader-poll: PN532 InListPassiveTarget exchange {rd['ms']:.1f} ms, "
        f"heap allocated per poll {rd['heap']} bytes"
    )
    lines.append(
        f"drivers: unix port ({WORD * 8}-bit), micropython.mem_total with the GC off; buffers "
        f"are preallocated (0 bytes a poll): what is allocated is asyncio's own scheduling "
        f"(a bare `await sleep_ms(1)` allocates {f['sleep_heap']} bytes here), coroutine "
        f"objects and boxed floats"
    )
    return lines


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="print speed and memory figures measured in the simulation")
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {list(BENCHES)})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = args.names or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"borne bench: no benchmark {unknown}; there are {list(BENCHES)}")
        return 2

    async def all_() -> None:
        for name in names:
            t0 = time.monotonic()
            for line in await BENCHES[name]():
                print(line, flush=True)
            print(f"({name} took {time.monotonic() - t0:.1f} s)", flush=True)

    asyncio.run(all_())
    return 0
