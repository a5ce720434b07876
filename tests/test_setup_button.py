"""A claimed charger after a reboot: claim mode (hotspot/claim.py) stays out of the heap until the
owner presses the setup button, the home Wi-Fi is joined without it (station.py), and a long
press still opens claim mode (app.py `_Setup`); closed again (idle), it leaves the heap and the
next press opens it anew."""

from __future__ import annotations

import asyncio
import re

import pytest
from borne.claim import ProvisioningClient
from borne.csms import Csms
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from simctl import controlling
from test_claim import call, claim_options, claim_through_the_hotspot, hotspot_up

CP_ID = "CP-CLAIM-1"


async def test_claimed_charger_rejoins_wifi_and_loads_claim_mode_at_the_press(
    csms: Csms, flash: object
) -> None:
    sim = Simulator(flash, cp_id=CP_ID, claim=claim_options(idle_s=4))  # type: ignore[arg-type]
    await sim.start()
    try:
        await claim_through_the_hotspot(sim, csms)
        agent = sim.agent
        assert agent is not None
        boots = len(csms.calls("BootNotification"))
        await agent.power_cut()
        line0 = len(agent.all_lines)
        await agent.power_on()
        # Back online through the home Wi-Fi (the simulated route needs the station joined).
        await agent.wait_line(r"joined the home Wi-Fi", 30, start=line0)
        await csms.wait_for(lambda: len(csms.calls("BootNotification")) > boots, 30,
                            "the BootNotification after the power cut")
        assert not any("claim mode" in ln for ln in agent.all_lines[line0:])
        async with controlling(sim) as ctl:
            assert (await ctl("button", ms=3100))["ok"]  # long press: claim mode, still claimed
            st = await hotspot_up(ctl)
            assert st["hotspot"]["claimed"] is True
            ident = await call(ProvisioningClient(sim.hotspot_url).identity)
            assert ident["claimed"] is True and ident["cp_id"] == CP_ID
            # The charger stays online meanwhile (the hotspot keeps the station from here on).
            await asyncio.sleep(1.0)
            assert (await ctl("state"))["ocpp"]["connected"] is True
            # Idle, it closes and leaves the heap; the button is _Setup's again.
            line1 = len(agent.all_lines)
            await hotspot_up(ctl, open_=False)
            await agent.wait_line(r"claim mode over: out of the heap", 15, start=line1)
            assert (await ctl("button", ms=3100))["ok"]
            await hotspot_up(ctl)
            assert (await ctl("state"))["ocpp"]["connected"] is True
    finally:
        await sim.stop()


@pytest.mark.parametrize("again", [False, True], ids=["released", "pressed_again"])
async def test_a_9_s_press_released_while_the_loop_is_blocked_is_no_factory_reset(
    csms: Csms, flash: object, again: bool
) -> None:
    # The ESP32 board times a press by interrupt handlers that the port only schedules: with the
    # loop blocked across the release (a Wi-Fi scan, a TLS handshake: here the emulated chip's
    # stall), the release's handler runs late. A 9 s press must still be no factory reset (the
    # owner's charger wiped): the board counts a press only as long as it saw the pin held.
    # `again`: pressed again during the block and held past it (the pin reads pressed when the
    # handlers run): two presses, not one of 11 s.
    sim = Simulator(flash, cp_id=CP_ID, claim=claim_options(),  # type: ignore[arg-type]
                    fitted=Fitted(board="esp32_wallbox"))
    await sim.start()
    try:
        await claim_through_the_hotspot(sim, csms)
        agent = sim.agent
        assert agent is not None
        async with controlling(sim) as ctl:
            await hotspot_up(ctl, open_=False)
            boots = agent.boots
            line0 = len(agent.all_lines)
            assert (await ctl("button", ms=9000))["ok"]
            await asyncio.sleep(7.5)
            # blocked from 7.5 s to 10.5 s into the press: under the 5 s watchdog
            assert (await ctl("stall", ms=3000))["ok"]
            if again:
                await asyncio.sleep(2.0)
                assert (await ctl("button", ms=1500))["ok"]  # 9.5 s to 11 s
            line = await agent.wait_line(r"setup button held \d+ ms", 15, start=line0)
            m = re.search(r"held (\d+) ms", line)
            assert m is not None and int(m.group(1)) < 9000, line
            await asyncio.sleep(3)
            lines = agent.all_lines[line0:]
            assert not any("factory reset" in ln or "owner data wiped" in ln for ln in lines)
            assert agent.boots == boots
            assert (await ctl("state"))["hotspot"]["claimed"] is True
    finally:
        await sim.stop()
