"""GetDiagnostics and GetLog: the charger writes its diagnostics (event log, agent log,
configuration without secrets, identity, heap and flash, faults) and uploads them to real
servers; DiagnosticsStatusNotification / LogStatusNotification tell the CSMS how it went; bad
locations and refusing servers get the spec's status and a log line; an upload a power cut
ends is reported failed after the boot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from borne.csms import Csms
from conftest import answers_while_resolving
from ocpp.v16 import call
from simctl import Control
from uploads import FTP_PASSWORD, ftp_server

CP_ID = "CP-TEST-1"


async def _booted(csms: Csms):  # type: ignore[no-untyped-def]
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    return csms.charge_points[CP_ID]


def _statuses(csms: Csms, action: str = "DiagnosticsStatusNotification") -> list[str]:
    return [f.payload["status"] for f in csms.calls(action)]


def _log_statuses(csms: Csms) -> list[list[object]]:
    return [[f.payload.get("requestId"), f.payload["status"]]
            for f in csms.calls("LogStatusNotification")]


async def test_get_diagnostics_uploads_to_ftp(csms: Csms, control: Control, sim,
                                              tmp_path: Path) -> None:
    cp = await _booted(csms)
    await control("plug")
    await control.wait_state(lambda s: s["ocpp"]["status"] == "Preparing", "Preparing")
    await control("unplug")
    await control.wait_state(lambda s: s["ocpp"]["status"] == "Available", "Available")
    with ftp_server(tmp_path / "ftp") as ftp:
        (tmp_path / "ftp" / "diag").mkdir()
        res = await cp.call(call.GetDiagnostics(location=ftp.url("/diag/")))
        assert res.file_name and res.file_name.startswith(CP_ID)
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms), 30, "Uploaded")
        assert _statuses(csms) == ["Uploading", "Uploaded"]
        files = ftp.files()
        assert [f.name for f in files] == [res.file_name]
        assert files[0].parent.name == "diag"
        text = files[0].read_text()
    for part in ("== identity", f"cp_id: {CP_ID}", "firmware:", "board: unix_sim", "heap:",
                 "flash:", "== OCPP configuration", "HeartbeatInterval", "== event log",
                 "plugged", "unplugged", "== agent log", "boot Accepted", "== last faults"):
        assert part in text, f"{part!r} missing from the diagnostics file"
    assert FTP_PASSWORD not in text
    assert FTP_PASSWORD not in "\n".join(sim.agent.all_lines)
    # TriggerMessage answers the current state: done, so Idle.
    n = len(csms.frames)
    assert (await cp.call(call.TriggerMessage(
        requested_message="DiagnosticsStatusNotification"))).status == "Accepted"
    f = await csms.wait_call("DiagnosticsStatusNotification", after=n)
    assert f.payload["status"] == "Idle"


async def test_diagnostics_window_filters_the_logs(csms: Csms, control: Control, tmp_path: Path
                                                   ) -> None:
    cp = await _booted(csms)
    with ftp_server(tmp_path / "ftp") as ftp:
        res = await cp.call(call.GetDiagnostics(
            location=ftp.url(), start_time="2001-01-01T00:00:00Z",
            stop_time="2001-01-02T00:00:00Z"))
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms), 30, "Uploaded")
        text = (ftp.root / res.file_name).read_text()
    ev = text.split("== event log\n", 1)[1].split("==", 1)[0]
    ag = text.split("== agent log\n", 1)[1].split("==", 1)[0]
    assert ev.strip() == "" and ag.strip() == "", "nothing happened in 2001"
    assert "== OCPP configuration" in text


async def test_wrong_ftp_password_fails_after_the_retries(csms: Csms, control: Control, sim,
                                                          tmp_path: Path) -> None:
    cp = await _booted(csms)
    with ftp_server(tmp_path / "ftp") as ftp:
        await cp.call(call.GetDiagnostics(location=ftp.url(password="wrong-one"), retries=2,
                                          retry_interval=1))
        await csms.wait_for(lambda: "UploadFailed" in _statuses(csms), 30, "UploadFailed")
        assert _statuses(csms) == ["Uploading", "Uploading", "UploadFailed"]
        assert ftp.files() == [] and [ok for _, ok in ftp.logins] == [False, False]
    await sim.agent.wait_line(r"upload 2/2 of .* to ftp://\*\*\*@127.0.0.1:\d+/ failed: "
                              r"FTP: login refused: 530")
    assert "wrong-one" not in "\n".join(sim.agent.all_lines)


async def test_a_refused_log_upload_says_permission_denied(csms: Csms, control: Control,
                                                          tmp_path: Path) -> None:
    """GetLog's LogStatusNotification tells a refused login (FTP 530) as PermissionDenied, the
    whitepaper's status for it, not the generic UploadFailure."""
    cp = await _booted(csms)
    with ftp_server(tmp_path / "ftp") as ftp:
        res = await cp.call(call.GetLog(log_type="SecurityLog", request_id=4, retries=1,
                                        log={"remoteLocation": ftp.url(password="wrong-one")}))
        assert res.status == "Accepted"
        await csms.wait_for(lambda: len(_statuses(csms, "LogStatusNotification")) == 2, 30,
                            "the final LogStatusNotification")
    assert _statuses(csms, "LogStatusNotification") == ["Uploading", "PermissionDenied"]


