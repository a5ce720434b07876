"""How the charger copes with what other CSMSs (SteVe, CitrineOS, MaEVe, OCPP.Core, commercial
clouds) do within OCPP 1.6J, and with what some do outside it: each variation sent by a CSMS on
the `ocpp` package, end to end in the simulator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from borne.csms import Csms, now_iso
from borne.sim.simulator import Simulator
from flashdoc import seed
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.v16 import call, call_result
from ocpp.v16.enums import RegistrationStatus
from simctl import Control, controlling, running
from test_smart_reserve import reserved_until

CP_ID = "CP-TEST-1"
CARD = "04A1B2C3"


async def test_a_csms_that_keeps_the_charger_pending_may_talk_and_the_owner_still_charges(
    csms: Csms, flash: Path
) -> None:
    """1.6 4.2: while Pending the CSMS may configure the charger (GetConfiguration,
    ChangeConfiguration, SendLocalList, TriggerMessage) and the charger initiates nothing but
    BootNotification. A Pending that never turns Accepted (interval 0: the charger picks its
    own) must not leave the owner's card dead: the tap is decided by the local rules."""
    csms.respond("BootNotification", lambda p: call_result.BootNotification(
        current_time=now_iso(), interval=0, status=RegistrationStatus.pending))
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim, \
            controlling(sim) as control:
        await csms.wait_call("BootNotification")
        assert sim.agent is not None
        await sim.agent.wait_line(r"boot Pending", 15)
        cp: Any = csms.charge_points[CP_ID]
        res = await cp.call(call.GetConfiguration(key=["HeartbeatInterval"]))
        assert res.configuration_key, res
        res = await cp.call(call.ChangeConfiguration(key="LocalAuthorizeOffline", value="true"))
        assert res.status == "Accepted"
        res = await cp.call(call.SendLocalList(
            list_version=3, update_type="Full",
            local_authorization_list=[{"id_tag": CARD, "id_tag_info": {"status": "Accepted"}}]))
        assert res.status == "Accepted", res
        # What the CSMS asks for with a TriggerMessage is sent, Pending or not (1.6 4.2)
        for what in ("StatusNotification", "Heartbeat"):
            res = await cp.call(call.TriggerMessage(requested_message=what, connector_id=1))
            assert res.status == "Accepted", (what, res)
            await csms.wait_call(what)
        asked = {f.action for f in csms.calls()}
        assert asked == {"BootNotification", "StatusNotification", "Heartbeat"}, asked
        n = len(csms.frames)
        await sim.agent.wait_line(r"rfid: reader ready", 15)
        await control("plug")
        await control("charge")
        await control("tap", uid=CARD)
        await control.wait_state(lambda s: s["relay"], "charging on the listed card", timeout=15)
        sent = {f.action for f in csms.frames[n:] if f.direction == "in" and f.action}
        assert sent <= {"BootNotification"}, sent
        # Accepted at last (brought forward by a trigger): the session's start is delivered
        csms.respond("BootNotification", None)
        res = await cp.call(call.TriggerMessage(requested_message="BootNotification"))
        assert res.status == "Accepted"
        start = await csms.wait_call("StartTransaction", timeout=15)
        assert start.payload["idTag"] == CARD


def _in(dt_utc: Any, hours: int, frac: str = "") -> str:
    """dt_utc written in a zone `hours` from UTC, with a fraction: "...T06:00:00.123+01:00"."""
    t = dt_utc.astimezone(timezone(timedelta(hours=hours)))
    z = t.strftime("%z")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + z[:3] + ":" + z[3:]


async def test_offsets_in_a_boot_answers_current_time_are_converted(
    csms: Csms, flash: Path
) -> None:
    csms.respond("BootNotification", lambda p: call_result.BootNotification(
        current_time="2031-03-04T01:06:07.123456-04:00", interval=300,
        status=RegistrationStatus.accepted))
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)):
        status = await csms.wait_call("StatusNotification")
        assert status.payload["timestamp"].startswith("2031-03-04T05:06:0"), status.payload


