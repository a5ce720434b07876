"""The campaigns of `borne chaos`, each against a fresh simulator (agent under the MicroPython
unix port, the embedded test CSMS on the `ocpp` package that recognises repeats by message id).

Each takes a seeded random generator and a size, and returns a `Result`: figures to print and
violations (any fails the run). Sizes of a full campaign are in `FULL`; `make test` runs a slice
(`SLICE`) through tests/test_chaos.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from borne import paths
from borne.chaos.ledger import judge, parse_time
from borne.chaos.mutate import mutated_frames
from borne.csms import Csms, ws_frame
from borne.sim.options import Fitted, Runtime
from borne.sim.simulator import ClaimOptions, Simulator

CP_ID = "CP-CHAOS"

# Full campaign sizes (issue 11) and the slice `make test` runs.
FULL = {"power": 500, "net": 200, "mixed": 300, "frames": 100_000, "hotspot": 10_000,
        "noise": 2_000, "props": 10_000, "soak": 96, "answers": 300}
SLICE = {"power": 6, "net": 4, "mixed": 8, "frames": 1_500, "hotspot": 300, "noise": 50,
         "props": 100, "soak": 3, "answers": 10}
SLICE_LONGEST_CUT_S = 4.0


@dataclass
class Result:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def bad(self, text: str) -> None:
        if len(self.violations) < 40:
            self.violations.append(text)
        self.figures["violations"] = self.figures.get("violations", 0) + 1


class Rig:
    """A simulator and its CSMS, driven in-process (the control protocol's commands)."""

    def __init__(self, sim: Simulator, csms: Csms | None) -> None:
        self.sim = sim
        self.csms = csms

    async def cmd(self, cmd: str, **args: Any) -> dict[str, Any]:
        r = await self.sim.command({"cmd": cmd, **args})
        if not r.get("ok"):
            raise RuntimeError(f"{cmd}: {r}")
        return r

    def state(self) -> dict[str, Any]:
        return self.sim.state()

    async def until(self, pred: Callable[[dict[str, Any]], Any], what: str,
                    timeout: float = 30) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        st: dict[str, Any] = {}
        while loop.time() < end:
            st = self.state()
            if pred(st):
                return st
            await asyncio.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

    async def configure(self, **keys: str) -> None:
        from ocpp.v16 import call

        assert self.csms is not None
        cp = self.csms.charge_points[CP_ID]
        for k, v in keys.items():
            res = await cp.call(call.ChangeConfiguration(key=k, value=v))
            if res.status != "Accepted":
                raise RuntimeError(f"ChangeConfiguration {k}={v}: {res.status}")

    def boots(self) -> int:
        return self.sim.agent.boots if self.sim.agent else 0

    def unexpected_exits(self) -> list[int]:
        return [c for c in (self.sim.agent.exit_codes if self.sim.agent else []) if c != -9]


def _shifted_clock(csms: Csms, shift: float) -> None:
    """The CSMS's clock runs `shift` seconds off the host's (BootNotification and Heartbeat
    currentTime, which set the charger's clock)."""
    from ocpp.v16 import call_result
    from ocpp.v16.enums import RegistrationStatus

    def iso() -> str:
        t = datetime.fromtimestamp(time.time() + shift, UTC)
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

    csms.respond("BootNotification", lambda p: call_result.BootNotification(
        current_time=iso(), interval=csms.heartbeat_interval,
        status=RegistrationStatus.accepted))
    csms.respond("Heartbeat", lambda p: call_result.Heartbeat(current_time=iso()))


@contextlib.asynccontextmanager
async def rig(workdir: Path, name: str, diag: bool = False,
              claim: ClaimOptions | None = None, heartbeat: int = 300,
              clock_shift: float = 0.0, fitted: Fitted | None = None) -> AsyncIterator[Rig]:
    flash = workdir / f"flash-{name}"
    shutil.rmtree(flash, ignore_errors=True)  # a fresh charger every run
    (workdir / f"agent-{name}.log").unlink(missing_ok=True)
    csms: Csms | None = None
    if claim is None:
        csms = Csms(heartbeat_interval=heartbeat)
        if clock_shift:
            _shifted_clock(csms, clock_shift)
        await csms.start()
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url if csms else None, claim=claim,
                    fitted=fitted,
                    runtime=Runtime(diag=diag, log_file=workdir / f"agent-{name}.log"))
    await sim.start()
    try:
        r = Rig(sim, csms)
        if csms is not None:
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, 60)
        yield r
    except BaseException:
        if csms is not None:  # (a drain that gave up: which CALL booked what, and when)
            save_frames(csms, workdir / f"csms-{name}.jsonl")
        raise
    finally:
        await sim.stop()
        if csms is not None:
            await csms.stop()


def save_frames(csms: Csms, path: Path) -> None:
    """The CSMS's frame log, one JSON object a line (monotonic time, charge point, direction,
    the raw frame), then its bookings: (charge point, StartTransaction message id) -> id."""
    with path.open("w") as f:
        for fr in csms.frames:
            f.write(json.dumps({"t": round(fr.t, 4), "cp": fr.cp_id, "dir": fr.direction,
                                "raw": fr.raw}) + "\n")
        f.write(json.dumps({"started": [[*k, v] for k, v in csms.started.items()]}) + "\n")


def _check_csms(res: Result, r: Rig) -> None:
    assert r.csms is not None
    for v in r.csms.violations[:20]:
        res.bad(f"invalid frame from the charger: {v}")
    res.figures["invalid_frames"] = len(r.csms.violations)


def _ledger(res: Result, r: Rig) -> None:
    assert r.csms is not None
    led = judge(r.csms, CP_ID)
    res.figures.update(led.figures())
    for v in led.violations:
        res.bad(v)


async def _drained(r: Rig, timeout: float = 90) -> None:
    """Online, the queue empty and every started transaction stopped."""
    assert r.csms is not None
    csms = r.csms
    await r.until(lambda s: s["ocpp"]["connected"], "online", timeout)

    def unstopped() -> set[int]:
        stopped = {f.payload.get("transactionId") for f in csms.calls("StopTransaction")}
        return set(csms.started.values()) - stopped

    try:
        await csms.wait_for(lambda: not unstopped(), timeout,
                            "every started transaction to be stopped")
    except AssertionError as e:
        raise AssertionError(f"{e} (no stop for {sorted(unstopped())})") from None
    await asyncio.sleep(1.5)  # anything sent twice would arrive now


async def _check_idle_status(res: Result, r: Rig, allowed: tuple[str, ...] = ("Available",),
                             wait: float = 5) -> None:
    """Drained, nothing plugged: the charger's connector 1 is idle within `wait` seconds (a tap
    waiting for a plug is Preparing up to ConnectionTimeOut) and the CSMS was told so (its
    latest StatusNotification for it is the charger's status): no status that lies."""
    assert r.csms is not None
    csms = r.csms
    with contextlib.suppress(TimeoutError):
        await r.until(lambda s: s["ocpp"]["status"] in allowed, "connector 1 idle", wait)

    def told() -> list[str]:
        return [f.payload["status"] for f in csms.calls("StatusNotification")
                if f.payload.get("connectorId") == 1][-1:]

    # A change is reported once it held MinimumStatusDuration (up to 1 s here), found by the
    # charger's once-a-second watchdog: up to ~2 s after it, more on a busy machine.
    with contextlib.suppress(AssertionError):
        await csms.wait_for(lambda: told() == [r.state()["ocpp"]["status"]], 4, "the report")
    await asyncio.sleep(0.5)  # and nothing else follows
    own = r.state()["ocpp"]["status"]
    if own not in allowed:
        res.bad(f"connector 1 {own} when idle and unplugged")
    if told() != [own]:
        res.bad(f"the CSMS was last told connector 1 is {told()}, the charger says {own}")