async def test_unreachable_server_and_bad_locations(csms: Csms, control: Control, sim,
                                                    tmp_path: Path) -> None:
    cp = await _booted(csms)
    # nothing listens there
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    await cp.call(call.GetDiagnostics(location=f"ftp://u:p@127.0.0.1:{port}/", retries=1))
    await csms.wait_for(lambda: "UploadFailed" in _statuses(csms), 30, "UploadFailed")
    await sim.agent.wait_line(r"upload 1/1 .* failed: ftp: OSError")
    for bad, why in (("gopher://127.0.0.1/x", "scheme gopher is not supported"),
                     ("ftp://u:p@127.0.0.1/../etc/", "path escapes its folder"),
                     ("ftp://u:p@127.0.0.1/a/%2e%2e/b/", "path escapes its folder")):
        n = len(csms.frames)
        res = await cp.call(call.GetDiagnostics(location=bad))
        assert res.file_name is None
        f = await csms.wait_call("DiagnosticsStatusNotification", after=n)
        assert f.payload["status"] == "UploadFailed"
        await sim.agent.wait_line("GetDiagnostics to .* refused: " + why)


async def test_upload_servers_named_by_host_name_are_asked_of_the_network_resolver(
        csms: Csms, control: Control, sim, tmp_path: Path) -> None:
    # The name goes to the network's resolver (net/dns.py on a UDP socket), never to
    # open_connection's getaddrinfo, which on the ESP32 holds the whole loop while the resolver
    # takes its time; a name that does not exist fails the upload like an unreachable server.
    from borne.sim.filesrv import FileServer

    cp = await _booted(csms)
    sim.dns.names["diag.borne.test"] = "127.0.0.1"
    with ftp_server(tmp_path / "ftp") as ftp:
        # FTP (control and passive data connections), the resolver slow to answer meanwhile.
        sim.dns.hold()
        res = await cp.call(call.GetDiagnostics(
            location=ftp.url("/").replace("127.0.0.1", "diag.borne.test")))
        await answers_while_resolving(cp, sim, "diag.borne.test")
        assert not ftp.logins, "no connection before the name is resolved"
        sim.dns.release()
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms), 30, "Uploaded")
        assert [f.name for f in ftp.files()] == [res.file_name]
    # HTTP PUT (GetLog) to a server by name.
    srv = FileServer(tmp_path / "www")
    await srv.start()
    try:
        sim.dns.queries.clear()
        url = srv.url("/upload/", host="diag.borne.test")
        res = await cp.call(call.GetLog(log_type="DiagnosticsLog", request_id=3,
                                        log={"remoteLocation": url}))
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms, "LogStatusNotification"),
                            30, "LogStatusNotification Uploaded")
        assert "diag.borne.test" in sim.dns.queries
        put = srv.requests("PUT")
        assert [p.path for p in put] == ["/upload/" + res.filename]
        assert put[0].headers.get("host") == f"diag.borne.test:{srv.ports['http']}"
    finally:
        await srv.stop()
    # A name the resolver does not know: UploadFailed, and the charger goes on.
    n = len(csms.frames)
    await cp.call(call.GetDiagnostics(location="ftp://u:p@nowhere.borne.test/", retries=1))
    f = await csms.wait_call("DiagnosticsStatusNotification",
                             lambda p: p["status"] == "UploadFailed", timeout=30, after=n)
    assert f.payload["status"] == "UploadFailed"
    await sim.agent.wait_line(r"upload 1/1 .* failed: FTP: cannot resolve nowhere.borne.test: "
                              r"name does not exist")
    assert "nowhere.borne.test" in sim.dns.queries
    conf = await cp.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert conf.configuration_key[0]["key"] == "HeartbeatInterval"


