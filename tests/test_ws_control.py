"""WebSocket control frames from a real server (the `websockets` CSMS): a ping with a payload is
answered by a pong echoing it (RFC 6455 5.5.2/5.5.3), up to the 125-byte limit."""

from __future__ import annotations

import asyncio

from borne.csms import Csms
from borne.sim.simulator import Simulator

CP_ID = "CP-TEST-1"


async def test_pings_with_payloads_are_answered_with_their_payload(
    csms: Csms, sim: Simulator
) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    conn = csms.connections[CP_ID]
    for data in (b"", b"hello", bytes(range(125))):
        # websockets resolves the waiter only for a pong carrying this ping's payload
        waiter = await conn.ping(data)
        await asyncio.wait_for(waiter, 5)
    assert csms.connects == 1
