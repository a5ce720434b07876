"""GetConfiguration / ChangeConfiguration (OCA 019, 021, 040_1/2), TriggerMessage (054, 055),
ClearCache (061), DataTransfer (062), UnlockConnector on a fixed cable (017_2, 018_2)."""

from __future__ import annotations

import asyncio
import json
import time

from borne.csms import Csms
from borne.sim.simulator import Simulator
from ocpp.v16 import call, call_result
from simctl import Control

CP_ID = "CP-TEST-1"
REQUIRED = {
    "AuthorizeRemoteTxRequests", "ClockAlignedDataInterval", "ConnectionTimeOut",
    "ConnectorPhaseRotation", "GetConfigurationMaxKeys", "HeartbeatInterval",
    "LocalAuthorizeOffline", "LocalPreAuthorize", "MeterValuesAlignedData",
    "MeterValuesSampledData", "MeterValueSampleInterval", "NumberOfConnectors", "ResetRetries",
    "StopTransactionOnInvalidId", "StopTxnAlignedData", "StopTxnSampledData",
    "SupportedFeatureProfiles", "TransactionMessageAttempts", "TransactionMessageRetryInterval",
    "UnlockConnectorOnEVSideDisconnect", "LocalAuthListEnabled", "LocalAuthListMaxLength",
    "SendLocalListMaxLength", "ChargeProfileMaxStackLevel",
    "ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods",
    "MaxChargingProfilesInstalled", "SupportedFileTransferProtocols",
}


async def _cp(csms: Csms):  # type: ignore[no-untyped-def]
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    return csms.charge_points[CP_ID]


async def test_get_configuration_lists_every_required_key(csms: Csms, sim: Simulator) -> None:
    cp = await _cp(csms)
    res = await cp.call(call.GetConfiguration())
    keys = {k["key"]: k for k in res.configuration_key}
    assert set(keys) >= REQUIRED, REQUIRED - set(keys)
    assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True,
                                          "value": "1"}
    assert "AuthorizationKey" not in keys, "a write-only key leaked"
    # 1.6 FirmwareManagement key (OCTT's diagnostics and firmware cases pick a server by it):
    # what net/ftp.py and net/http.py really speak
    assert keys["SupportedFileTransferProtocols"] == {
        "key": "SupportedFileTransferProtocols", "readonly": True, "value": "FTP,HTTP,HTTPS"}


async def test_get_configuration_by_name_reports_unknown_keys(csms: Csms, sim: Simulator) -> None:
    cp = await _cp(csms)
    res = await cp.call(call.GetConfiguration(key=["HeartbeatInterval", "NoSuchKey",
                                                    "AuthorizationKey", "connectionTIMEOUT"]))
    # Keys are CiString50: compared case-insensitively, answered as the charger spells them
    assert [k["key"] for k in res.configuration_key] == ["HeartbeatInterval", "ConnectionTimeOut"]
    assert set(res.unknown_key) == {"NoSuchKey", "AuthorizationKey"}


async def test_more_keys_than_get_configuration_max_keys_is_refused_not_cut(
    csms: Csms, sim: Simulator
) -> None:
    # 1.6 5.8: the charger MAY limit the keys of one request (GetConfigurationMaxKeys). Cut to
    # the limit, the keys past it were in neither list: the CSMS took them for answered.
    cp = await _cp(csms)
    most = int((await cp.call(call.GetConfiguration(key=["GetConfigurationMaxKeys"])))
               .configuration_key[0]["value"])
    keys = [f"BorneNoSuchKey{i}" for i in range(most)] + ["HeartbeatInterval"]
    f = await csms.call_raw(CP_ID, json.dumps([2, "many-1", "GetConfiguration", {"key": keys}]),
                            "many-1")
    assert f.msg[0] == 4 and f.msg[2] == "OccurenceConstraintViolation", f.raw
    # at the limit, every key is answered
    res = await cp.call(call.GetConfiguration(key=keys[1:]))
    assert [k["key"] for k in res.configuration_key] == ["HeartbeatInterval"]
    assert len(res.unknown_key) == most - 1