async def test_get_log_diagnostics_to_http_put(csms: Csms, control: Control, tmp_path: Path
                                               ) -> None:
    from borne.sim.filesrv import FileServer

    cp = await _booted(csms)
    srv = FileServer(tmp_path / "www")
    await srv.start()
    try:
        res = await cp.call(call.GetLog(log_type="DiagnosticsLog", request_id=7,
                                        log={"remoteLocation": srv.url("/upload/")}))
        assert res.status == "Accepted" and res.filename
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms, "LogStatusNotification"),
                            30, "LogStatusNotification Uploaded")
        frames = csms.calls("LogStatusNotification")
        assert [(f.payload["status"], f.payload.get("requestId")) for f in frames] == [
            ("Uploading", 7), ("Uploaded", 7)]
        put = srv.requests("PUT")
        assert len(put) == 1 and put[0].path == "/upload/" + res.filename
        text = (srv.root / "uploads" / res.filename).read_text()
        assert "== agent log" in text and f"cp_id: {CP_ID}" in text
        # ExtendedTriggerMessage LogStatusNotification: the current state, Idle once done.
        n = len(csms.frames)
        assert (await cp.call(call.ExtendedTriggerMessage(
            requested_message="LogStatusNotification"))).status == "Accepted"
        f = await csms.wait_call("LogStatusNotification", after=n)
        assert f.payload == {"status": "Idle"}
        # A refusing server (403): PermissionDenied after the retries, nothing stored there.
        res = await cp.call(call.GetLog(log_type="DiagnosticsLog", request_id=8, retries=2,
                                        retry_interval=0,
                                        log={"remoteLocation": srv.url("/status/403/")}))
        await csms.wait_for(
            lambda: "PermissionDenied" in _statuses(csms, "LogStatusNotification"), 30,
            "LogStatusNotification PermissionDenied")
        assert [f.payload["status"] for f in csms.calls("LogStatusNotification")][-3:] == [
            "Uploading", "Uploading", "PermissionDenied"]
        assert len(srv.requests("PUT")) == 3
        # An unknown scheme: Rejected at once.
        res = await cp.call(call.GetLog(log_type="SecurityLog", request_id=9,
                                        log={"remoteLocation": "tftp://127.0.0.1/x/"}))
        assert res.status == "Rejected"
    finally:
        await srv.stop()


