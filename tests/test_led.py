"""The status light as the simulator's `state` shows it: colour, pattern and brightness follow
the connector's status."""

from __future__ import annotations

from borne.csms import Csms
from simctl import Control


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