def _answer_times(csms: Csms) -> list[float]:
    """How long the CSMS took to answer the charger's transaction messages (seconds): the part
    of the repeat window a cut falls into between our answer leaving and the charger's ack."""
    t_in: dict[str, float] = {}
    out: list[float] = []
    for f in csms.frames:
        m = f.msg
        if f.direction == "in" and f.is_call and f.action in (
                "StartTransaction", "StopTransaction", "MeterValues"):
            t_in.setdefault(m[1], f.t)
        elif f.direction == "out" and isinstance(m, list) and m[:1] == [3] and m[1] in t_in:
            out.append(f.t - t_in.pop(m[1]))
    return out


# -- power cuts ----------------------------------------------------------------------------------


async def power_cuts(rng: random.Random, n: int, workdir: Path) -> Result:
    res = Result("power cuts")
    # The free-charging plays draw from a generator of their own (seeded from the campaign's
    # without drawing from it): each round draws its plays and instants as before.
    frng = random.Random(repr(rng.getstate()))
    async with rig(workdir, "power") as r:
        await r.configure(BorneFreeCharging="true", MeterValueSampleInterval="1")
        where: Counter[str] = Counter()
        free = FreeCharging(r, res)
        for k in range(n):
            await r.until(lambda s: s["ocpp"]["connected"], "online after a power cut", 60)
            await free.online()
            if frng.random() < 0.25:
                await free.flip(k, cut_after=frng.uniform(0, 0.1) if frng.random() < 0.4 else None)
            plugged_at = len(free.csms.frames)  # (a StartTransaction after it: this plug-in's)
            x = rng.random()
            if x < 0.1:
                where["idle"] += 1  # no session: a cut during heartbeats/statuses
                await asyncio.sleep(rng.uniform(0, 1.0))
            else:
                await r.cmd("plug")
                await r.cmd("charge")
                if x >= 0.3 and (free.just_on or frng.random() < 0.2):
                    # (not every round: a cut before the relay closed is one of the instants)
                    await free.plugged_in(k, plugged_at)
                if x < 0.3:
                    where["starting"] += 1  # the StartTransaction in flight
                    await asyncio.sleep(rng.uniform(0, 0.3))
                elif x < 0.75:
                    where["charging"] += 1
                    await asyncio.sleep(rng.uniform(0.3, 3.0))
                    if not free.on and frng.random() < 0.4:
                        await free.flip(k, cut_after=None, plugged=True)
                else:
                    where["stopping"] += 1  # the EV leaves: the stop in flight
                    await asyncio.sleep(rng.uniform(0.3, 2.0))
                    await r.cmd("unplug")
                    await asyncio.sleep(rng.uniform(0, 0.4))
            if x >= 0.1:  # (plugged in this round)
                free.check_off(k)
            if r.state()["relay"]:
                where["relay_closed_at_cut"] += 1  # the plug before it was served
            free.cut()
            await r.cmd("power_cut")
            if r.state()["relay"]:
                res.bad("relay closed with the power cut")
            # Now and then the EV stays plugged in through the cut (judged once online).
            through = 0.1 <= x < 0.75 and frng.random() < 0.15
            if not through:
                await r.cmd("unplug")
            await r.cmd("power_on")
            if rng.random() < 0.2:
                # A second cut during the reboot's redelivery.
                where["redelivery"] += 1
                await r.until(lambda s: s["ocpp"]["connected"], "online", 60)
                await asyncio.sleep(rng.uniform(0, 0.5))
                free.cut()
                await r.cmd("power_cut")
                await r.cmd("power_on")
            if through:
                await free.plugged_through(k)
                await r.cmd("unplug")
                # (the EV gone for good, not for less than the charger's pilot poll: the next
                # round's plug-in would find this session still running)
                await r.until(lambda s: not s["relay"] and not s["session"],
                              "the session to end with the unplug", 15)
        await free.online()
        await free.read_back("the end")
        await _drained(r)
        _ledger(res, r)
        _check_csms(res, r)
        await _check_idle_status(res, r)
        assert r.csms is not None
        reasons = Counter(f.payload["reason"] for f in r.csms.calls("StopTransaction"))
        res.figures["cuts"] = n + where["redelivery"]
        res.figures["relay_closed_at_cut"] = where.pop("relay_closed_at_cut", 0)
        res.figures["instants"] = dict(where)
        res.figures["stop_reasons"] = dict(reasons)
        res.figures["boots"] = r.boots()
        res.figures["free_charging"] = dict(free.counts)
        t = _answer_times(r.csms)
        if t:
            res.figures["csms_answer_ms_median"] = round(statistics.median(t) * 1000, 1)
            res.figures["csms_answer_ms_max"] = round(max(t) * 1000, 1)
        for code in r.unexpected_exits():
            res.bad(f"the agent exited with code {code} (a crash, not a cut)")
    return res


class FreeCharging:
    """The CSMS (the owner's app, through it) switching free charging (BorneFreeCharging) among
    the power campaign's cuts, judged from the user's side: after a cut the value last
    answered Accepted is in force (read back, and in what the charger does), a plug-in with it
    on charges without a tap, one with it off starts nothing. That each free session reaches
    the CSMS once is the ledger's."""

    def __init__(self, r: Rig, res: Result) -> None:
        assert r.csms is not None
        self.r, self.res, self.csms = r, res, r.csms
        self.on = True  # the power campaign's configure()
        self.counts: Counter[str] = Counter()
        self.boot_at = 0  # the CSMS's frames before the latest cut
        self.links = 0  # its connections before the latest cut
        self.check_after_cut = False  # a flip the cut came right after: read back once online
        self.just_on = False  # turned on, no plug-in judged since

    def cut(self) -> None:
        self.boot_at, self.links = len(self.csms.frames), self.csms.connects

    async def online(self) -> None:
        """Online on a link made after the latest cut (a CALL sent sooner would go down the one
        the cut left) and booted; the value read back if a flip came right before the cut."""
        await self.csms.wait_for(lambda: self.csms.connects > self.links, 60,
                                 "a connection after the cut")
        await self.csms.wait_call("BootNotification", after=self.boot_at, timeout=60)
        await self.r.until(lambda s: s["ocpp"]["connected"], "online after a power cut", 60)
        if self.check_after_cut:
            self.check_after_cut = False
            await self.read_back("after the cut that followed its change")

    async def flip(self, k: int, cut_after: float | None, plugged: bool = False) -> None:
        from ocpp.v16 import call

        want = not self.on
        ans = await _online_call(self.r, self.res, call.ChangeConfiguration(
            key="BorneFreeCharging", value="true" if want else "false"),
            "ChangeConfiguration BorneFreeCharging")
        if ans is None:
            return
        if ans.status != "Accepted":
            self.res.bad(f"round {k}: BorneFreeCharging={want} answered {ans.status}")
            return
        self.on = self.just_on = want
        self.counts["on" if want else "off"] += 1
        if plugged:
            # An EV already plugged in starts once free charging goes on: no tap, no re-plug.
            self.counts["on_while_plugged"] += 1
            await self._charges(k, len(self.csms.frames), "turned on with the EV plugged in")
        if cut_after is not None:
            # A cut right after the CSMS read the Accepted: the change must be on flash already.
            self.counts["cut_after_change"] += 1
            await asyncio.sleep(cut_after)
            self.cut()
            await self.r.cmd("power_cut")
            await self.r.cmd("power_on")
            self.check_after_cut = True
            await self.online()

    async def plugged_in(self, k: int, since: int) -> None:
        """Plugged in and asking for charge, free charging on: the relay closes and the CSMS
        hears of the session by its StartTransaction for the free-charging tag, without a tap."""
        if self.on:
            self.just_on = False
            self.counts["plug_ins_on"] += 1
            await self._charges(k, since, "a plug-in")

    async def _charges(self, k: int, since: int, what: str) -> None:
        try:
            await self.r.until(lambda s: s["relay"], "the relay", 15)
            await self.csms.wait_call("StartTransaction",
                                      lambda p: p.get("idTag") == "FREECHARGING", 15, since)
        except (TimeoutError, AssertionError) as e:
            self.res.bad(f"round {k}: free charging on, {what} did not charge: {e}")

    async def plugged_through(self, k: int) -> None:
        """The EV stayed plugged in through the cut: the charger, back, ends the interrupted
        session and, free charging on, starts a new one by itself; off, none."""
        since = self.boot_at
        await self.online()
        if self.on:
            self.counts["plugged_through_on"] += 1
            await self._charges(k, since, "an EV plugged in through a cut")
        else:
            self.counts["plugged_through_off"] += 1
            await asyncio.sleep(2.0)  # (a start would come at once: the meter is read at boot)
            self.check_off(k)

    def check_off(self, k: int) -> None:
        """With free charging off a plug-in starts no session (no tap was made): at the round's
        end, before its cut, none runs and the relay is open."""
        if self.on:
            return
        self.counts["plug_ins_off"] += 1
        st = self.r.state()
        if st["relay"] or st["session"]:
            self.res.bad(f"round {k}: free charging off, a plug-in started a session")

    async def read_back(self, when: str) -> None:
        from ocpp.v16 import call

        ans = await _online_call(self.r, self.res, call.GetConfiguration(
            key=["BorneFreeCharging"]), "GetConfiguration")
        if ans is None:
            return
        got = [e.get("value") for e in ans.configuration_key or []
               if e.get("key") == "BorneFreeCharging"]
        self.counts["read_back"] += 1
        if got != ["true" if self.on else "false"]:
            self.res.bad(f"BorneFreeCharging reads {got} {when}, last Accepted: {self.on}")


