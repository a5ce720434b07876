"""Local Auth List Management (OCA 042, 043): versions, Full and Differential updates, and
authorization from the list without asking the CSMS."""

from __future__ import annotations

from typing import Any

from borne.csms import Csms
from ocpp.v16 import call
from simctl import Control

CP_ID = "CP-TEST-1"


async def _cp(csms: Csms) -> Any:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    return csms.charge_points[CP_ID]


def _entry(tag: str, status: str = "Accepted") -> dict[str, Any]:
    return {"id_tag": tag, "id_tag_info": {"status": status}}


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


async def test_a_thousand_tags_in_updates_of_send_local_list_max_length(
    csms: Csms, control: Control
) -> None:
    cp = await _cp(csms)
    per = int((await cp.call(call.GetConfiguration(key=["SendLocalListMaxLength"])))
              .configuration_key[0]["value"])
    total = int((await cp.call(call.GetConfiguration(key=["LocalAuthListMaxLength"])))
                .configuration_key[0]["value"])
    assert total >= 1000
    first = [_entry(f"T{i:05d}") for i in range(per)]
    res = await cp.call(call.SendLocalList(list_version=1, update_type="Full",
                                           local_authorization_list=first))
    assert res.status == "Accepted"
    version = 1
    for start in range(per, 1000, per):
        version += 1
        part = [_entry(f"T{i:05d}") for i in range(start, min(start + per, 1000))]
        res = await cp.call(call.SendLocalList(list_version=version, update_type="Differential",
                                               local_authorization_list=part))
        assert res.status == "Accepted"
    too_many = [_entry(f"U{i:05d}") for i in range(per + 1)]
    res = await cp.call(call.SendLocalList(list_version=version + 1, update_type="Full",
                                           local_authorization_list=too_many))
    assert res.status == "Failed"
    more = [_entry("ONE-TOO-MANY")]
    res = await cp.call(call.SendLocalList(list_version=version + 1, update_type="Differential",
                                           local_authorization_list=more))
    assert res.status == "Failed", "the list must not grow past LocalAuthListMaxLength"
    assert (await cp.call(call.GetLocalListVersion())).list_version == version


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