async def test_change_configuration_answers(csms: Csms, sim: Simulator) -> None:
    cp = await _cp(csms)
    cases = [
        ("MeterValueSampleInterval", "15", "Accepted"),
        ("MeterValueSampleInterval", "fifteen", "Rejected"),
        ("WebSocketPingInterval", "-1", "Rejected"),
        ("NumberOfConnectors", "2", "Rejected"),
        ("NoSuchKey", "1", "NotSupported"),
        ("LocalPreAuthorize", "maybe", "Rejected"),
        ("LightIntensity", "101", "Rejected"),
        ("AuthorizationKey", "0123456789abcdef0123", "Accepted"),
        ("MinimumStatusDuration", "30", "Accepted"),
        ("MinimumStatusDuration", "86401", "Rejected"),
        ("MinimumStatusDuration", "0", "Accepted"),
        ("MaxEnergyOnInvalidId", "500", "Accepted"),
        ("MaxEnergyOnInvalidId", "-1", "Rejected"),
        ("BlinkRepeat", "5", "Accepted"),
        ("BlinkRepeat", "101", "Rejected"),
        ("metervaluesampleinterval", "20", "Accepted"),  # CiString50: case-insensitive
        # goes out as StartTransaction's idTag (CiString20): a longer one lost the sessions
        ("BorneFreeChargingIdTag", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "Rejected"),
        ("BorneFreeChargingIdTag", "", "Rejected"),
        ("BorneFreeChargingIdTag", "GARAGE-FREE", "Accepted"),
        ("ConnectorPhaseRotation", "garbage", "Rejected"),
        ("ConnectorPhaseRotation", "1.XYZ", "Rejected"),
        ("ConnectorPhaseRotation", "5.RST", "Rejected"),  # no connector 5
        ("ConnectorPhaseRotation", "0.RST,1.STR", "Accepted"),
        # past an int32, or a time past the ticks' range on a charger: Rejected (accepted, a
        # ConnectionTimeOut of 2**70 overflowed every tap's start)
        ("ConnectionTimeOut", str(2**70), "Rejected"),
        ("ConnectionTimeOut", "600000", "Rejected"),
        ("ConnectionTimeOut", "86400", "Accepted"),
        ("TransactionMessageRetryInterval", "86401", "Rejected"),
        ("MeterValueSampleInterval", "2147483648", "Rejected"),
        ("MaxEnergyOnInvalidId", str(2**70), "Rejected"),
        ("ConnectionTimeOut", "60", "Accepted"),
        # the O of the charge point certificate's CSR (security whitepaper): X.509's bound on an
        # organization name is 64 characters (RFC 5280 ub-organization-name); a longer one made
        # a CSR a CA may refuse, long after the ChangeConfiguration was Accepted
        ("CpoName", "C" * 65, "Rejected"),
        ("CpoName", "Ä" * 64, "Accepted"),
        ("CpoName", "", "Accepted"),
    ]
    for key, value, want in cases:
        res = await cp.call(call.ChangeConfiguration(key=key, value=value))
        assert res.status == want, (key, value, res.status)
    res = await cp.call(call.GetConfiguration(key=["MeterValueSampleInterval"]))
    assert res.configuration_key[0]["value"] == "20"


