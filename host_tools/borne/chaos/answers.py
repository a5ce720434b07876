"""The `answers` campaign of `borne chaos`: a CSMS that answers at random. The other campaigns'
CSMS always answers at once and accepts everything; a real one refuses a message now and then
with a CALLERROR, answers late, refuses a tag (Authorize or StartTransaction), sends a clock
that jumps, and its operator changes the configuration and starts and stops sessions remotely
while drivers tap and plug; it takes the charger out of service (ChangeAvailability
Inoperative, Scheduled during a session) and puts it back a few rounds later. Judged by the
ledger (a CALL refused with a CALLERROR is not booked: its retry under a new id is no
duplicate), by the relay (closed only in a session, and opened
soon after the CSMS refused the session's tag), by availability (out of service: no relay,
no session, Unavailable, a RemoteStartTransaction Rejected; a Scheduled change applied at the
session's end, its Unavailable after the StopTransaction; back in service: a session charges)
and by every CALL of the CSMS answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from borne.chaos.campaigns import (
    CP_ID,
    Result,
    Rig,
    _check_csms,
    _check_idle_status,
    _drained,
    _ledger,
    rig,
)
from borne.sim.agent import EXIT_RESET

TAGS = ("04A1B2C3", "04D5E6F7", "0A0B0C0D")
ATTEMPTS = 4  # TransactionMessageAttempts: a message fails at most ATTEMPTS - 1 times in a row
# Keys an operator changes, and the values tried (valid ones: the invalid are the frames
# campaign's).
CONFIG = {
    "StopTransactionOnInvalidId": ("true", "false"),
    "StopTransactionOnEVSideDisconnect": ("true", "false"),
    "LocalPreAuthorize": ("true", "false"),
    "LocalAuthorizeOffline": ("true", "false"),
    "AuthorizeRemoteTxRequests": ("true", "false"),
    "AuthorizationCacheEnabled": ("true", "false"),
    "AllowOfflineTxForUnknownId": ("true", "false"),
    "MeterValueSampleInterval": ("0", "1", "2", "5"),
    "ClockAlignedDataInterval": ("0", "3", "60"),
    "ConnectionTimeOut": ("5", "30", "120"),
    "HeartbeatInterval": ("2", "30", "300"),
    "TransactionMessageRetryInterval": ("1", "2"),
    "MinimumStatusDuration": ("0", "1"),
    "WebSocketPingInterval": ("0", "1", "5"),
    "TransactionMessageAttempts": ("4", "5"),
    "MeterValuesSampledData": ("Energy.Active.Import.Register",
                               "Energy.Active.Import.Register,Power.Active.Import",
                               "Current.Import,Voltage,Frequency,Power.Offered,Current.Offered"),
    "MeterValuesAlignedData": ("Energy.Active.Import.Register", "Power.Active.Import,Voltage"),
    "StopTxnSampledData": ("", "Energy.Active.Import.Register,Current.Import"),
    "StopTxnAlignedData": ("", "Energy.Active.Import.Register"),
    "LightIntensity": ("30", "100"),  # the owner app's LED brightness, saved as a setting
}
REFUSALS = ("Invalid", "Blocked", "Expired", "ConcurrentTx")


def relay_without_session(r: Rig, st: dict[str, Any]) -> bool:
    """Is the relay closed with no session? Judged on the coil's command as well as the
    contacts: a stop opens the relay and then ends the session, and the contacts follow the
    command a contactor's time later (sim.hardware.RELAY_DELAY_S), so a state read in between
    shows them closed after the session ended (seed 95047, answers=60, round 32: the agent's
    log has every close inside a session)."""
    return st["relay"] and not st["session"] and r.sim.hw.relay_cmd


class Availability:
    """Connector 1's availability as the operator's ChangeAvailability answers say it (OCPP 1.6
    5.2). One connector: an Inoperative for connector 0 or 1 takes it out of service, an
    Operative for either puts it back (connrare.change_availability: with one connector the
    charge point charges again). A change Scheduled during a session is pending until the
    session ends; an unanswered request leaves it unknown (not judged) until the next answer."""

    GRACE_S = 4.0  # the state's session and status follow a report (MinimumStatusDuration, ~1 s)

    def __init__(self) -> None:
        self.inop = False  # out of service: Accepted Inoperative, or a Scheduled one applied
        self.since = 0.0  # (loop time) since when
        self.scheduled: tuple[float, Any] | None = None  # (monotonic time, transaction id)
        self.known = True
        self.requests: list[float] = []  # monotonic times of the ChangeAvailability requests
        self.pending: list[tuple[float, Any]] = []  # Scheduled: (answer time, transaction id)
        self.sched_since = 0.0  # (loop time) the latest Scheduled answer

    def answered(self, kind: str, status: str | None, now: float, st: dict[str, Any]) -> None:
        if status is None:  # (lost or timed out: either may stand)
            self.known, self.scheduled = False, None
            return
        self.known = True
        if kind == "Operative" and status == "Accepted":
            self.inop, self.scheduled = False, None
        elif kind == "Inoperative" and status == "Accepted":
            if not self.inop:
                self.since = now
            self.inop, self.scheduled = True, None
        elif kind == "Inoperative" and status == "Scheduled":
            tid = (st["session"] or {}).get("transaction_id")
            self.scheduled = (time.monotonic(), tid)
            self.pending.append(self.scheduled)
            self.sched_since = now

    def ended(self, st: dict[str, Any], now: float) -> bool:
        """The session a change was Scheduled for has ended (the state, live and past the
        report's delay, shows none): the change applies (connector.py at the stop, or
        connrare.init at the boot after a cut)."""
        if (self.scheduled is not None and now - self.sched_since > self.GRACE_S
                and not st["session"] and st["ocpp"]["status"] is not None):
            self.inop, self.since, self.scheduled = True, now, None
            return True
        return False

    def out(self, now: float) -> bool:
        """Out of service for long enough that the state shows it."""
        return self.known and self.inop and now - self.since > self.GRACE_S


class RandomCsms:
    """The CSMS's answers for the next stretch, drawn by `draw`."""

    def __init__(self, rng: random.Random, r: Rig) -> None:
        from ocpp.v16 import call_result

        assert r.csms is not None
        self.rng, self.r, self.csms = rng, r, r.csms
        self.cr = call_result
        self.p_err = 0.0  # chance a transaction message gets a CALLERROR
        self.refuse: str | None = None  # the next StartTransaction's idTagInfo status
        self.auth = "Accepted"
        self.shift = 0.0  # the clock the CSMS sends, seconds off the host's
        self.fails: Counter[str] = Counter()  # a message's content -> its failures in a row
        self.refused: list[int] = []  # transactions whose start the CSMS refused
        self.figures: Counter[str] = Counter()
        c = self.csms
        for a in ("StartTransaction", "StopTransaction", "MeterValues"):
            c.respond(a, self._tx(a))
        c.respond("Authorize", self._authorize)
        c.respond("Heartbeat", lambda p: call_result.Heartbeat(current_time=self._now()))
        c.respond("BootNotification", lambda p: call_result.BootNotification(
            current_time=self._now(), interval=c.heartbeat_interval, status="Accepted"))

    def _now(self) -> str:
        t = datetime.fromtimestamp(time.time() + self.shift, UTC)
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

    def draw(self) -> None:
        rng = self.rng
        self.p_err = rng.choice((0.0, 0.0, 0.2, 0.5))
        self.refuse = rng.choice(REFUSALS) if rng.random() < 0.2 else None
        self.auth = rng.choice(REFUSALS) if rng.random() < 0.15 else "Accepted"
        if rng.random() < 0.2:
            s = self.csms.stalled
            s[rng.choice(("StartTransaction", "StopTransaction", "MeterValues",
                          "Authorize"))] = rng.uniform(0.5, 6.0)
            self.figures["stalls"] += 1
        if rng.random() < 0.1:  # the CSMS's clock jumps (NTP fixed, or broke)
            self.shift = rng.choice((0.0, 0.0, -3600.0, 7200.0, -86400.0 * 3, 40.0))
            self.figures["clock_jumps"] += 1

    def _tx(self, action: str) -> Any:
        from ocpp.exceptions import InternalError

        def answer(p: dict[str, Any]) -> Any:
            c = self.csms
            key = f"{action} {json.dumps(p, sort_keys=True)}"
            if self.fails[key] < ATTEMPTS - 1 and self.rng.random() < self.p_err:
                self.fails[key] += 1
                self.figures[f"callerror_{action}"] += 1
                if action == "StartTransaction" and c.start_key not in c.answered:
                    c.started.pop(c.start_key, None)  # not booked (unless answered already)
                raise InternalError(description="chaos: the backend failed")
            self.fails.pop(key, None)
            if action == "StartTransaction":
                tid = c.started[c.start_key]
                status = self.refuse or "Accepted"
                if self.refuse:
                    self.refuse = None
                    self.refused.append(tid)
                    self.figures["start_refused"] += 1
                return self.cr.StartTransaction(transaction_id=tid,
                                                id_tag_info={"status": status})
            if action == "StopTransaction":
                return self.cr.StopTransaction(id_tag_info={"status": "Accepted"})
            return self.cr.MeterValues()

        return answer

    def _authorize(self, p: dict[str, Any]) -> Any:
        self.figures[f"authorize_{self.auth}"] += 1
        return self.cr.Authorize(id_tag_info={"status": self.auth})

    def calm(self) -> None:
        self.p_err, self.refuse, self.auth, self.shift = 0.0, None, "Accepted", 0.0
        self.csms.stalled.clear()