async def test_a_reservations_expiry_in_another_zone_is_converted(
    csms: Csms, sim: Simulator
) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp: Any = csms.charge_points[CP_ID]
    now = datetime.now(UTC)
    # 10 minutes ahead, written 5 hours behind UTC: read as UTC, it would be long past
    later = _in(now + timedelta(minutes=10), -5, ".123456")
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=later, id_tag="A",
                                          reservation_id=1))).status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved")
    n = len(csms.frames)
    assert (await cp.call(call.CancelReservation(reservation_id=1))).status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)
    # 3 s ahead, written 2 hours ahead of UTC: read as UTC, it would hold for two hours
    soon = _in(now + timedelta(seconds=3), 2, ".5")
    await reserved_until(cp, csms, soon)


async def _remote_charge(csms: Csms, sim: Simulator, answer: str) -> Any:
    """A remote start answered by hand with `answer` (the StartTransaction.conf's JSON)."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp: Any = csms.charge_points[CP_ID]
    assert (await cp.call(call.ChangeConfiguration(key="AuthorizeRemoteTxRequests",
                                                   value="false"))).status == "Accepted"
    csms.unanswered["StartTransaction"] = 1
    assert (await cp.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1))
            ).status == "Accepted"
    await sim.command({"cmd": "plug"})
    await sim.command({"cmd": "charge"})
    start = await csms.wait_call("StartTransaction")
    await csms.send_raw(CP_ID, f'[3, "{start.msg[1]}", {answer}]')
    return cp


async def _transaction_id_is_the_stops(csms: Csms, sim: Simulator, tx: int) -> None:
    await _remote_charge(
        csms, sim, f'{{"transactionId": {tx}, "idTagInfo": {{"status": "Accepted"}}}}')
    mid = f"stop-{abs(tx)}"
    f = await csms.call_raw(CP_ID, f'[2, "{mid}", "RemoteStopTransaction", '
                            f'{{"transactionId": {tx}}}]', mid)
    assert f.msg[0] == 3 and f.msg[2] == {"status": "Accepted"}, f.msg
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["transactionId"] == tx and stop.payload["reason"] == "Remote"


async def test_the_largest_transaction_id_is_the_stops(csms: Csms, sim: Simulator) -> None:
    await _transaction_id_is_the_stops(csms, sim, 2**31 - 1)


async def test_a_transaction_id_past_32_bits_is_the_stops(csms: Csms, sim: Simulator) -> None:
    # (the schema's integer has no bound: a CSMS on 64-bit keys)
    await _transaction_id_is_the_stops(csms, sim, 2**40 + 3)


async def test_a_negative_transaction_id_is_the_stops(csms: Csms, sim: Simulator) -> None:
    await _transaction_id_is_the_stops(csms, sim, -5)


async def test_a_start_answered_blocked_with_a_parent_and_expiry_stops_deauthorized(
    csms: Csms, sim: Simulator
) -> None:
    await _remote_charge(csms, sim, '{"transactionId": 77, "idTagInfo": {"status": "Blocked", '
                         '"parentIdTag": "FLEET", "expiryDate": "2031-01-01T00:00:00.000+01:00"}}')
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "DeAuthorized" and stop.payload["transactionId"] == 77


async def test_heartbeat_interval_zero_is_refused_and_the_interval_kept(
    csms: Csms, sim: Simulator
) -> None:
    """1.6 gives HeartbeatInterval 0 no meaning (2.0.1 neither): refused with Rejected, a
    clear answer, and the interval in force stays; the BootNotification's interval 0 likewise
    leaves it as it was (test_boot.py)."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp: Any = csms.charge_points[CP_ID]
    res = await cp.call(call.ChangeConfiguration(key="HeartbeatInterval", value="0"))
    assert res.status == "Rejected", res
    res = await cp.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert res.configuration_key[0]["value"] == "300"