# -- network cuts --------------------------------------------------------------------------------


async def net_cuts(rng: random.Random, n: int, workdir: Path, longest: float = 60.0) -> Result:
    res = Result("network cuts")
    restore: list[float] = []
    detect: list[float] = []
    async with rig(workdir, "net") as r:
        await r.configure(BorneFreeCharging="true", MeterValueSampleInterval="2",
                          WebSocketPingInterval="5")
        assert r.csms is not None
        csms = r.csms
        plugged = False
        for _ in range(n):
            await r.until(lambda s: s["ocpp"]["connected"], "online between cuts", 60)
            if not plugged:
                await r.cmd("plug")
                await r.cmd("charge")
                plugged = True
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            dur = math.exp(rng.uniform(math.log(0.2), math.log(longest)))
            loop = asyncio.get_running_loop()
            t_down = loop.time()
            await r.cmd("net", up=False)
            if rng.random() < 0.4:  # the session ends (and maybe a new one starts) offline
                await asyncio.sleep(rng.uniform(0, dur / 2))
                await r.cmd("unplug")
                plugged = False
                if rng.random() < 0.5:
                    await asyncio.sleep(rng.uniform(0, 0.5))
                    await r.cmd("plug")
                    await r.cmd("charge")
                    plugged = True
            left = dur - (loop.time() - t_down)
            if left > 0:
                await asyncio.sleep(left)
            if not r.state()["ocpp"]["connected"]:
                detect.append(loop.time() - t_down)
            t_up = time.monotonic()
            up_at = len(csms.frames)
            await r.cmd("net", up=True)
            # Restore: the first transaction message the CSMS gets after the network is back
            # (the queue is never empty for long: MeterValues every 2 s while charging).
            try:
                f = await csms.wait_call("MeterValues", after=up_at, timeout=30) if plugged \
                    else None
                for f2 in csms.frames[up_at:]:
                    if f2.direction == "in" and f2.is_call and f2.action in (
                            "StartTransaction", "StopTransaction", "MeterValues"):
                        f = f2
                        break
                if f is not None:
                    restore.append(f.t - t_up)
            except AssertionError:
                res.bad(f"nothing delivered within 30 s of the network's return ({dur:.1f} s cut)")
        await r.cmd("unplug")
        await _drained(r)
        _ledger(res, r)
        _check_csms(res, r)
        await _check_idle_status(res, r)
        res.figures["cuts"] = n
        res.figures["longest_cut_s"] = longest
        res.figures["boots"] = r.boots()
        if restore:
            res.figures["restore_s_median"] = round(statistics.median(restore), 2)
            res.figures["restore_s_max"] = round(max(restore), 2)
            slow = [x for x in restore if x > 3.0]
            for x in slow[:10]:
                res.bad(f"restore to the first delivered message took {x:.2f} s (> 3 s)")
        if r.boots() != 1:
            res.bad(f"the agent rebooted during network cuts ({r.boots()} boots)")
    return res


# -- power and network cuts among taps and remote starts, on the ESP32 board ---------------------

MIXED_TAGS = ("04A1B2C3", "04D5E6F7", "04112233445566")


async def mixed(rng: random.Random, n: int, workdir: Path) -> Result:
    """Rounds of: a plug, then a tap, a remote start or nothing; maybe the network goes down or
    comes back; a tap or an unplug may end the session; maybe a power cut (a second one during
    the reboot now and then), online or off. The emulated ESP32 board with its MFRC522 reader
    and a single-phase meter: the board a charger ships with. Sessions start offline by
    LocalAuthorizeOffline / AllowOfflineTxForUnknownId. Judged by the ledger: every session the
    CSMS sees started once and stopped once, nothing lost, whatever the order of events."""
    res = Result("mixed cuts")
    where: Counter[str] = Counter()
    fitted = Fitted(board="esp32_wallbox", reader="mfrc522", meter_model="sdm120")
    async with rig(workdir, "mixed", fitted=fitted) as r:
        from ocpp.v16 import call

        await r.configure(MeterValueSampleInterval="1", LocalAuthorizeOffline="true",
                          AllowOfflineTxForUnknownId="true", WebSocketPingInterval="5")
        assert r.csms is not None
        csms = r.csms
        net_up = plugged = True
        await r.cmd("plug")
        boot_at = 0  # the CSMS's frames before the latest boot's BootNotification
        links = 0  # the CSMS's connections before the latest cut ended

        async def online() -> None:
            # The charger online on a connection made after the latest cut: a call sent
            # sooner would go down a link the cut left, which the charger cannot answer on.
            await csms.wait_for(lambda: csms.connects > links, 60, "a connection after the cut")
            await csms.wait_call("BootNotification", after=boot_at, timeout=60)
            await r.until(lambda s: s["ocpp"]["connected"], "online between rounds", 60)

        learning: list[str] = []  # cards the owner had the charger learn
        for k in range(n):
            if net_up:
                await online()
            if not plugged:
                await r.cmd("plug")
                plugged = True
            await r.cmd("charge")
            if net_up and rng.random() < 0.15:
                # The owner's "Scan Physical Tag" (the app's learnTag), then the card held to
                # the reader, now and then during an outage, now and then a power cut right
                # after the click (which says the card was added: _check_learned).
                if not await _ask_learn(r, res):
                    continue
                where["learn"] += 1
                learning.append(f"04C1{k:010X}")
                if rng.random() < 0.3:
                    where["learn_offline"] += 1
                    net_up = False
                    links = csms.connects
                    await r.cmd("net", up=False)
                    await asyncio.sleep(rng.uniform(0, 1.0))
                assert r.sim.agent is not None
                start = len(r.sim.agent.all_lines)
                await r.cmd("tap", uid=learning[-1])
                with contextlib.suppress(AssertionError):  # (the click, before the next card)
                    await r.sim.agent.wait_line(f"learned tag {learning[-1]}", 5, start)
                if rng.random() < 0.3:
                    where["learn_cut"] += 1
                    await asyncio.sleep(rng.uniform(0, 0.3))
                    await r.cmd("power_cut")
                    boot_at, links = len(csms.frames), csms.connects
                    await r.cmd("power_on")
                    if net_up:  # (a remote start below goes on the new link, as each round's)
                        await online()
            tag = rng.choice(MIXED_TAGS)
            x = rng.random()
            if x < 0.45:
                where["tap"] += 1
                await r.cmd("tap", uid=tag)
            elif x < 0.7 and net_up:
                where["remote_start"] += 1
                await _online_call(r, res, call.RemoteStartTransaction(id_tag=tag, connector_id=1),
                                   "RemoteStartTransaction")
            await asyncio.sleep(rng.uniform(0, 2.5))
            if rng.random() < 0.3:
                net_up = not net_up
                where["net_down" if not net_up else "net_up"] += 1
                links = csms.connects
                await r.cmd("net", up=net_up)
                await asyncio.sleep(rng.uniform(0, 2.0))
            y = rng.random()
            if y < 0.25:
                where["tap_to_stop"] += 1  # or to start, when none runs
                await r.cmd("tap", uid=tag)
                await asyncio.sleep(rng.uniform(0, 1.5))
            elif y < 0.5:
                where["unplug"] += 1
                await r.cmd("unplug")
                plugged = False
                await asyncio.sleep(rng.uniform(0, 1.0))
            if rng.random() < 0.5:
                where["power_cut_offline" if not net_up else "power_cut"] += 1
                if r.state()["relay"]:
                    where["relay_closed_at_cut"] += 1
                await r.cmd("power_cut")
                if r.state()["relay"]:
                    res.bad("relay closed with the power cut")
                if rng.random() < 0.5:
                    await r.cmd("unplug")  # the EV left while the charger was off
                    plugged = False
                boot_at, links = len(csms.frames), csms.connects
                await r.cmd("power_on")
                if rng.random() < 0.3:
                    where["second_cut"] += 1  # during the boot and its redelivery
                    await asyncio.sleep(rng.uniform(0, 1.0))
                    await r.cmd("power_cut")
                    boot_at, links = len(csms.frames), csms.connects
                    await r.cmd("power_on")
            if not net_up and rng.random() < 0.5:
                await asyncio.sleep(rng.uniform(0, 3.0))
                net_up = True
                where["net_up"] += 1
                links = csms.connects
                await r.cmd("net", up=True)
        if not net_up:
            await r.cmd("net", up=True)
        await r.cmd("unplug")
        await _drained(r, 120)
        _ledger(res, r)
        _check_csms(res, r)
        await _check_idle_status(res, r, wait=65)  # (a tap may wait for a plug)
        await _check_learned(res, r, learning)
        res.figures["rounds"] = n
        res.figures["events"] = dict(where)
        res.figures["boots"] = r.boots()
        for code in r.unexpected_exits():
            res.bad(f"the agent exited with code {code} (a crash, not a cut)")
    return res