async def test_security_log_over_https_checks_the_ca(csms: Csms, flash: Path, tmp_path: Path
                                                     ) -> None:
    from borne.sim.agent import Security
    from borne.sim.filesrv import FileServer, self_signed
    from borne.sim.simulator import Simulator
    from simctl import running

    ctx, ca = self_signed(tmp_path / "tls")
    srv = FileServer(tmp_path / "www", ssl_ctx=ctx)
    await srv.start()
    try:
        async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                                     security=Security(0, ca=ca))) as sim:
            cp = await _booted(csms)
            url = srv.url("/upload/", tls=True, host="localhost")
            res = await cp.call(call.GetLog(log_type="SecurityLog", request_id=1,
                                            log={"remoteLocation": url}))
            assert res.status == "Accepted"
            await csms.wait_for(lambda: "Uploaded" in _statuses(csms, "LogStatusNotification"),
                                30, "Uploaded")
            text = (srv.root / "uploads" / res.filename).read_text()
            assert "StartupOfTheDevice" in text.splitlines()[1]
            # An http:// location the server redirects to https:// (308, as a server forcing
            # TLS does): followed, the TLS context made then and checked against the same CA.
            url = srv.url("/tohttps/upload/", host="localhost")
            res = await cp.call(call.GetLog(log_type="SecurityLog", request_id=3, retries=1,
                                            log={"remoteLocation": url}))
            assert res.status == "Accepted"
            await csms.wait_for(lambda: [3, "Uploaded"] in _log_statuses(csms), 30,
                                "Uploaded after the redirect")
            assert (srv.root / "uploads" / res.filename).exists()
            assert [r.path for r in srv.requests("PUT")][-2:] == [
                "/tohttps/upload/" + res.filename, "/upload/" + res.filename]
            # A server whose certificate the charger's roots do not sign: refused.
            ctx2, _ = self_signed(tmp_path / "tls2")
            other = FileServer(tmp_path / "www2", ssl_ctx=ctx2)
            await other.start()
            try:
                res = await cp.call(call.GetLog(
                    log_type="SecurityLog", request_id=2, retries=1,
                    log={"remoteLocation": other.url("/upload/", tls=True, host="localhost")}))
                await csms.wait_for(
                    lambda: "UploadFailure" in _statuses(csms, "LogStatusNotification"), 30,
                    "UploadFailure")
                assert other.requests() == []
                assert sim.agent is not None
                await sim.agent.wait_line(r"upload 1/1 .* failed: https: TLS handshake")
            finally:
                await other.stop()
    finally:
        await srv.stop()


async def test_a_slow_upload_delays_no_relay_decision_nor_transaction_message(
        csms: Csms, control: Control, tmp_path: Path) -> None:
    cp = await _booted(csms)
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    with ftp_server(tmp_path / "ftp", rate=1000) as ftp:  # ~1 KB/s: the upload takes seconds
        await cp.call(call.GetDiagnostics(location=ftp.url()))
        await csms.wait_for(lambda: "Uploading" in _statuses(csms), 10, "Uploading")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await control("plug")
        await control("charge")
        await control.wait_state(lambda s: s["relay"], "the relay to close", timeout=5)
        closed = loop.time() - t0
        start = await csms.wait_call("StartTransaction", timeout=5)
        assert "Uploaded" not in _statuses(csms), "the upload was over too soon to prove this"
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms), 60, "Uploaded")
        done = next(f for f in csms.calls("DiagnosticsStatusNotification")
                    if f.payload["status"] == "Uploaded")
        assert start.t < done.t
    assert closed < 2.0, f"relay closed {closed:.2f} s after the EV asked, during an upload"


async def test_a_location_naming_a_file_is_the_file_name_answered(
        csms: Csms, control: Control, tmp_path: Path) -> None:
    """GetDiagnostics.conf's fileName (and GetLog's filename) is the name of the file uploaded:
    the location's own when it names a file, not the generated one."""
    cp = await _booted(csms)
    with ftp_server(tmp_path / "ftp") as ftp:
        res = await cp.call(call.GetDiagnostics(location=ftp.url("/my%20diag.txt")))
        assert res.file_name == "my diag.txt"
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms), 30, "Uploaded")
        (ftp.root / "sub").mkdir()
        lres = await cp.call(call.GetLog(log_type="SecurityLog", request_id=5,
                                         log={"remoteLocation": ftp.url("/sub/sec.log")}))
        assert lres.filename == "sec.log"
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms, "LogStatusNotification"), 30,
                            "log Uploaded")
        assert [p.relative_to(ftp.root).as_posix() for p in ftp.files()] == [
            "my diag.txt", "sub/sec.log"]


