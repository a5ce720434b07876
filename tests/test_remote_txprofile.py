"""A RemoteStartTransaction's TxProfile (OCPP 1.6 5.11) limits the transaction that remote start
begins, from its first instant (before StartTransaction.conf, even offline), and no other: a
remote start that never becomes a session (no plug within ConnectionTimeOut, its idTag refused,
the connector made unavailable) leaves the next session at the full offer. The pilot's duty,
the EV's power and GetCompositeSchedule show what is in force."""

from __future__ import annotations

from typing import Any

from borne.csms import Csms
from borne.sim.simulator import Simulator
from conftest import start_answered_with_callerror
from ocpp.v16 import call, call_result
from simctl import Control

CP_ID = "CP-TEST-1"
CARD = "04A1B2C3"
FULL_A = 32  # BorneMaxCurrent's default: the offer when nothing limits it
TX_A = 10  # the remote start's TxProfile
EV_A = 32  # what the EV would draw


def _tx_profile(limit: float, pid: int = 7) -> dict[str, Any]:
    return {"chargingProfileId": pid, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}


def _cp(csms: Csms) -> Any:
    return csms.charge_points[CP_ID]  # the current connection's (it may have been replaced)


async def _ready(csms: Csms, **keys: str) -> Any:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    for k, v in keys.items():
        assert (await _cp(csms).call(call.ChangeConfiguration(key=k, value=v))).status == (
            "Accepted"), k
    return _cp(csms)


async def _remote_start(csms: Csms, tag: str, limit: float = TX_A) -> str:
    res = await _cp(csms).call(call.RemoteStartTransaction(
        id_tag=tag, connector_id=1, charging_profile=_tx_profile(limit)))
    return str(res.status)


async def _composite_limit(csms: Csms) -> float:
    res = await _cp(csms).call(call.GetCompositeSchedule(connector_id=1, duration=600,
                                                         charging_rate_unit="A"))
    assert res.status == "Accepted"
    # (the ocpp package hands nested keys over in snake_case)
    periods = res.charging_schedule["charging_schedule_period"]
    assert len(periods) == 1, periods
    return float(periods[0]["limit"])


def _offers(st: dict[str, Any], amps: float) -> bool:
    return abs(st["pwm_duty"] - amps / 0.6) < 0.1 and abs(st["power_w"] - amps * 230 * 3) < 1


async def _tap_session_at_full_offer(csms: Csms, control: Control) -> None:
    """A tap-started session afterwards: charged at the full offer, no TxProfile in force."""
    n = len(csms.frames)
    await control("load", amps=EV_A)
    await control("plug")
    await control("tap", uid=CARD)
    await control("charge")
    start = await csms.wait_call("StartTransaction", after=n)
    assert start.payload["idTag"] == CARD
    st = await control.wait_state(lambda s: s["relay"] and s["power_w"] > 0, "tap session charging")
    assert _offers(st, FULL_A), st
    await csms.answer_to(start)
    assert await _composite_limit(csms) == FULL_A


async def test_a_remote_start_never_plugged_in_leaves_the_next_session_unlimited(
    csms: Csms, control: Control, sim: Simulator
) -> None:
    await _ready(csms, ConnectionTimeOut="2")
    assert await _remote_start(csms, "REMOTE1") == "Accepted"
    prep = await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    # no EV within ConnectionTimeOut: the remote start and its TxProfile are dropped
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available",
                         after=csms.frames.index(prep), timeout=10)
    await sim.agent.wait_line(r"TxProfile 7 of the remote start for REMOTE1 discarded: "
                              r"ConnectionTimeOut")
    await _tap_session_at_full_offer(csms, control)


async def test_a_remote_start_whose_idtag_is_refused_leaves_the_next_session_unlimited(
    csms: Csms, control: Control, sim: Simulator
) -> None:
    await _ready(csms)  # AuthorizeRemoteTxRequests is true by default
    csms.respond("Authorize", lambda p: call_result.Authorize(
        id_tag_info={"status": "Accepted" if p["id_tag"] == CARD else "Invalid"}))
    assert await _remote_start(csms, "STRANGER") == "Accepted"
    auth = await csms.wait_call("Authorize")
    assert auth.payload == {"idTag": "STRANGER"}
    await sim.agent.wait_line(r"TxProfile 7 of the remote start for STRANGER discarded: "
                              r"idTag refused")
    await _tap_session_at_full_offer(csms, control)


async def test_a_remote_start_on_a_connector_made_unavailable_drops_its_txprofile(
    csms: Csms, control: Control, sim: Simulator
) -> None:
    await _ready(csms, AuthorizeRemoteTxRequests="false")
    assert await _remote_start(csms, "REMOTE1") == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    res = await _cp(csms).call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert res.status == "Accepted"
    await sim.agent.wait_line(r"TxProfile 7 of the remote start for REMOTE1 discarded: "
                              r"unavailable")
    res = await _cp(csms).call(call.ChangeAvailability(connector_id=1, type="Operative"))
    assert res.status == "Accepted"
    await _tap_session_at_full_offer(csms, control)