async def _online_call(r: Rig, res: Result, req: Any, what: str) -> Any:
    """A CALL of the CSMS while the charger is online: -> its answer, or None (a violation)."""
    assert r.csms is not None
    try:
        return await asyncio.wait_for(r.csms.charge_points[CP_ID].call(req), 10)
    except Exception as e:
        res.bad(f"{what} online: {type(e).__name__}: {e}")
        return None


async def _ask_learn(r: Rig, res: Result) -> bool:
    """The owner app's learnTag (DataTransfer): the charger's next card read is the card."""
    from ocpp.v16 import call

    ans = await _online_call(
        r, res, call.DataTransfer(vendor_id="borne", message_id="learnTag"), "learnTag")
    if ans is None:
        return False
    if ans.status != "Accepted":
        res.bad(f"learnTag answered {ans.status}")
        return False
    return True


def _clicked(uid: str, lines: list[str]) -> bool:
    # The agent logs "learned tag" with the click (rfid/reader.py)
    return any(f"learned tag {uid}" in ln for ln in lines)


def learned_not_delivered(csms: Csms, lines: list[str], learning: list[str]) -> list[str]:
    """Of the cards the owner had learnt, those whose click was heard (the "learned tag" line
    comes with it) and that did not reach the CSMS as a tagLearned under one message id (a
    repeat the app can recognise)."""
    ids: dict[str, set[str]] = {}
    for f in csms.calls("DataTransfer"):
        if f.payload.get("messageId") == "tagLearned":
            ids.setdefault(f.payload.get("data", ""), set()).add(f.msg[1])
    out = []
    for u in learning:
        if not _clicked(u, lines):
            continue
        if u not in ids:
            out.append(f"card {u} clicked as learned never reached the CSMS")
        elif len(ids[u]) > 1:
            out.append(f"card {u} reached the CSMS under {len(ids[u])} message ids")
    return out


async def _check_learned(res: Result, r: Rig, learning: list[str]) -> None:
    assert r.csms is not None and r.sim.agent is not None
    csms, lines = r.csms, r.sim.agent.all_lines
    # (drained of transactions; a tagLearned queued behind them may still be on its way)
    with contextlib.suppress(AssertionError):
        await csms.wait_for(lambda: not learned_not_delivered(csms, lines, learning), 15,
                            "the learned cards")
    for v in learned_not_delivered(csms, lines, learning):
        res.bad(v)
    clicked = sum(_clicked(u, lines) for u in learning)
    res.figures["cards_learned"] = f"{clicked} clicked of {len(learning)} asked"


# -- mutated CSMS frames -------------------------------------------------------------------------