async def test_calls_back_to_back_under_one_id_each_get_their_answer(
    csms: Csms, sim: Simulator
) -> None:
    """OCPP-J ids are unique per sender, yet a CSMS may reuse one (a counter restarted, a
    retry): each CALL is answered under it, in order; an id of 36 characters, OCPP-J's
    longest, is answered as it is."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    mid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    n = len(csms.frames)
    text = f'[2, "{mid}", "GetLocalListVersion", {{}}]'
    await csms.send_raw(CP_ID, text, expect_id=mid)
    await csms.send_raw(CP_ID, text, expect_id=mid)
    await csms.wait_for(lambda: len([f for f in csms.answers() if f.msg[1] == mid
                                     and csms.frames.index(f) >= n]) >= 2, 10, "two answers")
    # (the frame checker pairs answers with CALLs by id: the reused one's second answer is
    # "unknown" to it, the CSMS's doing, not the charger's)
    csms.violations = [v for v in csms.violations if f"unknown CALL id '{mid}'" not in v]


async def test_a_csms_refusing_every_meter_values_holds_no_stop_back(
    csms: Csms, control: Control
) -> None:
    """A CSMS that answers every MeterValues with a CALLERROR (its meter store down, a
    measurand it will not take). 1.6 4.10 retries a transaction message after
    TransactionMessageRetryInterval x its attempts, in order, so each refused reading held the
    queue for the retries' sum while the next readings queued behind it: with the defaults
    (a reading a minute, 3 attempts, 60 s) the backlog grew by two readings a minute, and a
    session's StopTransaction, and the next StartTransaction, came hours after the session.
    A refused reading with a newer reading or its stop queued behind it is superseded (the
    register goes on in them): dropped at once. The latest is still retried."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp: Any = csms.charge_points[CP_ID]
    for key, value in (("MeterValueSampleInterval", "1"), ("TransactionMessageAttempts", "3"),
                       ("TransactionMessageRetryInterval", "3"),
                       ("BorneFreeCharging", "true")):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"

    def refuse(p: object) -> object:
        raise RuntimeError("meter store down")

    csms.respond("MeterValues", refuse)
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    # Readings for a while: each refused, the next one queued within a second of it
    await csms.wait_for(lambda: len(csms.calls("MeterValues")) >= 8, 30, "8 readings sent")
    t0 = time.monotonic()
    await control("unplug")
    stop = await csms.wait_call("StopTransaction", timeout=30)
    assert time.monotonic() - t0 < 5, "the stop waited behind the refused readings' retries"
    assert stop.payload["transactionId"] == (await csms.answer_to(start))["transactionId"]
    # The refused readings were each sent at most the attempts allowed, under one id each
    ids = [f.msg[1].split(".")[0] for f in csms.calls("MeterValues")]
    assert max(ids.count(i) for i in ids) <= 3
    # The last reading before the stop and the ones with nothing behind them were retried
    assert any("." in f.msg[1] for f in csms.calls("MeterValues")), "no retry at all"


