"""WebSocket control frames from a real server (the `websockets` CSMS): a ping with a payload is
answered by a pong echoing it (RFC 6455 5.5.2/5.5.3), up to the 125-byte limit; the server's
answer to the charger's own close is not taken for a refusal."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from borne.csms import Csms
from borne.sim.simulator import Simulator
from flashdoc import seed
from ocpp.v16 import call
from simctl import controlling, running

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


async def test_a_link_the_charger_closes_itself_is_back_without_backoff(
    csms: Csms, flash: Path
) -> None:
    # A StartTransaction the CSMS ignores (while it answers a Heartbeat) is repeated on a new
    # connection: the charger closes the link itself (1000) and the CSMS answers its close. That
    # is no refusal by the CSMS: each reconnection comes after the base pause (1-2 s), not after
    # one that doubles (2-4 s for the second) as after a CSMS that keeps closing the link.
    seed(flash, "settings", {"call_timeout_s": 2})
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim, \
            controlling(sim) as control:
        assert sim.agent is not None
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        cp = csms.charge_points[CP_ID]
        for k, v in (("BorneFreeCharging", "true"), ("TransactionMessageRetryInterval", "1")):
            assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the boot's event answered")
        csms.unanswered["StartTransaction"] = 2  # (3 attempts: TransactionMessageAttempts)
        await control("plug")
        await control("charge")
        await csms.wait_for(lambda: len(csms.calls("StartTransaction")) >= 3, 60,
                            "the ignored StartTransaction sent three times")
        pause = r"link lost: .*; reconnect in (\d+) ms"
        lost = [x for x in sim.agent.all_lines if re.search(pause, x)]
        assert len(lost) >= 2, lost
        assert all(int(re.search(pause, x)[1]) <= 2000 for x in lost), lost  # type: ignore[index]
