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
from borne.sim.options import Fitted, Runtime
from borne.sim.safety import relay_edge as _relay_edge
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
        sim = Simulator(Path(tmp), runtime=Runtime(heapsize=heapsize, diag=True, compiled=compiled))
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
            code = int(str(heap.get("code", 0)))
            lines.append(
                f"boot-memory [{label}]: smallest heap -X heapsize={n}wK "
                f"(= {n} KiB on a 32-bit ESP32); peak heap in use {peak} bytes here "
                f"(~{peak * 4 / WORD / 1024:.1f} KiB in 32-bit words), of which the app's "
                f"top-level modules hold {code} bytes (~{code * 4 / WORD / 1024:.1f} KiB) "
                f"once imported"
            )
    return lines




@bench("ws-frames")
async def ws_frames() -> list[str]:
    """Masking throughput and the cost of the WebSocket/RPC hot paths in the unix port."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(__file__).with_name("mp_ws.py")
        env = dict(os.environ, MICROPYPATH=paths.micropypath())
        proc = await asyncio.create_subprocess_exec(
            paths.micropython(), str(script), env=env, cwd=tmp,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        return [f"ws-frames: the benchmark failed:\n{text[-2000:]}"]
    f = {k: float(v) for k, v in (ln.split() for ln in text.splitlines() if ln.strip())}
    n = int(f["call_bytes"])
    return [
        f"ws-frames: masking (viper, 16 KiB in place): {f['mask_viper_MBps']:.0f} MB/s; a per-byte "
        f"Python loop: {f['mask_python_MBps']:.1f} MB/s",
        f"ws-frames: receive a {n}-byte text frame (header + payload into the preallocated "
        f"buffer): {f['parse_frame_us']:.1f} us; the same in 3 fragments with a ping between: "
        f"{f['parse_fragmented_us']:.1f} us",
        f"ws-frames: send it (copy, mask, write): {f['send_frame_us']:.1f} us; json.loads: "
        f"{f['json_loads_us']:.1f} us; rule check: {f['validate_us']:.1f} us",
    ]


def _stats(xs: list[float]) -> str:
    xs = sorted(x * 1000 for x in xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"median {xs[len(xs) // 2]:.1f} ms, p95 {p95:.1f} ms, max {xs[-1]:.1f} ms (n={len(xs)})"


async def _available(sim: Simulator, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (await sim.command({"cmd": "state"}))["ocpp"]["status"] != "Available":
        assert time.monotonic() < deadline, "the connector not Available again"
        await asyncio.sleep(0.05)


@bench("relay-timing")
async def relay_timing(rounds: int = 15) -> list[str]:
    """EV asks (state C) -> relay closed; unplug / pause / RCD trip -> relay open, as commanded
    to the simulated contactor (DESIGN section 6: open within 100 ms)."""
    from ocpp.v16 import call

    close, unplug, pause, rcd = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp))
        await sim.start()
        try:
            assert sim.csms is not None
            csms = sim.csms
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            cp = csms.charge_points[sim.cp_id]
            await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
            for i in range(rounds):
                await sim.command({"cmd": "plug"})
                await asyncio.sleep(0.3)  # session started, PWM on, diode checked
                t = time.monotonic()
                await sim.command({"cmd": "charge"})
                close.append(await _relay_edge(sim, True, t))
                await asyncio.sleep(0.1)
                t = time.monotonic()
                kind = i % 3
                if kind == 0:
                    await sim.command({"cmd": "unplug"})
                    unplug.append(await _relay_edge(sim, False, t))
                elif kind == 1:
                    await sim.command({"cmd": "pause"})
                    pause.append(await _relay_edge(sim, False, t))
                    await sim.command({"cmd": "unplug"})
                else:
                    await sim.command({"cmd": "fault", "kind": "rcd"})
                    rcd.append(await _relay_edge(sim, False, t))
                    await sim.command({"cmd": "unplug"})
                    await sim.command({"cmd": "fault", "kind": "clear"})
                    # An RCD trip latches until the EV has been unplugged with the RCD sound
                    # for 3 s (evse/connector.py _check_latched): the next plug-in waits for it.
                    await _available(sim)
                await asyncio.sleep(0.3)
        finally:
            await sim.stop()
    return [
        f"relay-timing: EV asks (C) -> relay closed: {_stats(close)}",
        f"relay-timing: unplug -> relay open: {_stats(unplug)}",
        f"relay-timing: EV pauses (C->B) -> relay open: {_stats(pause)}",
        f"relay-timing: RCD trip -> relay open: {_stats(rcd)}",
    ]


@bench("safety-stall")
async def safety_stall(rounds: int = 6) -> list[str]:
    """The ESP32 board on the emulated chip, its loop blocked for 300 ms: RCD trip / unplug ->
    relay open, by the board's interlock in hardware (issue 10: within 20 ms)."""
    from borne.sim import safety

    rcd, unplug = [], []
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp), fitted=Fitted(board="esp32_wallbox"))
        await sim.start()
        try:
            await safety.free_charging(sim)
            for i in range(rounds):
                kind = "rcd" if i % 2 else "unplug"
                dt = await safety.stalled_trip(sim, kind)
                (rcd if kind == "rcd" else unplug).append(dt)
        finally:
            await sim.stop()
    return [
        f"safety-stall: RCD trip -> relay open, loop blocked 300 ms: {_stats(rcd)}",
        f"safety-stall: unplug -> relay open, loop blocked 300 ms: {_stats(unplug)}",
    ]