async def test_a_stop_the_csms_refuses_is_retried_its_attempts_then_the_queue_goes_on(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """1.6 4.10: a StopTransaction answered with a CALLERROR is sent again after
    TransactionMessageRetryInterval x its attempts, each time as a new attempt (its own id),
    TransactionMessageAttempts in all, then dropped and logged; the next session's messages
    are not held behind it."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp: Any = csms.charge_points[CP_ID]
    for key, value in (("TransactionMessageAttempts", "2"),
                       ("TransactionMessageRetryInterval", "1"), ("BorneFreeCharging", "true")):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"

    def refuse(p: object) -> object:
        raise RuntimeError("billing backend down")

    csms.respond("StopTransaction", refuse)
    await control("plug")
    await control("charge")
    await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"], "charging")
    await control("unplug")
    assert sim.agent is not None
    await sim.agent.wait_line(r"StopTransaction dropped after 2 attempts", 20)
    stops = csms.calls("StopTransaction")
    assert len(stops) == 2 and stops[1].msg[1] == stops[0].msg[1] + ".1", [f.msg for f in stops]
    assert stops[1].t - stops[0].t >= 0.9, "retried before TransactionMessageRetryInterval"
    csms.respond("StopTransaction", None)
    n = len(csms.frames)
    await control("plug")
    await control("charge")
    await csms.wait_call("StartTransaction", after=n, timeout=10)


async def test_a_csms_ignoring_every_meter_values_holds_no_stop_back(
    csms: Csms, flash: Path
) -> None:
    """A CSMS that never answers MeterValues (no handler for it) while it answers the rest:
    each unanswered reading cost its call's timeout, the Heartbeat probe, a new connection and
    the retries' pauses, TransactionMessageAttempts times, while the next readings queued
    behind it. A reading with a newer one or its stop queued behind it is dropped at its first
    unanswered attempt (the link proved alive by the probe, not reconnected for it); the
    latest one, with nothing behind it, is retried as 1.6 4.10 says (on a new connection:
    test_unanswered.py)."""
    seed(flash, "settings", {"call_timeout_s": 2})
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim, \
            controlling(sim) as control:
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        cp: Any = csms.charge_points[CP_ID]
        # (a reading each 3 s, longer than a call's timeout: no backlog from the timing alone)
        for key, value in (("MeterValueSampleInterval", "3"),
                           ("TransactionMessageAttempts", "3"),
                           ("TransactionMessageRetryInterval", "3"),
                           ("BorneFreeCharging", "true")):
            assert (await cp.call(call.ChangeConfiguration(key=key, value=value))
                    ).status == "Accepted"
        csms.unanswered["MeterValues"] = 10**6
        await control("plug")
        await control("load", amps=16)
        await control("charge")
        await csms.wait_call("StartTransaction")
        await csms.wait_for(lambda: len(csms.calls("MeterValues")) >= 3, 60, "3 readings sent")
        t0 = time.monotonic()
        await control("unplug")
        await csms.wait_call("StopTransaction", timeout=60)
        waited = time.monotonic() - t0
        print(f"the stop {waited:.1f} s after the unplug; {csms.connects} connections")
        assert waited < 8, "the stop waited behind the ignored readings' retries"


async def test_a_schedules_start_and_validity_in_other_zones_are_converted(
    csms: Csms, sim: Simulator
) -> None:
    """An Absolute profile whose startSchedule (an hour ago, for two hours) and validFrom are
    written with offsets and fractions, its limit as a JSON integer: in force now. Read as UTC,
    the -05:00 start would have ended hours ago."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    now = datetime.now(UTC)
    profile = {
        "chargingProfileId": 5, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "validFrom": _in(now - timedelta(minutes=5), 1, ".1"),
        "chargingSchedule": {
            "chargingRateUnit": "A", "duration": 7200,
            "startSchedule": _in(now - timedelta(hours=1), -5, ".123456"),
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]}}
    text = json.dumps([2, "abs-1", "SetChargingProfile",
                       {"connectorId": 1, "csChargingProfiles": profile}])
    f = await csms.call_raw(CP_ID, text, "abs-1")
    assert f.msg[:3] == [3, "abs-1", {"status": "Accepted"}], f.msg
    cp: Any = csms.charge_points[CP_ID]
    res = await cp.call(call.GetCompositeSchedule(connector_id=1, duration=600,
                                                  charging_rate_unit="A"))
    assert res.status == "Accepted", res
    periods = res.charging_schedule["charging_schedule_period"]
    assert periods[0]["limit"] == 10, res.charging_schedule
    # One decimal written with many digits, or with a binary float's noise: taken
    for i, limit in enumerate(("16.000000", "7.1000000000000005", "11039.999999999998")):
        text = json.dumps([2, f"many-{i}", "SetChargingProfile",
                           {"connectorId": 1, "csChargingProfiles": profile}]).replace(
                               '"limit": 10', f'"limit": {limit}')
        f = await csms.call_raw(CP_ID, text, f"many-{i}")
        assert f.msg[:3] == [3, f"many-{i}", {"status": "Accepted"}], (limit, f.msg)
    # A limit past the schema's one decimal (a CSMS's W -> A division): refused, named
    profile["chargingProfileId"] = 6
    profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 15.942028985507246
    text = json.dumps([2, "abs-2", "SetChargingProfile",
                       {"connectorId": 1, "csChargingProfiles": profile}])
    f = await csms.call_raw(CP_ID, text, "abs-2")
    assert f.msg[:3] == [4, "abs-2", "PropertyConstraintViolation"] and "limit" in f.msg[3], f.msg


