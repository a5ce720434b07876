"""The reference workloads every memory figure is measured on (issue 12), and the budget.

`reference()`: boot; connect with security profile 2 (wss://, the CSMS's certificate checked
against a CA made here, HTTP Basic); GetConfiguration of every key; a tap-started session with
MeterValues, during which the network is cut until 50 messages are queued, then restored and
the queue delivered; a remote-started session with a TxProfile; a SendLocalList of 1,000 tags;
a reset and the boot after it.

`claim()`: the charger unclaimed with its hotspot open; the owner's app logs in, scans Wi-Fi and
claims it for a wss:// CSMS (profile 2); the charger checks the CSMS, then boots onto it.

Each returns a `Result`: pass/fail, the step that failed and why, the agent's heap telemetry
(`firmware/heapwatch.py`, sampled every 50 ms after a collection). A step fails on a wrong or
missing answer, a timeout, an agent restart the scenario did not ask for, or a MemoryError in
the agent's log (one caught and survived still means the workload did not fit).

Time is compressed, never skipped: MeterValues are sampled every second with a clock-aligned
reading every second too (instead of every 10 s), so the hour's 360 MeterValues take about
three minutes (`samples=310` online, then the 50 queued offline: the benchmark's full run);
the budget test and the bisections run a shorter session (`SHORT_SAMPLES` before the cut): the
heap holds nothing per sample (the benchmark's full run shows the heap in use after its session
against the short run's).

The code runs as `runtime` says: "source" (compiled at import, unix port only), "mpy" (the
`borne build` output as .mpy files, what `borne deploy` installs), "rom" (the same as a
ROMFS image executed in place: `borne/sim/romboot.py`, bytecode out of the heap) or "frozen"
(a unix port with the application frozen into it, as the ESP32 image holds it: bytecode, its
tables and its names out of the heap; built from a MicroPython checkout with
boards/unix_sim/manifest.py and named by FROZEN_ENV, so only where one has been built).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from borne.csms import Csms
from borne.sim import romboot
from borne.sim.agent import Security
from borne.sim.options import Runtime
from borne.sim.simulator import ClaimOptions, Simulator

# The memory budget, in -X heapsize=NwK (N KiB of 32-bit words: N KiB on an ESP32), for the
# .mpy build (what `borne deploy` installs), and the data heap with the bytecode in ROM
# ("_rom": a ROMFS image executed in place): tests/test_memory_budget.py runs both scenarios
# at these figures and fails when a change no longer fits. The one place they are written:
# what `borne bench memory-budget` reaches plus ~3-4 % (the bisections' noise is +-2wK), lowered
# as reductions land; except the .mpy reference, bound by the low-memory guarantee at 90 % of
# it (tests/test_low_memory.py: charging with features shed under a squeeze, then the 1,000-tag
# list update back: it passes at 146-151wK in 11 runs of 11 and fails below ~143wK, where the
# first update finds no room; 153wK leaves that margin), while the workload alone passes at
# 149-154wK; and the ROM figures, 104 and 101 for smallest heaps of 99-100 and 93-97wK: in
# full `make test` runs (timing differs there: the claim's status polls, a session's tasks)
# the reference failed once at 102 (a 417-byte block in the remote start's session work) and
# the claim once at 99 (a 1 KB block in the claim), neither reproduced alone. Lowered on
# 2026-12-04 after a bench of 145/140wK (.mpy) and 94/88wK (ROM): the claim's to 146 and 96
# (the ROM one with the same ~8wK over its smallest heap as the flake above had); the
# references stay (the low-memory guarantee, the flake at 102). Lowered on 2026-12-05 once the
# resident modules' str constants load as qstrs (build.py INTERN; bisections 136-138/134wK
# .mpy, 84/83wK ROM, from 149/141 and 89/87 the same morning), each by what its scenario
# gained, margins kept: the low-memory test at 90 % of the reference's 160 (144wK) passed 5 runs
# in 5, and 3 in 3 at 140wK; it failed once in 3 at 135wK and 3 times in 7 at 130wK.
# 2026-12-05 (later): the claim failed CI at 139 (the check's name lookup, net/dns.py, had added
# ~2wK: smallest 139); with the lookup's module out before the handshake and the frame checker
# loaded by the first connection attempt rather than at boot (claim mode has no CSMS), its
# smallest is 136 again (6 runs at 136-139 passed), so 139 stays.
# 2026-12-06: the day's fixes added ~2.5 KB of resident bytecode (claim smallest 137, reference
# 144: unchanged within noise), but the low-memory test at 144wK (90 % of 160) failed 3 runs in
# 10 at its first ChangeConfiguration after the boot (no room for the frame checker: "out of
# memory"); the reference goes to 168 (the test at 151wK: 6 runs in 6). The claim failed once
# at 139 in about 8 runs (a 592-byte block for the connection after the claim; its smallest
# heap is 137): 141. Later that day, ~1.6 KB more resident bytecode: smallest 142, budget 143;
# then claim mode's code out of the heap at its check (hotspot/opening.py, apipost.py, the
# lookup's buffer borrowed, the session's first connect without the PEMs): smallest 138 (5 runs
# in 5), 142. Then the list's modules no longer loaded by a tap (by a CALL of the feature or
# the first list), and a remote start's TxProfile parsed before the profiles' module loads: the
# reference's smallest went from ~146 to ~142-144 (144 passed 5 runs in 5, 142 14 in 16); 168
# stays (the low-memory test at 144wK, 90 % of 160, still failed 1 run in 5).
# 2026-12-07: rules.py's RULES no longer one 2.8 KB string (the frame checker found no block for
# it after the boot: the low-memory test at 147wK failed 6 runs in 8) and spooled.py's UTF-8
# check loaded only for text that is not ASCII: 164 (the test at 147wK 16 in 16, 144wK 8 in 8,
# 140wK 1 in 6; the workload's smallest unchanged, ~142).
BUDGET_WK = {"reference": 164, "claim": 142, "reference_rom": 99, "claim_rom": 92}
TARGET_WK = 100  # issue 12: the budget to reach
ROM_TARGET_KIB = 40  # issue 12: data working set with the bytecode out of the heap

SHORT_SAMPLES = 30  # MeterValues of the budget runs' session (before the 50 queued offline)
QUEUED = 50  # messages queued while the network is cut
LIST_TAGS = 1000
CP_ID = "borne-mem-0001"
AUTH_KEY = "0123456789abcdef0123456789abcdef"
CARD = "04A1B2C3"
HOME = {"ssid": "Home Net", "password": "correct horse 42", "rssi": -50}
HOTSPOT_KEY = "abcd-efgh-ijkm-npqr"
CONN_PASSWORD = "wxyz-2345-6789"
RUNTIMES = ("source", "mpy", "rom", "frozen")
FROZEN_ENV = "BORNE_FROZEN_MICROPYTHON"  # the frozen interpreter, for the "frozen" runtime


class StepFailed(Exception):
    pass


@dataclass
class Result:
    scenario: str
    runtime: str
    heapsize: str | None
    ok: bool = False
    step: str = ""  # the step that failed ("" when ok)
    reason: str = ""
    seconds: float = 0.0
    heap: dict[str, int] = field(default_factory=dict)  # highest figures seen (all boots)
    used: dict[str, int] = field(default_factory=dict)  # heap in use after each step
    steps: list[str] = field(default_factory=list)  # the steps passed, in order
    heapmap: list[str] = field(default_factory=list)  # the block map at the peak (heapmap=True)
    violations: list[str] = field(default_factory=list)  # frames that break the 1.6 schemas

    def summary(self) -> str:
        what = "passed" if self.ok else f"FAILED at {self.step!r}: {self.reason}"
        return (f"{self.scenario} [{self.runtime}, heapsize {self.heapsize}]: {what} "
                f"({self.seconds:.0f} s; heap peak {self.heap.get('peak', 0)} bytes)")


def build(runtime: str, out: Path, board: str = "unix_sim") -> Path | None:
    """The folder `Simulator(compiled=...)` runs for a runtime (None: the source tree)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
    if runtime == "source":
        return None
    if runtime == "frozen":
        return frozen_interpreter()
    from borne.build import compile_tree

    compile_tree(board, out=out / "build")
    if runtime == "mpy":
        return out / "build"
    return romboot.prepare(out / "build", out / "rom")


