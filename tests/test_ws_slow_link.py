"""A slow link toward the charger (the network gate's down_rate): a message that takes longer to
arrive than the half-open watch allows for silence is no silence, and is answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

from borne.csms import Csms
from borne.sim.simulator import Simulator
from flashdoc import seed
from ocpp.v16 import call

CP_ID = "CP-TEST-1"


async def test_a_long_message_on_a_slow_link_is_not_taken_for_a_dead_link(
    csms: Csms, flash: Path
) -> None:
    # WebSocketPingInterval 1 s: 5 s without a frame is a half-open link (two intervals are
    # less). A 1,000-tag SendLocalList (~80 KB) at 8 KB/s takes ~10 s to arrive: bytes arrive
    # all along, so the link lives, and the list is taken.
    seed(flash, "ocpp_config", {"WebSocketPingInterval": 1})
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        assert sim.agent is not None and sim.gate is not None
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        cp = csms.charge_points[CP_ID]
        tags = [{"id_tag": f"T{i:05d}", "id_tag_info": {"status": "Accepted",
                                                         "expiry_date": "2031-01-01T00:00:00Z"}}
                for i in range(1000)]
        sim.gate.down_rate = 8000
        res = await asyncio.wait_for(cp.call(call.SendLocalList(
            list_version=7, update_type="Full", local_authorization_list=tags)), 28)
        sim.gate.down_rate = 0
        assert res.status == "Accepted"
        assert not [x for x in sim.agent.all_lines if "half-open" in x]
        assert csms.connects == 1
        assert (await cp.call(call.GetLocalListVersion())).list_version == 7
    finally:
        await sim.stop()
        print("\n".join(sim.agent.all_lines if sim.agent else []))
