"""Power cuts at random instants of sessions (OCA 032, 034): after each, the next boot ends the
open session with PowerLoss; no transaction is lost, none is counted twice. The CSMS recognises
repeats by message id only (borne.csms), so a message re-sent after a cut must carry its first
id, byte for byte; the bill is exact (the stop never below a register already reported, its
time never before the start and at the start's resolution). Deterministic: a fixed seed."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from borne.chaos.ledger import judge
from borne.csms import Csms
from ocpp.v16 import call
from simctl import Control

CP_ID = "CP-TEST-1"
SEED = 20261121
ROUNDS = 10


async def test_power_cut_at_random_instants_loses_and_doubles_nothing(
    csms: Csms, control: Control
) -> None:
    rng = random.Random(SEED)
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await cp.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="1"))
    for _ in range(ROUNDS):
        await control.wait_state(lambda s: s["ocpp"]["connected"], "online", timeout=30)
        await control("plug")
        await control("charge")
        # The cut falls anywhere from the EV's first request to well into charging, or
        # while the EV is leaving.
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        if rng.random() < 0.3:
            await control("unplug")
            await asyncio.sleep(rng.uniform(0.0, 0.3))
        await control("power_cut")
        assert (await control("state"))["relay"] is False
        await control("unplug")
        await control("power_on")
    await control.wait_state(lambda s: s["ocpp"]["connected"], "online", timeout=30)
    # Everything queued reaches the CSMS.
    await csms.wait_for(
        lambda: len({f.payload["transactionId"] for f in csms.calls("StopTransaction")})
        >= len(csms.started),
        30, "every started transaction to be stopped",
    )
    await asyncio.sleep(1.0)  # anything sent twice would arrive now
    ledger = judge(csms, CP_ID)
    print(f"{ledger.figures()} in {ROUNDS} power cuts")
    assert not ledger.violations, "\n".join(ledger.violations)
    assert ledger.transactions >= 1
    reasons = Counter(f.payload["reason"] for f in csms.calls("StopTransaction"))
    assert set(reasons) <= {"PowerLoss", "EVDisconnected"}, reasons


async def test_an_ev_plugged_through_a_power_cut_charges_again(
    csms: Csms, control: Control
) -> None:
    """The power comes back with the EV still plugged in and asking: once the interrupted
    session is ended (PowerLoss), a new one starts by itself (free charging here; a plug or
    tap during that recovery is not forgotten)."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await control("plug")
    await control("charge")
    first = await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"], "the relay to close")
    n = len(csms.frames)
    await control("power_cut")
    await control("power_on")
    stop = await csms.wait_call("StopTransaction", after=n, timeout=30)
    assert stop.payload["reason"] == "PowerLoss"
    second = await csms.wait_call("StartTransaction", after=n, timeout=30)
    assert second.msg[1] != first.msg[1]
    await control.wait_state(lambda s: s["relay"], "the relay to close again", timeout=30)