async def _duty_edge(sim: Simulator, amps: float, since: float, timeout: float = 10) -> float:
    """Seconds from `since` until the pilot offers `amps` (its PWM duty, as the EV sees it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if abs(sim.hw.pwm_duty - amps / 0.6) < 0.01:
            return time.monotonic() - since
        await asyncio.sleep(0.001)
    raise AssertionError(f"the pilot never offered {amps} A")


@bench("load-balance")
async def load_balance(rounds: int = 8) -> list[str]:
    """A house load spike behind a 25 A main fuse (grid meter on the charger's RS-485 line) ->
    the pilot's offer lowered / the relay opened; a house load gone -> charging resumes (after
    the rise hysteresis). The spikes land at random moments of the 1 s meter poll cycle."""
    import random

    from ocpp.v16 import call

    lower, pause, resume = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp), fitted=Fitted(grid_meter="sdm630", main_fuse_a=25))
        await sim.start()
        try:
            assert sim.csms is not None
            await sim.csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            cp = sim.csms.charge_points[sim.cp_id]
            await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
            await sim.command({"cmd": "plug"})
            await sim.command({"cmd": "load", "amps": 16})
            await sim.command({"cmd": "charge"})
            await _duty_edge(sim, 25, time.monotonic(), timeout=15)  # 25 A fuse, empty house
            for _ in range(rounds):
                await asyncio.sleep(1 + random.random())
                t = time.monotonic()
                await sim.command({"cmd": "house", "amps": 15})  # 25 - 15: 10 A left
                lower.append(await _duty_edge(sim, 10, t))
                await asyncio.sleep(1.5 + random.random())
                t = time.monotonic()
                await sim.command({"cmd": "house", "amps": 22})  # 3 A left: pause
                pause.append(await _relay_edge(sim, False, t))
                await asyncio.sleep(0.5 + random.random())
                t = time.monotonic()
                await sim.command({"cmd": "house", "amps": 0})
                resume.append(await _relay_edge(sim, True, t, timeout=15))
                await _duty_edge(sim, 25, t, timeout=15)
        finally:
            await sim.stop()
    return [
        f"load-balance: house spike -> PWM offer lowered (25 -> 10 A): {_stats(lower)}",
        f"load-balance: house spike -> relay open (3 A left, paused): {_stats(pause)}",
        f"load-balance: house load gone -> relay closed (rise hysteresis 5 s): {_stats(resume)}",
    ]


async def _preload(flash: Path, n: int) -> None:
    """Queue n transaction MeterValues on the flash with the firmware's own store module."""
    import os

    from borne import paths

    script = Path(__file__).with_name("mp_preload.py")
    proc = await asyncio.create_subprocess_exec(
        paths.micropython(), str(script), str(flash / "data"), str(n),
        env=dict(os.environ, MICROPYPATH=paths.micropypath()),
    )
    assert await proc.wait() == 0, "preloading the queue failed"


