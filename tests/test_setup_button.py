"""A claimed charger after a reboot: claim mode (hotspot/claim.py) stays out of the heap until the
owner presses the setup button, the home Wi-Fi is joined without it (station.py), and a long
press still opens claim mode (app.py `_Setup`); closed again (idle), it leaves the heap and the
next press opens it anew."""

from __future__ import annotations

import asyncio

from borne.claim import ProvisioningClient
from borne.csms import Csms
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