async def answers(rng: random.Random, n: int, workdir: Path, cuts: bool = True) -> Result:
    from ocpp.v16 import call

    res = Result("random CSMS answers")
    logging.getLogger("ocpp").setLevel(logging.CRITICAL)  # (each CALLERROR: a traceback)
    ops: Counter[str] = Counter()
    async with rig(workdir, "answers") as r:
        assert r.csms is not None
        csms = r.csms
        await r.configure(TransactionMessageAttempts=str(ATTEMPTS),
                          TransactionMessageRetryInterval="1", MeterValueSampleInterval="1")
        plan = RandomCsms(rng, r)

        async def remote(req: Any) -> Any:
            await r.until(lambda s: s["ocpp"]["connected"], "online", 60)
            await csms.wait_for(lambda: CP_ID in csms.connections, 30, "the link")
            try:
                return await asyncio.wait_for(csms.charge_points[CP_ID].call(req), 15)
            except Exception as e:
                res.bad(f"{type(req).__name__}: {type(e).__name__}: {e}")
                return None

        # Out of service (OCPP 1.6 5.2, 4.9 Unavailable): no relay closes, no session starts
        # (a tap or a RemoteStartTransaction refused), connector 1 says Unavailable.
        avail = Availability()
        loop = asyncio.get_running_loop()
        back_in: int | None = None  # rounds until the operator puts the charger back in service

        async def change_availability(kind: str, cid: int) -> None:
            nonlocal back_in
            ops[f"availability_{kind}"] += 1
            avail.requests.append(time.monotonic())
            a = await remote(call.ChangeAvailability(connector_id=cid, type=kind))
            avail.answered(kind, a.status if a is not None else None, loop.time(), r.state())
            ops[f"availability_{kind}_{a.status if a is not None else 'unanswered'}"] += 1
            if kind == "Inoperative" and back_in is None:
                # A real operator takes the charger out for a while and puts it back.
                back_in = rng.randint(1, 5)
            elif kind == "Operative" and a is not None:
                back_in = None

        async def operator() -> None:
            y = rng.randrange(9)
            if y in (0, 8):  # (twice the share of each other call: the charger flips often)
                # In service, mostly out of it; out of it (or Scheduled), mostly back early.
                if back_in is None:
                    kind = "Inoperative" if rng.random() < 0.6 else "Operative"
                else:
                    kind = "Operative" if rng.random() < 0.8 else "Inoperative"
                await change_availability(kind, rng.choice((0, 1)))
            elif y == 1:
                ops["reserve"] += 1
                t = datetime.fromtimestamp(time.time() + plan.shift + rng.uniform(5, 90), UTC)
                await remote(call.ReserveNow(connector_id=1, id_tag=rng.choice(TAGS),
                                             expiry_date=t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                             reservation_id=rng.randint(1, 3)))
            elif y == 2:
                ops["cancel_reservation"] += 1
                await remote(call.CancelReservation(reservation_id=rng.randint(1, 3)))
            elif y == 3:
                ops["unlock"] += 1
                await remote(call.UnlockConnector(connector_id=1))
            elif y == 4:
                what = rng.choice(("StatusNotification", "MeterValues", "Heartbeat",
                                   "BootNotification"))
                ops[f"trigger_{what}"] += 1
                await remote(call.TriggerMessage(requested_message=what,
                                                 connector_id=rng.choice((None, 1))))
            elif y == 5:
                ops["clear_cache"] += 1
                await remote(call.ClearCache())
            elif y == 6:
                ops["tx_default_profile"] += 1
                await remote(call.SetChargingProfile(connector_id=rng.choice((0, 1)),
                                                     cs_charging_profiles={
                    "chargingProfileId": 7, "stackLevel": 0,
                    "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": rng.choice((0, 6, 16))}]}}))
            elif rng.random() < 0.3:
                ops["reset_soft"] += 1
                await remote(call.Reset(type="Soft"))
            else:
                ops["clear_profile"] += 1
                await remote(call.ClearChargingProfile())

        plugged = False
        saved: dict[str, str] = {}  # the keys' latest Accepted values
        refused_at: dict[int, float] = {}
        charged_on: set[int] = set()
        for i in range(n):
            plan.draw()
            if back_in is not None:
                back_in -= 1
                if back_in <= 0:  # (unanswered: tried again next round)
                    back_in = 1
                    await change_availability("Operative", rng.choice((0, 1)))
            for _ in range(rng.randint(1, 4)):
                x = rng.random() * 1.15  # past 1: another operator's call (operator())
                st = r.state()
                if x < 0.15:
                    k = rng.choice(list(CONFIG))
                    v = rng.choice(CONFIG[k])
                    ops[f"config {k}"] += 1
                    a = await remote(call.ChangeConfiguration(key=k, value=v))
                    if a is not None and a.status not in ("Accepted", "RebootRequired"):
                        res.bad(f"ChangeConfiguration {k}={v}: {a.status}")
                    # (HeartbeatInterval: a reboot's BootNotification.conf interval replaces
                    # it, OCPP 1.6 4.2)
                    if a is not None and a.status == "Accepted" and k != "HeartbeatInterval":
                        saved[k] = v
                    else:  # (unanswered: either value may stand)
                        saved.pop(k, None)
                elif x < 0.35:
                    ops["plug" if not plugged else "unplug"] += 1
                    await r.cmd("plug" if not plugged else "unplug")
                    plugged = not plugged
                    if plugged and rng.random() < 0.8:
                        await r.cmd("charge")
                elif x < 0.6:
                    ops["tap"] += 1
                    ops["tap_while_out"] += avail.out(loop.time())
                    await r.cmd("tap", uid=rng.choice(TAGS))
                elif x < 0.72:
                    ops["remote_start"] += 1
                    out = avail.known and avail.inop
                    ops["remote_start_while_out"] += out
                    a = await remote(call.RemoteStartTransaction(id_tag=rng.choice(TAGS),
                                                                 connector_id=1))
                    if out and avail.known and avail.inop and a is not None and (
                            a.status != "Rejected"):
                        res.bad(f"round {i}: RemoteStartTransaction {a.status} while "
                                "Unavailable")
                elif x < 0.8:
                    tid = (st["session"] or {}).get("transaction_id")
                    ops["remote_stop"] += 1
                    await remote(call.RemoteStopTransaction(
                        transaction_id=tid if isinstance(tid, int) and rng.random() < 0.8
                        else rng.randint(1, 50)))
                elif x < 0.85 and plugged:
                    ops["pause_resume"] += 1
                    await r.cmd("pause" if rng.random() < 0.5 else "charge")
                elif x < 0.9:
                    ops["net_cut"] += 1
                    await r.cmd("net", up=False)
                    await asyncio.sleep(rng.uniform(0.2, 3.0))
                    await r.cmd("net", up=True)
                elif x < 0.95 and cuts:
                    ops["power_cut"] += 1
                    await r.cmd("power_cut")
                    if st["relay"] and r.state()["relay"]:
                        res.bad(f"round {i}: relay closed with the power cut")
                    if plugged and rng.random() < 0.4:
                        await r.cmd("unplug")
                        plugged = False
                    await asyncio.sleep(rng.uniform(0, 1.0))
                    await r.cmd("power_on")
                elif x >= 1:
                    await operator()
                await asyncio.sleep(rng.uniform(0, 1.5))
                st = r.state()
                if relay_without_session(r, st):
                    res.bad(f"round {i}: relay closed without a session")
                now = loop.time()
                if avail.ended(st, now):
                    ops["scheduled_applied"] += 1
                    # (the state's session and status come from one report: the status that
                    # followed the session's)
                    if st["ocpp"]["status"] not in ("Unavailable", "Faulted"):
                        res.bad(f"round {i}: connector 1 {st['ocpp']['status']} after the "
                                "session its Inoperative was Scheduled for")
                ops["steps_out_of_service"] += avail.out(now)
                if avail.known and avail.inop and st["relay"]:
                    res.bad(f"round {i}: relay closed while Unavailable ({st['ocpp']['status']})")
                if avail.out(now) and st["session"]:
                    res.bad(f"round {i}: a session while Unavailable: {st['session']}")
                if avail.out(now) and st["ocpp"]["status"] not in (None, "Unavailable",
                                                                   "Faulted"):
                    res.bad(f"round {i}: connector 1 {st['ocpp']['status']} while Unavailable")
                if (avail.scheduled is not None and st["session"]
                        and st["ocpp"]["status"] == "Unavailable"):
                    res.bad(f"round {i}: Unavailable before the session the change was "
                            "Scheduled for ended")
                # A session whose start the CSMS refused (idTagInfo not Accepted) charges no
                # more: stopped (StopTransactionOnInvalidId true) or no energy offered (false).
                for tid in plan.refused:
                    refused_at.setdefault(tid, now)
                tid = (st["session"] or {}).get("transaction_id")
                if (tid in refused_at and now - refused_at[tid] > 6 and st["power_w"] > 0
                        and tid not in charged_on):
                    charged_on.add(tid)
                    res.bad(f"round {i}: transaction {tid} still charging "
                            f"{now - refused_at[tid]:.0f} s after the CSMS refused its tag")
        plan.calm()
        # With StopTransactionOnEVSideDisconnect false (the operator's random keys) an unplug
        # stops no session (OCPP 1.6 of that key): the operator stops what still runs,
        # remotely, once its transaction id is known.
        await remote(call.ChangeConfiguration(key="StopTransactionOnEVSideDisconnect",
                                              value="true"))
        await r.cmd("unplug")
        with contextlib.suppress(TimeoutError):
            await r.until(lambda s: not s["session"] or isinstance(
                s["session"].get("transaction_id"), int), "the session's transaction id", 60)
        tid = (r.state()["session"] or {}).get("transaction_id")
        if isinstance(tid, int):
            ops["final_remote_stop"] += 1
            await remote(call.RemoteStopTransaction(transaction_id=tid))
        await _drained(r, 120)
        await _back_in_service(res, r, remote, change_availability, avail)
        # A setting the operator saved (Accepted) holds through power cuts and resets: the
        # owner's "Sauvegardez les modifications" (OCPP 1.6 5.3: Accepted, the change applied).
        saved["StopTransactionOnEVSideDisconnect"] = "true"
        conf = await remote(call.GetConfiguration(key=sorted(saved)))
        held = {c["key"]: c.get("value") for c in (conf.configuration_key or [])} if conf else {}
        for k, v in sorted(saved.items()):
            if conf is not None and held.get(k, "").replace(" ", "").lower() != v.lower():
                res.bad(f"{k} reads {held.get(k)!r} after the cuts, saved as {v!r}")
        ops["settings_checked"] = len(saved)
        _ledger(res, r)
        _check_csms(res, r)
        for v in scheduled_before_stop(csms, avail):
            res.bad(v)
        # (back in service, reservations cancelled: nothing holds the connector)
        await _check_idle_status(res, r, ("Available",), 130)
        res.figures["rounds"] = n
        res.figures["ops"] = dict(sorted(ops.items()))
        res.figures["csms"] = dict(sorted(plan.figures.items()))
        res.figures["boots"] = r.boots()
        if not cuts and r.boots() != 1:
            res.bad(f"the agent rebooted ({r.boots()} boots)")
        for code in r.unexpected_exits():
            if code == EXIT_RESET:
                continue  # a Reset's reboot
            res.bad(f"the agent exited with code {code}")
    return res