async def test_a_data_transfer_the_csms_refuses_is_not_sent_again_and_holds_nothing(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """A CSMS with no DataTransfer handler answers the charger's tagLearned with a CALLERROR
    (NotImplemented): its final word, not a transaction message (1.6 4.10 retries those only):
    logged and dropped once, the session that follows delivered at once."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    assert sim.agent is not None
    await sim.agent.wait_line(r"rfid: reader ready", 15)
    cp: Any = csms.charge_points[CP_ID]
    res = await cp.call(call.DataTransfer(vendor_id="borne", message_id="learnTag"))
    assert res.status == "Accepted"

    def refuse(p: object) -> object:
        raise OcppNotImplemented(description="no DataTransfer here")

    csms.respond("DataTransfer", refuse)
    assert (await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
            ).status == "Accepted"
    await control("tap", uid=CARD)
    await csms.wait_call("DataTransfer")
    await sim.agent.wait_line(r"DataTransfer dropped after 1 attempts \(NotImplemented\)", 10)
    await control("plug")
    await control("charge")
    await csms.wait_call("StartTransaction", timeout=10)
    assert len(csms.calls("DataTransfer")) == 1


async def test_answers_with_properties_the_schemas_do_not_define_are_taken(
    csms: Csms, flash: Path
) -> None:
    """The 1.6 schemas forbid additional properties, yet CSMSs add their own to answers
    (a vendor's field in BootNotification.conf, idTagInfo): the charger takes what it knows.
    (A CALL with one is refused FormationViolation: tests/test_bad_input.py.)"""
    csms.unanswered["BootNotification"] = 1
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim:
        boot = await csms.wait_call("BootNotification")
        await csms.send_raw(CP_ID, f'[3, "{boot.msg[1]}", {{"currentTime": "{now_iso()}", '
                            '"interval": 300, "status": "Accepted", "vendorInfo": {"a": 1}}]')
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        await _remote_charge(csms, sim, '{"transactionId": 9, "idTagInfo": {"status": '
                             '"Accepted", "groupId": "X"}, "sessionUrl": "https://x/9"}')
        cp: Any = csms.charge_points[CP_ID]
        assert (await cp.call(call.RemoteStopTransaction(transaction_id=9))).status == "Accepted"
        stop = await csms.wait_call("StopTransaction")
        assert stop.payload["transactionId"] == 9
        assert len(csms.calls("BootNotification")) == 1


async def test_a_call_of_the_csms_before_its_answer_to_ours_is_answered_and_ours_taken(
    csms: Csms, sim: Simulator
) -> None:
    """The CSMS, still working on the charger's StartTransaction, sends a CALL of its own
    first (OCPP-J allows one outstanding CALL per direction): the charger answers it at once
    and then takes the StartTransaction.conf, whose id its RemoteStop names."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp: Any = csms.charge_points[CP_ID]
    assert (await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
            ).status == "Accepted"
    csms.unanswered["StartTransaction"] = 1  # answered below, by hand, after a CALL of ours
    await sim.command({"cmd": "plug"})
    await sim.command({"cmd": "charge"})
    start = await csms.wait_call("StartTransaction")
    f = await csms.call_raw(CP_ID, '[2, "first-1", "GetConfiguration", '
                            '{"key": ["HeartbeatInterval"]}]', "first-1")
    assert f.msg[0] == 3, f.msg
    await csms.send_raw(CP_ID, f'[3, "{start.msg[1]}", {{"transactionId": 4242, '
                        '"idTagInfo": {"status": "Accepted"}}]')
    assert (await cp.call(call.RemoteStopTransaction(transaction_id=4242))).status == "Accepted"
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["transactionId"] == 4242
    assert len(csms.calls("StartTransaction")) == 1


async def test_empty_answers_written_as_empty_arrays_are_taken(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """A CSMS on PHP: json_encode() writes an empty array, its empty object, as `[]`, so the
    confirmations without fields (StatusNotification, MeterValues, a StopTransaction without
    idTagInfo) come as `[3, id, []]`. Each was taken as no answer: a Heartbeat probe after every
    status, a reconnection and a retry for every reading, a stop held back with the next
    session behind it. An empty array is an empty payload, as null is (OCPP-J 4.2), for the
    CSMS's CALLs too."""
    for action in ("StatusNotification", "MeterValues", "StopTransaction"):
        csms.raw_results[action] = "[]"
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp: Any = csms.charge_points[CP_ID]
    for key, value in (("MeterValueSampleInterval", "1"), ("BorneFreeCharging", "true")):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"
    f = await csms.call_raw(CP_ID, '[2, "php-1", "GetLocalListVersion", []]', "php-1")
    assert f.msg[0] == 3 and "listVersion" in f.msg[2], f.msg
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    await csms.wait_call("StartTransaction")
    await csms.wait_for(lambda: len(csms.calls("MeterValues")) >= 3, 15, "3 readings sent")
    await control("unplug")
    await csms.wait_call("StopTransaction")
    n = len(csms.frames)
    await control("plug")
    await control("charge")
    await csms.wait_call("StartTransaction", after=n, timeout=10)
    ids = [f.msg[1] for f in csms.calls("MeterValues")]
    assert len(ids) == len(set(ids)), f"readings sent again: {ids}"
    assert len(csms.calls("StopTransaction")) == 1
    assert not csms.calls("Heartbeat"), "answers taken as missing, the link probed"
    assert csms.connects == 1
