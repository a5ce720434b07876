"""An exact bill after a power cut (issue 11): the PowerLoss StopTransaction carries the meter's
register read at the next boot (it stood still while the charger was off), not the minute
checkpoint; its time is the last instant the charger knew the session was running, at the
start's resolution (ms) and never before it, and never before a MeterValues it sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from borne.chaos.ledger import has_ms, parse_time
from borne.csms import Csms
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from ocpp.v16 import call
from simctl import Control, controlling, running

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


def _registers(csms: Csms) -> list[int]:
    return [int(sv["value"]) for f in csms.calls("MeterValues") for mv in f.payload["meterValue"]
            for sv in mv["sampledValue"] if sv["measurand"] == "Energy.Active.Import.Register"]


@pytest.fixture
async def metered(csms: Csms, flash: Path) -> AsyncIterator[Control]:
    s = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    s.hw.energy_wh = 50_000.0  # a register well above 0: a meterStart of 0 bills all of it
    async with running(s), controlling(s) as c:
        yield c


@pytest.mark.parametrize("meter_down", [False, True], ids=["meter_slow", "meter_down"])
async def test_a_session_at_boot_starts_at_the_register_not_at_zero(
    csms: Csms, metered: Control, meter_down: bool
) -> None:
    # The EV plugged in and asking when the power returns (free charging): the session must
    # wait for the meter's first reading. It started at once with meterStart 0, and the bill
    # was the whole register (50 kWh for a few Wh); with the meter down, it charged unmetered.
    control = metered
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    assert (await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
            ).status == "Accepted"
    await control.wait_state(lambda s: s["meter"] and s["meter"]["ok"], "a reading")
    await control("power_cut")
    if meter_down:
        assert (await control("fault", kind="meter_down"))["ok"]
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    n = len(csms.frames)
    await control("power_on")
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=n,
                         timeout=30)
    if meter_down:
        await control.wait_state(lambda s: "PowerMeterFailure" in s["device_faults"],
                                 "the meter's failure", 15)
        assert not csms.calls("StartTransaction") and not (await control("state"))["relay"], (
            "a session started with no meter reading")
        assert (await control("fault", kind="clear"))["ok"]
    start = (await csms.wait_call("StartTransaction", timeout=30)).payload
    await control.wait_state(lambda s: s["relay"], "charging")
    await control("unplug")
    stop = (await csms.wait_call("StopTransaction", timeout=30)).payload
    assert start["meterStart"] >= 50_000, start
    assert 0 <= stop["meterStop"] - start["meterStart"] < 100, (start, stop)


async def test_a_meter_failing_mid_session_bills_its_last_good_reading(
    csms: Csms, control: Control
) -> None:
    # meterStop fell back to the session's minute checkpoint (0 Wh here), below the registers
    # the MeterValues had carried; and the failed meter's last power went on being sent.
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    # (Current.Offered: a value the charger has with the meter failed, so samples go on)
    for k, v in (("BorneFreeCharging", "true"), ("MeterValueSampleInterval", "1"),
                 ("MeterValuesSampledData",
                  "Energy.Active.Import.Register,Power.Active.Import,Current.Offered")):
        assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"
    await control("plug")
    await control("load", amps=32)
    await control("charge")
    start = (await csms.wait_call("StartTransaction")).payload
    await csms.wait_for(lambda: any(r >= start["meterStart"] + 10 for r in _registers(csms)),
                        30, "10 Wh reported")
    assert (await control("fault", kind="meter_down"))["ok"]
    await control.wait_state(lambda s: "PowerMeterFailure" in s["device_faults"]
                             and not s["relay"], "the failure, the relay open", 15)
    n = len(csms.calls("MeterValues"))
    await csms.wait_for(lambda: len(csms.calls("MeterValues")) >= n + 2, 10, "2 MeterValues")
    after = [sv for f in csms.calls("MeterValues")[n:] for mv in f.payload["meterValue"]
             for sv in mv["sampledValue"]]
    assert not [sv for sv in after if sv["measurand"] != "Current.Offered"
                and sv["measurand"] != "Power.Offered"], f"a failed meter's values: {after}"
    await control("unplug")
    stop = (await csms.wait_call("StopTransaction", timeout=30)).payload
    assert stop["meterStop"] >= max(_registers(csms)), (stop, max(_registers(csms)))


@pytest.fixture
async def pulsed(csms: Csms, flash: Path) -> AsyncIterator[Control]:
    s = Simulator(flash, cp_id=CP_ID, csms_url=csms.url, fitted=Fitted(meter_model="pulse"))
    async with running(s), controlling(s) as c:
        yield c


@pytest.mark.parametrize("how", ["power_cut", "soft_reset"])
async def test_an_s0_meters_register_never_runs_back_below_a_stop(
    csms: Csms, pulsed: Control, how: str
) -> None:
    # The S0 counter restarts at boot from its saved base, saved once a minute: the next
    # session's meterStart was below the last meterStop (29 Wh, then 0).
    control = pulsed
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    for k, v in (("BorneFreeCharging", "true"), ("MeterValueSampleInterval", "1")):
        assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"
    await control("plug")
    await control("load", amps=32)
    await control("charge")
    start = (await csms.wait_call("StartTransaction")).payload
    await control.wait_state(lambda s: s["energy_wh"] >= start["meterStart"] + 30, "30 Wh", 60)
    await csms.wait_for(lambda: any(r >= start["meterStart"] + 20 for r in _registers(csms)),
                        30, "20 Wh reported")
    if how == "power_cut":
        await control("power_cut")
        await control("power_on")
    else:
        assert (await cp.call(call.Reset(type="Soft"))).status == "Accepted"
    stop = (await csms.wait_call("StopTransaction", timeout=60)).payload
    assert stop["meterStop"] >= max(_registers(csms))
    start2 = (await csms.wait_call("StartTransaction", lambda p: p is not start, timeout=60,
                                   after=csms.frames.index(csms.calls("StopTransaction")[0]))
              ).payload
    assert start2["meterStart"] >= stop["meterStop"], (stop, start2)
