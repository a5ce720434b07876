"""`borne bench`: speed and memory figures, measured in the simulation and printed.

Each benchmark is a function registered in BENCHES; later work adds its own. Figures are
reported, never asserted: the tests check behaviour, the benchmarks measure it.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from borne.sim.simulator import Simulator

Bench = Callable[[], Awaitable[list[str]]]
BENCHES: dict[str, Bench] = {}
WORD = struct.calcsize("P")  # the unix port's word size: "NwK" is N*WORD/4 KiB here


def bench(name: str) -> Callable[[Bench], Bench]:
    def deco(fn: Bench) -> Bench:
        BENCHES[name] = fn
        return fn

    return deco


async def boot_scenario(
    heapsize: str | None, timeout: float = 15, compiled: Path | None = None
) -> dict[str, object] | None:
    """Boot the agent against the embedded CSMS until both connectors are reported.

    Returns the agent's heap telemetry on success, None if the agent failed (out of memory,
    crashed, or did not finish in time)."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp), heapsize=heapsize, diag=True, compiled=compiled)
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


async def smallest_heap(
    lo: int = 8, hi: int = 512, compiled: Path | None = None
) -> int | None:
    """Smallest N (in wK) under which the boot scenario completes: bisection, N a whole number."""
    if await boot_scenario(f"{hi}wK", compiled=compiled) is None:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await boot_scenario(f"{mid}wK", compiled=compiled) is not None:
            hi = mid
        else:
            lo = mid
    return hi


@bench("boot-memory")
async def boot_memory() -> list[str]:
    """The boot scenario's heap, for the source (compiled in RAM at import, as under the unix
    port) and for the `borne build` output (precompiled .mpy, as deployed to a charger)."""
    from borne.build import compile_tree

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        built = compile_tree("unix_sim", out=Path(tmp))
        for label, compiled in (("source .py", None), ("compiled .mpy", built.parent)):
            n = await smallest_heap(compiled=compiled)
            if n is None:
                lines.append(f"boot-memory [{label}]: did not complete the boot scenario at 512wK")
                continue
            heap = await boot_scenario("256wK", compiled=compiled) or {}
            peak = int(str(heap.get("peak", 0)))
            lines.append(
                f"boot-memory [{label}]: smallest heap -X heapsize={n}wK "
                f"(= {n} KiB on a 32-bit ESP32); peak heap in use {peak} bytes here "
                f"(~{peak * 4 / WORD / 1024:.1f} KiB in 32-bit words)"
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
