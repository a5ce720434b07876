"""Reconnecting to the CSMS: its name resolved by the charger's own DNS query, which never
holds the loop (MicroPython's open_connection would call getaddrinfo, which on the ESP32 waits
for the resolver: seconds, every attempt); a CSMS that refuses after reading our request, or
accepts the upgrade and closes at once, is backed off exponentially, not hit every 1-2 s."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from borne.csms import Csms
from borne.sim.options import Fitted, Runtime
from borne.sim.simulator import Simulator
from conftest import BOTH_BOARDS
from simctl import running
from websockets.asyncio.server import ServerConnection, serve

CP_ID = "CP-TEST-1"


@BOTH_BOARDS
async def test_the_csms_name_is_resolved_without_holding_the_loop(
    flash: Path, board: str
) -> None:
    csms = Csms()
    await csms.start(url_host="localhost")
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url, fitted=Fitted(board=board),
                    runtime=Runtime(stallwatch=board == "unix_sim"))
    sim.dns.silent = True  # the network's resolver is down
    try:
        async with running(sim):
            assert sim.agent is not None
            failed = r"cannot connect to ws://localhost:\d+/ocpp: DnsError the resolver did " \
                     r"not answer; retry in (\d+) ms"
            line = await sim.agent.wait_line(failed, timeout=30)
            assert int(re.search(failed, line)[1]) <= 2000, "a dead path: retried at the base"
            await sim.agent.wait_line(failed, start=sim.agent.all_lines.index(line) + 1)
            assert "localhost" in sim.dns.queries
            assert not csms.calls()
            if board == "unix_sim":  # (the stall watch runs on the unix_sim board)
                stall = sim.hw.telemetry.get("stall") or {}
                print("the loop's longest stall in the last second:", stall)
                assert stall.get("last_s_ms", 10**6) < 300, stall
            sim.dns.silent = False
            await csms.wait_call("BootNotification", timeout=15)
    finally:
        await csms.stop()


async def _close_after_upgrade(conn: ServerConnection) -> None:
    await conn.close(1008, "unknown charge point")


@pytest.mark.parametrize("refusal", ["close after the upgrade", "close after the request",
                                     "text not UTF-8 after the upgrade"])
async def test_a_csms_that_closes_at_once_is_backed_off(flash: Path, refusal: str) -> None:
    # Each pause at least doubles: 1-2 s, 2-4 s, 4-8 s (it was 1-2 s for ever: ~20 connects a
    # minute against a CSMS that sends 1008 for an unknown id, or a draining load balancer).
    connects = 0

    async def close_after_request(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connects
        connects += 1
        await r.readuntil(b"\r\n\r\n")
        w.close()

    async def upgrade_then_close(conn: ServerConnection) -> None:
        nonlocal connects
        connects += 1
        await _close_after_upgrade(conn)

    async def upgrade_then_bad_text(conn: ServerConnection) -> None:
        # A CSMS that fails the protocol (RFC 6455 8.1: the charger fails the link with 1007)
        nonlocal connects
        connects += 1
        conn.transport.write(b"\x81\x01\xff")
        await conn.wait_closed()

    if refusal != "close after the request":
        handler = upgrade_then_close if refusal == "close after the upgrade" else (
            upgrade_then_bad_text)
        server = await serve(handler, "127.0.0.1", 0,
                             subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        pause = r"link lost: .*; reconnect in (\d+) ms"
    else:
        server = await asyncio.start_server(close_after_request, "127.0.0.1", 0)
        pause = r"cannot connect to .*: WsClosed .*; retry in (\d+) ms"
    port = next(iter(server.sockets)).getsockname()[1]
    sim = Simulator(flash, cp_id=CP_ID, csms_url=f"ws://127.0.0.1:{port}/ocpp")
    try:
        async with running(sim):
            assert sim.agent is not None
            pauses: list[int] = []
            start = 0
            for _ in range(3):
                line = await sim.agent.wait_line(pause, timeout=20, start=start)
                start = sim.agent.all_lines.index(line) + 1
                pauses.append(int(re.search(pause, line)[1]))  # type: ignore[index]
            print(refusal, "pauses (ms):", pauses, "connects:", connects)
            for i, ms in enumerate(pauses):
                assert 1000 << i <= ms <= 2000 << i, pauses
            # A close after the request counts from its second in a row: the first may be a
            # network that came back resetting what hung on it (connect.py), retried at once.
            assert connects == 3 + (refusal == "close after the request"), connects
    finally:
        server.close()
