"""The `answers` campaign of `borne chaos`: a CSMS that answers at random. The other campaigns'
CSMS always answers at once and accepts everything; a real one refuses a message now and then
with a CALLERROR, answers late, refuses a tag (Authorize or StartTransaction), sends a clock
that jumps, and its operator changes the configuration and starts and stops sessions remotely
while drivers tap and plug. Judged by the ledger (a CALL refused with a CALLERROR is not booked:
its retry under a new id is no duplicate), by the relay (closed only in a session, and opened
soon after the CSMS refused the session's tag) and by every CALL of the CSMS answered.
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

        # Unavailable: a ChangeAvailability Inoperative Accepted at once (not Scheduled) and
        # no Operative Accepted since: no relay may close (OCPP 1.6 5.2, 4.9 Unavailable).
        unavailable = False

        async def operator() -> None:
            nonlocal unavailable
            y = rng.randrange(8)
            if y == 0:
                kind = "Inoperative" if rng.random() < 0.3 else "Operative"
                cid = rng.choice((0, 1))
                ops[f"availability_{kind}"] += 1
                a = await remote(call.ChangeAvailability(connector_id=cid, type=kind))
                if a is not None and a.status == "Accepted":
                    unavailable = kind == "Inoperative"
                elif a is not None and a.status == "Scheduled":
                    unavailable = False  # (not judged: it takes effect when the session ends)
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
        loop = asyncio.get_running_loop()
        refused_at: dict[int, float] = {}
        charged_on: set[int] = set()
        for i in range(n):
            plan.draw()
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
                    await r.cmd("tap", uid=rng.choice(TAGS))
                elif x < 0.72:
                    ops["remote_start"] += 1
                    await remote(call.RemoteStartTransaction(id_tag=rng.choice(TAGS),
                                                             connector_id=1))
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
                if st["relay"] and unavailable:
                    res.bad(f"round {i}: relay closed while Unavailable ({st['ocpp']['status']})")
                # A session whose start the CSMS refused (idTagInfo not Accepted) charges no
                # more: stopped (StopTransactionOnInvalidId true) or no energy offered (false).
                now = loop.time()
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
        await _check_idle_status(res, r, ("Available", "Unavailable", "Reserved"), 130)
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
