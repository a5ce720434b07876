"""Smart charging (OCA 056-060, 066, 067) and reservations (046-053) end to end: the pilot
offer follows the profiles, below 6 A charging pauses and resumes, and a reserved connector
serves only its idTag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from borne.csms import Csms
from ocpp.v16 import call
from simctl import Control

CP_ID = "CP-TEST-1"


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
    assert (await cp.call(call.CancelReservation(reservation_id=1))).status == "Accepted"
    assert (await cp.call(call.CancelReservation(reservation_id=1))).status == "Rejected"
    n = len(csms.frames)
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=soon, id_tag="B",
                                          reservation_id=2))).status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved", after=n)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n,
                         timeout=10)


async def test_reserve_a_busy_or_faulted_connector(csms: Csms, control: Control) -> None:
    cp = await _cp(csms)
    later = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
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