@bench("ocpp-queue")
async def ocpp_queue(n: int = 500) -> list[str]:
    """Delivery of a queue of n transaction messages after boot, and reconnect -> first
    queued message."""
    from ocpp.v16 import call

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        flash = Path(tmp)
        (flash / "data").mkdir()
        await _preload(flash, n)
        sim = Simulator(flash)
        await sim.start()
        try:
            assert sim.csms is not None
            csms = sim.csms
            boot = await csms.wait_call("BootNotification")
            await csms.wait_for(lambda: len(csms.calls("MeterValues")) >= n, 120,
                                f"{n} queued MeterValues")
            mvs = csms.calls("MeterValues")
            first, last = mvs[0].t, mvs[n - 1].t
            lines.append(
                f"ocpp-queue: {n} queued messages delivered in {last - first:.2f} s after the "
                f"first ({n / max(last - first, 1e-9):.0f} msg/s); boot -> first queued "
                f"{(first - boot.t) * 1000:.0f} ms"
            )
            # Reconnect: cut the link, queue a few messages, restore it.
            cp = csms.charge_points[sim.cp_id]
            await cp.call(call.ChangeConfiguration(key="WebSocketPingInterval", value="1"))
            await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
            await sim.command({"cmd": "plug"})
            await sim.command({"cmd": "charge"})
            await csms.wait_call("StartTransaction")
            await sim.command({"cmd": "net", "up": False})
            await asyncio.sleep(3.5)  # the watchdog finds the link dead
            await sim.command({"cmd": "unplug"})  # StopTransaction queued offline
            connects = csms.connects
            await sim.command({"cmd": "net", "up": True})
            await csms.wait_for(lambda: csms.connects > connects, 30, "the reconnect")
            t_conn = time.monotonic()
            stop = await csms.wait_call("StopTransaction", timeout=30)
            lines.append(
                f"ocpp-queue: new connection -> first queued message (StopTransaction) "
                f"delivered: {(stop.t - t_conn) * 1000:.0f} ms"
            )
        finally:
            await sim.stop()
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


def _heap(f: dict[str, object], per_pass: int) -> str:
    """A poll's heap figures (mp_bench.py): garbage, then everything allocated, split."""
    passes = float(str(f["passes"]))
    return (
        f"{f['garbage']} bytes left as garbage; {f['total']} allocated in all: {passes:g} "
        f"scheduler passes' {round(passes * per_pass)} and our code's {f['own']}"
    )


@bench("drivers")
async def drivers() -> list[str]:
    """Modbus meter and PN532 polls inside the unix port against the host's emulators: time and
    heap per poll (see mp_bench.py for what the figures are)."""
    f = await asyncio.get_running_loop().run_in_executor(None, driver_figures)
    per_pass = int(str(f["pass_bytes"]))
    sleep = f["sleep"]
    assert isinstance(sleep, dict)
    lines = []
    meter = f["meter"]
    assert isinstance(meter, dict)
    for key in sorted(meter):
        m = meter[key]
        model, rest = key.split("@")
        baud, flow = rest.split("/")
        lines.append(
            f"meter-poll: {model:8} at {baud:>6} baud, {flow:>3} flowing: full reading "
            f"({m['blocks']} requests) in {m['ms']:.1f} ms; heap per poll: {_heap(m, per_pass)}"
        )
    for key, what in (("meter_run", "Meter.run() (sdm630, 9600 baud, 16 A, polling every 50 ms; "
                                    "the passes include the measuring task's), per poll"),
                      ("reader", "reader-poll: PN532 InListPassiveTarget exchange"),
                      ("reader_run", "Reader.run() (PN532, no card, polling every 20 ms; the "
                                     "passes include the measuring task's), per poll")):
        x = f[key]
        assert isinstance(x, dict)
        lines.append(f"{what}: {x['ms']:.2f} ms; heap: {_heap(x, per_pass)}")
    lines.append(
        f"drivers: unix port ({WORD * 8}-bit), GC off while measuring: garbage = growth of "
        f"gc.mem_alloc() (what the GC will have to collect), allocated = micropython.mem_total() "
        f"(also blocks freed at once). A scheduler pass (asyncio's wait_io_event, whose frame "
        f"is allocated on the heap and freed) is {per_pass} bytes here; a sleep of >= 1 ms is "
        f"two passes (a bare `await sleep_ms(1)`: {sleep['total']} bytes, garbage "
        f"{sleep['garbage']}). Our code's garbage is a float per value whose register "
        f"changed (the F32 energy register in kWh: 3, while current flows) and, on the unix port "
        f"only, clock.now()'s time.time() float (32 bytes a poll; an int on the ESP32)"
    )
    return lines