async def test_an_upload_that_ends_while_the_csms_link_is_down_is_reported_once_online(
        csms: Csms, control: Control, sim, tmp_path: Path) -> None:
    """The CSMS heard Uploading; the link goes down and the upload ends meanwhile (the upload
    does not go through the CSMS link): Uploaded reaches the CSMS once the link is back, instead
    of being dropped and leaving it waiting for ever."""
    cp = await _booted(csms)
    with ftp_server(tmp_path / "ftp", rate=1000) as ftp:  # ~1 KB/s: the upload takes seconds
        await cp.call(call.GetDiagnostics(location=ftp.url(), retries=1))
        await csms.wait_for(lambda: "Uploading" in _statuses(csms), 10, "Uploading")
        await control("net", up=False)
        await sim.agent.wait_line(r"uploaded to ftp://", timeout=60)
        assert len(ftp.files()) == 1
    await control("net", up=True)
    await csms.wait_for(lambda: "Uploaded" in _statuses(csms), 60, "Uploaded once online")
    assert _statuses(csms) == ["Uploading", "Uploaded"]


@pytest.mark.parametrize("log_request", [None, 17])
async def test_an_upload_a_power_cut_ends_is_reported_failed_after_the_boot(
        csms: Csms, control: Control, flash: Path, tmp_path: Path, log_request: int | None
) -> None:
    """GetDiagnostics (no request id) or GetLog (requestId 17) cut short by a power cut: the
    CSMS heard Uploading, and after the reboot it hears the failure (UploadFailed /
    UploadFailure with the request's id) instead of waiting for ever; the half-sent file is
    gone from flash."""
    cp = await _booted(csms)
    action = "DiagnosticsStatusNotification" if log_request is None else "LogStatusNotification"
    with ftp_server(tmp_path / "ftp", rate=1000) as ftp:  # ~1 KB/s: the upload takes seconds
        if log_request is None:
            await cp.call(call.GetDiagnostics(location=ftp.url()))
        else:
            res = await cp.call(call.GetLog(log_type="DiagnosticsLog", request_id=log_request,
                                            log={"remoteLocation": ftp.url()}))
            assert res.status == "Accepted"
        await csms.wait_for(lambda: "Uploading" in _statuses(csms, action), 10, "Uploading")
        scratch = list((flash / "data").glob("diag.out*"))
        assert scratch, "the file being uploaded is on flash"
        await control("power_cut")
        await control("power_on")
        await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 40,
                            "the boot after the power cut")
        final = await csms.wait_call(action, lambda p: p["status"] != "Uploading", timeout=30)
    if log_request is None:
        assert final.payload == {"status": "UploadFailed"}
    else:
        assert final.payload == {"status": "UploadFailure", "requestId": log_request}
    assert csms.frames.index(final) > csms.frames.index(csms.calls("BootNotification")[1])
    assert not [f for f in scratch if f.exists()], "the cut upload's file left on flash"