async def test_a_connection_timeout_past_the_ticks_range_is_refused_and_taps_still_start(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """A ConnectionTimeOut of 2**70 s was Accepted, and every tap's start then overflowed (the
    card Accepted, no StartTransaction ever); one past ~6 days wrapped the ticks on a charger."""
    cp = await _cp(csms)
    res = await cp.call(call.ChangeConfiguration(key="ConnectionTimeOut", value=str(2**70)))
    assert res.status == "Rejected"
    csms.respond("Authorize", lambda p: call_result.Authorize(id_tag_info={"status": "Accepted"}))
    await control("plug")
    await control("charge")
    await control("tap", uid="04A1B2C3")
    await csms.wait_call("StartTransaction", timeout=15)


async def test_unlock_connector_on_ev_side_disconnect_is_read_write(
    csms: Csms, sim: Simulator
) -> None:
    """OCTT TC_019_CS: RW as 1.6's key table says; both values hold on a fixed cable (no lock)."""
    cp = await _cp(csms)
    key = "UnlockConnectorOnEVSideDisconnect"
    res = await cp.call(call.GetConfiguration(key=[key]))
    assert res.configuration_key == [{"key": key, "readonly": False, "value": "false"}]
    for value in ("true", "false", "true"):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"
        res = await cp.call(call.GetConfiguration(key=[key]))
        assert res.configuration_key[0]["value"] == value
    assert (await cp.call(call.ChangeConfiguration(key=key, value="maybe"))).status == "Rejected"
    full = {k["key"]: k for k in (await cp.call(call.GetConfiguration())).configuration_key}
    assert full[key] == {"key": key, "readonly": False, "value": "true"}


async def test_a_measurand_list_with_one_unsupported_entry_changes_nothing(
    csms: Csms, sim: Simulator
) -> None:
    cp = await _cp(csms)
    before = (await cp.call(call.GetConfiguration(key=["MeterValuesSampledData"])))
    res = await cp.call(call.ChangeConfiguration(
        key="MeterValuesSampledData", value="Energy.Active.Import.Register,SoC"))
    assert res.status == "Rejected"
    after = (await cp.call(call.GetConfiguration(key=["MeterValuesSampledData"])))
    assert after.configuration_key == before.configuration_key


async def test_a_measurand_may_name_one_phase(csms: Csms, sim: Simulator) -> None:
    """OCPP 1.6 9.1, MeterValuesSampledData: "Where applicable, the Measurand is combined with
    the optional phase; for instance: Voltage.L1". Such a list was Rejected whole (a CSMS that
    asks for Current.Import.L1..L3 kept the default readings); a phase the charger does not
    measure for that measurand (a neutral current, a per-phase power) is still Rejected."""
    cp = await _cp(csms)
    for value, want in (("Energy.Active.Import.Register,Current.Import.L1,Voltage.L2-N",
                         "Accepted"),
                        ("Voltage.L1,Current.Import.L3", "Accepted"),
                        ("Current.Import.N", "Rejected"),
                        ("Power.Active.Import.L1", "Rejected"),
                        ("Current.Import.L4", "Rejected"),
                        ("Energy.Active.Import.Register.L1", "Rejected")):
        res = await cp.call(call.ChangeConfiguration(key="StopTxnSampledData", value=value))
        assert res.status == want, (value, res.status)
    res = await cp.call(call.ChangeConfiguration(
        key="MeterValuesSampledData",
        value="Energy.Active.Import.Register,Current.Import.L1,Voltage.L2-N"))
    assert res.status == "Accepted"
    n = len(csms.frames)
    res = await cp.call(call.TriggerMessage(requested_message="MeterValues", connector_id=1))
    assert res.status == "Accepted"
    mv = await csms.wait_call("MeterValues", after=n)
    got = [(sv["measurand"], sv.get("phase"))
           for sv in mv.payload["meterValue"][0]["sampledValue"]]
    assert got == [("Energy.Active.Import.Register", None), ("Current.Import", "L1"),
                   ("Voltage", "L2-N")], got


async def test_configuration_survives_a_reboot(csms: Csms, sim: Simulator) -> None:
    cp = await _cp(csms)
    await cp.call(call.ChangeConfiguration(key="ConnectionTimeOut", value="42"))
    assert sim.agent is not None
    await sim.agent.power_cut()
    await sim.agent.power_on()
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 20, "the reboot")
    await csms.wait_for(lambda: CP_ID in csms.connections, 10, "the new connection")
    res = await csms.charge_points[CP_ID].call(call.GetConfiguration(key=["ConnectionTimeOut"]))
    assert res.configuration_key[0]["value"] == "42"