async def frames(rng: random.Random, n: int, workdir: Path, window: int = 8) -> Result:
    res = Result("mutated CSMS frames")
    async with rig(workdir, "frames", diag=True) as r:
        assert r.csms is not None
        csms = r.csms
        await r.configure(BorneFreeCharging="true", MeterValueSampleInterval="10")
        await r.cmd("plug")
        await r.cmd("charge")
        await r.until(lambda s: s["relay"] and (s["session"] or {}).get("transaction_id"),
                      "a charging session with its transaction id")
        tx = r.state()["session"]["transaction_id"]
        connects = csms.connects
        kinds: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        expect: dict[str, str] = {}  # message id -> mutation kind, awaiting exactly one answer
        answers: Counter[str] = Counter()
        scanned = 0
        unanswered = 0
        absurd_ok = 0

        def scan() -> None:
            nonlocal scanned, absurd_ok
            for f in csms.frames[scanned:]:
                m = f.msg
                if f.direction == "in" and isinstance(m, list) and len(m) > 2 and m[0] in (3, 4):
                    mid = m[1]
                    if not isinstance(mid, str):
                        continue
                    answers[mid] += 1
                    kind = expect.pop(mid, None)
                    if kind is None:
                        continue
                    code = "Result" if m[0] == 3 else str(m[2])
                    codes[code] += 1
                    if kind == "absurd_number" and m[0] == 3:
                        absurd_ok += 1
                elif f.direction == "in" and f.msg is None:
                    res.bad(f"the charger sent a frame that is not JSON: {f.raw[:120]!r}")
            scanned = len(csms.frames)

        gen = mutated_frames(rng)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent = 0
        deadline: dict[str, float] = {}
        link_t = t0  # when the latest link came up
        utf8_drops = 0

        async def settle(most: int) -> None:  # until fewer than `most` CALLs await an answer
            nonlocal unanswered
            while len(expect) >= most:
                await asyncio.sleep(0.002)
                scan()
                now = loop.time()
                for k in [k for k in expect if deadline[k] < now]:
                    unanswered += 1
                    res.bad(f"CALL {k} ({expect.pop(k)}) got no answer within 15 s")

        while sent < n:
            if CP_ID not in csms.connections:
                await r.until(lambda s: s["ocpp"]["connected"], "the link back", 60)
                await csms.wait_for(lambda: CP_ID in csms.connections, 30, "the link")
            kind, mid, data, binary = next(gen)
            if kind == "invalid_utf8":
                # Fails the link (RFC 6455 8.1: close 1007), unanswered; the charger reconnects.
                # Its backoff grows past a link the CSMS broke before it lasted 60 s
                # (client.py _PROVEN_MS): one such frame per proven link keeps it at 1-2 s.
                if utf8_drops and loop.time() - link_t < 61:
                    continue
                await settle(1)  # every earlier CALL answered on this link first
                closes, c0 = len(csms.close_codes), csms.connects
                try:
                    csms.write_raw(CP_ID, ws_frame(0x1, bytes(data)))
                except Exception as e:
                    why = f"send_failures_{type(e).__name__}"
                    res.figures[why] = res.figures.get(why, 0) + 1
                    await asyncio.sleep(0.1)
                    continue
                kinds[kind] += 1
                sent += 1
                utf8_drops += 1
                await csms.wait_for(lambda n=closes: len(csms.close_codes) > n, 15,
                                    "the 1007 close")
                code = csms.close_codes[closes][1]
                if code != 1007:
                    res.bad(f"a text frame that is not UTF-8 closed the link with {code}")
                await csms.wait_for(lambda c=c0: csms.connects > c and CP_ID in csms.connections,
                                    30, "the link back after the 1007 close")
                await r.until(lambda s: s["ocpp"]["connected"], "the link back", 30)
                link_t = loop.time()
                continue
            try:
                # Straight onto the connection: the CSMS's own json would choke on some
                # (3,000 nested arrays, a list for an id); _lenient registers what it can read.
                _lenient(csms, data)
                raw = data if isinstance(data, bytes) else data.encode()
                csms.write_raw(CP_ID, ws_frame(0x2 if binary else 0x1, raw))
                kinds[kind] += 1
            except Exception as e:  # the link just went, or the CSMS could not send it
                why = f"send_failures_{type(e).__name__}"
                res.figures[why] = res.figures.get(why, 0) + 1
                await asyncio.sleep(0.1)
                continue
            sent += 1
            if mid is not None:
                expect[mid] = kind
                deadline[mid] = loop.time() + 15
            await settle(window)
            if sent % 200 == 0:
                scan()
        end = loop.time() + 15
        while expect and loop.time() < end:
            await asyncio.sleep(0.05)
            scan()
        for k, kind in expect.items():
            unanswered += 1
            res.bad(f"CALL {k} ({kind}) got no answer")
        scan()
        twice = [k for k, c in answers.items() if c > 1 and re.fullmatch(r"c\d{7}", k)]
        for k in twice[:10]:
            res.bad(f"CALL {k} answered {answers[k]} times")
        # Results to CALLs the CSMS sent damaged (its json refused them; the charger's read
        # them): kept for the report, with the frame that got them.
        sent_by_id = {}
        for f in csms.frames:
            if f.direction == "out" and f.msg is None:
                m = _HEAD.match(f.raw)
                if m:
                    sent_by_id[m.group(1)] = f.raw
        lax = [f for f in csms.frames if f.direction == "in" and isinstance(f.msg, list)
               and f.msg[:1] == [3] and f.msg[1] in sent_by_id]
        res.figures["results_to_damaged_json"] = len(lax)
        with (workdir / "lax-json.txt").open("w") as fh:
            for f in lax:
                fh.write(f"{sent_by_id[f.msg[1]]!r}\n  -> {f.raw[:200]!r}\n")
        if absurd_ok:
            res.bad(f"{absurd_ok} CALLs with an absurd number got a CALLRESULT")
        st = r.state()
        if not st["relay"] or (st["session"] or {}).get("transaction_id") != tx:
            res.bad(f"the charging session did not survive (state {st['session']})")
        if csms.calls("StopTransaction"):
            res.bad("the session was stopped during the campaign")
        res.figures["frames"] = sent
        res.figures["kinds"] = len(kinds)
        res.figures["per_kind"] = dict(sorted(kinds.items()))
        res.figures["answers"] = dict(sorted(codes.items()))
        res.figures["unanswered"] = unanswered
        res.figures["answered_twice"] = len(twice)
        res.figures["link_drops"] = csms.connects - connects
        res.figures["boots"] = r.boots()
        res.figures["frames_per_s"] = round(sent / max(loop.time() - t0, 1e-6))
        heap = st.get("heap") or {}
        res.figures["heap_peak"] = heap.get("peak")
        res.figures["heap_total"] = heap.get("total")
        if r.boots() != 1:
            res.bad(f"the agent rebooted ({r.boots()} boots)")
        res.figures["utf8_link_failures"] = utf8_drops
        if csms.connects != connects + utf8_drops:
            res.bad(f"the link dropped {csms.connects - connects} time(s), "
                    f"{utf8_drops} of them by a frame that is not UTF-8")
        # A CALLRESULT to a frame so damaged that this CSMS cannot tell its action (MicroPython's
        # json reads some frames CPython's refuses): counted, not judged (the answer's schema is
        # unknown); every other frame the charger sent is judged.
        lax = [v for v in csms.violations if "?: no such OCPP 1.6 action" in v]
        csms.violations = [v for v in csms.violations if v not in lax]
        res.figures["results_to_unreadable_calls"] = len(lax)
        _check_csms(res, r)
    return res


class _AnyAnswer(dict):  # type: ignore[type-arg]
    """The frame checker's pending CALLs, for mutated frames: an answer to an id the CSMS never
    sent readably (the charger sniffed it off a damaged frame, or "-1") is checked as a frame of
    an unknown action ("?"), which only a CALLERROR passes."""

    def pop(self, k: Any, d: Any = None) -> Any:
        return super().pop(k, "?")

    def __contains__(self, k: object) -> bool:
        # Every id is one the CSMS may have sent (the same one twice in flight, read by the
        # charger as it is, over 36 characters too): pop() judges its answer.
        return True


_HEAD = re.compile(r'^\s*\[\s*2\s*,?\s*"([^"\\]+)"\s*,?\s*"([^"]{1,40})"')


def _lenient(csms: Csms, data: str | bytes) -> None:
    """Register the CALL the charger will read in `data` (by its head, as the charger sniffs
    it), so its answer is checked against that action's schema even where CPython's json would
    refuse the frame (MicroPython's is laxer: trailing commas, bad escapes)."""
    link = csms.links[CP_ID]
    if not isinstance(link.checker.pending, _AnyAnswer):
        link.checker.pending = _AnyAnswer(link.checker.pending)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        msg = None
    if (isinstance(msg, list) and len(msg) > 2 and msg[0] == 2 and isinstance(msg[1], str)
            and msg[1] and isinstance(msg[2], str)):
        # (an id of any length: one over 36 characters is refused under itself, OCPP-J 4.2.3)
        link.checker.pending[msg[1]] = msg[2]
        return
    m = _HEAD.match(text)
    if m:
        link.checker.pending[m.group(1)] = m.group(2)


# -- hostile hotspot requests --------------------------------------------------------------------