def local_list_figures(n: int = 1000) -> dict[str, object]:
    """Run mp_locallist.py inside MicroPython (LittleFS on a counting RAM block device)."""
    env = dict(os.environ, MICROPYPATH=paths.micropypath())
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(
            [paths.micropython(), "-X", "heapsize=8M",
             str(Path(__file__).with_name("mp_locallist.py")), str(n)],
            env=env, cwd=tmp, capture_output=True, text=True, timeout=300, check=False,
        )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"mp_locallist failed: {r.stdout[-500:]} {r.stderr[-1500:]}")
    figures: dict[str, object] = json.loads(lines[-1])
    return figures


# Typical figures of the 4 MB SPI NOR flash on ESP32 modules (W25Q32JV datasheet: 4 KiB sector
# erase 45 ms, 256-byte page program 0.4 ms); the maximum is many times that.
_ERASE_MS = 45.0
_PAGE_MS = 0.4


@bench("local-list")
async def local_list(n: int = 1000) -> list[str]:
    """One SendLocalList Full of n tags (over the 16 KiB RAM limit: spooled to flash, streamed
    into the list): inside MicroPython with the charger's file system, and in the simulation."""
    from ocpp.v16 import call

    f = await asyncio.get_running_loop().run_in_executor(None, local_list_figures, n)
    erases, programmed = int(str(f["erases"])), int(str(f["programmed"]))
    s_erases, s_programmed = int(str(f["spool_erases"])), int(str(f["spool_programmed"]))

    def flash_s(erases: int, programmed: int) -> float:
        return (erases * _ERASE_MS + programmed / 256 * _PAGE_MS) / 1000

    lines = [
        f"local-list: {f['entries']} tags, {f['bytes']} bytes of JSON, from the spool file: "
        f"{f['status']} in {float(str(f['call_ms'])):.0f} ms on this host's unix port (pass 1, "
        f"parse and check every entry: {float(str(f['pass1_ms'])):.0f} ms)",
        f"local-list: heap high-water over the idle heap while applying it: "
        f"{f['heap_growth']} bytes ({WORD * 8}-bit words; sampled every 20th entry, after a "
        f"collection; at most 7 LittleFS files open, ~2.3 KB of it here)",
        f"local-list: flash (LittleFS, 4 KiB blocks, 32-byte program size): the update "
        f"{erases} block erases, {programmed // 1024} KiB programmed; writing the spool file "
        f"as the message arrives {s_erases} erases, {s_programmed // 1024} KiB; at a W25Q32's "
        f"typical 45 ms an erase and 0.4 ms a page that is ~{flash_s(erases, programmed):.1f} s "
        f"+ ~{flash_s(s_erases, s_programmed):.1f} s of flash time on the charger",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp), runtime=Runtime(diag=True))
        await sim.start()
        try:
            assert sim.csms is not None
            csms = sim.csms
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            await asyncio.sleep(0.5)
            before = int(str((sim.hw.telemetry.get("heap") or {}).get("peak", 0)))
            cp = csms.charge_points[sim.cp_id]
            tags = [{"id_tag": f"TAG{i:05d}", "id_tag_info": {"status": "Accepted"}}
                    for i in range(n)]
            k = len(csms.frames)
            res = await cp.call(call.SendLocalList(list_version=1, update_type="Full",
                                                   local_authorization_list=tags))
            sent = next(x for x in csms.frames[k:] if x.direction == "out" and x.is_call)
            answer = next(x for x in csms.frames[k:] if x.direction == "in"
                          and x.msg[:2] == [3, sent.msg[1]])
            await asyncio.sleep(0.3)
            after = int(str((sim.hw.telemetry.get("heap") or {}).get("peak", 0)))
            lines.append(
                f"local-list: in the simulation, {len(sent.raw)} bytes over the WebSocket: "
                f"{res.status} {(answer.t - sent.t) * 1000:.0f} ms after it was sent; the "
                f"agent's heap peak {before} bytes before, {after} bytes after (sampled every "
                f"50 ms)"
            )
        finally:
            await sim.stop()
    return lines


