"""An exact bill after a power cut (issue 11): the PowerLoss StopTransaction carries the meter's
register read at the next boot (it stood still while the charger was off), not the minute
checkpoint; its time is the last instant the charger knew the session was running, at the
start's resolution (ms) and never before it, and never before a MeterValues it sent."""

from __future__ import annotations

from borne.chaos.ledger import has_ms, parse_time
from borne.csms import Csms
from ocpp.v16 import call
from simctl import Control

CP_ID = "CP-TEST-1"


async def test_power_loss_stop_bills_the_register_at_the_cut(csms: Csms, control: Control) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    for k, v in (("BorneFreeCharging", "true"), ("MeterValueSampleInterval", "2")):
        assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"
    await control("plug")
    await control("load", amps=32)
    await control("charge")
    start = (await csms.wait_call("StartTransaction")).payload
    first = (await control.wait_state(lambda s: s["relay"], "charging"))["energy_wh"]
    # Well under the minute checkpoint, but some Wh and a few MeterValues.
    await control.wait_state(lambda s: s["energy_wh"] >= first + 30, "30 Wh delivered", 30)
    await csms.wait_call("MeterValues")
    await control("power_cut")
    at_cut = (await control("state"))["energy_wh"]
    await control("power_on")
    stop = (await csms.wait_call("StopTransaction", timeout=30)).payload
    assert stop["reason"] == "PowerLoss"
    print(f"meterStart {start['meterStart']}, energy at the cut {at_cut:.1f} Wh, "
          f"meterStop {stop['meterStop']}")
    assert abs(stop["meterStop"] - at_cut) <= 2, (stop["meterStop"], at_cut)
    assert has_ms(stop["timestamp"]) and has_ms(start["timestamp"])
    assert parse_time(stop["timestamp"]) >= parse_time(start["timestamp"])
    last_mv = max(parse_time(mv["timestamp"]) for f in csms.calls("MeterValues")
                  for mv in f.payload["meterValue"])
    assert parse_time(stop["timestamp"]) >= last_mv