def frozen_interpreter() -> Path:
    """The unix port with the application frozen in, from FROZEN_ENV (ValueError: none)."""
    path = os.environ.get(FROZEN_ENV, "")
    if not path or not os.access(path, os.X_OK):
        raise ValueError(f"the frozen runtime needs {FROZEN_ENV} set to a unix port built with "
                         f"boards/unix_sim/manifest.py (`make frozen`); got {path!r}")
    return Path(path).resolve()


def word_bytes(interp: Path) -> int:
    """The word size of a MicroPython interpreter: 4 for a 32-bit build, 8 for a 64-bit one."""
    r = subprocess.run([str(interp), "-c", "import sys; print(4 if sys.maxsize < 1 << 32 else 8)"],
                       capture_output=True, text=True, timeout=30, check=True)
    return int(r.stdout.strip())


def functions_in_flash(interp: Path) -> bool:
    """Whether a frozen interpreter holds its resident modules' functions in its image (built
    with boards/micropython/frozen-static-functions.patch): a function of supervisor.py then
    lies beside a builtin (`len`), not in the heap."""
    code = ("import supervisor\n"
            "print(1 if abs(id(supervisor.drop) - id(len)) < 1 << 24 else 0)")
    r = subprocess.run([str(interp), "-c", code], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "MICROPYPATH": ".frozen"})
    return r.returncode == 0 and r.stdout.strip() == "1"


