"""The status light as the simulator's `state` shows it: colour, pattern and brightness follow
the connector's status."""

from __future__ import annotations

import asyncio

from borne import release
from borne.csms import Csms
from borne.sim.filesrv import FileServer
from borne.sim.simulator import Simulator
from cryptography.hazmat.primitives.asymmetric import rsa
from ocpp.v16 import call
from simctl import Control
from test_ota import NEW, _final, _update, charger, signing_key, slot_files, www

__all__ = ["charger", "signing_key", "slot_files", "www"]  # test_ota's fixtures, used here


async def test_led_follows_the_connector(control: Control, csms: Csms) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    # Online and available: green (the light shows cyan while the link is still coming up).
    st = await control.wait_state(lambda s: s["led"]["color"] == "00ff00", "available: green")
    assert st["led"] == {"color": "00ff00", "pattern": "solid", "brightness": 80}
    assert (await control("plug"))["ok"]
    st = await control.wait_state(lambda s: s["led"]["color"] == "0000ff", "preparing: blue")
    assert st["led"] == {"color": "0000ff", "pattern": "solid", "brightness": 80}
    assert (await control("fault", kind="pilot_short"))["ok"]
    st = await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "faulted: red")
    assert st["led"]["pattern"] == "fast_blink"


async def test_claim_look_never_hides_a_session_or_a_fault(control: Control, csms: Csms) -> None:
    # The setup button's hotspot open (the owner changing the home Wi-Fi): the claim look stands
    # in for an idle connector only; a session shows as a session and a tripped RCD as a fault.
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    await control.wait_state(lambda s: s["led"]["color"] == "00ff00", "available: green")
    assert (await control("button", ms=3100))["ok"]
    await control.wait_state(lambda s: (s.get("hotspot") or {}).get("open") is True, "hotspot")
    st = await control.wait_state(lambda s: s["led"]["color"] == "ff00ff", "idle: the claim look")
    assert st["led"]["pattern"] == "breathe"
    cp = csms.charge_points["CP-TEST-1"]
    res = await cp.call(call.RemoteStartTransaction(id_tag="APPTAG", connector_id=1))
    assert res.status == "Accepted"
    for cmd in ("plug", "charge"):
        assert (await control(cmd))["ok"]
    st = await control.wait_state(lambda s: s["relay"], "charging")
    st = await control.wait_state(lambda s: s["led"]["pattern"] == "breathe"
                                  and s["led"]["color"] == "0000ff", "charging: blue breathe")
    assert (await control("fault", kind="rcd"))["ok"]
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Faulted")
    st = await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "faulted: red")
    assert st["led"]["pattern"] == "fast_blink" and st["hotspot"]["open"] is True


async def test_a_firmware_installation_shows_the_update_look(
    csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
    signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]]
) -> None:
    # The connector held for an installation (Unavailable): the owner sees an update running,
    # not a charger out of order.
    _, ctl = charger
    (www.root / "fw.bin").write_bytes(
        release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
    seen: list[tuple[str, str, str]] = []

    async def watch() -> None:
        while True:
            st = await ctl("state")
            look = (st["led"]["color"], st["led"]["pattern"], st["ocpp"]["status"])
            if not seen or seen[-1] != look:
                seen.append(look)
            await asyncio.sleep(0.05)

    t = asyncio.create_task(watch())
    try:
        await _update(csms, www.url("fw.bin"))
        assert await _final(csms, timeout=90) == "Installed"
    finally:
        t.cancel()
    assert ("ffffff", "fast_breathe", "Unavailable") in seen, seen