@bench("tap-to-relay")
async def tap_to_relay(rounds: int = 8) -> list[str]:
    """A card the charger has cached (LocalPreAuthorize: no network wait) presented to the
    reader with the EV already asking: time until the relay closes."""
    from ocpp.v16 import call, call_result

    card = "04A1B2C3"
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp))
        await sim.start()
        try:
            assert sim.csms is not None
            csms = sim.csms
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            cp = csms.charge_points[sim.cp_id]
            await cp.call(call.ChangeConfiguration(key="LocalPreAuthorize", value="true"))
            csms.respond("Authorize", lambda p: call_result.Authorize(
                id_tag_info={"status": "Accepted"}))
            for i in range(rounds + 1):
                await sim.command({"cmd": "plug"})
                await sim.command({"cmd": "charge"})
                await asyncio.sleep(0.3)
                t = time.monotonic()
                await sim.command({"cmd": "tap", "uid": card, "hold": 0.5})
                dt = await _relay_edge(sim, True, t)
                if i:  # the first tap fills the cache (an Authorize.req to the CSMS)
                    times.append(dt)
                await sim.command({"cmd": "unplug"})
                await asyncio.sleep(1.2)  # the card leaves the field; the session ends
        finally:
            await sim.stop()
    return [f"tap-to-relay (cached id, EV asking): {_stats(times)}"]


async def session_scenario(
    heapsize: str | None, samples: int, compiled: Path | None
) -> dict[str, object] | None:
    """Free-charging session with MeterValues every second until `samples` have reached the
    CSMS; the agent must not restart. Returns its heap telemetry, or None on failure."""
    from ocpp.v16 import call

    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(Path(tmp), runtime=Runtime(heapsize=heapsize, diag=True, compiled=compiled))
        await sim.start()
        try:
            assert sim.csms is not None and sim.agent is not None
            csms = sim.csms
            try:
                await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                     timeout=15)
                cp = csms.charge_points[sim.cp_id]
                await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
                await cp.call(call.ChangeConfiguration(key="MeterValueSampleInterval",
                                                       value="1"))
                await sim.command({"cmd": "plug"})
                await sim.command({"cmd": "charge"})
                await csms.wait_for(lambda: len(csms.calls("MeterValues")) >= samples,
                                    samples * 1.5 + 20, f"{samples} MeterValues")
                await sim.command({"cmd": "unplug"})
                await csms.wait_call("StopTransaction", timeout=15)
            except (AssertionError, TimeoutError):
                return None
            if sim.agent.boots != 1:
                return None
            return dict(sim.hw.telemetry.get("heap") or {})
        finally:
            await sim.stop()