def runtime_for(runtime: str, heapsize: str | None, folder: Path | None) -> Runtime:
    """The agent's Runtime: heap sampling on, the build or ROM image `folder`, or the frozen
    interpreter (see build())."""
    if runtime == "rom":
        return Runtime(heapsize=heapsize, rom=folder, diag=True)
    if runtime == "frozen":
        return Runtime(heapsize=heapsize, frozen=folder, diag=True)
    return Runtime(heapsize=heapsize, compiled=folder, diag=True)


class _Run:
    """One scenario run: the simulator, its heap telemetry watched, the steps."""

    def __init__(self, res: Result, sim: Simulator, heapmap: bool) -> None:
        self.res = res
        self.sim = sim
        self.exits_allowed = 0  # agent exits the scenario asks for (a reset)
        self.heapmap = heapmap
        self._watch: asyncio.Task[None] | None = None
        self._line0 = 0

    def _sample(self) -> None:
        h = self.sim.hw.telemetry.get("heap") or {}
        best = self.res.heap
        for k in ("peak", "gc_max_us", "total", "code", "rom"):
            v = h.get(k)
            if isinstance(v, int) and v > best.get(k, -1):
                best[k] = v
                if k == "peak":
                    best["gc_us"] = int(h.get("gc_us", 0))

    async def watch(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(0.05)

    def start_watch(self) -> None:
        self._watch = asyncio.get_running_loop().create_task(self.watch())

    async def stop(self) -> None:
        if self._watch:
            self._watch.cancel()
        self._sample()
        if self.heapmap and self.sim.agent:
            self.res.heapmap = peak_heapmap(self.sim.agent.all_lines)

    def check_agent(self) -> None:
        agent = self.sim.agent
        assert agent is not None
        for line in agent.all_lines[self._line0:]:
            if "MemoryError" in line:
                raise StepFailed(f"the agent logged a MemoryError: {line.strip()[:200]}")
        self._line0 = len(agent.all_lines)
        if len(agent.exit_codes) > self.exits_allowed:
            tail = " | ".join(agent.all_lines[-6:])[-600:]
            raise StepFailed(f"the agent restarted (boot {agent.boots}, exit codes "
                             f"{agent.exit_codes}); last lines: {tail}")

    async def step(self, name: str, fn: Callable[[], Awaitable[Any]], timeout: float) -> Any:
        self.res.step = name
        try:
            value = await asyncio.wait_for(self._guarded(fn), timeout)
        except TimeoutError:
            self.check_agent()
            raise StepFailed(f"did not finish within {timeout} s") from None
        except AssertionError as e:
            self.check_agent()
            raise StepFailed(str(e)[:400]) from None
        except (StepFailed, asyncio.CancelledError):
            raise
        except Exception as e:  # the CSMS's link dropped, a refused HTTP request, ...
            self.check_agent()
            raise StepFailed(f"{type(e).__name__}: {e}"[:400]) from None
        self.check_agent()
        await asyncio.sleep(0.15)  # the next heap sample
        h = self.sim.hw.telemetry.get("heap") or {}
        self.res.used[name] = int(h.get("used", 0))
        self.res.steps.append(name)
        return value

    async def _guarded(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        # The step, raced against the agent dying (a restart fails the step at once).
        agent = self.sim.agent
        assert agent is not None
        work = asyncio.ensure_future(fn())
        try:
            while not work.done():
                self.check_agent()  # a restart or a MemoryError fails the step at once
                await asyncio.wait({work}, timeout=0.1)
        finally:
            work.cancel()
        return work.result()


def peak_heapmap(lines: list[str]) -> list[str]:
    """The complete heap block map the agent printed nearest its peak (heapwatch.py,
    "heapmap.on": one each time its peak rose by 2 KiB, "@heapmap <peak>"), across its reboots:
    the one with the highest peak, not the last (a reset's boot prints its own, lower ones)."""
    best: list[str] = []
    top = -1
    start = None
    for i, line in enumerate(lines):
        if line.startswith("@heapmap end"):
            if start is not None:
                n = int(lines[start].split()[1])
                if n > top:
                    best, top = lines[start:i], n
            start = None
        elif line.startswith("@heapmap "):
            start = i
    return best


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def _tls_csms(tmp: Path) -> tuple[Csms, Path]:
    from borne.sim.filesrv import self_signed

    ctx, ca = self_signed(tmp / "pki")
    csms = Csms(basic_auth={CP_ID: AUTH_KEY})
    await csms.start(ssl_context=ctx, url_host="localhost")
    return csms, ca


class _Stage:
    """What a scenario runs in: a temporary folder with the flash, the build, a TLS CSMS."""

    def __init__(self, res: Result, tmp: Path, folder: Path | None, csms: Csms,
                 ca: Path) -> None:
        self.res, self.tmp, self.folder, self.csms, self.ca = res, tmp, folder, csms, ca
        self.flash = tmp / "flash"
        self.run: _Run | None = None

    async def start(self, sim: Simulator, heapmap: bool) -> _Run:
        self.run = _Run(self.res, sim, heapmap)
        await sim.start()
        self.run.start_watch()
        return self.run


@asynccontextmanager
async def _staged(res: Result, folder: Path | None, heapmap: bool) -> AsyncIterator[_Stage]:
    """A scenario's set-up and tear-down: a failed step ends the block with `res` saying why
    (the exception is kept there, not raised); the agent, its watch and the CSMS are stopped."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="borne-wl-") as tmp_:
        tmp = Path(tmp_)
        if folder is None and res.runtime != "source":
            folder = build(res.runtime, tmp / "b")
        csms, ca = await _tls_csms(tmp)
        st = _Stage(res, tmp, folder, csms, ca)
        st.flash.mkdir()
        if heapmap:
            (st.flash / "heapmap.on").write_text("")
        try:
            yield st
            res.ok, res.step = True, ""
        except StepFailed as e:
            res.reason = str(e)
        finally:
            if st.run:
                await st.run.stop()
                await st.run.sim.stop()
            await csms.stop()
            res.violations = list(csms.violations)
    res.seconds = time.monotonic() - t0


def _tx_profile(limit: float) -> dict[str, Any]:
    return {"chargingProfileId": 7, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}


async def reference(
    heapsize: str | None = None,
    runtime: str = "mpy",
    folder: Path | None = None,
    samples: int = SHORT_SAMPLES,
    heapmap: bool = False,
) -> Result:
    """The reference workload. `folder`: a ready `build()` output for `runtime` (else built
    here); `samples`: MeterValues before the cut (the hour: 360 - 50)."""
    from ocpp.v16 import call

    res = Result("reference", runtime, heapsize)
    async with _staged(res, folder, heapmap) as st:
        csms, ca = st.csms, st.ca
        sim = Simulator(st.flash, cp_id=CP_ID, csms_url=csms.url,
                        runtime=runtime_for(runtime, heapsize, st.folder),
                        security=Security(2, AUTH_KEY, ca=ca))
        run = await st.start(sim, heapmap)

        class _Cp:  # the CSMS's side of the charger's current connection
            def __getattr__(self, name: str) -> Any:
                return getattr(csms.charge_points[CP_ID], name)

        cp: Any = _Cp()

        async def boot() -> None:
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, 60)
            assert csms.auth_results and all(ok for _, ok in csms.auth_results)

        await run.step("boot (wss://, profile 2)", boot, 60)

        async def get_configuration() -> None:
            r = await cp.call(call.GetConfiguration())
            keys = r.configuration_key or []
            assert len(keys) >= 40 and not r.unknown_key, f"{len(keys)} keys"

        await run.step("GetConfiguration (every key)", get_configuration, 20)

        rate = [1.0]  # MeterValues a second, measured online

        async def tap_session() -> None:
            for key, value in (("MeterValueSampleInterval", "1"),
                               ("ClockAlignedDataInterval", "1"),
                               ("WebSocketPingInterval", "2")):
                r = await cp.call(call.ChangeConfiguration(key=key, value=value))
                assert r.status == "Accepted", (key, r.status)
            assert sim.agent is not None  # a tap before the reader polls is lost (test_taps)
            await sim.agent.wait_line(r"rfid: reader ready", 15)
            await sim.command({"cmd": "plug"})
            await sim.command({"cmd": "tap", "uid": CARD, "hold": 0.5})
            await sim.command({"cmd": "charge"})
            start = await csms.wait_call("StartTransaction", timeout=20)
            assert start.payload["idTag"] == CARD
            await csms.wait_call("MeterValues", timeout=20, after=csms.frames.index(start))
            n, t = len(csms.calls("MeterValues")), time.monotonic()
            await csms.wait_for(lambda: len(csms.calls("MeterValues")) >= n + samples,
                                samples + 30, f"{samples} MeterValues")
            rate[0] = samples / (time.monotonic() - t)

        await run.step(f"tap-started session ({samples} MeterValues)", tap_session,
                       samples + 60)

        def delivered(n: int) -> int:
            return len([f for f in csms.calls()[n:]
                        if f.action in ("MeterValues", "StopTransaction")])

        async def network_cut() -> None:
            await sim.command({"cmd": "net", "up": False})
            # MeterValues go on being sampled and journaled; the charger finds the link
            # dead (pings) and queues them. The unplug's StopTransaction is the 50th.
            await asyncio.sleep((QUEUED - 1) / rate[0] + 0.5)
            await sim.command({"cmd": "unplug"})
            await asyncio.sleep(1.0)
            n = len(csms.calls())
            await sim.command({"cmd": "net", "up": True})
            await csms.wait_call("StopTransaction", timeout=60)
            await csms.wait_for(lambda: delivered(n) >= QUEUED, 60,
                                f"{QUEUED} queued messages delivered")

        await run.step(f"network cut, {QUEUED} queued, delivered", network_cut,
                       QUEUED + 150)

        async def remote_session() -> None:
            for key in ("MeterValueSampleInterval", "ClockAlignedDataInterval"):
                await cp.call(call.ChangeConfiguration(key=key, value="0"))
            r = await cp.call(call.RemoteStartTransaction(
                id_tag="REMOTE01", connector_id=1, charging_profile=_tx_profile(10)))
            assert r.status == "Accepted", r.status
            k = len(csms.frames)
            await sim.command({"cmd": "plug"})
            await sim.command({"cmd": "charge"})
            start = await csms.wait_call("StartTransaction", after=k, timeout=20)
            assert start.payload["idTag"] == "REMOTE01"
            await until(lambda: abs(sim.hw.pwm_duty - 10 / 0.6) < 0.5, 15,
                        "the pilot offering the TxProfile's 10 A")
            stops = len(csms.calls("StopTransaction"))
            tid = (await csms.answer_to(start)).get("transactionId")
            r = await cp.call(call.RemoteStopTransaction(transaction_id=tid))
            assert r.status == "Accepted", r.status
            await csms.wait_for(lambda: len(csms.calls("StopTransaction")) > stops, 20,
                                "StopTransaction")
            await sim.command({"cmd": "unplug"})

        await run.step("remote-started session with a TxProfile", remote_session, 60)

        async def local_list() -> None:
            tags = [{"id_tag": f"TAG{i:05d}", "id_tag_info": {"status": "Accepted"}}
                    for i in range(LIST_TAGS)]
            r = await cp.call(call.SendLocalList(list_version=3, update_type="Full",
                                                 local_authorization_list=tags))
            assert r.status == "Accepted", r.status
            v = await cp.call(call.GetLocalListVersion())
            assert v.list_version == 3, v.list_version

        await run.step(f"SendLocalList ({LIST_TAGS} tags)", local_list, 60)

        async def reset() -> None:
            boots = len(csms.calls("BootNotification"))
            run.exits_allowed = 1
            r = await cp.call(call.Reset(type="Soft"))
            assert r.status == "Accepted", r.status
            await csms.wait_for(lambda: len(csms.calls("BootNotification")) > boots, 60,
                                "the BootNotification after the reset")
            k = len(csms.frames) - 1
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                 30, after=k)
            await asyncio.sleep(0.5)

        await run.step("reset and boot", reset, 90)
    return res


async def claim(
    heapsize: str | None = None,
    runtime: str = "mpy",
    folder: Path | None = None,
    heapmap: bool = False,
) -> Result:
    """The claim scenario: hotspot open, login, Wi-Fi scan, a claim for a wss:// CSMS."""
    from borne.claim import ProvisioningClient

    res = Result("claim", runtime, heapsize)
    async with _staged(res, folder, heapmap) as st:
        csms, ca = st.csms, st.ca
        opts = ClaimOptions(networks=[HOME, {"ssid": "Other", "password": "whatever-123",
                                             "rssi": -80}],
                            hotspot_key=HOTSPOT_KEY, conn_password=CONN_PASSWORD)
        sim = Simulator(st.flash, cp_id=CP_ID, claim=opts,
                        runtime=runtime_for(runtime, heapsize, st.folder))
        run = await st.start(sim, heapmap)
        client = ProvisioningClient(sim.hotspot_url, timeout=15)

        async def hotspot_open() -> None:
            await until(lambda: (sim.state().get("hotspot") or {}).get("open") is True, 60,
                        "the hotspot open")

        await run.step("hotspot open", hotspot_open, 70)

        async def login() -> None:
            await asyncio.to_thread(client.login, CONN_PASSWORD)

        await run.step("login", login, 30)

        async def scan() -> None:
            nets = await asyncio.to_thread(client.networks)
            assert HOME["ssid"] in [n["ssid"] for n in nets], nets

        await run.step("Wi-Fi scan", scan, 30)

        async def claim_it() -> None:
            fields = {"name": "Garage", "wifi_ssid": HOME["ssid"],
                      "wifi_password": HOME["password"], "csms_url": csms.url,
                      "cp_id": CP_ID, "security_profile": 2, "auth_key": AUTH_KEY,
                      "ca_pem": ca.read_text()}
            await asyncio.to_thread(client.claim, fields)
            st = await asyncio.to_thread(client.wait, 60.0)
            assert st["state"] == "done", st

        await run.step("claim (wss://, profile 2)", claim_it, 90)

        async def online() -> None:
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, 60)
            assert csms.auth_results and all(ok for _, ok in csms.auth_results)
            await asyncio.sleep(0.5)

        await run.step("boot onto the CSMS", online, 70)
    return res


SCENARIOS = {"reference": reference, "claim": claim}


async def run_scenario(name: str, heapsize: str | None, runtime: str, folder: Path | None,
                       **kw: Any) -> Result:
    fn: Any = SCENARIOS[name]
    res: Result = await fn(heapsize, runtime, folder, **kw)
    return res


_WK = re.compile(r"^(\d+)wK$")


def wk(heapsize: str) -> int:
    m = _WK.match(heapsize)
    if not m:
        raise ValueError(f"{heapsize!r}: expected NwK")
    return int(m.group(1))
