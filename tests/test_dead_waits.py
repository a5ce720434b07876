"""No dead waits (issue 11): a tag in the local list starts the session by LocalAuthorizeOffline
within 9 s of the tap even when the link died with a call of the charger's still waiting for
its answer (the Authorize's timeout counts from the tap, not from when the link is free), and
within 1 s with LocalPreAuthorize. The offline decision is made in one place (auth.Auth)."""

from __future__ import annotations

import asyncio
from typing import Any

from borne.csms import Csms
from borne.sim.simulator import Simulator
from ocpp.v16 import call
from simctl import Control

CP_ID = "CP-TEST-1"
CARD = "04A1B2C3"


async def _listed(csms: Csms, sim: Simulator, **keys: str) -> Any:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    assert sim.agent is not None  # a tap before the reader polls is lost (test_taps.py)
    await sim.agent.wait_line(r"rfid: reader ready", 15)
    cp = csms.charge_points[CP_ID]
    for k, v in keys.items():
        assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"
    res = await cp.call(call.SendLocalList(
        list_version=1, update_type="Full",
        local_authorization_list=[{"idTag": CARD, "idTagInfo": {"status": "Accepted"}}]))
    assert res.status == "Accepted"
    return cp


async def _tap_behind_a_dead_call(csms: Csms, control: Control) -> float:
    # The CSMS swallows the next StatusNotification (the plug's Preparing): the charger's call
    # waits for an answer that never comes; then the link dies without the charger knowing.
    csms.unanswered["StatusNotification"] = 1
    n = len(csms.frames)
    await control("plug")
    await control("charge")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing", after=n)
    await control("net", up=False)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await control("tap", uid=CARD)
    await control.wait_state(lambda s: s["relay"], "the relay closed for the listed tag",
                             timeout=30)
    return loop.time() - t0


async def test_listed_tag_behind_a_call_on_a_dead_link_charges_within_9_s(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    await _listed(csms, sim)
    waited = await _tap_behind_a_dead_call(csms, control)
    print(f"tap to relay closed: {waited:.2f} s (LocalAuthorizeOffline, a call on a dead link)")
    assert waited <= 9.0, f"the tap waited {waited:.1f} s"


async def test_listed_tag_with_local_pre_authorize_charges_within_1_s(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    await _listed(csms, sim, LocalPreAuthorize="true")
    waited = await _tap_behind_a_dead_call(csms, control)
    print(f"tap to relay closed: {waited:.2f} s (LocalPreAuthorize, a call on a dead link)")
    assert waited <= 1.0, f"the tap waited {waited:.1f} s"


async def test_after_an_unanswered_authorize_the_next_tap_is_decided_offline_at_once(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    # The link dies unnoticed (no FIN: the watchdog needs two ping intervals, 60 s, to drop
    # it). A first tap's Authorize goes unanswered: decided offline after its 7 s. The next
    # tap on that link, the CSMS still silent, must not wait 7 s more: offline at once.
    await _listed(csms, sim)
    assert sim.agent is not None
    await control("plug")
    await control("charge")
    await control("net", up=False)
    loop = asyncio.get_running_loop()
    await control("tap", uid="0BADCAFE")  # unknown: refused offline, after the timeout
    await sim.agent.wait_line(r"Authorize failed", 15)
    await asyncio.sleep(1.0)  # (the reader's debounce: the first card gone)
    t0 = loop.time()
    await control("tap", uid=CARD)
    await control.wait_state(lambda s: s["relay"], "the relay closed for the listed tag",
                             timeout=30)
    waited = loop.time() - t0
    print(f"second tap to relay closed: {waited:.2f} s (the link silent since an Authorize)")
    assert waited <= 2.0, f"the tap waited {waited:.1f} s"
    assert not [x for x in sim.agent.all_lines if "half-open" in x]  # (the link still up)
