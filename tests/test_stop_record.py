"""A StopTransaction is journaled whatever its size: one carrying many StopTxnSampledData
readings of several measurands and phases (transactionData up to StopTransactionMaxMeterValues
of them) must reach the CSMS like any other, never be dropped for being long (OCPP 1.6 4.10:
transaction messages are delivered; a lost stop leaves the transaction open on the CSMS, its
energy never billed)."""

from __future__ import annotations

from borne.csms import Csms
from ocpp.v16 import call
from simctl import Control

CP_ID = "CP-TEST-1"
MEASURANDS = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage"


async def test_a_stop_with_a_long_transaction_data_is_delivered(
    csms: Csms, control: Control
) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    for k, v in (("MeterValueSampleInterval", "1"), ("MeterValuesSampledData", MEASURANDS),
                 ("StopTxnSampledData", MEASURANDS)):
        assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted", k
    assert (await cp.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1))
            ).status == "Accepted"
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    tx = int((await csms.answer_to(start))["transactionId"])
    await control.wait_state(lambda s: s["relay"], "the relay to close")
    await csms.wait_for(lambda: len(csms.calls("MeterValues")) >= 16, 40, "16 MeterValues")
    assert (await cp.call(call.RemoteStopTransaction(transaction_id=tx))).status == "Accepted"
    stop = (await csms.wait_call("StopTransaction", timeout=20)).payload
    assert stop["transactionId"] == tx and stop["reason"] == "Remote"
    data = stop.get("transactionData") or []
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End", contexts
    assert "Sample.Periodic" in contexts, contexts
    assert {sv["measurand"] for sv in data[-1]["sampledValue"]} == set(MEASURANDS.split(","))