@bench("session-memory")
async def session_memory(samples: int = 360, short: int = 60) -> list[str]:
    """Heap for a charging session with periodic MeterValues, from the mpy-cross build. Time is
    compressed: one sample a second instead of every 10 s (the work per sample is the same)."""
    from borne.build import compile_tree

    with tempfile.TemporaryDirectory() as tmp:
        built = compile_tree("unix_sim", out=Path(tmp)).parent
        heap = await session_scenario("512wK", samples, built)
        peak = int(str((heap or {}).get("peak", 0)))
        lo, hi = 32, 512
        while hi - lo > 4:  # bisection to 4wK, on a shorter session
            mid = (lo + hi) // 2
            if await session_scenario(f"{mid}wK", short, built) is not None:
                hi = mid
            else:
                lo = mid
    return [
        f"session-memory: {samples} MeterValues at 1 s (an hour's 360 at 10 s, time "
        f"compressed): peak heap in use {peak} bytes here (~{peak * 4 / WORD / 1024:.1f} KiB "
        f"in 32-bit words); smallest heap for a {short}-sample session: -X heapsize={hi}wK "
        f"(compiled .mpy)"
    ]



@bench("diag-upload")
async def diag_upload() -> list[str]:
    """GetDiagnostics with a full agent log ring (4 x 16 KiB) to a local FTP server: request ->
    Uploaded, the file's size, and the agent's heap peak before and during the upload, from
    source (the modules the upload loads are compiled in RAM then) and from the .mpy build."""
    from borne.build import compile_tree

    with tempfile.TemporaryDirectory() as tmp:
        built = compile_tree("unix_sim", out=Path(tmp))
        return [await _diag_upload(None), await _diag_upload(built.parent)]


async def _diag_upload(compiled: Path | None) -> str:
    from ocpp.v16 import call
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    with tempfile.TemporaryDirectory() as tmp:
        flash = Path(tmp) / "flash"
        logs = flash / "data" / "agentlog"
        logs.mkdir(parents=True)
        t = int(time.time()) - 3600
        for n in range(1, 5):
            with (logs / f"{n}.log").open("w") as f:
                while f.tell() < 16000:
                    t += 1
                    f.write(f"{t} I ocpp: a line of the kind the agent writes, number {t}\n")
        root = Path(tmp) / "ftp"
        root.mkdir()
        auth = DummyAuthorizer()
        auth.add_user("u", "p", str(root), perm="elradfmwMT")
        handler = type("H", (FTPHandler,), {"authorizer": auth})
        server = ThreadedFTPServer(("127.0.0.1", 0), handler)
        port = server.socket.getsockname()[1]
        import threading

        th = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
        th.start()
        sim = Simulator(flash, runtime=Runtime(diag=True, compiled=compiled))
        await sim.start()
        try:
            assert sim.csms is not None
            csms = sim.csms
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, 20)
            await asyncio.sleep(1)
            before = int(str((sim.hw.telemetry.get("heap") or {}).get("peak", 0)))
            cp = csms.charge_points[sim.cp_id]
            t0 = time.monotonic()
            res = await cp.call(call.GetDiagnostics(location=f"ftp://u:p@127.0.0.1:{port}/"))
            done = await csms.wait_call("DiagnosticsStatusNotification",
                                        lambda p: p["status"] != "Uploading", 60)
            took = time.monotonic() - t0
            await asyncio.sleep(0.5)
            during = int(str((sim.hw.telemetry.get("heap") or {}).get("peak", 0)))
            size = (root / res.file_name).stat().st_size if res.file_name else 0
        finally:
            await sim.stop()
            server.close_all()
            th.join(5)
    label = "compiled .mpy" if compiled else "source .py"
    return (f"diag-upload [{label}]: {done.payload['status']}: {size} bytes in "
            f"{took * 1000:.0f} ms (GetDiagnostics -> Uploaded, FTP on loopback); heap peak "
            f"{before} bytes before, {during} with the upload (+{during - before}; the agent "
            f"log and event log streamed from flash)")


# Benchmarks in modules of their own register themselves on import.
from borne import mqttbench  # noqa: E402,F401  (mqtt-stall)


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


import borne.bench_memory  # noqa: E402  (registers `memory-budget`)
import borne.bench_ota  # noqa: E402, F401  (registers `ota`)
