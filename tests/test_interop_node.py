"""The charger against a CSMS on another stack: ocpp-rpc on Node.js (tests/nodecsms.py), its
strict mode checking every call and answer against the OCPP 1.6 schemas with its own
validator, over its own WebSocket library. A session the operator drives end to end, the
charger's WebSocket close at a soft reset, and not one frame its validator refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from conftest import BOTH_BOARDS
from nodecsms import NodeCsms
from simctl import Control, controlling, running

CP_ID = "CP-NODE-1"
TAG = "04A1B2C3"


@pytest.fixture
async def node() -> AsyncIterator[NodeCsms]:
    n = NodeCsms()
    await n.start()
    try:
        yield n
    finally:
        await n.stop()
    assert not n.violations(), "ocpp-rpc's strict mode refused frames:\n" + "\n".join(
        n.violations())


@BOTH_BOARDS
async def test_a_session_driven_by_a_node_csms(node: NodeCsms, board: str, tmp_path: Path
                                               ) -> None:
    charger = Simulator(tmp_path / "flash", cp_id=CP_ID, csms_url=node.url,
                        fitted=Fitted(board=board))
    async with running(charger) as sim, controlling(sim) as control:
        await _session(node, control)


async def _session(node: NodeCsms, control: Control) -> None:
    await node.wait_in("StatusNotification", lambda p: p["connectorId"] == 1)
    conf = await node.call("GetConfiguration", {})
    assert {"HeartbeatInterval", "MeterValueSampleInterval"} <= {
        k["key"] for k in conf["configurationKey"]}
    for key, value in (("MeterValueSampleInterval", "1"),
                       ("StopTxnSampledData", "Energy.Active.Import.Register")):
        res = await node.call("ChangeConfiguration", {"key": key, "value": value})
        assert res == {"status": "Accepted"}, (key, res)
    await control("plug")
    await control("charge")
    profile = {"chargingProfileId": 5, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
               "chargingProfileKind": "Relative", "chargingSchedule": {
                   "chargingRateUnit": "A",
                   "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]}}
    res = await node.call("RemoteStartTransaction",
                          {"connectorId": 1, "idTag": TAG, "chargingProfile": profile})
    assert res == {"status": "Accepted"}
    start = await node.wait_in("StartTransaction")
    assert start["idTag"] == TAG
    at = len(node.events)
    tx = (await node.wait(lambda e: e.get("method") == "StartTransaction", "its answer")
          )["answer"]["transactionId"]
    await node.wait_in("MeterValues", lambda p: p.get("transactionId") == tx, after=at)
    sched = await node.call("GetCompositeSchedule",
                            {"connectorId": 1, "duration": 60, "chargingRateUnit": "A"})
    assert sched["status"] == "Accepted"
    assert sched["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10
    res = await node.call("TriggerMessage",
                          {"requestedMessage": "StatusNotification", "connectorId": 1})
    assert res == {"status": "Accepted"}
    assert await node.call("RemoteStopTransaction", {"transactionId": tx}) == {
        "status": "Accepted"}
    stop = await node.wait_in("StopTransaction")
    assert stop["transactionId"] == tx and stop["reason"] == "Remote"
    assert stop["meterStop"] >= start["meterStart"] and stop["transactionData"]
    # A soft reset closes the link with 1001 (going away), then the charger boots again.
    at = len(node.events)
    assert await node.call("Reset", {"type": "Soft"}) == {"status": "Accepted"}
    closed = await node.wait(lambda e: e.get("ev") == "close", "the link closed", after=at)
    assert closed["code"] == 1001, closed
    await node.wait_in("BootNotification", after=at, timeout=30)