async def _back_in_service(res: Result, r: Rig, remote: Any, change_availability: Any,
                           avail: Availability) -> None:
    """Drained and unplugged: the operator puts the charger in service (if it is not) and a
    driver charges again (OCPP 1.6 5.2: Operative, the connector can be used; 4.9 Unavailable
    -> Available). Reservations and profiles the operator left are cleared first (a
    TxDefaultProfile of 0 A offers nothing: no relay)."""
    from ocpp.v16 import call

    assert r.csms is not None
    csms = r.csms
    # For connector 1: with one connector the charge point (connector 0) is back too, an
    # Inoperative for it undone (connrare.change_availability).
    await change_availability("Operative", 1)
    if not avail.known or avail.inop or avail.scheduled is not None:
        res.bad("ChangeAvailability Operative not Accepted with no session running")

    def told0() -> list[str]:
        return [f.payload["status"] for f in csms.calls("StatusNotification")
                if f.payload.get("connectorId") == 0][-1:]

    with contextlib.suppress(AssertionError):
        await csms.wait_for(lambda: told0() in ([], ["Available"]), 10, "connector 0")
    if told0() not in ([], ["Available"]):
        res.bad(f"the CSMS was last told the charge point (connector 0) is {told0()} after "
                "an Operative")
    await remote(call.ClearChargingProfile())
    for rid in (1, 2, 3):
        await remote(call.CancelReservation(reservation_id=rid))
    await r.cmd("plug")
    await r.cmd("charge")
    # (a tap still waiting for the plug, up to ConnectionTimeOut, starts its own session)
    with contextlib.suppress(TimeoutError):
        await r.until(lambda s: s["session"], "a tap's session", 5)
    if not r.state()["session"]:
        a = await remote(call.RemoteStartTransaction(id_tag=TAGS[0], connector_id=1))
        if a is not None and a.status != "Accepted":
            res.bad(f"RemoteStartTransaction {a.status} after Operative, idle and plugged")
    try:
        await r.until(lambda s: s["relay"] and s["session"] and isinstance(
            s["session"].get("transaction_id"), int), "a session charging", 45)
    except TimeoutError:
        st = r.state()
        res.bad(f"no session charging after Operative ({st['ocpp']['status']}, "
                f"session {st['session']}, relay {st['relay']})")
    tid = (r.state()["session"] or {}).get("transaction_id")
    if isinstance(tid, int):
        await remote(call.RemoteStopTransaction(transaction_id=tid))
    await r.cmd("unplug")
    await _drained(r, 120)


def scheduled_before_stop(csms: Any, avail: Availability) -> list[str]:
    """A change Scheduled during a session takes effect when it ends (OCPP 1.6 5.2): the
    StatusNotification saying connector 1 Unavailable comes after the session's
    StopTransaction, not while the CSMS still has it running. Judged on changes whose session's
    transaction id was known and that no later ChangeAvailability overrode before the
    Unavailable was sent."""
    bad: list[str] = []
    for t, tid in avail.pending:
        if not isinstance(tid, int):
            continue
        unav = [f.t for f in csms.calls("StatusNotification")
                if f.t > t and f.payload.get("connectorId") == 1
                and f.payload.get("status") == "Unavailable"][:1]
        if not unav or any(t < q < unav[0] for q in avail.requests):
            continue
        stops = [f.t for f in csms.calls("StopTransaction")
                 if f.payload.get("transactionId") == tid]
        if not stops or stops[0] > unav[0]:
            bad.append(f"connector 1 reported Unavailable before the StopTransaction of "
                       f"transaction {tid}, the session its change was Scheduled for")
    return bad
