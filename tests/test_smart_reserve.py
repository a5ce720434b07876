"""Smart charging (OCA 056-060, 066, 067) and reservations (046-053) end to end: the pilot
offer follows the profiles, below 6 A charging pauses and resumes, and a reserved connector
serves only its idTag."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from borne.csms import Csms
from borne.sim.simulator import Simulator
from ocpp.v16 import call, call_result
from simctl import Control

CP_ID = "CP-TEST-1"
# The reader counts a card as gone 0.5 s after it left the field (test_taps.py): an owner's
# pause between two taps.
BETWEEN_TAPS_S = 1.0
OWNER, STRANGER, SIBLING = "04A1B2C3", "04D4E5F6", "04112233"  # card UIDs (idTags)


async def _cp(csms: Csms) -> Any:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    return csms.charge_points[CP_ID]


def _profile(pid: int, purpose: str, limit: float, stack: int = 0,
             unit: str = "A") -> dict[str, Any]:
    return {
        "chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": unit,
                             "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]},
    }


async def _charge(csms: Csms, control: Control) -> int:
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await control("load", amps=32)
    await control("plug")
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    return int((await csms.answer_to(start))["transactionId"])


async def test_default_profile_sets_the_pilot_offer(csms: Csms, control: Control) -> None:
    cp = await _cp(csms)
    res = await cp.call(call.SetChargingProfile(
        connector_id=1, cs_charging_profiles=_profile(1, "TxDefaultProfile", 10)))
    assert res.status == "Accepted"
    await _charge(csms, control)
    st = await control.wait_state(lambda s: s["relay"], "charging")
    assert abs(st["pwm_duty"] - 10 / 0.6) < 0.1
    assert abs(st["power_w"] - 10 * 230 * 3) < 1


async def test_limit_below_6a_pauses_and_resumes(csms: Csms, control: Control) -> None:
    cp = await _cp(csms)
    await _charge(csms, control)
    await control.wait_state(lambda s: s["relay"], "charging")
    await cp.call(call.SetChargingProfile(
        connector_id=0, cs_charging_profiles=_profile(7, "ChargePointMaxProfile", 4)))
    st = await control.wait_state(lambda s: not s["relay"], "paused below 6 A")
    assert st["pwm_duty"] == 100
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "SuspendedEVSE")
    assert (await cp.call(call.ClearChargingProfile(id=7))).status == "Accepted"
    await control.wait_state(lambda s: s["relay"], "resumed after the limit went")


async def test_composite_schedule_and_bad_profiles(csms: Csms, control: Control) -> None:
    cp = await _cp(csms)
    await cp.call(call.SetChargingProfile(
        connector_id=0, cs_charging_profiles=_profile(1, "ChargePointMaxProfile", 16)))
    res = await cp.call(call.GetCompositeSchedule(connector_id=1, duration=3600,
                                                  charging_rate_unit="A"))
    assert res.status == "Accepted"
    # (the ocpp package hands nested keys over in snake_case)
    periods = res.charging_schedule["charging_schedule_period"]
    assert periods[0]["start_period"] == 0 and periods[0]["limit"] == 16
    bad = _profile(2, "TxProfile", 10)  # no transaction is running
    assert (await cp.call(call.SetChargingProfile(connector_id=1,
                                                  cs_charging_profiles=bad))).status == "Rejected"
    bad = _profile(3, "ChargePointMaxProfile", 10)  # only on connector 0
    assert (await cp.call(call.SetChargingProfile(connector_id=1,
                                                  cs_charging_profiles=bad))).status == "Rejected"
    assert (await cp.call(call.ClearChargingProfile(id=99))).status == "Unknown"
    # OCTT TC_066/067_CS: an Absolute TxDefaultProfile under the charge point's maximum, the
    # composite in the unit asked for; cleared by criteria, then everything
    start = datetime.now(UTC).replace(microsecond=0)
    steps = [{"startPeriod": t, "limit": a} for t, a in ((0, 6), (60, 8), (200, 10))]
    res = await cp.call(call.SetChargingProfile(connector_id=1, cs_charging_profiles={
        "chargingProfileId": 4, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "duration": 400, "startSchedule": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "chargingRateUnit": "A", "chargingSchedulePeriod": steps}}))
    assert res.status == "Accepted"
    for unit, per_amp in (("A", 1), ("W", 230 * 3)):
        res = await cp.call(call.GetCompositeSchedule(connector_id=1, duration=400,
                                                      charging_rate_unit=unit))
        sched = res.charging_schedule
        assert res.status == "Accepted" and sched["charging_rate_unit"] == unit
        late = (datetime.fromisoformat(res.schedule_start) - start).total_seconds()
        assert 0 <= late < 5, res.schedule_start
        got = [(p["start_period"], float(p["limit"])) for p in sched["charging_schedule_period"]]
        want = [(max(0, t - round(late)), a * per_amp) for t, a in ((0, 6), (60, 8), (200, 10))]
        assert [a for _, a in got[:3]] == [a for _, a in want], got
        assert all(abs(g[0] - w[0]) <= 1 for g, w in zip(got, want, strict=False)), got
    res = await cp.call(call.ClearChargingProfile(connector_id=1, stack_level=1,
                                                  charging_profile_purpose="TxDefaultProfile"))
    assert res.status == "Accepted"
    res = await cp.call(call.GetCompositeSchedule(connector_id=1, duration=400,
                                                  charging_rate_unit="A"))
    assert [float(p["limit"]) for p in res.charging_schedule["charging_schedule_period"]] == [16]
    assert (await cp.call(call.ClearChargingProfile())).status == "Accepted"  # the maximum
    assert (await cp.call(call.ClearChargingProfile())).status == "Unknown"  # none left


async def test_reservation_serves_only_its_tag_and_is_carried_into_the_transaction(
    csms: Csms, control: Control
) -> None:
    cp = await _cp(csms)
    expiry = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    res = await cp.call(call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="OWNER",
                                        reservation_id=42))
    assert res.status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved")
    res = await cp.call(call.RemoteStartTransaction(id_tag="STRANGER", connector_id=1))
    assert res.status == "Rejected"
    res = await cp.call(call.RemoteStartTransaction(id_tag="OWNER", connector_id=1))
    assert res.status == "Accepted"
    await control("plug")
    start = await csms.wait_call("StartTransaction")
    assert start.payload["reservationId"] == 42 and start.payload["idTag"] == "OWNER"


async def test_cancel_and_expiry_free_the_connector(csms: Csms, control: Control) -> None:
    cp = await _cp(csms)
    soon = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=later, id_tag="A",
                                          reservation_id=1))).status == "Accepted"
    # OCTT TC_052_CS: another reservationId is Rejected, and the reservation held stays
    assert (await cp.call(call.CancelReservation(reservation_id=99))).status == "Rejected"
    assert (await cp.call(call.CancelReservation(reservation_id=1))).status == "Accepted"
    assert (await cp.call(call.CancelReservation(reservation_id=1))).status == "Rejected"
    await reserved_until(cp, csms, soon)


async def reserved_until(cp: Any, csms: Csms, expiry: str) -> None:
    """A reservation that expires by itself (`expiry` a few seconds ahead): the connector is
    Reserved, then Available again once the time has passed."""
    n = len(csms.frames)
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="B",
                                          reservation_id=2))).status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved", after=n)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n,
                         timeout=10)


async def test_free_charging_starts_once_the_reservation_is_over(
    csms: Csms, control: Control
) -> None:
    # An EV plugged into a connector reserved for another card waits (the reservation holds
    # it), and charges once the reservation is cancelled or has expired: free charging needs
    # no tap. It stayed Preparing until it was replugged.
    cp = await _cp(csms)
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    soon = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for rid, expiry in ((4, later), (5, soon)):
        n = len(csms.frames)
        assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag=OWNER,
                                              reservation_id=rid))).status == "Accepted"
        await csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved", after=n)
        await control("plug")
        await control("charge")
        await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing", after=n)
        await asyncio.sleep(0.5)
        assert len(csms.calls("StartTransaction")) == rid - 4, "started on a reserved connector"
        if rid == 4:
            assert (await cp.call(call.CancelReservation(reservation_id=4))).status == "Accepted"
        start = await csms.wait_call("StartTransaction", after=n, timeout=10)
        assert start.payload["idTag"] == "FREECHARGING" and "reservationId" not in start.payload
        await control.wait_state(lambda s: s["relay"], "the relay to close")
        await control("unplug")
        await csms.wait_call("StopTransaction", after=n)
        await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available",
                             after=n)


async def test_a_reservation_is_replaced_while_its_driver_is_plugged_in(
    csms: Csms, control: Control
) -> None:
    # 1.6 5.13: a ReserveNow with the reservationId of a reservation held replaces it. With its
    # driver's EV plugged in (Preparing) the extension was answered Occupied: the reservation
    # then expired under him, and the connector was anyone's.
    cp = await _cp(csms)
    soon = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=soon, id_tag=OWNER,
                                          reservation_id=7))).status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved")
    await control("plug")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=later, id_tag=OWNER,
                                          reservation_id=7))).status == "Accepted"
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=later, id_tag=STRANGER,
                                          reservation_id=8))).status == "Occupied"
    await asyncio.sleep(4)  # past the first expiry
    res = await cp.call(call.RemoteStartTransaction(id_tag=STRANGER, connector_id=1))
    assert res.status == "Rejected", "the reservation expired at its first expiryDate"
    res = await cp.call(call.RemoteStartTransaction(id_tag=OWNER, connector_id=1))
    assert res.status == "Accepted"
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == OWNER and start.payload["reservationId"] == 7


async def test_reserve_a_busy_or_faulted_connector(csms: Csms, control: Control) -> None:
    """OCTT TC_048_1/2/3_CS (Faulted, Occupied, Unavailable); connector 0 is Rejected
    (ReserveConnectorZeroSupported is false: TC_049, TC_050_x do not apply)."""
    cp = await _cp(csms)
    later = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    res = await cp.call(call.ReserveNow(connector_id=0, expiry_date=later, id_tag="A",
                                        reservation_id=3))
    assert res.status == "Rejected"
    for cid in (1, 0):  # the connector, then the charge point, set Inoperative
        n = len(csms.frames)
        assert (await cp.call(call.ChangeAvailability(connector_id=cid, type="Inoperative"))
                ).status == "Accepted"
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1
                             and p["status"] == "Unavailable", after=n)
        res = await cp.call(call.ReserveNow(connector_id=1, expiry_date=later, id_tag="A",
                                            reservation_id=4))
        assert res.status == "Unavailable", cid
        n = len(csms.frames)
        assert (await cp.call(call.ChangeAvailability(connector_id=cid, type="Operative"))
                ).status == "Accepted"
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1
                             and p["status"] == "Available", after=n)
    await control("plug")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    res = await cp.call(call.ReserveNow(connector_id=1, expiry_date=later, id_tag="A",
                                        reservation_id=5))
    assert res.status == "Occupied"
    await control("unplug")
    await control("fault", kind="rcd")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Faulted")
    res = await cp.call(call.ReserveNow(connector_id=1, expiry_date=later, id_tag="A",
                                        reservation_id=6))
    assert res.status == "Faulted"


async def test_a_connector_going_unavailable_or_faulted_ends_its_reservation(
    csms: Csms, control: Control
) -> None:
    # 1.6 5.13: a reservation is terminated when the connector is set Unavailable or Faulted.
    # It once outlived both: the connector showed Reserved again after, and the reservation
    # could still be cancelled.
    cp = await _cp(csms)
    later = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def unavailable(on: bool) -> None:
        res = await cp.call(call.ChangeAvailability(
            connector_id=1, type="Inoperative" if on else "Operative"))
        assert res.status == "Accepted"

    async def faulted(on: bool) -> None:
        await control("fault", kind="rcd" if on else "clear")

    for rid, (status, make) in ((8, ("Unavailable", unavailable)), (9, ("Faulted", faulted))):
        n = len(csms.frames)
        assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=later, id_tag="A",
                                              reservation_id=rid))).status == "Accepted"
        await csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved", after=n)
        await make(True)
        n = len(csms.frames)
        await csms.wait_call("StatusNotification",
                             lambda p, s=status: p["status"] == s, after=n)
        n = len(csms.frames)
        await make(False)
        # back Available, not Reserved: the reservation is gone
        back = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                    after=n)
        assert back.payload["status"] == "Available", back.payload
        assert (await cp.call(call.CancelReservation(reservation_id=rid))).status == "Rejected"


async def _reserved_at_reader(csms: Csms, sim: Simulator, parent: str | None) -> Any:
    """Connector 1 reserved for OWNER (with `parent`, if any), the reader polling."""
    cp = await _cp(csms)
    assert sim.agent is not None
    await sim.agent.wait_line(r"rfid: reader ready", 15)
    expiry = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    res = await cp.call(call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag=OWNER,
                                        reservation_id=7, parent_id_tag=parent))
    assert res.status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved")
    return cp


async def test_a_tap_by_another_tag_on_a_reserved_connector_is_refused_without_authorize(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """OCTT TC_046_1_CS: another card is refused at the charger, no Authorize.req (step 5);
    the reserved card still starts, with the reservationId."""
    await _reserved_at_reader(csms, sim, None)
    assert sim.agent is not None
    n = len(sim.agent.all_lines)
    await control("tap", uid=STRANGER)
    await sim.agent.wait_line(rf"tag {STRANGER} refused: connector reserved", 10, start=n)
    await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "the red flash")
    assert not csms.calls("Authorize")
    st = await control("state")
    assert st["ocpp"]["status"] == "Reserved" and st["relay"] is False
    await control.wait_state(lambda s: not s["card"], "the card taken away")
    await asyncio.sleep(BETWEEN_TAPS_S)
    await control("tap", uid=OWNER)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    await control("plug")
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == OWNER and start.payload["reservationId"] == 7
    assert [f.payload["idTag"] for f in csms.calls("Authorize")] == [OWNER]


async def test_a_reservation_with_a_parent_admits_a_sibling_after_authorize(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """OCTT TC_053_CS: with a parentIdTag, the tag's parent is learnt (Authorize here: not in
    the local list or cache), and a card of the same parent starts on the reservation."""
    csms.respond("Authorize", lambda p: call_result.Authorize(
        id_tag_info={"status": "Accepted", "parentIdTag": "FAMILY"}))
    await _reserved_at_reader(csms, sim, "FAMILY")
    await control("tap", uid=SIBLING)
    auth = await csms.wait_call("Authorize")
    assert auth.payload == {"idTag": SIBLING}
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    await control("plug")
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == SIBLING and start.payload["reservationId"] == 7


async def test_a_reservation_taken_while_a_remote_start_authorizes_holds_the_connector(
    csms: Csms, control: Control
) -> None:
    # 1.6 5.12: once a reservation is Accepted, the connector serves only its idTag. A remote
    # start still waiting for its Authorize (AuthorizeRemoteTxRequests) when the reservation
    # came went ahead anyway once authorized, and charged the other tag on a reserved connector.
    cp = await _cp(csms)
    csms.stalled["Authorize"] = 2.0
    res = await cp.call(call.RemoteStartTransaction(id_tag=STRANGER, connector_id=1))
    assert res.status == "Accepted"
    auth = await csms.wait_call("Authorize")
    expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    res = await cp.call(call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag=OWNER,
                                        reservation_id=7))
    assert res.status == "Accepted"
    await csms.answer_to(auth)
    await control("plug")
    await control("charge")
    await control("tap", uid=OWNER)
    start = await csms.wait_call("StartTransaction", timeout=20)
    assert start.payload["idTag"] == OWNER and start.payload["reservationId"] == 7, start.payload


def _daily_hourly(pid: int, purpose: str, stack: int, minute: int) -> dict[str, Any]:
    """A Recurring Daily profile of 24 hourly periods, all 32 A (they merge: no limit change),
    its edges offset by `minute` so that those of several such profiles do not line up."""
    p = _profile(pid, purpose, 32, stack)
    p["chargingProfileKind"] = "Recurring"
    p["recurrencyKind"] = "Daily"
    p["chargingSchedule"]["chargingSchedulePeriod"] = [
        {"startPeriod": h * 3600, "limit": 32} for h in range(24)]
    p["chargingSchedule"]["startSchedule"] = f"2026-01-01T00:{minute:02d}:00Z"
    return p


async def test_a_year_long_composite_schedule_does_not_hold_up_the_charger(
    csms: Csms, control: Control
) -> None:
    """1.6 5.7: GetCompositeSchedule may ask for any duration. A year over ten recurring
    profiles (thousands of edges) must neither stall the charger's safety loop (the relay opens
    at once when the EV is unplugged meanwhile) nor go unanswered: the answer may cover less."""
    cp = await _cp(csms)
    for k in range(9):
        res = await cp.call(call.SetChargingProfile(
            connector_id=1, cs_charging_profiles=_daily_hourly(k + 1, "TxDefaultProfile", k,
                                                               k * 5 + 1)))
        assert res.status == "Accepted"
    res = await cp.call(call.SetChargingProfile(
        connector_id=0, cs_charging_profiles=_daily_hourly(10, "ChargePointMaxProfile", 0, 47)))
    assert res.status == "Accepted"
    await _charge(csms, control)
    await control.wait_state(lambda s: s["relay"] and s["power_w"] > 0, "charging")
    year = 365 * 86400
    ask = asyncio.ensure_future(cp.call(call.GetCompositeSchedule(
        connector_id=1, duration=year, charging_rate_unit="A")))
    await control("unplug")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await control.wait_state(lambda s: not s["relay"], "the relay open after the unplug",
                             timeout=2)
    assert loop.time() - t0 < 1, "the relay opened %.1f s after the unplug" % (loop.time() - t0)
    res = await asyncio.wait_for(ask, 10)
    assert res.status == "Accepted"
    sched = res.charging_schedule
    assert 0 < sched["duration"] <= year
    assert [(p["start_period"], p["limit"]) for p in sched["charging_schedule_period"]] == [
        (0, 32)]

async def test_a_clock_correction_mid_session_does_not_move_a_relative_schedule(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """1.6 3.13.3: a Relative schedule counts from the transaction's start. When the CSMS sets
    the charger's clock 2 h ahead mid-session (an ESP32 without RTC is hours off after a power
    cut), the transaction is still seconds old: its first hour's 10 A still holds."""
    cp = await _cp(csms)
    prof = _profile(1, "TxDefaultProfile", 10)
    prof["chargingSchedule"]["duration"] = 3600
    assert (await cp.call(call.SetChargingProfile(
        connector_id=1, cs_charging_profiles=prof))).status == "Accepted"
    await _charge(csms, control)
    await control.wait_state(lambda s: s["relay"] and abs(s["pwm_duty"] - 10 / 0.6) < 0.1,
                             "10 A offered")
    for hours in (2, -3):  # ahead, then behind the session's start
        n = len(sim.agent.all_lines)
        csms.respond("Heartbeat", lambda p, h=hours: call_result.Heartbeat(
            current_time=(datetime.now(UTC) + timedelta(hours=h)).strftime(
                "%Y-%m-%dT%H:%M:%SZ")))
        assert (await cp.call(call.TriggerMessage(requested_message="Heartbeat"))).status == (
            "Accepted")
        await sim.agent.wait_line(r"clock: set from .*step", 10, start=n)
        res = await cp.call(call.GetCompositeSchedule(connector_id=1, duration=600,
                                                      charging_rate_unit="A"))
        periods = res.charging_schedule["charging_schedule_period"]
        assert [(p["start_period"], p["limit"]) for p in periods] == [(0, 10)], (hours, periods)
        st = await control("state")
        assert abs(st["pwm_duty"] - 10 / 0.6) < 0.1, (hours, st["pwm_duty"])
        assert abs(st["power_w"] - 10 * 230 * 3) < 1, (hours, st["power_w"])
    csms.respond("Heartbeat", None)

async def test_a_composite_schedule_reports_the_phases_its_limit_is_for(
    csms: Csms, control: Control
) -> None:
    """1.6 7.13: a period's limit in A is per phase over numberPhases (3 when absent). A W limit
    holds on every installed phase (the charger cannot switch to one): 7360 W on this 3-phase
    installation is 10.6 A on each of the 3, and the composite says so, whatever the profile's
    numberPhases: the figures agree with what the EV may draw."""
    cp = await _cp(csms)
    prof = _profile(1, "TxDefaultProfile", 7360, unit="W")
    prof["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] = 1
    assert (await cp.call(call.SetChargingProfile(
        connector_id=1, cs_charging_profiles=prof))).status == "Accepted"
    await _charge(csms, control)
    st = await control.wait_state(lambda s: s["relay"] and s["power_w"] > 0, "charging")
    res = await cp.call(call.GetCompositeSchedule(connector_id=1, duration=600,
                                                  charging_rate_unit="A"))
    (period,) = res.charging_schedule["charging_schedule_period"]
    phases = period.get("number_phases", 3)
    amps = float(period["limit"])
    assert (amps, phases) == (10.6, 3), period
    assert abs(amps * 230 * phases - st["power_w"]) < 100, (period, st["power_w"])