async def test_trigger_message_answers_first_then_sends(csms: Csms, sim: Simulator) -> None:
    cp = await _cp(csms)
    for what in ("StatusNotification", "Heartbeat", "MeterValues",
                 "DiagnosticsStatusNotification", "FirmwareStatusNotification"):
        n = len(csms.frames)
        res = await cp.call(call.TriggerMessage(requested_message=what, connector_id=1)
                            if what in ("StatusNotification", "MeterValues")
                            else call.TriggerMessage(requested_message=what))
        assert res.status == "Accepted", what
        sent = await csms.wait_call(what, after=n)
        conf = [i for i, f in enumerate(csms.frames) if i >= n and f.direction == "in"
                and not f.is_call]
        assert conf and conf[0] < csms.frames.index(sent), f"{what} came before the .conf"
    res = await cp.call(call.TriggerMessage(requested_message="BootNotification"))
    assert res.status == "Rejected"  # already accepted


async def test_trigger_message_for_a_connector_that_does_not_exist(
    csms: Csms, sim: Simulator
) -> None:
    """OCTT TC_055_CS: a connector's message for a connector there is not: Rejected. 1.6 5.17:
    a connectorId the requested message has no use for is ignored, the message still sent (a
    Heartbeat for connector 2 was Rejected)."""
    cp = await _cp(csms)
    for what in ("StatusNotification", "MeterValues"):
        res = await cp.call(call.TriggerMessage(requested_message=what, connector_id=2))
        assert res.status == "Rejected", what
    for what in ("Heartbeat", "DiagnosticsStatusNotification", "FirmwareStatusNotification"):
        n = len(csms.frames)
        res = await cp.call(call.TriggerMessage(requested_message=what, connector_id=2))
        assert res.status == "Accepted", what
        await csms.wait_call(what, after=n)


async def test_clear_cache_and_data_transfer(csms: Csms, sim: Simulator) -> None:
    cp = await _cp(csms)
    assert (await cp.call(call.ClearCache())).status == "Accepted"
    res = await cp.call(call.DataTransfer(vendor_id="someone.else", message_id="x", data="y"))
    assert res.status == "UnknownVendorId"
    res = await cp.call(call.DataTransfer(vendor_id="borne", message_id="logbook",
                                          data='{"km": 12345}'))
    assert res.status == "Accepted"


async def test_data_transfer_ids_are_case_insensitive(csms: Csms, sim: Simulator) -> None:
    """1.6 DataTransfer.req: vendorId (CiString255) and messageId (CiString50) compare without
    regard to case; a CSMS writing "Borne" got UnknownVendorId."""
    cp = await _cp(csms)
    res = await cp.call(call.DataTransfer(vendor_id="Borne", message_id="LogBook", data="x"))
    assert res.status == "Accepted"
    res = await cp.call(call.DataTransfer(vendor_id="BORNE", message_id="nosuchthing"))
    assert res.status == "UnknownMessageId"
    res = await cp.call(call.DataTransfer(vendor_id="borneX", message_id="logbook"))
    assert res.status == "UnknownVendorId"


async def test_unlock_connector(csms: Csms, sim: Simulator) -> None:
    """OCTT TC_017_2_CS: a fixed cable has no lock to release (TC_031_CS: nor has connector 2)."""
    cp = await _cp(csms)
    assert (await cp.call(call.UnlockConnector(connector_id=1))).status == "NotSupported"
    assert (await cp.call(call.UnlockConnector(connector_id=2))).status == "NotSupported"


async def test_unlock_connector_during_a_session_changes_nothing(
    csms: Csms, control: Control
) -> None:
    """OCTT TC_018_2_CS, 1.6 5.18: a fixed cable has no lock, so NotSupported, and nothing
    happens: the transaction is finished "first" only before an unlock that takes place, and
    UnlockConnector "SHOULD NOT be used to remotely stop a running transaction"."""
    cp = await _cp(csms)
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await control("plug")
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    await csms.answer_to(start)
    await control.wait_state(lambda s: s["relay"], "charging")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Charging")
    n = len(csms.frames)
    assert (await cp.call(call.UnlockConnector(connector_id=1))).status == "NotSupported"
    # (a Heartbeat's round trip: whatever the unlock set off has reached the CSMS by then)
    await asyncio.sleep(1)
    await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
    await csms.wait_call("Heartbeat", after=n)
    assert not csms.calls("StopTransaction")
    assert not [f for f in csms.frames[n:] if f.action == "StatusNotification"]
    assert (await control("state"))["relay"] is True