async def test_profiles_set_while_the_remote_start_waits_leave_room_for_its_txprofile(
    csms: Csms, control: Control
) -> None:
    """The Accepted remote start's TxProfile counts against MaxChargingProfilesInstalled (10)
    while it waits for the plug: the CSMS's 10th further profile is Rejected, not accepted at
    the cost of the TxProfile, and the session is limited by it."""
    await _ready(csms, AuthorizeRemoteTxRequests="false")
    assert await _remote_start(csms, "REMOTE1") == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    answers = []
    for stack in range(9):
        prof = {**_tx_profile(FULL_A, pid=20 + stack), "stackLevel": stack,
                "chargingProfilePurpose": "TxDefaultProfile"}
        answers.append((await _cp(csms).call(call.SetChargingProfile(
            connector_id=1, cs_charging_profiles=prof))).status)
    prof = {**_tx_profile(FULL_A, pid=40), "chargingProfilePurpose": "TxDefaultProfile"}
    answers.append((await _cp(csms).call(call.SetChargingProfile(
        connector_id=0, cs_charging_profiles=prof))).status)
    assert answers == ["Accepted"] * 9 + ["Rejected"], answers
    await control("load", amps=EV_A)
    await control("plug")
    await control("charge")
    st = await control.wait_state(lambda s: s["relay"] and s["power_w"] > 0, "charging")
    assert _offers(st, TX_A), st


async def test_the_txprofile_limits_its_session_from_the_start_even_before_the_conf(
    csms: Csms, control: Control
) -> None:
    await _ready(csms)
    assert await _remote_start(csms, "REMOTE1") == "Accepted"
    # one remote start at a time: a second one (and its profile) is refused meanwhile
    assert await _remote_start(csms, "REMOTE2", limit=6) == "Rejected"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    # The session starts offline: its StartTransaction.conf cannot come, the limit holds anyway.
    await control("net", up=False)
    await control("load", amps=EV_A)
    await control("plug")
    await control("charge")
    st = await control.wait_state(lambda s: s["relay"] and s["power_w"] > 0, "charging offline")
    assert _offers(st, TX_A), st
    assert not csms.calls("StartTransaction")
    await control("net", up=True)
    start = await csms.wait_call("StartTransaction", timeout=30)
    assert start.payload["idTag"] == "REMOTE1"
    tx = int((await csms.answer_to(start))["transactionId"])
    await control.wait_state(lambda s: (s["session"] or {}).get("transaction_id") == tx,
                             "the charger to know its transaction id")
    assert await _composite_limit(csms) == TX_A
    assert _offers(await control("state"), TX_A)
    # it ends with its session: the next one is not limited
    assert (await _cp(csms).call(call.RemoteStopTransaction(transaction_id=tx))).status == (
        "Accepted")
    await csms.wait_call("StopTransaction")
    n = len(csms.frames)
    await control("unplug")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)
    await _tap_session_at_full_offer(csms, control)


async def test_a_tx_profile_for_a_transaction_still_without_its_id_is_taken(
    csms: Csms, control: Control
) -> None:
    # A session whose StartTransaction the CSMS has not answered yet (answered with a CALLERROR
    # here, its retry waiting) is the active transaction: a TxProfile for its connector, which
    # cannot name the id yet, limits it at once.
    await _ready(csms, BorneFreeCharging="true", TransactionMessageRetryInterval="60")
    await control("load", amps=EV_A)
    await start_answered_with_callerror(csms, control)
    await control.wait_state(lambda s: s["relay"] and _offers(s, FULL_A), "charging at full offer")
    res = await _cp(csms).call(call.SetChargingProfile(
        connector_id=1, cs_charging_profiles=_tx_profile(TX_A)))
    assert res.status == "Accepted"
    await control.wait_state(lambda s: _offers(s, TX_A), "the TxProfile's offer")
    assert len(csms.calls("StartTransaction")) == 1


async def test_a_clear_charging_profile_reaches_the_txprofile_of_a_waiting_remote_start(
    csms: Csms, control: Control, sim: Simulator
) -> None:
    """1.6 5.5: ClearChargingProfile removes the profiles that match; the TxProfile an Accepted
    RemoteStartTransaction brought is one, from the answer on. Cleared while the start waits for
    the plug, it is Accepted (not Unknown) and does not limit the session afterwards; a filter
    that does not match it (another purpose) leaves it in place."""
    await _ready(csms, AuthorizeRemoteTxRequests="false")
    assert await _remote_start(csms, "REMOTE1") == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    res = await _cp(csms).call(call.ClearChargingProfile(
        charging_profile_purpose="TxDefaultProfile"))
    assert res.status == "Unknown"
    res = await _cp(csms).call(call.ClearChargingProfile(id=7))
    assert res.status == "Accepted"
    await sim.agent.wait_line(r"TxProfile 7 of the remote start for REMOTE1 discarded")
    await control("load", amps=EV_A)
    await control("plug")
    await control("charge")
    st = await control.wait_state(lambda s: s["relay"] and s["power_w"] > 0, "charging")
    assert _offers(st, FULL_A), st
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == "REMOTE1"


async def test_a_tx_profile_for_the_ended_transaction_does_not_limit_the_next_one(
    csms: Csms, control: Control
) -> None:
    """1.6 5.16 / 3.13.4: a TxProfile names the active transaction. One that names the
    transaction just ended (late, a CSMS's race), while the next session's StartTransaction is
    still unanswered (its id unknown, so a profile for it is taken: the test above), is not for
    that session: Rejected, and the new driver is not limited by it."""
    await _ready(csms, BorneFreeCharging="true", TransactionMessageRetryInterval="60")
    await control("load", amps=EV_A)
    await control("plug")
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    tx = int((await csms.answer_to(start))["transactionId"])
    await control.wait_state(lambda s: (s["session"] or {}).get("transaction_id") == tx,
                             "the first session's id")
    n = len(csms.frames)
    await control("unplug")
    await csms.wait_call("StopTransaction", after=n)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)
    await start_answered_with_callerror(csms, control)
    await control.wait_state(lambda s: s["relay"] and _offers(s, FULL_A), "charging at full offer")
    res = await _cp(csms).call(call.SetChargingProfile(
        connector_id=1, cs_charging_profiles={**_tx_profile(0), "transactionId": tx}))
    assert res.status == "Rejected"
    assert _offers(await control("state"), FULL_A)