# The API answers only requests for the hotspot's own address (hotspot/api.py: 403 otherwise),
# 127.0.0.1 in the simulation; one request of another host, and one from another site, keep that
# refusal exercised.
_HS_BASE = [
    b"GET / HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n",
    b"GET /api/identity HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/networks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer 0123\r\n\r\n",
    b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 17\r\n\r\n{\"password\": \"x\"}",
    b"POST /api/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n\r\n",
    b"GET /api/identity HTTP/1.1\r\nHost: rebound.example\r\n\r\n",
    b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n"
    b"Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"password\": \"x\"}",
]


def _hostile_request(rng: random.Random) -> bytes:
    b = bytearray(rng.choice(_HS_BASE))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:  # flip a byte
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 1:  # insert bytes
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:  # truncate
            del b[i:]
        elif op == 3:  # a long run
            b[i:i] = bytes([rng.choice(b"a/%[{\"\r\n: ")]) * rng.choice((100, 1000, 5000))
        elif op == 4:  # duplicate a line
            j = b.find(b"\r\n", i)
            if j > 0:
                b[j:j] = b[b.rfind(b"\r\n", 0, j) + 2 if b.rfind(b"\r\n", 0, j) >= 0 else 0:j]
        elif op == 5:  # a hostile header
            b[i:i] = rng.choice((b"Content-Length: 99999999999\r\n", b"Transfer-Encoding: x\r\n",
                                 b"Host: \xff\xfe\r\n", b"X: " + b"y" * 3000 + b"\r\n"))
        else:  # a surrogate escape in a JSON body
            b[i:i] = b'"\\ud83d\\ude00\\udc00"'
    return bytes(b)


async def _http(port: int, data: bytes, timeout: float) -> bytes | None:
    """The answer until EOF; None when the server neither answered nor closed in time."""
    try:
        rd, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return b""
    try:
        w.write(data)
        await w.drain()
        with contextlib.suppress(OSError):
            w.write_eof()
        return await asyncio.wait_for(rd.read(), timeout)
    except TimeoutError:
        return None
    except OSError:
        return b""
    finally:
        w.close()


async def hotspot(rng: random.Random, n: int, workdir: Path, parallel: int = 3) -> Result:
    res = Result("hostile hotspot requests")
    statuses: Counter[str] = Counter()
    claim = ClaimOptions(conn_password="wxyz-2345-6789", lockout_base_ms=50)
    async with rig(workdir, "hotspot", claim=claim, diag=True) as r:
        await r.until(lambda s: (s.get("hotspot") or {}).get("open"), "the hotspot", 30)
        port = claim.http_port
        reqs = [_hostile_request(rng) for _ in range(n)]
        hangs = 0

        async def worker(k: int) -> None:
            nonlocal hangs
            for i in range(k, n, parallel):
                ans = await _http(port, reqs[i], 10)
                if ans is None:
                    hangs += 1
                    res.bad(f"request {i} neither answered nor closed in 10 s: {reqs[i][:80]!r}")
                elif not ans:
                    statuses["dropped"] += 1
                else:
                    parts = ans.split(b"\r\n", 1)[0].split(b" ")
                    ok = len(parts) >= 2 and parts[0] == b"HTTP/1.1" and parts[1].isdigit()
                    statuses[parts[1].decode() if ok else "not HTTP"] += 1
                    if not ok:
                        res.bad(f"request {i}: answer is not HTTP: {ans[:80]!r}")

        t0 = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(parallel)))
        # Afterwards it still serves.
        final = await _http(port, _HS_BASE[1], 10)
        if not final or not final.startswith(b"HTTP/1.1 200"):
            res.bad(f"the hotspot no longer serves: {final[:80] if final else final!r}")
        st = r.state()
        res.figures["requests"] = n
        res.figures["statuses"] = dict(sorted(statuses.items()))
        res.figures["hangs"] = hangs
        res.figures["boots"] = r.boots()
        res.figures["requests_per_s"] = round(n / max(time.monotonic() - t0, 1e-6))
        heap = st.get("heap") or {}
        res.figures["heap_peak"] = heap.get("peak")
        if r.boots() != 1:
            res.bad(f"the agent rebooted ({r.boots()} boots)")
    return res


# -- serial noise on the reader and meter lines --------------------------------------------------


async def noise(rng: random.Random, n: int, workdir: Path) -> Result:
    """n noise events on the PN532 HSU line and the RS-485 line during a charging session, with
    the card presented now and then: no tag but the one presented, no energy the EV did not
    take (every register reported within the simulated meter's true reading)."""
    res = Result("serial noise")
    async with rig(workdir, "noise") as r:
        assert r.csms is not None
        csms = r.csms
        await r.configure(BorneFreeCharging="true", MeterValueSampleInterval="1")
        await r.cmd("plug")
        await r.cmd("charge")
        await r.until(lambda s: s["relay"], "charging")
        sim = r.sim
        card = "04A1B2C3"
        events: Counter[str] = Counter()
        top_true = 0.0
        for i in range(n):
            k = rng.randrange(4)
            if k == 0:
                sim.meter.garbage = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
                events["meter_garbage"] += 1
            elif k == 1:
                sim.meter.corrupt = rng.randint(1, 3)
                events["meter_crc"] += 1
            elif k == 2:
                sim.reader.line_noise = _noisy(rng)
                events["reader_noise"] += 1
            else:
                await r.cmd("tap", uid=card, hold=0.3)
                events["taps"] += 1
            await asyncio.sleep(rng.uniform(0.02, 0.3))
            top_true = max(top_true, r.state()["energy_wh"])
            if i % 50 == 49:
                sim.reader.line_noise = None
        sim.reader.line_noise = None
        await asyncio.sleep(2)
        tags = {f.payload.get("idTag") for f in csms.calls("Authorize")} | {
            f.payload.get("idTag") for f in csms.calls("StartTransaction")}
        tags.discard(None)
        tags.discard("FREECHARGING")
        for t in tags - {card}:
            res.bad(f"a tag that was never presented: {t}")
        true_now = r.state()["energy_wh"]
        for f in csms.calls("MeterValues"):
            for mv in f.payload["meterValue"]:
                for sv in mv["sampledValue"]:
                    if (sv.get("measurand") == "Energy.Active.Import.Register"
                            and float(sv["value"]) > true_now + 1):
                        res.bad(f"register {sv['value']} Wh above the true {true_now:.1f} Wh")
        res.figures["events"] = dict(events)
        res.figures["tags_seen"] = sorted(tags)
        res.figures["boots"] = r.boots()
        res.figures["true_wh"] = round(true_now, 1)
        _check_csms(res, r)
        if r.boots() != 1:
            res.bad(f"the agent rebooted ({r.boots()} boots)")
    return res