async def test_authorization_key_goes_to_the_settings_once_and_never_back(
    csms: Csms, sim: Simulator
) -> None:
    cp = await _cp(csms)
    key = "f00dcafe" * 4
    # An upgrade the charger could not connect with is refused: profile 1 needs the key first
    res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value="1"))
    assert res.status == "Rejected", "profile 1 without an AuthorizationKey"
    res = await cp.call(call.ChangeConfiguration(key="AuthorizationKey", value=key))
    assert res.status == "Accepted"
    data = sim.flash / "data"
    assert key in (data / "settings.json").read_text()
    assert key not in (data / "ocpp_config.json").read_text() if (
        data / "ocpp_config.json").exists() else True
    full = await cp.call(call.GetConfiguration())
    assert key not in str(full.configuration_key)
    assert sim.agent is not None and not any(key in line for line in sim.agent.all_lines)
    connects = csms.connects
    res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value="1"))
    assert res.status == "Accepted"
    # the charger reconnects with the new profile at once (the key as its Basic password)
    await csms.wait_for(lambda: csms.connects > connects, 20, "the reconnection with profile 1")
    cp = csms.charge_points[CP_ID]
    res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value="1"))
    assert res.status == "Rejected", "the profile in use, set again (A05.FR.01)"
    res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value="0"))
    assert res.status == "Rejected", "the security profile is never lowered"
    res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value="2"))
    # The ws:// endpoint is no obstacle (profile 2 reaches it over wss://), the missing root is
    assert res.status == "Rejected", "profile 2 with no CentralSystemRootCertificate"
    assert (await cp.call(call.GetConfiguration(key=["SecurityProfile"]))).configuration_key[0][
        "value"] == "1"


async def test_minimum_status_duration_reports_only_a_status_that_held(
    csms: Csms, control: Control
) -> None:
    """MinimumStatusDuration (OCTT TC_023_CS sets 10): a status goes out once it has held that
    long; one that changes back within it is never reported; 0 reports at once."""
    cp = await _cp(csms)
    res = await cp.call(call.ChangeConfiguration(key="MinimumStatusDuration", value="3"))
    assert res.status == "Accepted"

    def statuses(n: int) -> list[str]:
        return [f.payload["status"] for f in csms.calls("StatusNotification")
                if f.payload["connectorId"] == 1 and csms.frames.index(f) >= n]

    n = len(csms.frames)
    await control("plug")
    t0 = time.monotonic()
    await control.wait_state(lambda s: s["ocpp"]["status"] == "Preparing", "Preparing")
    await control("unplug")  # back to Available within the 3 s
    await control.wait_state(lambda s: s["ocpp"]["status"] == "Available", "Available")
    await asyncio.sleep(max(0.0, 5 - (time.monotonic() - t0)))  # the duration passes
    await cp.call(call.GetConfiguration(key=["MinimumStatusDuration"]))  # the worker still answers
    assert statuses(n) == [], "a status that changed back within the duration was reported"

    n = len(csms.frames)
    await control("plug")
    t0 = time.monotonic()
    await control.wait_state(lambda s: s["ocpp"]["status"] == "Preparing", "Preparing")
    f = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=n)
    assert f.payload["status"] == "Preparing"
    assert f.t - t0 >= 2.9, "reported before it held MinimumStatusDuration"

    res = await cp.call(call.ChangeConfiguration(key="MinimumStatusDuration", value="0"))
    n = len(csms.frames)
    await control("unplug")
    t0 = time.monotonic()
    f = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=n)
    assert f.payload["status"] == "Available" and f.t - t0 < 2