async def test_extended_trigger_message_for_every_message_it_lists(csms: Csms, control: Control
                                                                   ) -> None:
    cp = await _booted(csms)
    expect = {"Heartbeat": "Heartbeat", "MeterValues": "MeterValues",
              "StatusNotification": "StatusNotification",
              # the security whitepaper's MessageTriggerEnumType: the signed update's message
              "FirmwareStatusNotification": "SignedFirmwareStatusNotification",
              "LogStatusNotification": "LogStatusNotification"}
    for what, action in expect.items():
        n = len(csms.frames)
        res = await cp.call(call.ExtendedTriggerMessage(requested_message=what, connector_id=1
                                                        if what == "MeterValues" else None))
        assert res.status == "Accepted", what
        await csms.wait_call(action, after=n)
    # Already accepted: a BootNotification is not sent again.
    res = await cp.call(call.ExtendedTriggerMessage(requested_message="BootNotification"))
    assert res.status == "Rejected"
    # A new key pair's CSR (tests/test_csr.py), after the answer.
    n = len(csms.frames)
    res = await cp.call(call.ExtendedTriggerMessage(
        requested_message="SignChargePointCertificate"))
    assert res.status == "Accepted"
    await csms.wait_call("SignCertificate", after=n)
    # A connectorId the message has no use for is ignored (1.6 5.17, as TriggerMessage), the
    # message still sent; a connector's message for a connector there is not: Rejected.
    for what in ("Heartbeat", "FirmwareStatusNotification", "LogStatusNotification"):
        n = len(csms.frames)
        res = await cp.call(call.ExtendedTriggerMessage(requested_message=what, connector_id=5))
        assert res.status == "Accepted", what
        await csms.wait_call(expect[what], after=n)
    n = len(csms.frames)
    res = await cp.call(call.ExtendedTriggerMessage(
        requested_message="SignChargePointCertificate", connector_id=2))
    assert res.status == "Accepted"
    await csms.wait_call("SignCertificate", after=n)
    for what in ("StatusNotification", "MeterValues"):
        res = await cp.call(call.ExtendedTriggerMessage(requested_message=what, connector_id=2))
        assert res.status == "Rejected", what


async def test_http_post_only_server_and_basic_credentials(csms: Csms, control: Control) -> None:
    import base64

    from uploads import post_only_server

    cp = await _booted(csms)
    with post_only_server() as srv:
        res = await cp.call(call.GetDiagnostics(location=srv.url(cred="diag:Up-Pass-77")))
        await csms.wait_for(lambda: "Uploaded" in _statuses(csms), 30, "Uploaded")
        assert srv.methods == ["PUT", "POST"]
        assert srv.auth == ["Basic " + base64.b64encode(b"diag:Up-Pass-77").decode()]
        assert b"== agent log" in srv.bodies[f"/incoming/{res.file_name}"]


async def test_an_upload_a_new_request_cancels_ends_failed_under_its_own_id(
        csms: Csms, control: Control, tmp_path: Path) -> None:
    """One upload at a time: a GetLog while an upload runs cancels it (AcceptedCanceled,
    whitepaper N01.FR.11), and the cancelled one ends with a final status the CSMS hears (its
    GetLog's requestId: N01.FR.07/10; a GetDiagnostics' UploadFailed), not Uploading for ever."""
    cp = await _booted(csms)
    with ftp_server(tmp_path / "ftp", rate=300) as ftp:  # ~300 B/s: each upload takes a while
        await cp.call(call.GetDiagnostics(location=ftp.url(), retries=1))
        await csms.wait_for(lambda: "Uploading" in _statuses(csms), 10, "Uploading")
        res = await cp.call(call.GetLog(log_type="DiagnosticsLog", request_id=21, retries=1,
                                        log={"remoteLocation": ftp.url()}))
        assert res.status == "AcceptedCanceled"
        await csms.wait_for(lambda: [21, "Uploading"] in _log_statuses(csms), 10, "Uploading")
        res = await cp.call(call.GetLog(log_type="DiagnosticsLog", request_id=22, retries=1,
                                        log={"remoteLocation": ftp.url()}))
        assert res.status == "AcceptedCanceled"
        await csms.wait_for(lambda: [22, "Uploaded"] in _log_statuses(csms), 60, "Uploaded")
    assert _statuses(csms) == ["Uploading", "UploadFailed"]
    assert [s for r, s in _log_statuses(csms) if r == 21] == ["Uploading", "UploadFailure"]
    assert [s for r, s in _log_statuses(csms) if r == 22] == ["Uploading", "Uploaded"]
