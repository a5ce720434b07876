"""The first end-to-end path: the charger boots, connects, registers and reports its connectors.

OCPP 1.6 section 4.2 / 5 (BootNotification): nothing but BootNotification before Accepted;
Pending and Rejected retry after `interval`; Accepted gives the heartbeat interval and the time;
StatusNotification for connector 0 and every connector follows; a reconnect is no reboot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from borne.csms import Csms, now_iso
from borne.sim.simulator import Simulator
from conftest import BOTH_BOARDS
from ocpp.v16 import call, call_result
from ocpp.v16.enums import RegistrationStatus

CP_ID = "CP-TEST-1"  # the id the sim fixture gives the charger


def _calls(csms: Csms) -> list[str]:
    return [f.action or "" for f in csms.calls()]


@asynccontextmanager
async def _rejected_first(csms: Csms, flash: Path, interval: int) -> AsyncIterator[None]:
    # A charger running while it lasts, whose first BootNotification the CSMS answers Rejected
    # (retry after `interval`), the next Accepted.
    answers = iter([RegistrationStatus.rejected, RegistrationStatus.accepted])
    csms.respond(
        "BootNotification",
        lambda p: call_result.BootNotification(
            current_time=now_iso(), interval=interval, status=next(answers)
        ),
    )
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        yield
    finally:
        await sim.stop()


async def _second_boot(csms: Csms) -> None:
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) >= 2, 15, "a second boot")


@BOTH_BOARDS
async def test_boot_accepted_then_status_of_both_connectors(csms: Csms, sim: Simulator) -> None:
    boot = await csms.wait_call("BootNotification")
    assert boot.cp_id == CP_ID
    assert boot.payload["chargePointVendor"] == "borne"
    assert boot.payload["chargePointModel"]
    s0 = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 0)
    s1 = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    assert s0.payload["status"] == "Available" and s0.payload["errorCode"] == "NoError"
    assert s1.payload["status"] == "Available"
    names = _calls(csms)
    assert names[0] == "BootNotification"
    assert names.index("StatusNotification") > 0


async def test_both_boot_statuses_come_before_the_queued_messages(
    csms: Csms, sim: Simulator
) -> None:
    """1.6 4.2: after BootNotification Accepted, the StatusNotification of connector 0 and of
    every connector; the boot's SecurityEventNotification (StartupOfTheDevice, queued before
    the boot was accepted) waits for both, it does not cut in between them."""
    await csms.wait_for(lambda: csms.calls("SecurityEventNotification"), 20, "StartupOfTheDevice")
    assert _calls(csms)[:4] == ["BootNotification", "StatusNotification", "StatusNotification",
                                "SecurityEventNotification"], _calls(csms)


async def test_heartbeat_interval_and_clock_come_from_the_boot_answer(
    csms: Csms, flash: Path
) -> None:
    # The CSMS says it is 2031: the charger's timestamps follow the CSMS clock, not its own.
    csms.respond(
        "BootNotification",
        lambda p: call_result.BootNotification(
            current_time="2031-03-04T05:06:07Z", interval=1, status=RegistrationStatus.accepted
        ),
    )
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        status = await csms.wait_call("StatusNotification")
        assert status.payload["timestamp"].startswith("2031-03-04T05:06:0")
        first = await csms.wait_call("Heartbeat")
        second = await csms.wait_call("Heartbeat", after=csms.frames.index(first) + 1)
        gap = second.t - first.t
        assert 0.7 <= gap <= 3.0, f"heartbeats {gap:.2f} s apart with an interval of 1 s"
    finally:
        await sim.stop()


async def test_rejected_boot_sends_nothing_else_and_retries_after_interval(
    csms: Csms, flash: Path
) -> None:
    async with _rejected_first(csms, flash, 1):
        await _second_boot(csms)
        first, second = csms.calls("BootNotification")[:2]
        assert second.t - first.t >= 0.9, "retried before the interval the CSMS gave"
        between = [f.action for f in csms.calls() if first.t < f.t < second.t]
        assert between == [], f"sent {between} while Rejected"
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)


async def test_a_rejected_charger_answers_no_call_until_accepted(
    csms: Csms, flash: Path
) -> None:
    # OCPP 1.6 4.2: "While Rejected, the Charge Point SHALL NOT respond to any Central System
    # initiated message". Once Accepted it answers again.
    async with _rejected_first(csms, flash, 3):
        await csms.answer_to(await csms.wait_call("BootNotification"))
        n = len(csms.frames)
        await csms.send_raw(CP_ID, '[2, "while-rejected", "GetConfiguration", {}]')
        await _second_boot(csms)
        answered = [f for f in csms.frames[n:] if f.direction == "in" and f.msg[0] in (3, 4)]
        assert answered == [], f"answered while Rejected: {answered}"
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        f = await csms.call_raw(CP_ID, '[2, "after-accepted", "GetConfiguration", {}]',
                                "after-accepted")
        assert f.msg[0] == 3, f.msg


async def test_a_trigger_while_pending_brings_the_boot_notification_forward(
    csms: Csms, flash: Path
) -> None:
    # 1.6 4.2: no BootNotification before the interval Pending gave, "unless requested to do so
    # with a TriggerMessage.req": the trigger's goes out at once, and it is the one retry (no
    # second one when the interval runs out).
    answers = iter([(RegistrationStatus.pending, 5), (RegistrationStatus.accepted, 1)])

    def boot(p: object) -> call_result.BootNotification:
        status, interval = next(answers)
        return call_result.BootNotification(current_time=now_iso(), interval=interval,
                                            status=status)

    csms.respond("BootNotification", boot)
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        first = await csms.wait_call("BootNotification")
        await csms.answer_to(first)
        res = await csms.charge_points[CP_ID].call(
            call.TriggerMessage(requested_message="BootNotification"))
        assert res.status == "Accepted"
        asked = time.monotonic()
        await csms.wait_for(lambda: len(csms.calls("BootNotification")) >= 2, 10, "a second boot")
        second = csms.calls("BootNotification")[1]
        assert second.t - asked < 2, "the triggered BootNotification waited for the interval"
        # Heartbeats (1 s) until well past the Pending interval: no further BootNotification.
        await csms.wait_for(
            lambda: any(f.t > first.t + 7 for f in csms.calls("Heartbeat")), 15,
            "heartbeats past the Pending interval")
        assert len(csms.calls("BootNotification")) == 2, _calls(csms)
    finally:
        await sim.stop()


async def test_pending_boot_initiates_nothing_until_accepted(csms: Csms, flash: Path) -> None:
    answers = iter([RegistrationStatus.pending, RegistrationStatus.pending,
                    RegistrationStatus.accepted])
    csms.respond(
        "BootNotification",
        lambda p: call_result.BootNotification(
            current_time=now_iso(), interval=1, status=next(answers)
        ),
    )
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        await csms.wait_call("StatusNotification")
        names = _calls(csms)
        assert names[:3] == ["BootNotification"] * 3, names
    finally:
        await sim.stop()


async def test_pending_charger_refuses_a_remote_start(csms: Csms, flash: Path) -> None:
    # OCPP 1.6 4.2: RemoteStartTransaction is not allowed while the charger is Pending; a CSMS
    # that sends one anyway starts no session (and no StartTransaction waits for Accepted).
    pending = True
    csms.respond(
        "BootNotification",
        lambda p: call_result.BootNotification(
            current_time=now_iso(), interval=1,
            status=RegistrationStatus.pending if pending else RegistrationStatus.accepted),
    )
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        await csms.wait_call("BootNotification")
        await sim.command({"cmd": "plug"})
        res = await csms.charge_points[CP_ID].call(call.RemoteStartTransaction(id_tag="04A1B2C3"))
        assert res.status == "Rejected"
        pending = False
        await csms.wait_call("StatusNotification")
        res = await csms.charge_points[CP_ID].call(call.RemoteStartTransaction(id_tag="04A1B2C3"))
        assert res.status == "Accepted"
        start = await csms.wait_call("StartTransaction")
        assert len(csms.calls("StartTransaction")) == 1, start
    finally:
        await sim.stop()


@pytest.mark.parametrize("interval", ['"300"', "300.0", None])
async def test_an_accepted_boot_with_a_loosely_typed_interval_registers(
    csms: Csms, flash: Path, interval: str | None
) -> None:
    # A backend on loosely typed JSON (PHP, JavaScript: "300", 300.0), or one leaving the
    # interval out, still answered Accepted: the charger is registered and reports at once. It
    # took the answer as not understood and booted again every minute, for ever on such a CSMS:
    # never a status, a start or a stop delivered.
    csms.unanswered["BootNotification"] = 1  # answered below, by hand
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        boot = await csms.wait_call("BootNotification")
        body = f'"currentTime": "{now_iso()}", "status": "Accepted"'
        if interval is not None:
            body += f', "interval": {interval}'
        await csms.send_raw(CP_ID, f'[3, "{boot.msg[1]}", {{{body}}}]')
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=10)
        assert len(csms.calls("BootNotification")) == 1, _calls(csms)
        res = await csms.charge_points[CP_ID].call(
            call.GetConfiguration(key=["HeartbeatInterval"]))
        # its number taken where it gave one; else the interval kept (the default, a day)
        want = "86400" if interval is None else "300"
        assert res.configuration_key[0]["value"] == want, res
    finally:
        await sim.stop()


async def test_reconnect_without_reboot_sends_no_new_boot(csms: Csms, sim: Simulator) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    await csms.connections[CP_ID].close()
    await csms.wait_for(lambda: csms.connects >= 2, 20, "the charger to reconnect")
    await csms.wait_for(lambda: CP_ID in csms.connections, 5, "the new connection")
    assert len(csms.calls("BootNotification")) == 1


async def test_power_cycle_boots_again(csms: Csms, sim: Simulator) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    assert sim.agent is not None
    await sim.agent.power_cut()
    await sim.agent.power_on()
    await csms.wait_for(
        lambda: len(csms.calls("BootNotification")) == 2, 20, "a boot after power on"
    )


async def test_unreachable_csms_is_retried_with_backoff(flash: Path) -> None:
    # Reserve a port, keep nothing on it: the charger must log, back off and keep trying.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    sim = Simulator(flash, cp_id=CP_ID, csms_url=f"ws://127.0.0.1:{port}/ocpp")
    await sim.start()
    csms = Csms()
    try:
        assert sim.agent is not None
        await sim.agent.wait_line(r"cannot connect to ws://127\.0\.0\.1:\d+/ocpp: .*retry in \d+")
        n = len(sim.agent.all_lines)
        await sim.agent.wait_line(r"cannot connect", start=n, timeout=10)
        assert sim.agent.running, "the agent stopped instead of retrying"
        # The CSMS comes up where the charger expects it: it gets there on its own.
        await csms.start(port=port)
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)
    finally:
        await sim.stop()
        await csms.stop()
    assert not csms.violations


async def test_csms_that_closes_at_once_is_retried(csms: Csms, flash: Path) -> None:
    csms.close_at_once = 2
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=40)
        assert sim.agent is not None
        lost = [line for line in sim.agent.all_lines if "link lost" in line]
        assert len(lost) >= 2, lost
        assert csms.connects == 3
    finally:
        await sim.stop()


async def test_corrupt_state_files_fall_back_and_boot(csms: Csms, flash: Path) -> None:
    data = flash / "data"
    data.mkdir(parents=True)
    (data / "settings.json").write_bytes(b"B1 9 1 deadbeef 40\n{not json at all" + bytes(range(40)))
    (data / "ocpp_config.json").write_bytes(b"\x00" * 100)
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        assert sim.agent is not None
        warned = [x for x in sim.agent.all_lines if x.startswith("W store: settings")]
        assert warned, "no log line about the corrupt settings file"
    finally:
        await sim.stop()


async def test_boot_timestamps_are_utc_now(csms: Csms, sim: Simulator) -> None:
    s = await csms.wait_call("StatusNotification")
    ts = datetime.fromisoformat(s.payload["timestamp"].replace("Z", "+00:00"))
    assert abs((ts - datetime.now(UTC)).total_seconds()) < 10
