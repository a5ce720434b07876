"""Local Auth List Management (OCA 042, 043): versions, Full and Differential updates, 1,000 tags
in one SendLocalList, and authorization from the list without asking the CSMS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from borne.csms import Csms
from borne.sim.simulator import Simulator
from ocpp.v16 import call, call_result
from simctl import Control

CP_ID = "CP-TEST-1"


async def _cp(csms: Csms) -> Any:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    return csms.charge_points[CP_ID]


def _entry(tag: str, status: str = "Accepted", expiry: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"status": status}
    if expiry:
        info["expiry_date"] = expiry
    return {"id_tag": tag, "id_tag_info": info}


def _raw_entry(tag: str) -> dict[str, Any]:
    return {"idTag": tag, "idTagInfo": {"status": "Accepted", "parentIdTag": "PARENT"}}


async def test_versions_full_and_differential(csms: Csms, control: Control) -> None:
    cp = await _cp(csms)
    assert (await cp.call(call.GetLocalListVersion())).list_version == 0
    res = await cp.call(call.SendLocalList(list_version=3, update_type="Full",
                                           local_authorization_list=[_entry("A"), _entry("B")]))
    assert res.status == "Accepted"
    assert (await cp.call(call.GetLocalListVersion())).list_version == 3
    res = await cp.call(call.SendLocalList(list_version=3, update_type="Differential",
                                           local_authorization_list=[_entry("C")]))
    assert res.status == "VersionMismatch"
    res = await cp.call(call.SendLocalList(list_version=4, update_type="Differential",
                                           local_authorization_list=[_entry("C")]))
    assert res.status == "Accepted"
    assert (await cp.call(call.GetLocalListVersion())).list_version == 4
    # 1.6: idTagInfo is required in a Full update; one entry without it fails the update, which
    # leaves the list as it was (an entry dropped in silence would leave a tag off the list)
    res = await cp.call(call.SendLocalList(list_version=5, update_type="Full",
                                           local_authorization_list=[_entry("D"),
                                                                     {"id_tag": "E"}]))
    assert res.status == "Failed"
    assert (await cp.call(call.GetLocalListVersion())).list_version == 4


async def test_version_of_an_empty_list_and_of_a_list_not_in_use(
    csms: Csms, control: Control
) -> None:
    """OCTT TC_042_2_CS: an empty list is version 0 whatever version its Full update carried
    (the Differential check still uses that version); TC_042_1_CS: with LocalAuthListEnabled
    false the list is not in use, -1."""
    cp = await _cp(csms)
    res = await cp.call(call.SendLocalList(list_version=1, update_type="Full"))
    assert res.status == "Accepted"
    assert (await cp.call(call.GetLocalListVersion())).list_version == 0
    res = await cp.call(call.SendLocalList(list_version=1, update_type="Differential",
                                           local_authorization_list=[_entry("C")]))
    assert res.status == "VersionMismatch", "1 is the list's version, empty or not"
    res = await cp.call(call.SendLocalList(list_version=2, update_type="Differential",
                                           local_authorization_list=[_entry("C")]))
    assert res.status == "Accepted"
    assert (await cp.call(call.GetLocalListVersion())).list_version == 2
    res = await cp.call(call.ChangeConfiguration(key="LocalAuthListEnabled", value="false"))
    assert res.status == "Accepted"
    assert (await cp.call(call.GetLocalListVersion())).list_version == -1
    res = await cp.call(call.ChangeConfiguration(key="LocalAuthListEnabled", value="true"))
    assert (await cp.call(call.GetLocalListVersion())).list_version == 2


async def test_a_list_sent_while_the_local_list_is_off_is_not_supported(
    csms: Csms, control: Control
) -> None:
    """OCTT TC_043_1_CS: a charger not using a local list answers SendLocalList NotSupported
    (as GetLocalListVersion answers -1, TC_042_1_CS). Accepted, the CSMS took the list for in
    force while no tap used it; the list kept is the one before."""
    cp = await _cp(csms)
    res = await cp.call(call.SendLocalList(list_version=2, update_type="Full",
                                           local_authorization_list=[_entry("A")]))
    assert res.status == "Accepted"
    res = await cp.call(call.ChangeConfiguration(key="LocalAuthListEnabled", value="false"))
    assert res.status == "Accepted"
    for kind in ("Full", "Differential"):
        res = await cp.call(call.SendLocalList(list_version=7, update_type=kind,
                                               local_authorization_list=[_entry("B")]))
        assert res.status == "NotSupported", kind
    res = await cp.call(call.ChangeConfiguration(key="LocalAuthListEnabled", value="true"))
    assert (await cp.call(call.GetLocalListVersion())).list_version == 2


async def _max_length(cp: Any, key: str) -> int:
    res = await cp.call(call.GetConfiguration(key=[key]))
    return int(res.configuration_key[0]["value"])


async def test_one_send_local_list_of_1000_tags(
    csms: Csms, sim: Simulator, control: Control, flash: Path
) -> None:
    """1,000 tags in one message (~75 KB: over the WebSocket's 16 KiB RAM limit, spooled to flash
    and streamed into the list); 1,001 fail and leave the list as it was."""
    cp = await _cp(csms)
    assert await _max_length(cp, "SendLocalListMaxLength") >= 1000
    assert await _max_length(cp, "LocalAuthListMaxLength") >= 1000
    tags = [_entry(f"T{i:05d}", expiry="2031-01-01T00:00:00Z") for i in range(1000)]
    res = await cp.call(call.SendLocalList(list_version=1, update_type="Full",
                                           local_authorization_list=tags))
    assert res.status == "Accepted"
    assert sim.agent is not None
    await sim.agent.wait_line(r"rpc: SendLocalList \S+: \d{5} bytes, read from flash")
    assert (await cp.call(call.GetLocalListVersion())).list_version == 1
    assert not (flash / "data" / "rx.spool").exists(), "the spool file is removed once handled"

    # 1,001 entries, updateType after the list (key order is the sender's choice): Failed
    too_many = [_raw_entry(f"U{i:05d}") for i in range(1001)]
    text = json.dumps([2, "sll-1001", "SendLocalList", {
        "listVersion": 2, "localAuthorizationList": too_many, "updateType": "Full"}])
    f = await csms.call_raw(CP_ID, text, "sll-1001", timeout=30)
    assert f.msg == [3, "sll-1001", {"status": "Failed"}]
    assert (await cp.call(call.GetLocalListVersion())).list_version == 1
    # nor may a Differential grow the list past LocalAuthListMaxLength
    res = await cp.call(call.SendLocalList(list_version=2, update_type="Differential",
                                           local_authorization_list=[_entry("ONE-TOO-MANY")]))
    assert res.status == "Failed"
    assert (await cp.call(call.GetLocalListVersion())).list_version == 1

    # The old list answers: a listed tag starts without an Authorize.req (LocalPreAuthorize,
    # AuthorizeRemoteTxRequests), a tag of the failed update is not listed.
    await cp.call(call.ChangeConfiguration(key="LocalPreAuthorize", value="true"))
    res = await cp.call(call.RemoteStartTransaction(id_tag="T00777", connector_id=1))
    assert res.status == "Accepted"
    await control("plug")
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == "T00777"
    assert not csms.calls("Authorize"), "a locally listed tag needs no Authorize.req"
    await control("unplug")
    await csms.wait_call("StopTransaction")
    res = await cp.call(call.RemoteStartTransaction(id_tag="U00000", connector_id=1))
    assert res.status == "Accepted"
    auth = await csms.wait_call("Authorize")
    assert auth.payload["idTag"] == "U00000", "not on the list: the CSMS is asked"


async def test_a_malformed_large_send_local_list_changes_nothing(
    csms: Csms, control: Control
) -> None:
    cp = await _cp(csms)
    res = await cp.call(call.SendLocalList(list_version=5, update_type="Full",
                                           local_authorization_list=[_entry("KEEP")]))
    assert res.status == "Accepted"
    entries = [_raw_entry(f"B{i:05d}") for i in range(600)]
    entries[432]["idTagInfo"]["status"] = "Sometimes"
    text = json.dumps([2, "bad-1", "SendLocalList", {
        "listVersion": 6, "localAuthorizationList": entries, "updateType": "Full"}])
    f = await csms.call_raw(CP_ID, text, "bad-1", timeout=30)
    assert f.msg[:3] == [4, "bad-1", "PropertyConstraintViolation"]
    assert "localAuthorizationList[432]" in f.msg[3]
    assert (await cp.call(call.GetLocalListVersion())).list_version == 5


async def test_local_pre_authorize_starts_without_asking_the_csms(
    csms: Csms, control: Control
) -> None:
    cp = await _cp(csms)
    await cp.call(call.SendLocalList(list_version=1, update_type="Full",
                                     local_authorization_list=[_entry("LOCAL1")]))
    await cp.call(call.ChangeConfiguration(key="LocalPreAuthorize", value="true"))
    res = await cp.call(call.RemoteStartTransaction(id_tag="LOCAL1", connector_id=1))
    assert res.status == "Accepted"
    await control("plug")
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == "LOCAL1"
    assert not csms.calls("Authorize"), "a locally listed tag needs no Authorize.req"


async def test_a_start_conf_contradicting_the_list_reports_local_list_conflict(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """1.6 3.5.2: the list says Accepted, the StartTransaction.conf Blocked: the charger stops
    the session and tells the CSMS with connector 0's status and errorCode LocalListConflict
    (once); the next list update clears it (NoError)."""
    cp = await _cp(csms)
    assert sim.agent is not None
    await sim.agent.wait_line(r"rfid: reader ready", 15)
    for key, value in (("LocalPreAuthorize", "true"), ("StopTransactionOnInvalidId", "true")):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"
    res = await cp.call(call.SendLocalList(list_version=1, update_type="Full",
                                           local_authorization_list=[_entry("04A1B2C3")]))
    assert res.status == "Accepted"
    csms.respond("StartTransaction", lambda p: call_result.StartTransaction(
        transaction_id=next(csms.tx_ids), id_tag_info={"status": "Blocked"}))
    # The stop's answer without idTagInfo (optional): one with it may reach the charger after
    # the list below and contradict that list too, a second conflict the test did not make.
    csms.respond("StopTransaction", lambda p: call_result.StopTransaction())
    await control("plug")
    await control("charge")
    await control("tap", uid="04A1B2C3")
    start = await csms.wait_call("StartTransaction")
    stop = await csms.wait_call("StopTransaction", timeout=15)
    assert stop.payload["reason"] == "DeAuthorized"
    conflict = await csms.wait_call(
        "StatusNotification", lambda p: p["connectorId"] == 0, after=csms.frames.index(start),
        timeout=10)
    assert conflict.payload["errorCode"] == "LocalListConflict"
    assert conflict.payload["status"] == "Available"
    n = len(csms.frames)
    res = await cp.call(call.SendLocalList(list_version=2, update_type="Full",
                                           local_authorization_list=[_entry("04A1B2C3",
                                                                            "Blocked")]))
    assert res.status == "Accepted"
    cleared = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 0,
                                   after=n, timeout=10)
    assert (cleared.payload["status"], cleared.payload["errorCode"]) == ("Available", "NoError")
    assert len([f for f in csms.calls("StatusNotification")
                if f.payload["errorCode"] == "LocalListConflict"]) == 1
