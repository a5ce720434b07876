"""Security events (OCPP 1.6 security extension): what the charger detects reaches the CSMS as
SecurityEventNotification through the transaction message journal (never lost offline, in
order with the transaction messages), and is written to the security log on flash."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from borne.csms import Csms
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from flashdoc import read, seed
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.v16 import call, call_result
from simctl import Control, controlling, running

CP_ID = "CP-TEST-1"


def _events(csms: Csms) -> list[str]:
    return [f.payload["type"] for f in csms.calls("SecurityEventNotification")]


def _seclog(flash: Path) -> str:
    p = flash / "data" / "seclog.log"
    return p.read_text() if p.exists() else ""


async def _booted(csms: Csms):  # type: ignore[no-untyped-def]
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    return csms.charge_points[CP_ID]


async def test_startup_reset_and_reconfiguration(csms: Csms, control: Control, flash: Path
                                                 ) -> None:
    cp = await _booted(csms)
    await csms.wait_for(lambda: _events(csms) == ["StartupOfTheDevice"], 20, "StartupOfTheDevice")
    assert (await cp.call(call.ChangeConfiguration(key="AuthorizationKey",
                                                   value="A-new-key-0123456789"))).status == (
        "Accepted")
    await csms.wait_for(lambda: "ReconfigurationOfSecurityParameters" in _events(csms), 20,
                        "ReconfigurationOfSecurityParameters")
    ev = csms.calls("SecurityEventNotification")[-1].payload
    assert ev.get("techInfo") == "AuthorizationKey"
    assert (await cp.call(call.Reset(type="Soft"))).status == "Accepted"
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 30, "the reboot")
    await csms.wait_for(lambda: _events(csms)[-2:] == ["StartupOfTheDevice", "ResetOrReboot"],
                        20, "StartupOfTheDevice and ResetOrReboot after the reset")
    assert csms.calls("SecurityEventNotification")[-1].payload["techInfo"] == "Soft reset"
    log = _seclog(flash)
    for kind in ("StartupOfTheDevice", "ReconfigurationOfSecurityParameters", "ResetOrReboot"):
        assert kind in log
    assert "A-new-key-0123456789" not in log


async def test_events_made_offline_arrive_in_order_with_the_transactions(
    csms: Csms, control: Control
) -> None:
    cp = await _booted(csms)
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await cp.call(call.ChangeConfiguration(key="WebSocketPingInterval", value="1"))
    await csms.wait_for(lambda: _events(csms) == ["StartupOfTheDevice"], 20, "first startup")
    # ... and its answer read by the charger (else it is sent again: at least once).
    await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the queue empty")
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    n = len(csms.frames)
    await control("plug")
    await control("charge")
    await control.wait_state(lambda s: s["relay"], "charging offline")
    await control("power_cut")
    await control("power_on")  # still offline: StartupOfTheDevice and the PowerLoss stop queue
    await control.wait_state(lambda s: s["powered"] and not s["relay"], "rebooted", timeout=20)
    await control("net", up=True)
    await csms.wait_for(lambda: len(_events(csms)) >= 2, 40, "the second startup event")
    order = [f.action for f in csms.frames[n:] if f.direction == "in" and f.action in (
        "StartTransaction", "StopTransaction", "SecurityEventNotification")]
    # The stop of the session the power cut ended is journaled at boot before anything else.
    # The EV is still plugged in and asking: a new session starts after that stop (its
    # StartTransaction, the second, is left out of the order checked here).
    starts = [i for i, a in enumerate(order) if a == "StartTransaction"]
    assert len(starts) == 2 and starts[1] > order.index("StopTransaction"), order
    del order[starts[1]]
    assert order == ["StartTransaction", "StopTransaction", "SecurityEventNotification"], order
    assert _events(csms) == ["StartupOfTheDevice", "StartupOfTheDevice"]


async def test_a_csms_without_the_security_extension_holds_up_no_transaction(
    csms: Csms, flash: Path
) -> None:
    # Many 1.6 CSMSs answer SecurityEventNotification with a CALLERROR. Each event is then sent
    # once and dropped: the retries are the transaction messages' (1.6 4.10), and waiting them
    # out (60 s, then 120 s) held up the StartTransaction behind the boot's event.
    def refuse(payload: dict[str, object]) -> object:
        raise OcppNotImplemented("no security extension here")

    csms.respond("SecurityEventNotification", refuse)
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim, \
            controlling(sim) as control:
        await _booted(csms)
        await csms.wait_for(lambda: _events(csms) == ["StartupOfTheDevice"], 20, "the event")
        await control("plug")
        await control("charge")
        await control("tap", uid="04A1B2C3")
        await csms.wait_call("StartTransaction", timeout=10)
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the queue empty")
        assert _events(csms) == ["StartupOfTheDevice"], "a refused event is not sent again"


async def test_events_before_the_clock_is_set_carry_the_true_time(csms: Csms, flash: Path
                                                                  ) -> None:
    # The ESP32 board cold-boots at 2000-01-01: the boot's event is made before BootNotification
    # gives the time, and must not go out stamped 2000 (found against ts-ocpp).
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url, fitted=Fitted(board="esp32_wallbox"))
    async with running(sim):
        await _booted(csms)
        await csms.wait_for(lambda: "StartupOfTheDevice" in _events(csms), 30, "the event")
        ev = csms.calls("SecurityEventNotification")[0].payload
        stamp = datetime.strptime(ev["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 120, ev


async def test_bad_frames_clock_steps_and_updated_firmware(csms: Csms, flash: Path) -> None:
    seed(flash, "diag_boot", {"fw": "0.0.1-old"})
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim:
        cp = await _booted(csms)
        await csms.wait_for(lambda: "FirmwareUpdated" in _events(csms), 20, "FirmwareUpdated")
        fu = next(f.payload for f in csms.calls("SecurityEventNotification")
                  if f.payload["type"] == "FirmwareUpdated")
        assert fu["techInfo"].startswith("0.0.1-old -> ")
        for i in range(3):  # three bad frames: one event (throttled)
            await csms.call_raw(CP_ID, f'[2, "bad-{i}", "Reset", {{"type": "Warm"}}]', f"bad-{i}")
        await csms.wait_for(lambda: "InvalidMessages" in _events(csms), 20, "InvalidMessages")
        later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        csms.respond("Heartbeat", lambda p: call_result.Heartbeat(current_time=later))
        await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
        await csms.wait_for(lambda: "SettingSystemTime" in _events(csms), 20,
                            "SettingSystemTime")
        assert _events(csms).count("InvalidMessages") == 1
        assert sim.agent is not None


async def test_untrusted_csms_certificate_is_a_security_event(flash: Path, tmp_path: Path
                                                              ) -> None:
    from borne.sim.agent import Security
    from tlscerts import Ca, server_context

    ca = Ca()
    server = ca.issue("localhost", ("localhost",), valid_days=(-1, 30))
    csms = Csms()
    await csms.start(ssl_context=server_context(ca, server, tmp_path), url_host="localhost")
    try:
        stranger = Ca("someone else").write(tmp_path, "trusted")
        async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                                     security=Security(0, ca=stranger))) as sim:
            assert sim.agent is not None
            await sim.agent.wait_line(r"security event InvalidCentralSystemCertificate")
            n = len(sim.agent.all_lines)
            await sim.agent.wait_line(r"cannot connect", start=n)  # retried: one event a burst
            assert sum("InvalidCentralSystemCertificate" in ln for ln in sim.agent.all_lines) == 1
        assert "InvalidCentralSystemCertificate" in _seclog(flash)
        assert csms.calls() == []
    finally:
        await csms.stop()


async def test_a_cleared_security_log_is_reported(csms: Csms, control: Control, flash: Path
                                                  ) -> None:
    await _booted(csms)
    await csms.wait_for(lambda: _events(csms) == ["StartupOfTheDevice"], 20, "StartupOfTheDevice")
    await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "its answer read")
    await control("power_cut")
    (flash / "data" / "seclog.log").unlink()
    await control("power_on")
    await csms.wait_for(lambda: len(_events(csms)) >= 3, 30, "the events of the second boot")
    assert _events(csms) == ["StartupOfTheDevice", "SecurityLogWasCleared", "StartupOfTheDevice"]


async def test_a_rejected_certificate_signed_is_a_security_event(csms: Csms, sim: Simulator,
                                                                 flash: Path) -> None:
    # OCTT TC_077_CS: a CertificateSigned the charger rejects (no SignCertificate was sent, so no
    # key of its own awaits a certificate) is reported as InvalidChargePointCertificate, each
    # time (a certificate for another key: tests/test_csr.py).
    from cryptography.hazmat.primitives import serialization
    from tlscerts import Ca

    cp = await _booted(csms)
    await csms.wait_for(lambda: _events(csms) == ["StartupOfTheDevice"], 20, "StartupOfTheDevice")
    pem = Ca(CP_ID).cert.public_bytes(serialization.Encoding.PEM).decode()
    for n in (1, 2):
        res = await cp.call(call.CertificateSigned(certificate_chain=pem))
        assert res.status == "Rejected"
        await csms.wait_for(lambda n=n: _events(csms).count("InvalidChargePointCertificate") == n,
                            20, "InvalidChargePointCertificate")
    ev = csms.calls("SecurityEventNotification")[-1].payload
    assert "no SignCertificate" in ev["techInfo"]
    assert "InvalidChargePointCertificate" in _seclog(flash)


async def test_events_made_before_the_clock_is_set_survive_a_power_cut(flash: Path) -> None:
    # The ESP32 cold-boots at 2000-01-01: a new firmware's first boot, offline, made
    # FirmwareUpdated (a critical event, guaranteed delivery) before anything set the clock. A
    # power cut then must not lose it: the next boot no longer sees a version change.
    seed(flash, "diag_boot", {"fw": "0.0.1-old"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # the CSMS's, down at first: nothing sets the clock
    sim = Simulator(flash, cp_id=CP_ID, csms_url=f"ws://127.0.0.1:{port}/ocpp",
                    fitted=Fitted(board="esp32_wallbox"))
    sim.sntp.silent = True
    csms = Csms(heartbeat_interval=300)
    try:
        await sim.start()
        assert sim.agent is not None
        await sim.agent.wait_line(r"security event FirmwareUpdated: 0\.0\.1-old -> ", timeout=30)
        # the boot noted the new version (the cut comes after: the next boot sees no change)
        await sim.agent.wait_line(r"app: borne up", timeout=30)
        assert read(flash, "diag_boot")["fw"] != "0.0.1-old"
        await sim.agent.power_cut()
        await csms.start(port=port)
        sim.sntp.silent = False
        await sim.agent.power_on()
        await _booted(csms)
        await csms.wait_for(lambda: "FirmwareUpdated" in _events(csms), 30, "FirmwareUpdated")
        fu = next(f.payload for f in csms.calls("SecurityEventNotification")
                  if f.payload["type"] == "FirmwareUpdated")
        assert fu["techInfo"].startswith("0.0.1-old -> ")
    finally:
        await sim.stop()
        await csms.stop()
    assert not csms.violations, csms.violations
