"""Charging sessions end to end: remote start/stop, free charging, EV-side disconnect, faults,
availability, reset, power loss. The relay is checked at every step the way a user would see it
(the simulator's `state`), the OCPP messages the way the CSMS sees them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from borne.csms import Csms
from borne.sim.simulator import Simulator
from conftest import BOTH_BOARDS
from ocpp.v16 import call, call_result
from simctl import Control

CP_ID = "CP-TEST-1"


async def _ready(csms: Csms, **config: str) -> Any:
    # The charger's connection once connector 1 is reported, each of `config`'s keys changed
    # and Accepted.
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    for key, value in config.items():
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == \
            "Accepted", key
    return cp


def _sent_readings(csms: Csms, tx: int, context: str) -> list[str]:
    # The timestamps of the readings in `context` the MeterValues of transaction tx carried.
    return [mv["timestamp"] for f in csms.calls("MeterValues")
            if f.payload.get("transactionId") == tx for mv in f.payload["meterValue"]
            if mv["sampledValue"][0]["context"] == context]


async def _charging(csms: Csms, control: Control, tag: str = "REMOTE1") -> int:
    """Remote start, plug, EV asks: returns the transaction id once the relay is closed."""
    cp = await _ready(csms)
    res = await cp.call(call.RemoteStartTransaction(id_tag=tag, connector_id=1))
    assert res.status == "Accepted"
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == tag and start.payload["connectorId"] == 1
    await control.wait_state(lambda s: s["relay"], "the relay to close")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Charging")
    tx = int((await csms.answer_to(start))["transactionId"])
    await control.wait_state(
        lambda s: (s["session"] or {}).get("transaction_id") == tx, "the charger to know its id"
    )
    return tx


async def test_remote_start_authorizes_then_charges_then_remote_stop(
    csms: Csms, control: Control
) -> None:
    cp = await _ready(csms)
    # OCTT TC_060_CS: a remote start whose chargingProfile is not a TxProfile is Rejected
    res = await cp.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1,
                                                    charging_profile={
        "chargingProfileId": 9, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative", "chargingSchedule": {
            "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]}}))
    assert res.status == "Rejected"
    assert not csms.calls("Authorize")
    tx = await _charging(csms, control)
    # AuthorizeRemoteTxRequests is true by default: the tag was authorized first.
    assert csms.calls("Authorize")[0].payload == {"idTag": "REMOTE1"}
    st = await control("state")
    assert st["pwm_duty"] < 100 and st["power_w"] > 0 and st["ocpp"]["status"] == "Charging"
    cp = csms.charge_points[CP_ID]
    # OCTT TC_026_CS: a remote start on the connector a transaction runs on is Rejected, and
    # touches nothing
    res = await cp.call(call.RemoteStartTransaction(id_tag="REMOTE2", connector_id=1))
    assert res.status == "Rejected"
    assert (await control("state"))["relay"] is True
    res = await cp.call(call.RemoteStopTransaction(transaction_id=tx))
    assert res.status == "Accepted"
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["transactionId"] == tx and stop.payload["reason"] == "Remote"
    st = await control.wait_state(lambda s: not s["relay"], "the relay to open")
    assert st["power_w"] == 0
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Finishing")
    await control("unplug")
    n = len(csms.frames)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)


async def test_a_transaction_id_a_loosely_typed_csms_sends_as_a_string_is_the_stops(
    csms: Csms, control: Control
) -> None:
    # A backend on loosely typed JSON (PHP with its database's strings) answers StartTransaction
    # with "transactionId": "4711". It names transaction 4711: the charger's MeterValues and
    # StopTransaction carry 4711, and a RemoteStopTransaction of 4711 stops it. It was taken as
    # none (-1): the stop went under -1 and the CSMS's transaction stayed open, its bill lost.
    cp = await _ready(csms)
    csms.unanswered["StartTransaction"] = 1  # answered below, by hand
    assert (await cp.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1))
            ).status == "Accepted"
    await control("plug")
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    await csms.send_raw(CP_ID, f'[3, "{start.msg[1]}", {{"transactionId": "4711", '
                        '"idTagInfo": {"status": "Accepted"}}]')
    await control.wait_state(
        lambda s: (s["session"] or {}).get("transaction_id") == 4711, "the charger to know its id")
    assert (await cp.call(call.RemoteStopTransaction(transaction_id=4711))).status == "Accepted"
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["transactionId"] == 4711 and stop.payload["reason"] == "Remote"


async def test_a_remote_start_behind_a_slow_answer_waits_its_turn(
    csms: Csms, control: Control
) -> None:
    # A CSMS slow to answer one of the charger's CALLs (a Heartbeat, 10 s) sends a remote start
    # meanwhile: its Authorize waits for the link and goes once the Heartbeat is answered. It
    # waited a tap's 7 s, was decided as if offline and the start the CSMS had been told was
    # Accepted was refused: no session (seen against ocpp-rpc with slow answers).
    cp = await _ready(csms)
    await control("plug")
    csms.stalled["Heartbeat"] = 10
    res = await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
    assert res.status == "Accepted"
    await asyncio.sleep(0.5)  # the Heartbeat is out, its answer 10 s away
    # (our reading of answers waits behind the stalled Heartbeat too: the call in a task)
    remote = asyncio.create_task(
        cp.call(call.RemoteStartTransaction(id_tag="REMOTE9", connector_id=1)))
    start = await csms.wait_call("StartTransaction", timeout=30)
    assert (await remote).status == "Accepted"
    assert start.payload["idTag"] == "REMOTE9"
    assert [f.payload for f in csms.calls("Authorize")] == [{"idTag": "REMOTE9"}]


async def test_remote_stop_of_an_unknown_transaction_is_rejected(
    csms: Csms, control: Control
) -> None:
    tx = await _charging(csms, control)
    res = await csms.charge_points[CP_ID].call(call.RemoteStopTransaction(transaction_id=tx + 99))
    assert res.status == "Rejected"
    assert (await control("state"))["relay"] is True


async def test_remote_start_on_connector_0_or_2_is_rejected(csms: Csms, control: Control) -> None:
    cp = await _ready(csms)
    for cid in (0, 2):
        res = await cp.call(call.RemoteStartTransaction(id_tag="X", connector_id=cid))
        assert res.status == "Rejected"


@BOTH_BOARDS
async def test_unplug_while_charging_opens_relay_and_stops_with_ev_disconnected(
    csms: Csms, control: Control
) -> None:
    tx = await _charging(csms, control)
    await control("unplug")
    st = await control.wait_state(lambda s: not s["relay"], "the relay to open")
    assert st["cp"] == "A"
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "EVDisconnected" and stop.payload["transactionId"] == tx


async def test_unplug_with_stop_on_ev_side_disconnect_false_keeps_the_transaction(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """OCTT TC_005_3_CS: the transaction is kept, reported SuspendedEV (Preparing would say none
    is ongoing), the relay open; a plug-in charges on in it; RemoteStop ends it."""
    cp = await _ready(csms)
    res = await cp.call(call.ChangeConfiguration(key="StopTransactionOnEVSideDisconnect",
                                                 value="false"))
    assert res.status == "Accepted"
    tx = await _charging(csms, control)
    assert sim.agent is not None
    lines = len(sim.agent.all_lines)
    await control("unplug")
    await sim.agent.wait_line(r"evse: pilot \w -> A", 10, start=lines)
    st = await control.wait_state(lambda s: not s["relay"], "the relay open")
    assert st["session"] is not None
    # The status the charger holds in A, asked for after the pilot's change was handled
    n = len(csms.frames)
    res = await cp.call(call.TriggerMessage(requested_message="StatusNotification",
                                            connector_id=1))
    assert res.status == "Accepted"
    sn = await csms.wait_call("StatusNotification", after=n)
    assert sn.payload["status"] == "SuspendedEV"
    await control("plug")
    await control("charge")
    await control.wait_state(lambda s: s["relay"], "charging again in the same transaction")
    assert not csms.calls("StopTransaction") and len(csms.calls("StartTransaction")) == 1
    await control("unplug")
    await control.wait_state(lambda s: not s["relay"] and s["cp"] == "A", "unplugged again")
    res = await cp.call(call.RemoteStopTransaction(transaction_id=tx))
    assert res.status == "Accepted"
    n = len(csms.frames)
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["transactionId"] == tx and stop.payload["reason"] == "Remote"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)
    statuses = [f.payload["status"] for f in csms.calls("StatusNotification")
                if f.payload["connectorId"] == 1]
    assert "Preparing" not in statuses[statuses.index("Charging"):]


async def test_ev_pausing_suspends_and_resuming_charges_again(
    csms: Csms, control: Control
) -> None:
    await _charging(csms, control)
    await control("pause")
    await control.wait_state(lambda s: not s["relay"], "the relay to open when the EV pauses")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "SuspendedEV")
    await control("charge")
    await control.wait_state(lambda s: s["relay"], "the relay to close again")


async def test_free_charging_starts_without_a_tag(csms: Csms, control: Control) -> None:
    cp = await _ready(csms)
    res = await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    assert res.status == "Accepted"
    await control("plug")
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == "FREECHARGING"
    await control.wait_state(lambda s: s["relay"], "the relay to close")


async def test_free_charging_switched_on_by_the_csms_starts_an_ev_already_plugged_in(
    csms: Csms, control: Control
) -> None:
    # BorneFreeCharging is the owner app's setting, which the cloud changes: an EV already
    # plugged in charges at once, as when the owner switches it at home (MQTT). It stayed
    # Preparing until it was replugged.
    cp = await _ready(csms)
    await control("plug")
    await control("charge")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    await control.wait_state(lambda s: (s["meter"] or {}).get("ok"), "the meter's first reading")
    await asyncio.sleep(1)  # (a start waiting for that reading would be tried again then)
    res = await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    assert res.status == "Accepted"
    start = await csms.wait_call("StartTransaction", timeout=10)
    assert start.payload["idTag"] == "FREECHARGING"
    await control.wait_state(lambda s: s["relay"], "the relay to close")


async def test_free_charging_starts_once_the_connector_is_operative_again(
    csms: Csms, control: Control
) -> None:
    # An EV left plugged in while the connector was Unavailable charges once the CSMS makes it
    # Operative again: free charging needs no tap. It stayed Preparing until it was replugged.
    cp = await _ready(csms, BorneFreeCharging="true")
    res = await cp.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert res.status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Unavailable")
    await control("plug")
    await control("charge")
    await asyncio.sleep(1)
    assert not csms.calls("StartTransaction")
    res = await cp.call(call.ChangeAvailability(connector_id=0, type="Operative"))
    assert res.status == "Accepted"
    start = await csms.wait_call("StartTransaction", timeout=10)
    assert start.payload["idTag"] == "FREECHARGING"
    await control.wait_state(lambda s: s["relay"], "the relay to close")


async def test_without_free_charging_plugging_in_is_not_enough(
    csms: Csms, control: Control
) -> None:
    await _ready(csms)
    await control("plug")
    await control("charge")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    st = await control("state")
    assert st["relay"] is False and st["pwm_duty"] == 100
    assert not csms.calls("StartTransaction")


@BOTH_BOARDS
async def test_rcd_trip_opens_relay_ends_the_session_and_latches_until_unplugged(
    csms: Csms, control: Control
) -> None:
    # The RCD module releasing (as a 6 mA DC module does once the opening stopped the fault
    # current) closes nothing again: the session ended at the trip, the connector stays Faulted
    # (GroundFailure) until the EV is unplugged with the RCD healthy; the next plug-in charges.
    await _charging(csms, control)
    await control("fault", kind="rcd")
    st = await control.wait_state(lambda s: not s["relay"], "the relay to open on an RCD trip")
    assert st["power_w"] == 0
    await csms.wait_call(
        "StatusNotification",
        lambda p: p["status"] == "Faulted" and p["errorCode"] == "GroundFailure",
    )
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "Other"
    await control("fault", kind="clear")
    await control("pause")
    await control("charge")
    for _ in range(20):  # one second of the EV asking again, the same plug-in: never closed
        st = await control("state")
        assert not st["relay"] and st["ocpp"]["status"] == "Faulted", st
        await asyncio.sleep(0.05)
    n = len(csms.frames)
    await control("unplug")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)
    cp = csms.charge_points[CP_ID]
    res = await cp.call(call.RemoteStartTransaction(id_tag="REMOTE2", connector_id=1))
    assert res.status == "Accepted"
    await control("plug")
    await control("charge")
    await csms.wait_call("StartTransaction", lambda p: p["idTag"] == "REMOTE2", after=n)
    await control.wait_state(lambda s: s["relay"], "a new plug-in to charge")


@BOTH_BOARDS
async def test_every_pilot_fault_opens_the_relay_and_charging_resumes_after(
    csms: Csms, control: Control
) -> None:
    # The EV's diode missing, the pilot shorted to PE (the RCD and the weld have tests of their
    # own): each opens the relay and faults the connector; cleared, the session charges again.
    await _charging(csms, control)
    for kind, vendor in (("diode", "DiodeFault"), ("pilot_short", "PilotFault")):
        n = len(csms.frames)
        assert (await control("fault", kind=kind))["ok"]
        st = await control.wait_state(lambda s: not s["relay"], f"the relay open on {kind}")
        assert st["power_w"] == 0
        # OtherError says which in vendorErrorCode (1.6: "more information in vendorErrorCode").
        # A shorted pilot may read as a missing diode for a sample on its way to state E: the
        # CSMS is told again when the fault turns out to be another.
        f = await csms.wait_call("StatusNotification", lambda p, v=vendor: p["status"] ==
                                 "Faulted" and p.get("vendorErrorCode") == v, after=n)
        assert f.payload["errorCode"] == "OtherError", f.payload
        n = len(csms.frames)
        await control("fault", kind="clear")
        await control.wait_state(lambda s: s["relay"], f"charging again after {kind} cleared")
        await csms.wait_call("StatusNotification", lambda p: p["status"] == "Charging", after=n)


@BOTH_BOARDS
async def test_welded_relay_faults_and_blocks_new_sessions(csms: Csms, control: Control) -> None:
    cp = await _ready(csms)
    await control("fault", kind="weld")
    await csms.wait_call(
        "StatusNotification",
        lambda p: p["status"] == "Faulted" and p["errorCode"] == "PowerSwitchFailure",
    )
    res = await cp.call(call.RemoteStartTransaction(id_tag="X", connector_id=1))
    assert res.status == "Rejected"


async def _inoperative_then_stopped(csms: Csms, control: Control, cid: int) -> Any:
    """A session charging, ChangeAvailability(cid, Inoperative) Scheduled, then a remote stop:
    the charge point, its StopTransaction and the frame count before the stop."""
    tx = await _charging(csms, control)
    cp = csms.charge_points[CP_ID]
    res = await cp.call(call.ChangeAvailability(connector_id=cid, type="Inoperative"))
    assert res.status == "Scheduled"
    n = len(csms.frames)
    await cp.call(call.RemoteStopTransaction(transaction_id=tx))
    return cp, await csms.wait_call("StopTransaction", after=n), n


async def test_change_availability_is_scheduled_during_a_session(
    csms: Csms, control: Control
) -> None:
    cp, stop, n = await _inoperative_then_stopped(csms, control, 1)
    # The change applies once the transaction has ended, and the CSMS is told so (1.6 5.2):
    # Unavailable after the stop, the EV still plugged in (Charging -> Unavailable), where it
    # heard Finishing until the unplug; the charge point itself (connector 0) stays Available
    st = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=n)
    assert st.payload["status"] == "Unavailable", st.payload
    assert csms.frames.index(stop) < csms.frames.index(st)
    await control("unplug")
    await asyncio.sleep(0.5)
    assert [f.payload["status"] for f in csms.calls("StatusNotification")[-1:]] == ["Unavailable"]
    assert not [f for f in csms.calls("StatusNotification")
                if f.payload["connectorId"] == 0 and f.payload["status"] == "Unavailable"]
    res = await cp.call(call.RemoteStartTransaction(id_tag="X", connector_id=1))
    assert res.status == "Rejected"
    res = await cp.call(call.ChangeAvailability(connector_id=0, type="Operative"))
    assert res.status == "Accepted"


async def test_the_charge_point_made_unavailable_during_a_session_says_so_after_the_stop(
    csms: Csms, control: Control
) -> None:
    # 1.6 5.2: connectorId 0 during a transaction: Scheduled, it takes place once the
    # transaction has finished. The charge point's Unavailable went out ahead of the
    # StopTransaction (while the final meter reading was taken), telling the CSMS of an
    # unavailable charge point whose transaction still ran.
    cp, stop, n = await _inoperative_then_stopped(csms, control, 0)
    for cid in (0, 1):
        st = await csms.wait_call("StatusNotification", lambda p, c=cid: p["connectorId"] == c,
                                  after=n)
        assert st.payload["status"] == "Unavailable", st.payload
        assert csms.frames.index(stop) < csms.frames.index(st), f"connector {cid} before the stop"
    res = await cp.call(call.RemoteStartTransaction(id_tag="X", connector_id=1))
    assert res.status == "Rejected"


async def test_change_availability_after_a_stop_with_the_ev_still_plugged_in_is_reported(
    csms: Csms, control: Control
) -> None:
    # 1.6 5.2: "When an availability change ... has happened, the Charge Point SHALL inform
    # Central System of its new availability status with a StatusNotification". Finishing (the
    # cable still in after a stop) hid it: Accepted, and nothing until the unplug.
    tx = await _charging(csms, control)
    cp = csms.charge_points[CP_ID]
    await cp.call(call.RemoteStopTransaction(transaction_id=tx))
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Finishing")
    n = len(csms.frames)
    res = await cp.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert res.status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1 and
                         p["status"] == "Unavailable", after=n, timeout=10)
    res = await cp.call(call.RemoteStartTransaction(id_tag="X", connector_id=1))
    assert res.status == "Rejected"
    # Operative again, the cable still in: Preparing (1.6 4.9 has no Unavailable -> Finishing)
    n = len(csms.frames)
    res = await cp.call(call.ChangeAvailability(connector_id=1, type="Operative"))
    assert res.status == "Accepted"
    st = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=n)
    assert st.payload["status"] == "Preparing", st.payload


async def test_unavailable_survives_a_reboot(csms: Csms, control: Control, sim: Simulator) -> None:
    cp = await _ready(csms)
    res = await cp.call(call.ChangeAvailability(connector_id=0, type="Inoperative"))
    assert res.status == "Accepted"
    await control("power_cut")
    await control("power_on")
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 20, "the reboot")
    n = len(csms.frames)
    s = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=n)
    assert s.payload["status"] == "Unavailable"
    s = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 0, after=n)
    assert s.payload["status"] == "Unavailable", "the charge point itself, after the reboot too"


async def test_a_scheduled_unavailability_applies_when_a_power_cut_ends_the_session(
    csms: Csms, control: Control
) -> None:
    # 1.6 5.2: Scheduled takes place once the transaction has finished; a power cut finishes it
    # (PowerLoss at the next boot), and the change must not be lost with it.
    await _charging(csms, control)
    cp = csms.charge_points[CP_ID]
    res = await cp.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert res.status == "Scheduled"
    await control("power_cut")
    await control("power_on")
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 30, "the reboot")
    n = csms.frames.index(csms.calls("BootNotification")[1])
    stop = await csms.wait_call("StopTransaction", timeout=30)
    assert stop.payload["reason"] == "PowerLoss"
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1 and
                         p["status"] == "Unavailable", after=n, timeout=20)
    cp = csms.charge_points[CP_ID]  # (the new link's)
    res = await cp.call(call.RemoteStartTransaction(id_tag="X", connector_id=1))
    assert res.status == "Rejected"
    assert len(csms.calls("StartTransaction")) == 1
    st = [f.payload["status"] for f in csms.frames[n:] if f.action == "StatusNotification"
          and f.payload["connectorId"] == 1]
    assert "Preparing" not in st and "Available" not in st, st


async def test_availability_of_the_connector_and_of_the_charge_point(
    csms: Csms, sim: Simulator
) -> None:
    # 1.6 5.2: connectorId 0 is the charge point (its status and its connector's go
    # Unavailable), 1 the connector alone (the charge point stays Available).
    cp = await _ready(csms)

    def last() -> dict[int, str]:
        return {f.payload["connectorId"]: f.payload["status"]
                for f in csms.calls("StatusNotification")}

    async def change(connector_id: int, kind: str, want: dict[int, str]) -> None:
        res = await cp.call(call.ChangeAvailability(connector_id=connector_id, type=kind))
        assert res.status == "Accepted"
        await csms.wait_for(lambda: last() == want, 20, f"the statuses {want}")

    await change(1, "Inoperative", {0: "Available", 1: "Unavailable"})
    assert not [f for f in csms.calls("StatusNotification")
                if f.payload["connectorId"] == 0 and f.payload["status"] == "Unavailable"]
    await change(0, "Inoperative", {0: "Unavailable", 1: "Unavailable"})
    await change(1, "Operative", {0: "Available", 1: "Available"})


@BOTH_BOARDS
async def test_power_cut_mid_session_ends_it_with_power_loss(
    csms: Csms, control: Control
) -> None:
    tx = await _charging(csms, control)
    await control("power_cut")
    st = await control("state")
    assert st["relay"] is False, "the contactor must drop when the power goes"
    await control("power_on")
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "PowerLoss" and stop.payload["transactionId"] == tx
    assert len(csms.calls("StartTransaction")) == 1 and len(csms.calls("StopTransaction")) == 1


async def test_soft_reset_stops_the_session_then_reboots(csms: Csms, control: Control) -> None:
    tx = await _charging(csms, control)
    res = await csms.charge_points[CP_ID].call(call.Reset(type="Soft"))
    assert res.status == "Accepted"
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "SoftReset" and stop.payload["transactionId"] == tx
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 20, "the reboot")
    assert len(csms.calls("StopTransaction")) == 1
    # The link before the restart was closed with "going away", not dropped
    assert csms.close_codes[:1] == [(CP_ID, 1001)], csms.close_codes


async def test_the_restart_tune_plays_whole_before_the_reboot(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    # The app's Restart: the owner hears the whole restart tune (its three notes), not the
    # reboot cutting it short.
    cp = await _ready(csms)
    n = len(sim.hw.tones)
    assert (await cp.call(call.Reset(type="Soft"))).status == "Accepted"
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 20, "the reboot")
    assert sim.hw.tones[n:n + 3] == [(1500, 100), (2000, 100), (2500, 150)], sim.hw.tones[n:]


async def test_hard_reset_reboots_and_delivers_the_stop_after(
    csms: Csms, control: Control
) -> None:
    tx = await _charging(csms, control)
    await csms.charge_points[CP_ID].call(call.Reset(type="Hard"))
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 20, "the reboot")
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "HardReset" and stop.payload["transactionId"] == tx
    assert len(csms.calls("StopTransaction")) == 1


async def test_stop_transaction_carries_the_clock_aligned_readings(
    csms: Csms, control: Control
) -> None:
    # StopTxnAlignedData: each clock-aligned reading of the session is in the StopTransaction's
    # transactionData, the same instant as the Sample.Clock MeterValues sent during it, in order
    # between Transaction.Begin and Transaction.End.
    cp = await _ready(csms, ClockAlignedDataInterval="1",
                      MeterValuesAlignedData="Energy.Active.Import.Register",
                      StopTxnAlignedData="Energy.Active.Import.Register",
                      StopTxnSampledData="Energy.Active.Import.Register")
    tx = await _charging(csms, control)

    def clock_values() -> list[str]:
        return _sent_readings(csms, tx, "Sample.Clock")

    await csms.wait_for(lambda: len(clock_values()) >= 3, 10, "three clock-aligned readings")
    await cp.call(call.RemoteStopTransaction(transaction_id=tx))
    stop = (await csms.wait_call("StopTransaction")).payload
    data = stop["transactionData"]
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    assert contexts[-1] == "Transaction.End" and set(contexts[:-1]) <= {
        "Transaction.Begin", "Sample.Clock"} and "Transaction.Begin" not in contexts[1:], contexts
    aligned = [mv["timestamp"] for mv in data if mv["sampledValue"][0]["context"] == "Sample.Clock"]
    assert aligned == clock_values(), (aligned, clock_values())
    start = (await csms.wait_call("StartTransaction")).payload["timestamp"]
    assert aligned == sorted(aligned) and aligned[0] >= start, (start, aligned)


async def test_a_clock_aligned_reading_is_taken_only_at_a_boundary_crossed(
    csms: Csms, control: Control
) -> None:
    # 1.6 9.1.5: a clock-aligned reading is the register at a boundary of the interval's grid
    # (from midnight), taken as the clock passes it. A change of ClockAlignedDataInterval sent a
    # reading at once for the new grid's last boundary, long past: the session's register now,
    # stamped midnight (moved up to the session's start), a Sample.Clock value at the start
    # above meterStart, which a billing check of the intervals reads as energy never delivered.
    cp = await _ready(csms, ClockAlignedDataInterval="2",
                      MeterValuesAlignedData="Energy.Active.Import.Register",
                      StopTxnAlignedData="Energy.Active.Import.Register")
    tx = await _charging(csms, control)
    await csms.wait_for(lambda: len(_sent_readings(csms, tx, "Sample.Clock")) >= 2, 10,
                        "two clock-aligned readings")
    before = (await control("state"))["energy_wh"]
    await control.wait_state(lambda s: s["energy_wh"] >= before + 3, "some energy delivered")
    n = len(csms.calls("MeterValues"))
    assert (await cp.call(call.ChangeConfiguration(key="ClockAlignedDataInterval",
                                                   value="86400"))).status == "Accepted"
    await asyncio.sleep(2)
    late = [mv for f in csms.calls("MeterValues")[n:] for mv in f.payload["meterValue"]
            if mv["sampledValue"][0]["context"] == "Sample.Clock"]
    assert not late, f"a reading for a boundary not crossed: {late}"
    await cp.call(call.RemoteStopTransaction(transaction_id=tx))
    stop = (await csms.wait_call("StopTransaction")).payload
    start = csms.calls("StartTransaction")[0].payload
    clock = [mv for mv in stop["transactionData"]
             if mv["sampledValue"][0]["context"] == "Sample.Clock"]
    assert all(int(mv["sampledValue"][0]["value"]) == start["meterStart"] for mv in clock
               if mv["timestamp"] <= start["timestamp"]), (start, clock)


async def test_a_clock_set_back_after_a_reboot_repeats_no_clock_aligned_reading(
    csms: Csms, control: Control
) -> None:
    # A clock ahead (an RTC that kept the time through the reboot) reports a boundary; after
    # the reboot the CSMS sets it back across that boundary. Passed again, the boundary was
    # reported a second time: two Sample.Clock readings of one instant, with two registers.
    await _ready(csms, ClockAlignedDataInterval="10",
                 MeterValuesAlignedData="Energy.Active.Import.Register")

    def clock_stamps(after: int = 0) -> list[str]:
        return [mv["timestamp"] for f in csms.calls("MeterValues")[after:]
                for mv in f.payload["meterValue"]
                if mv["sampledValue"][0]["context"] == "Sample.Clock"]

    await csms.wait_for(lambda: clock_stamps(), 15, "a clock-aligned reading")
    b = datetime.strptime(clock_stamps()[0][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    back = (b - timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    csms.respond("BootNotification", lambda p: call_result.BootNotification(
        current_time=back, interval=300, status="Accepted"))
    csms.respond("Heartbeat", lambda p: call_result.Heartbeat(current_time=back))
    n = len(csms.calls("MeterValues"))
    await control("power_cut")
    await control("power_on")
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 20, "the reboot")
    # the charger's next boundary on the clock set back: the one reported before is passed by
    await csms.wait_for(lambda: any(t > clock_stamps()[0] for t in clock_stamps(n)), 40,
                        "a clock-aligned reading after the reboot")
    assert clock_stamps()[0] not in clock_stamps(n), clock_stamps()


async def test_stop_transaction_carries_the_periodic_samples_within_its_bound(
    csms: Csms, control: Control
) -> None:
    # StopTxnSampledData: "every MeterValueSampleInterval seconds from the start of the
    # transaction" in the StopTransaction's transactionData, between Transaction.Begin and
    # Transaction.End; StopTransactionMaxMeterValues bounds it: a session longer than that keeps
    # its latest samples, each the same instant as a Sample.Periodic MeterValues sent during it.
    cp = await _ready(csms, MeterValueSampleInterval="1",
                      MeterValuesSampledData="Energy.Active.Import.Register",
                      StopTxnSampledData="Energy.Active.Import.Register")
    conf = await cp.call(call.GetConfiguration(key=["StopTransactionMaxMeterValues"]))
    most = int(conf.configuration_key[0]["value"])
    tx = await _charging(csms, control)

    def periodic() -> list[str]:
        return _sent_readings(csms, tx, "Sample.Periodic")

    await csms.wait_for(lambda: len(periodic()) > most, most * 3,
                        f"more than {most} periodic readings")
    await cp.call(call.RemoteStopTransaction(transaction_id=tx))
    data = (await csms.wait_call("StopTransaction")).payload["transactionData"]
    assert len(data) <= most, len(data)
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    # (Transaction.Begin is left out when the meter's reading failed at that instant)
    assert contexts[-1] == "Transaction.End" and "Transaction.Begin" not in contexts[1:] and set(
        contexts[:-1]) <= {"Transaction.Begin", "Sample.Periodic"}, contexts
    kept = [mv["timestamp"] for mv in data if mv["sampledValue"][0]["context"] == "Sample.Periodic"]
    assert kept and kept == periodic()[-len(kept):], (kept, periodic())
    registers = [int(mv["sampledValue"][0]["value"]) for mv in data]
    assert registers == sorted(registers), registers


async def test_meter_register_values_frame_the_energy_delivered(
    csms: Csms, control: Control
) -> None:
    # meterStart/meterStop come from the Modbus meter's import register: their difference is
    # the energy the simulated EV really took while the relay was closed.
    tx = await _charging(csms, control)
    start = csms.calls("StartTransaction")[0].payload["meterStart"]
    before = (await control("state"))["energy_wh"]
    await control.wait_state(lambda s: s["energy_wh"] >= before + 5, "some energy delivered")
    await csms.charge_points[CP_ID].call(call.RemoteStopTransaction(transaction_id=tx))
    stop = (await csms.wait_call("StopTransaction")).payload
    delivered = (await control("state"))["energy_wh"]
    assert stop["meterStop"] > start
    assert abs(stop["meterStop"] - start - delivered) <= 2, (start, stop["meterStop"], delivered)


async def test_a_meter_values_trigger_names_the_transaction_on_its_connector_only(
    csms: Csms, control: Control
) -> None:
    # TriggerMessage(MeterValues): for connector 1 the reading belongs to its transaction; for
    # connector 0 (the charge point's main meter) it belongs to none.
    tx = await _charging(csms, control)
    cp = csms.charge_points[CP_ID]
    got = {}
    for cid in (1, 0):
        n = len(csms.frames)
        res = await cp.call(call.TriggerMessage(requested_message="MeterValues", connector_id=cid))
        assert res.status == "Accepted"
        mv = await csms.wait_call(
            "MeterValues", lambda p: p["meterValue"][0]["sampledValue"][0].get("context")
            == "Trigger", after=n)
        got[cid] = mv.payload
    assert got[1]["connectorId"] == 1 and got[1].get("transactionId") == tx, got[1]
    assert got[0]["connectorId"] == 0 and "transactionId" not in got[0], got[0]
    # No connectorId: 1.6 5.17 "for all allowed connectorId values", as StatusNotification's
    # trigger does: connector 0 and 1 (it was connector 1 only).
    n = len(csms.frames)
    res = await cp.call(call.TriggerMessage(requested_message="MeterValues"))
    assert res.status == "Accepted"
    await csms.wait_for(lambda: len(_triggered(csms, n)) == 2, 10, "two MeterValues")
    await asyncio.sleep(1)
    both = _triggered(csms, n)
    assert [p["connectorId"] for p in both] == [0, 1], both
    assert "transactionId" not in both[0] and both[1].get("transactionId") == tx, both


async def test_a_triggered_reading_in_a_transaction_has_its_starts_resolution(
    csms: Csms, control: Control
) -> None:
    # A triggered MeterValues naming the transaction was stamped to the second while its
    # StartTransaction and sampled readings carry milliseconds: a reading right after the start
    # read as earlier than it (12:00:00Z < 12:00:00.437Z). Found by borne chaos answers, seed
    # 94031. It now has the start's resolution and is never before it.
    tx = await _charging(csms, control)
    start = (await csms.wait_call("StartTransaction")).payload["timestamp"]
    n = len(csms.frames)
    cp = csms.charge_points[CP_ID]
    res = await cp.call(call.TriggerMessage(requested_message="MeterValues", connector_id=1))
    assert res.status == "Accepted"
    mv = await csms.wait_call(
        "MeterValues", lambda p: p["meterValue"][0]["sampledValue"][0].get("context")
        == "Trigger", after=n)
    assert mv.payload.get("transactionId") == tx
    ts = mv.payload["meterValue"][0]["timestamp"]
    assert "." in start and "." in ts, (start, ts)
    assert ts >= start, (start, ts)


async def test_current_offered_is_the_pilots_offer_while_the_ev_suspends(
    csms: Csms, control: Control
) -> None:
    # 1.6 Measurand Current.Offered: "maximum current offered to EV", what the pilot's duty
    # cycle signals. With the EV pausing (SuspendedEV: the charger offers, the EV takes nothing)
    # it was "0", the figure of an offer cut by the charger (SuspendedEVSE): a load manager read
    # its limit as not applied, the status as a lie.
    tx = await _charging(csms, control)
    cp = csms.charge_points[CP_ID]
    assert (await cp.call(call.ChangeConfiguration(
        key="MeterValuesSampledData", value="Current.Offered,Power.Offered"))).status == "Accepted"
    await control("pause")
    n = len(csms.frames)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "SuspendedEV", after=n)
    st = await control.wait_state(lambda s: not s["relay"], "the relay to open")
    assert st["pwm_duty"] < 100, st
    offer = round(st["pwm_duty"] * 0.6, 1)
    n = len(csms.frames)
    assert (await cp.call(call.TriggerMessage(requested_message="MeterValues",
                                              connector_id=1))).status == "Accepted"
    mv = await csms.wait_call("MeterValues", after=n)
    assert mv.payload.get("transactionId") == tx
    values = {sv["measurand"]: float(sv["value"]) for sv in mv.payload["meterValue"][0][
        "sampledValue"]}
    assert values == {"Current.Offered": offer, "Power.Offered": offer * 230 * 3}, (values, st)


def _triggered(csms: Csms, n: int) -> list[dict[str, Any]]:
    return [f.payload for f in csms.frames[n:] if f.direction == "in" and f.is_call
            and f.action == "MeterValues"
            and f.payload["meterValue"][0]["sampledValue"][0].get("context") == "Trigger"]


async def test_a_status_the_csms_answers_with_an_error_holds_nothing_back(
    csms: Csms, control: Control
) -> None:
    # A CSMS that answers connector 0's StatusNotification with a CALLERROR (it knows no
    # connector 0) has given its final answer: 1.6 retries transaction messages only. The
    # charger once put the status back and retried it for ever, ahead of everything else: the
    # EV charged while no StartTransaction, no other status and no heartbeat ever went out.
    from ocpp.exceptions import InternalError
    from ocpp.v16 import call_result

    def status(p: dict[str, Any]) -> Any:
        if p["connector_id"] == 0:
            raise InternalError(description="no connector 0 here")
        return call_result.StatusNotification()

    csms.respond("StatusNotification", status)
    cp = await _ready(csms, BorneFreeCharging="true")
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    start = await csms.wait_call("StartTransaction", timeout=20)
    await control.wait_state(lambda s: s["relay"], "charging")
    await csms.wait_call("StatusNotification",
                         lambda p: p["connectorId"] == 1 and p["status"] == "Charging")
    zero = [f for f in csms.calls("StatusNotification") if f.payload["connectorId"] == 0]
    assert len(zero) == 1, f"connector 0's refused status sent {len(zero)} times"
    assert start.payload["connectorId"] == 1 and cp is not None


async def test_a_remote_start_while_finishing_starts_without_a_new_plug_in(
    csms: Csms, control: Control
) -> None:
    # The owner stopped from the app and starts again, the cable still in: 1.6 4.9 goes from
    # Finishing to Preparing when an idTag is presented again. The remote start was Accepted,
    # then nothing started until the cable was plugged in again.
    tx = await _charging(csms, control)
    cp = csms.charge_points[CP_ID]
    assert (await cp.call(call.RemoteStopTransaction(transaction_id=tx))).status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Finishing")
    n = len(csms.frames)
    res = await cp.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1))
    assert res.status == "Accepted"
    start = await csms.wait_call("StartTransaction", after=n, timeout=15)
    assert start.payload["idTag"] == "REMOTE1"
    await control.wait_state(lambda s: s["relay"], "charging again, the cable never unplugged")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Charging", after=n)


async def test_online_the_csms_hears_of_a_transaction_before_the_status_that_names_it(
    csms: Csms, control: Control
) -> None:
    # "Charging" names a transaction, "Finishing" one that has stopped (1.6 4.9): a CSMS that
    # hears the status first sees a connector charging with no transaction, or one finished
    # while its transaction still runs. Online as at a reconnection, the transaction message
    # goes first, whether the session is started and stopped remotely or by the EV.
    tx = await _charging(csms, control)
    calls = csms.calls()
    start = csms.calls("StartTransaction")[0]
    early = [f.payload["status"] for f in calls[:calls.index(start)]
             if f.action == "StatusNotification" and f.payload["connectorId"] == 1]
    assert not {"Charging", "SuspendedEV", "SuspendedEVSE"} & set(early), early
    cp = csms.charge_points[CP_ID]
    n = len(csms.frames)
    assert (await cp.call(call.RemoteStopTransaction(transaction_id=tx))).status == "Accepted"
    finishing = await csms.wait_call("StatusNotification",
                                     lambda p: p["status"] == "Finishing", after=n)
    stop = await csms.wait_call("StopTransaction", after=n)
    calls = csms.calls()
    assert calls.index(stop) < calls.index(finishing), "Finishing reported before the stop"
    n = len(csms.frames)
    await control("charge")  # the owner starts again from the app, the cable still in
    res = await cp.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1))
    assert res.status == "Accepted"
    start = await csms.wait_call("StartTransaction", after=n, timeout=15)
    await csms.answer_to(start)
    await control.wait_state(lambda s: s["relay"], "charging again")
    n = len(csms.frames)
    await control("unplug")
    available = await csms.wait_call("StatusNotification",
                                     lambda p: p["status"] == "Available", after=n)
    stop = await csms.wait_call("StopTransaction", after=n)
    calls = csms.calls()
    assert calls.index(stop) < calls.index(available), "Available reported before the stop"


async def test_free_charging_starts_once_the_meter_is_back(csms: Csms, control: Control) -> None:
    # An EV plugged in while the meter was down (no energy may flow unmeasured) charges once the
    # meter answers again: it stayed Preparing until it was replugged.
    await _ready(csms, BorneFreeCharging="true")
    assert (await control("fault", kind="meter_down"))["ok"]
    await csms.wait_call("StatusNotification", lambda p: p["errorCode"] == "PowerMeterFailure")
    await control("plug")
    await control("charge")
    await asyncio.sleep(1)
    assert not csms.calls("StartTransaction")
    assert (await control("fault", kind="clear"))["ok"]
    start = await csms.wait_call("StartTransaction", timeout=15)
    assert start.payload["idTag"] == "FREECHARGING"
    await control.wait_state(lambda s: s["relay"], "the relay to close")


async def test_a_triggered_meter_values_names_the_transaction_as_periodic_ones_do(
    csms: Csms, control: Control
) -> None:
    # A CSMS whose transaction ids are negative (an integer, as 1.6's schema has it): the
    # periodic MeterValues carried the id, a TriggerMessage(MeterValues)'s left it out, so the
    # CSMS could not book that reading on its transaction.
    import itertools

    csms.tx_ids = itertools.count(-7, -1)
    cp = await _ready(csms, MeterValueSampleInterval="1")
    tx = await _charging(csms, control)
    assert tx == -7
    await csms.wait_call("MeterValues", lambda p: p.get("transactionId") == tx)
    n = len(csms.frames)
    res = await cp.call(call.TriggerMessage(requested_message="MeterValues", connector_id=1))
    assert res.status == "Accepted"
    mv = await csms.wait_call(
        "MeterValues", lambda p: p["meterValue"][0]["sampledValue"][0].get("context") == "Trigger",
        after=n)
    assert mv.payload.get("transactionId") == tx, mv.payload