def _noisy(rng: random.Random) -> Callable[[bytes], bytes]:
    seed = rng.randrange(1 << 30)
    local = random.Random(seed)

    def f(data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(local.randint(0, 3)):
            op = local.randrange(3)
            i = local.randrange(len(b) + 1)
            if op == 0 and b:
                b[min(i, len(b) - 1)] ^= 1 << local.randrange(8)
            elif op == 1:
                b[i:i] = bytes(local.randrange(256) for _ in range(local.randint(1, 6)))
            elif b:
                del b[min(i, len(b) - 1)]
        return bytes(b)

    return f


# -- connector property sequences ----------------------------------------------------------------


def props(rng: random.Random, n: int, workdir: Path, steps: int = 400) -> Result:
    """n random sequences (steps each) of the connector property test
    (tests/target/test_connector_props.py) in the unix port, two processes."""
    res = Result("connector property sequences")
    first = rng.randrange(1 << 20)
    here = Path(__file__).resolve().parent
    tests_target = paths.REPO / "tests" / "target"
    mpath = ":".join([".frozen", str(paths.FIRMWARE), str(paths.REPO / "boards" / "unix_sim"),
                      str(tests_target)])
    half = (n + 1) // 2
    procs = []
    for k, (a, c) in enumerate(((first, half), (first + half, n - half))):
        if c <= 0:
            continue
        d = workdir / f"props-{k}"
        d.mkdir(parents=True, exist_ok=True)
        procs.append(subprocess.Popen(
            [str(paths.micropython()), str(here / "mp_props.py"), str(a), str(c), str(steps)],
            cwd=d, env=dict(os.environ, MICROPYPATH=mpath), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    seqs = total_steps = closings = fails = 0
    for p in procs:
        out, _ = p.communicate(timeout=7200)
        line = [x for x in out.splitlines() if x.startswith("props ")]
        if p.returncode != 0 or not line:
            res.bad(f"the property run failed: {out[-800:]}")
            continue
        _, a, b, c, d = line[0].split()
        seqs += int(a)
        total_steps += int(b)
        closings += int(c)
        fails += int(d)
        for x in out.splitlines():
            if x.startswith("FAIL "):
                res.bad(x[5:])
    res.figures.update(sequences=seqs, steps=total_steps, relay_closings=closings,
                       failed_sequences=fails, first_seed=first)
    if seqs and closings < seqs // 10:
        res.bad(f"the walks closed the relay only {closings} times: they prove little")
    return res


# -- soak ----------------------------------------------------------------------------------------


# A day at the charger, compressed: every interval the charger is configured with, and every
# duration the soak plays, is the day's divided by SOAK_COMPRESS (the wall clock itself is not
# compressed: the run is placed across midnight instead).
DAY_S = 86400
SOAK_COMPRESS = 96  # a day in 900 s
SOAK_PER_DAY = 96  # sessions a day: one every 15 minutes
SOAK_CONFIG = {  # the day's values -> the soak's (seconds)
    "HeartbeatInterval": (300, 3),  # 288 a day -> 300 in 900 s
    "MeterValueSampleInterval": (60, 1),  # 1 s is the least OCPP can say: 96 s of the day
    "ClockAlignedDataInterval": (900, 9),  # 96 a day -> 100 in 900 s (9 s divides a day)
    "WebSocketPingInterval": (480, 5),
}
SOAK_CUTS_PER_DAY = 4  # network cuts, 2 to 20 minutes of the day each
_AGENTLOG_FILES = 4  # the agent log ring's files (firmware/diag/agentlog.py FILES)
_SOAK_TAGS = ("04A1B2C3", "04D5E6F7", "0A0B0C0D", "04112233445566", "04C0FFEE")


def reachable(r: Rig, cutting: bool) -> bool:
    """Whether a CALL of the CSMS can reach the charger now. Not while a network cut is on:
    for seconds after the cut both ends still hold the link (the charger notices at its next
    ping, the CSMS at the reset when the network returns), and a CALL sent then is dropped by
    the gate, never answered (seed 98113, soak=16: a RemoteStopTransaction 3 s into a cut)."""
    assert r.csms is not None
    return not cutting and r.state()["ocpp"]["connected"] and CP_ID in r.csms.connections


def _day_s(real: float) -> float:
    return real * SOAK_COMPRESS


def _real_s(day: float) -> float:
    return day / SOAK_COMPRESS


class _FlashWatch:
    """The charger's flash as the soak sees it: the agent log ring's files and the transaction
    journal's compactions (its line count dropping)."""

    def __init__(self, flash: Path) -> None:
        self.data = flash / "data"
        self.log_seqs: set[int] = set()
        self.txq_lines = 0
        self.txq_max = 0
        self.compactions = 0

    def poll(self) -> None:
        with contextlib.suppress(OSError):
            for n in os.listdir(self.data / "agentlog"):
                if n.endswith(".log") and n[:-4].isdigit():
                    self.log_seqs.add(int(n[:-4]))
        try:
            with (self.data / "txq.log").open("rb") as fh:
                n = sum(1 for _ in fh)
        except OSError:
            return
        if n < self.txq_lines:
            self.compactions += 1
        self.txq_lines = n
        self.txq_max = max(self.txq_max, n)


async def _heap_floor(r: Rig, until: float) -> int | None:
    """The least heap in use (after a collection) the charger reports from now until `until`
    (loop time; at least one reading): what it keeps between sessions. One reading at an instant
    may fall on a reconnection and its redelivery, kilobytes that are gone a second later (seed
    101011 soak=8: 12 KiB in the last slot, 1 KiB once the link was back), which is no leak; a
    leak raises the floor too."""
    loop = asyncio.get_running_loop()
    low: int | None = None
    while True:
        h = (r.state().get("heap") or {}).get("used")
        if h and (low is None or int(h) < low):
            low = int(h)
        if loop.time() >= until:
            return low
        await asyncio.sleep(min(0.05, max(0.0, until - loop.time())))


async def soak(rng: random.Random, sessions: int, workdir: Path) -> Result:
    """A day at the charger in compressed time (SOAK_COMPRESS): `sessions` sessions, one every
    15 minutes of the day (96 make the day), each started by a tap (Authorize), a remote start
    or a reservation, charging 3 to 12 minutes, sometimes paused by the EV, ended by unplugging,
    a tap or a remote stop; heartbeats, sampled and clock-aligned meter values at the configured
    intervals (SOAK_CONFIG); network cuts (SOAK_CUTS_PER_DAY, some during a session); the wall
    clock crosses midnight halfway. The heap in use (after a collection) must stay flat, the
    ledger clean, and the journal and the log ring must cycle in a full day."""
    from ocpp.v16 import call

    res = Result("soak")
    used: list[int] = []
    slot = _real_s(DAY_S / SOAK_PER_DAY)  # real seconds per session
    length = sessions * slot
    start = time.time()
    midnight = (int(start) // DAY_S + 1) * DAY_S
    shift = round(midnight - length / 2 - start)  # the charger's clock reaches midnight halfway
    cuts_n = max(1, round(SOAK_CUTS_PER_DAY * sessions / SOAK_PER_DAY))
    cut_slots = set(rng.sample(range(sessions), min(cuts_n, sessions)))
    starts: Counter[str] = Counter()
    ends: Counter[str] = Counter()
    cut_s: list[float] = []
    cut_tasks: list[asyncio.Task[None]] = []
    known: set[str] = set()  # tags the CSMS has accepted (in the authorization cache)
    async with rig(workdir, "soak", diag=True, heartbeat=SOAK_CONFIG["HeartbeatInterval"][1],
                   clock_shift=shift) as r:
        assert r.csms is not None
        csms = r.csms
        watch = _FlashWatch(workdir / "flash-soak")
        await r.configure(**{k: str(v[1]) for k, v in SOAK_CONFIG.items()
                             if k != "HeartbeatInterval"})
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        def cp() -> Any:
            return csms.charge_points[CP_ID]

        async def online() -> None:
            for t in cut_tasks:
                await t  # the cut is over and the charger back
            await r.until(lambda s: s["ocpp"]["connected"], "the charger online", 60)
            await csms.wait_for(lambda: CP_ID in csms.connections, 30, "the link")

        async def cut(dur: float) -> None:
            await r.cmd("net", up=False)
            await asyncio.sleep(dur)
            c0 = csms.connects
            await r.cmd("net", up=True)  # the links that lived through the cut are reset
            await csms.wait_for(lambda: csms.connects > c0, 60, "the charger to reconnect")

        def cutting() -> bool:
            return any(not t.done() for t in cut_tasks)

        async def sleep_until(t: float) -> None:
            watch.poll()
            if t > loop.time():
                await asyncio.sleep(t - loop.time())

        for i in range(sessions):
            slot_t = t0 + i * slot
            await sleep_until(slot_t + rng.uniform(0, 0.15) * slot)  # the EV arrives
            tag = rng.choice(_SOAK_TAGS)
            how = rng.choices(("tap", "remote", "reservation"), (6, 2, 2))[0]
            if how == "tap" and cutting() and tag in known:
                how = "offline tap"  # the authorization cache knows the tag
            else:
                await online()
            known.add(tag)
            starts[how] += 1
            n0 = len(csms.frames)
            if how == "reservation":
                expiry = datetime.fromtimestamp(time.time() + shift + 600, UTC)
                res_id = 1000 + i
                ans = await cp().call(call.ReserveNow(
                    connector_id=1, expiry_date=expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    id_tag=tag, reservation_id=res_id))
                if ans.status != "Accepted":
                    res.bad(f"session {i}: ReserveNow {ans.status}")
                await asyncio.sleep(_real_s(rng.uniform(60, 300)))  # the driver on the way
            await r.cmd("plug")
            if how == "remote":
                ans = await cp().call(call.RemoteStartTransaction(id_tag=tag, connector_id=1))
                if ans.status != "Accepted":
                    res.bad(f"session {i}: RemoteStartTransaction {ans.status}")
            else:
                await r.cmd("tap", uid=tag, hold=0.5)
            await r.cmd("charge")
            st = await r.until(lambda s: s["relay"] and (s["session"] or {}).get(
                "transaction_id"), f"session {i} ({how}) charging", 30)
            tx = st["session"]["transaction_id"]
            if how == "reservation":
                f = await csms.wait_call("StartTransaction", after=n0, timeout=10)
                if f.payload.get("reservationId") != res_id:
                    res.bad(f"session {i}: StartTransaction without its reservation "
                            f"{res_id}: {f.payload}")
            charge_end = loop.time() + _real_s(rng.uniform(180, 720))
            if i in cut_slots:  # the network goes, now or a little later
                dur = _real_s(rng.uniform(120, 1200))
                cut_s.append(_day_s(dur))
                await asyncio.sleep(rng.uniform(0, 1.0))
                cut_tasks.append(asyncio.create_task(cut(dur)))
            if rng.random() < 0.25:  # the EV pauses (SuspendedEV) and goes on
                await sleep_until(loop.time() + (charge_end - loop.time()) * rng.random())
                await r.cmd("pause")
                await asyncio.sleep(_real_s(rng.uniform(30, 120)))
                await r.cmd("charge")
            await sleep_until(charge_end)
            stop = rng.choices(("unplug", "tap", "remote"), (6, 2, 2))[0]
            if stop == "remote" and not reachable(r, cutting()):
                stop = "tap"  # no remote stop through a cut link
            ends[stop] += 1
            if stop == "remote":
                ans = await cp().call(call.RemoteStopTransaction(transaction_id=tx))
                if ans.status != "Accepted":
                    res.bad(f"session {i}: RemoteStopTransaction {ans.status}")
            elif stop == "tap":
                await r.cmd("tap", uid=tag, hold=0.5)
            if stop != "unplug":
                await r.until(lambda s: not s["relay"], f"session {i} stopped by {stop}", 30)
                await asyncio.sleep(_real_s(rng.uniform(30, 120)))  # the driver walks back
            await r.cmd("unplug")
            await r.until(lambda s: not s["relay"] and not s["session"]
                          and s["ocpp"]["status"] == "Available", f"session {i} over", 30)
            watch.poll()
            h = await _heap_floor(r, slot_t + slot - 0.05)
            if h:
                used.append(h)
        for t in cut_tasks:
            await t
        real = loop.time() - t0
        await _drained(r)
        watch.poll()
        _ledger(res, r)
        _check_csms(res, r)
        hb = csms.calls("Heartbeat")
        clock_mv = [mv["timestamp"] for f in csms.calls("MeterValues")
                    for mv in f.payload["meterValue"]
                    if any(sv.get("context") == "Sample.Clock" for sv in mv["sampledValue"])]
        stamps = [f.payload["timestamp"] for f in csms.calls("StartTransaction")]
        days = sorted({t[:10] for t in stamps + clock_mv})
        res.figures.update(
            sessions=sessions, real_s=round(real), day_s=round(_day_s(real)),
            compress=SOAK_COMPRESS, starts=dict(starts), ends=dict(ends),
            stop_reasons=dict(Counter(f.payload.get("reason", "Local")
                                      for f in csms.calls("StopTransaction"))),
            reservations_used=sum(1 for f in csms.calls("StartTransaction")
                                  if "reservationId" in f.payload),
            heartbeats=len(hb), clock_aligned=len(clock_mv),
            net_cuts_day_s=[round(x) for x in cut_s], dates=days,
            agentlog_files=len(watch.log_seqs),
            agentlog_seq=[min(watch.log_seqs, default=0), max(watch.log_seqs, default=0)],
            txq_compactions=watch.compactions, txq_lines_max=watch.txq_max,
            boots=r.boots())
        if len(days) < 2:
            res.bad(f"the charger's clock did not cross midnight: {days}")
        misaligned = [t for t in clock_mv
                      if round(parse_time(t).timestamp()) % SOAK_CONFIG[
                          "ClockAlignedDataInterval"][1]]
        if misaligned:
            res.bad(f"{len(misaligned)} clock-aligned values off the interval: {misaligned[:3]}")
        if sessions >= SOAK_PER_DAY:
            if watch.compactions == 0:
                res.bad("the transaction journal never compacted in a day")
            if max(watch.log_seqs, default=0) <= _AGENTLOG_FILES:
                res.bad("the agent log ring never wrapped in a day")
        if len(used) >= 4:
            q = max(1, len(used) // 4)
            early, late = statistics.median(used[:q]), statistics.median(used[-q:])
            res.figures["heap_used_first_quarter"] = int(early)
            res.figures["heap_used_last_quarter"] = int(late)
            res.figures["heap_used_max"] = max(used)
            # every quarter's median (growth that levels off reads differently from a leak),
            # and each slot's floor in the workdir for a closer look
            res.figures["heap_used_quarters"] = [
                int(statistics.median(used[k * q:(k + 1) * q if k < 3 else len(used)]))
                for k in range(4)]
            (workdir / "heap-soak.json").write_text(json.dumps(used) + "\n")
            if late > early + 4096:
                res.bad(f"the heap grew from {early:.0f} to {late:.0f} bytes over the soak")
        if r.boots() != 1:
            res.bad(f"the agent rebooted ({r.boots()} boots)")
        for code in r.unexpected_exits():
            res.bad(f"the agent exited with code {code}")
    return res


CAMPAIGNS = ("power", "net", "mixed", "frames", "hotspot", "noise", "props", "soak", "answers")


async def run(names: list[str], sizes: dict[str, int], seed: int, workdir: Path | None = None,
              out: Callable[[str], None] = print, longest_cut: float = 60.0) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="borne-chaos-") as tmp:
        wd = workdir or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        for name in names:
            rng = random.Random(f"{seed}-{name}")
            t0 = time.monotonic()
            n = sizes[name]
            out(f"chaos: {name} x {n} (seed {seed}) ...")
            try:
                if name == "power":
                    res = await power_cuts(rng, n, wd)
                elif name == "net":
                    res = await net_cuts(rng, n, wd, longest_cut)
                elif name == "mixed":
                    res = await mixed(rng, n, wd)
                elif name == "frames":
                    res = await frames(rng, n, wd)
                elif name == "hotspot":
                    res = await hotspot(rng, n, wd)
                elif name == "noise":
                    res = await noise(rng, n, wd)
                elif name == "props":
                    res = await asyncio.to_thread(props, rng, n, wd)
                elif name == "soak":
                    res = await soak(rng, n, wd)
                elif name == "answers":
                    from borne.chaos.answers import answers

                    res = await answers(rng, n, wd)
                else:
                    raise ValueError(name)
            except Exception as e:  # the campaign itself broke: that is a finding too
                res = Result(name)
                res.bad(f"campaign aborted: {type(e).__name__}: {e}")
            res.seconds = round(time.monotonic() - t0, 1)
            results.append(res)
            out(report(res))
    return results


def report(res: Result) -> str:
    verdict = "ok" if not res.violations else f"{len(res.violations)} VIOLATION(S)"
    lines = [f"chaos: {res.name}: {verdict} in {res.seconds} s",
             "  " + json.dumps(res.figures, sort_keys=True)]
    lines += [f"  ! {v}" for v in res.violations[:20]]
    return "\n".join(lines)


def _main() -> None:  # for `python -m borne.chaos.campaigns` during development
    names = sys.argv[1:] or list(CAMPAIGNS)
    asyncio.run(run(names, SLICE, 1))


if __name__ == "__main__":
    _main()
