"""OCPP security profiles 1, 2 and 3 each connect, with certificates the test makes; and the
charger refuses what it must refuse (bad credentials, a server certificate that is expired, for
another host or from an unknown CA, a profile lowered to ws://).

The CSMS is the `ocpp`-package one with TLS and an HTTP Basic check; the charger reaches it
through the simulator's network gate at `localhost`, the name in the server certificate.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import flashdoc
import pytest
from borne.csms import Csms
from borne.sim.agent import Security
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from conftest import BOTH_BOARDS
from ocpp.v16 import call
from simctl import running
from tlscerts import Ca, server_context

CP_ID = "CP-TEST-1"
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca()


async def _start(csms: Csms, flash: Path, security: Security, board: str = "unix_sim",
                 sntp: bool = True) -> Simulator:
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url, security=security,
                    fitted=Fitted(board=board))
    sim.sntp.silent = not sntp
    await sim.start()
    return sim


@pytest.fixture
async def stack() -> AsyncIterator[list[object]]:
    # Whatever a test starts goes here and is stopped at the end, agent log printed on failure.
    things: list[object] = []
    yield things
    for t in reversed(things):
        if isinstance(t, Simulator):
            await t.stop()
            print("---- agent log ----")
            print("\n".join(t.agent.all_lines if t.agent else []))
        elif isinstance(t, Csms):
            await t.stop()
            assert not t.violations, t.violations


async def _booted(csms: Csms) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)


async def test_profile_1_ws_with_basic_auth(flash: Path, stack: list[object]) -> None:
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start()
    stack.append(csms)
    assert csms.url.startswith("ws://")
    stack.append(await _start(csms, flash, Security(1, KEY)))
    await _booted(csms)
    assert csms.auth_results and all(ok for _, ok in csms.auth_results)


async def test_profile_1_wrong_key_is_refused_and_retried(flash: Path, stack: list[object]) -> None:
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start()
    stack.append(csms)
    sim = await _start(csms, flash, Security(1, "not-the-key"))
    stack.append(sim)
    assert sim.agent is not None
    await sim.agent.wait_line(r"cannot connect .*HTTP 401.*retry in \d+")
    n = len(sim.agent.all_lines)
    await sim.agent.wait_line(r"cannot connect .*HTTP 401", start=n, timeout=10)
    assert csms.auth_results and not any(ok for _, ok in csms.auth_results)
    assert not csms.calls()
    assert not [x for x in sim.agent.all_lines if "not-the-key" in x], "the key was logged"


async def test_a_new_authorization_key_is_used_at_once(flash: Path, stack: list[object]) -> None:
    # 1.6 security whitepaper, OCTT TC_073_CS: the charger accepts the new key, closes its link
    # and reconnects with the new password, a reconnection (no new BootNotification).
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start()
    stack.append(csms)
    stack.append(await _start(csms, flash, Security(1, KEY)))
    await _booted(csms)
    cp = csms.charge_points[CP_ID]
    new = "4F43415F4F4354545F61646D696E5F74657374"  # "OCA_OCTT_admin_test", hex: TC_073_CS's
    csms.basic_auth = {CP_ID: new}  # from now on only the new password is let in
    tried = len(csms.auth_results)
    res = await cp.call(call.ChangeConfiguration(key="AuthorizationKey", value=new))
    assert res.status == "Accepted"
    await csms.wait_for(lambda: csms.connects == 2 and csms.close_codes, 20,
                        "the reconnection with the new password")
    assert csms.close_codes == [(CP_ID, 1000)], "the first link ends with a normal closure"
    assert csms.auth_results[tried:] == [(CP_ID, True)], "one attempt, with the new password"
    cp = csms.charge_points[CP_ID]
    res = await cp.call(call.GetConfiguration(key=["SecurityProfile"]))
    assert res.configuration_key[0]["value"] == "1"
    assert len(csms.calls("BootNotification")) == 1, "a reconnection, not a reboot"


@BOTH_BOARDS
async def test_profile_2_tls_with_basic_auth(ca: Ca, tmp_path: Path, flash: Path,
                                             stack: list[object], board: str) -> None:
    # On the ESP32 board this is a cold boot: its clock starts at 2000-01-01 (the port's
    # epoch), so the certificate can only be checked once SNTP has given the time.
    ctx = server_context(ca, ca.issue("localhost", ("localhost", "127.0.0.1")), tmp_path)
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start(ssl_context=ctx, url_host="localhost")
    stack.append(csms)
    assert csms.url.startswith("wss://localhost:")
    sim = await _start(csms, flash, Security(2, KEY, ca=ca.write(tmp_path)), board)
    stack.append(sim)
    await _booted(csms)
    assert csms.auth_results and all(ok for _, ok in csms.auth_results)
    if board == "esp32_wallbox":
        assert sim.agent is not None
        await sim.agent.wait_line(r"clock: set from sntp")
        assert sim.sntp.requests >= 1
    # Profile 3 needs a client certificate this charger has not got: refused, not accepted
    # into a charger that could no longer connect
    res = await csms.charge_points[CP_ID].call(
        call.ChangeConfiguration(key="SecurityProfile", value="3"))
    assert res.status == "Rejected"


async def test_esp32_without_a_time_source_waits_for_one_before_wss(
        ca: Ca, tmp_path: Path, flash: Path, stack: list[object]) -> None:
    # Stated behaviour: with no time source answering, a cold ESP32 cannot check the CSMS's
    # certificate, so it does not connect over wss:// (never falls back, never trusts the
    # clock at 2000); it asks SNTP again at every connection attempt (the client's backoff) and
    # connects once a source answers.
    ctx = server_context(ca, ca.issue("localhost", ("localhost", "127.0.0.1")), tmp_path)
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start(ssl_context=ctx, url_host="localhost")
    stack.append(csms)
    sim = await _start(csms, flash, Security(2, KEY, ca=ca.write(tmp_path)), "esp32_wallbox",
                       sntp=False)
    stack.append(sim)
    assert sim.agent is not None
    await sim.agent.wait_line(r"no time from SNTP", timeout=30)
    await sim.agent.wait_line(r"clock not set \(2000-01-01T", timeout=30)
    assert not csms.calls()
    sim.sntp.silent = False
    await _booted(csms)
    await sim.agent.wait_line(r"clock: set from sntp")


async def test_profile_3_mutual_tls(ca: Ca, tmp_path: Path, flash: Path,
                                    stack: list[object]) -> None:
    ctx = server_context(ca, ca.issue("localhost", ("localhost",)), tmp_path, require_client=True)
    csms = Csms(client_cert_cn=True)
    await csms.start(ssl_context=ctx, url_host="localhost")
    stack.append(csms)
    cert, key = ca.issue(CP_ID, client=True).write(tmp_path, "client")
    stack.append(await _start(csms, flash,
                              Security(3, ca=ca.write(tmp_path), cert=cert, key=key)))
    await _booted(csms)
    assert csms.client_cns == [CP_ID]


@pytest.mark.parametrize("case", ["expired", "wrong-host", "unknown-ca", "no-client-cert"])
async def test_bad_certificates_are_refused(case: str, ca: Ca, tmp_path: Path, flash: Path,
                                            stack: list[object]) -> None:
    names = ("other.example",) if case == "wrong-host" else ("localhost",)
    days = (-10, -1) if case == "expired" else (-1, 30)
    server = ca.issue(names[0], names, valid_days=days)
    ctx = server_context(ca, server, tmp_path, require_client=case == "no-client-cert")
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start(ssl_context=ctx, url_host="localhost")
    stack.append(csms)
    trusted = Ca("someone else") if case == "unknown-ca" else ca
    sim = await _start(csms, flash, Security(2, KEY, ca=trusted.write(tmp_path, "trusted")))
    stack.append(sim)
    assert sim.agent is not None
    line = await sim.agent.wait_line(r"cannot connect to wss://localhost:\d+/ocpp: .*retry in")
    await sim.agent.wait_line(r"cannot connect", start=sim.agent.all_lines.index(line) + 1)
    assert csms.connects == 0 and not csms.calls()
    if case != "no-client-cert":  # the server never saw a request: the charger stopped first
        assert csms.auth_results == []


async def test_profile_2_never_falls_back_to_ws(ca: Ca, tmp_path: Path, flash: Path,
                                               stack: list[object]) -> None:
    # A ws:// URL at profile 2 is reached over wss:// (TC_083_CS); a CSMS that speaks only
    # clear WebSocket there gets a TLS handshake it cannot answer, never a request in clear.
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start(url_host="localhost")
    stack.append(csms)
    assert csms.url.startswith("ws://")
    sim = await _start(csms, flash, Security(2, KEY, ca=ca.write(tmp_path)))
    stack.append(sim)
    assert sim.agent is not None
    await sim.agent.wait_line(r"profile 2: the CSMS URL ws://localhost:\d+/ocpp over TLS: "
                              r"wss://localhost:\d+/ocpp")
    line = await sim.agent.wait_line(r"cannot connect .*retry in")
    await sim.agent.wait_line(r"cannot connect", start=sim.agent.all_lines.index(line) + 1)
    assert csms.connects == 0 and csms.auth_results == []


def _settings(flash: Path) -> dict[str, object]:
    return flashdoc.read(flash, "settings")


async def _profile(cp: object) -> str:
    res = await cp.call(call.GetConfiguration(key=["SecurityProfile"]))  # type: ignore[attr-defined]
    value: str = res.configuration_key[0]["value"]
    return value


def _port(csms: Csms) -> int:
    return int(csms.url.rsplit(":", 1)[1].split("/")[0])


async def _upgrade_on_plain_ws(ca: Ca, tmp_path: Path, flash: Path, stack: list[object],
                               tls: Csms | None = None) -> tuple[Csms, Simulator]:
    # A charger at profile 1 (its root certificate installed) whose CSMS listens on plain ws://
    # gets SecurityProfile 2: Accepted. Its wss:// attempts meet that same plain server, or
    # `tls` (the gate carries the next connections there).
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start(url_host="localhost")
    stack.append(csms)
    sim = await _start(csms, flash, Security(1, KEY, ca=ca.write(tmp_path)))
    stack.append(sim)
    await _booted(csms)
    if tls is not None:
        assert sim.gate is not None
        sim.gate.target = ("127.0.0.1", _port(tls))
    res = await csms.charge_points[CP_ID].call(
        call.ChangeConfiguration(key="SecurityProfile", value="2"))
    assert res.status == "Accepted"
    return csms, sim


async def test_upgrade_from_profile_1_to_2_reconnects_over_tls_at_once(
        ca: Ca, tmp_path: Path, flash: Path, stack: list[object]) -> None:
    # 1.6 security whitepaper (ed. 3) A05.FR.05-07, OCTT TC_083_CS without its Reset: a charger
    # on profile 1 over ws:// gets SecurityProfile 2 (its root certificate installed
    # beforehand), Accepted; it closes the link at once and reconnects to the same endpoint over
    # wss:// (the certificate checked, HTTP Basic as before), a reconnection, not a reboot.
    plain = Csms(basic_auth={CP_ID: KEY})
    await plain.start(url_host="localhost")
    stack.append(plain)
    ctx = server_context(ca, ca.issue("localhost", ("localhost", "127.0.0.1")), tmp_path)
    tls = Csms(basic_auth={CP_ID: KEY})
    await tls.start(ssl_context=ctx, url_host="localhost")
    stack.append(tls)
    sim = await _start(plain, flash, Security(1, KEY, ca=ca.write(tmp_path)))
    stack.append(sim)
    await _booted(plain)
    # The endpoint the charger knows (localhost:<plain's port>) now leads to the TLS server:
    # the network gate carries the next connections there (the link up keeps its own).
    assert sim.gate is not None
    sim.gate.target = ("127.0.0.1", _port(tls))
    res = await plain.charge_points[CP_ID].call(
        call.ChangeConfiguration(key="SecurityProfile", value="2"))
    assert res.status == "Accepted"
    await tls.wait_for(lambda: tls.connects == 1, 30, "the reconnection over wss://")
    await plain.wait_for(lambda: plain.close_codes, 10, "the end of the link in clear")
    assert plain.close_codes == [(CP_ID, 1000)], "the old link ends with a normal closure"
    assert plain.connects == 1, "no connection in clear after the upgrade"
    assert tls.auth_results and all(ok for _, ok in tls.auth_results)
    assert sim.agent is not None
    await sim.agent.wait_line(r"profile 2: the CSMS URL ws://localhost:\d+/ocpp over TLS")
    await sim.agent.wait_line(r"security profile 2 connected: kept")
    cp = tls.charge_points[CP_ID]
    assert await _profile(cp) == "2"
    assert not tls.calls("BootNotification"), "a reconnection, not a reboot"
    assert _settings(flash)["security_profile"] == 2
    assert _settings(flash)["profile_fallback"] == -1, "the upgrade is kept for good"

    def reconfigured() -> bool:  # sent on the old link, or on the new one once it is up
        return any(f.payload["type"] == "ReconfigurationOfSecurityParameters"
                   for c in (plain, tls) for f in c.calls("SecurityEventNotification"))

    await tls.wait_for(reconfigured, 20, "ReconfigurationOfSecurityParameters")
    # Once connected with it, never back (A05.FR.01, OCTT TC_084_CS)
    for value in ("1", "2"):
        res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value=value))
        assert res.status == "Rejected", value
    assert await _profile(cp) == "2"


@pytest.mark.parametrize("case", ["no-tls-listener", "untrusted-certificate"])
async def test_an_upgrade_that_cannot_connect_falls_back_to_the_old_profile(
        case: str, ca: Ca, tmp_path: Path, flash: Path, stack: list[object]) -> None:
    # A05.FR.08: the CSMS has no TLS listener there, or its certificate is not from the root
    # the charger has: the charger tries profile 2 (wss://) three times, then falls back to
    # profile 1 on ws:// by itself, reconnects (no new boot) and tells the CSMS why with a
    # security event. Lowering from outside stays refused.
    tls = None
    if case == "untrusted-certificate":
        other = Ca("someone else")
        tls = Csms(basic_auth={CP_ID: KEY})
        await tls.start(ssl_context=server_context(other, other.issue("localhost", ("localhost",)),
                                                   tmp_path), url_host="localhost")
        stack.append(tls)
    csms, sim = await _upgrade_on_plain_ws(ca, tmp_path, flash, stack, tls)
    assert sim.agent is not None
    line = await sim.agent.wait_line(
        r"SecurityProfile 2 could not connect \(TlsError TLS handshake .*\): back to 1", timeout=60)
    if sim.gate is not None and tls is not None:
        sim.gate.target = ("127.0.0.1", _port(csms))  # profile 1's endpoint: the plain one
    tries = [x for x in sim.agent.all_lines[:sim.agent.all_lines.index(line)]
             if re.search(r"cannot connect to ws://localhost:\d+/ocpp: TlsError TLS", x)]
    assert len(tries) == 2, tries  # the third one's line names the fallback
    await csms.wait_for(lambda: csms.connects == 2, 30, "the reconnection with profile 1")
    assert csms.close_codes[0] == (CP_ID, 1000)
    assert csms.auth_results and all(ok for _, ok in csms.auth_results)
    cp = csms.charge_points[CP_ID]
    assert await _profile(cp) == "1"
    ev = await csms.wait_call(
        "SecurityEventNotification",
        lambda p: p["type"] == "ReconfigurationOfSecurityParameters"
        and "back to 1" in p.get("techInfo", ""))
    assert "SecurityProfile 2 could not connect" in ev.payload["techInfo"]
    kinds = [f.payload["type"] for f in csms.calls("SecurityEventNotification")]
    # the failures' own event: a certificate refused is one (once per burst of failures)
    assert kinds.count("InvalidCentralSystemCertificate") == (tls is not None), kinds
    assert len(csms.calls("BootNotification")) == 1, "a reconnection, not a reboot"
    if tls is not None:
        assert tls.connects == 0 and tls.auth_results == [], "nothing sent to an unchecked CSMS"
    assert _settings(flash)["security_profile"] == 1
    assert _settings(flash)["profile_fallback"] == -1
    res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value="0"))
    assert res.status == "Rejected", "the fallback is internal: never lowered from outside"


async def test_a_power_cut_during_the_trial_does_not_strand_the_charger(
        ca: Ca, tmp_path: Path, flash: Path, stack: list[object]) -> None:
    # The trial is on flash with the new profile: cut in the middle of it, the charger boots,
    # tries profile 2 again and falls back to 1 as before, now with a BootNotification.
    csms, sim = await _upgrade_on_plain_ws(ca, tmp_path, flash, stack)
    assert sim.agent is not None
    await sim.agent.wait_line(r"security profile 2 on trial: 1 of 3 refused attempts", timeout=30)
    await sim.agent.power_cut()
    assert (_settings(flash)["security_profile"], _settings(flash)["profile_fallback"]) == (2, 1)
    n = len(sim.agent.all_lines)
    await sim.agent.power_on()
    await sim.agent.wait_line(r"profile 2: the CSMS URL ws://localhost:\d+/ocpp over TLS",
                              start=n)
    await sim.agent.wait_line(r"SecurityProfile 2 could not connect .*: back to 1", start=n,
                              timeout=60)
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 30,
                        "the boot on profile 1")
    assert csms.connects == 2
    assert await _profile(csms.charge_points[CP_ID]) == "1"
    assert _settings(flash)["profile_fallback"] == -1


def test_sim_command_line_security_options(tmp_path: Path) -> None:
    from borne.cli import build_parser
    from borne.sim.cli import security_from

    def parse(*argv: str) -> Security | None:
        return security_from(build_parser().parse_args(["sim", *argv]))

    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert parse() is None
    assert parse("--profile", "1", "--auth-key", "k") == Security(1, "k")
    assert parse("--ca", str(ca)) == Security(0, None, ca)
    for argv, words in [
        (("--profile", "2"), "needs --auth-key"),
        (("--profile", "3", "--ca", str(ca)), "needs --cert and --key"),
        (("--ca", str(tmp_path / "missing.pem")), "no such file"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse(*argv)


async def test_an_upgrade_to_3_whose_client_certificate_is_refused_falls_back_to_2(
        tmp_path: Path, flash: Path) -> None:
    # A05.FR.08 when the CSMS refuses the client certificate: a TLS 1.3 server closes once the
    # handshake is done (EPIPE at our request), which was a dead path retried every 1-2 s for
    # the trial's 10 minutes, with no fallback and no security event.
    import ssl

    ca, other = Ca(), Ca("a CA the CSMS does not trust")
    cert, key = ca.issue("localhost", ("localhost",)).write(tmp_path, "server")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is checked when one is given
    ctx.load_verify_locations(cafile=str(ca.write(tmp_path, "client-ca")))
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start(ssl_context=ctx, url_host="localhost")
    ccert, ckey = other.issue(CP_ID, client=True).write(tmp_path, "client")
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(2, KEY, ca=ca.write(tmp_path), cert=ccert, key=ckey))
    try:
        async with running(sim):
            await _booted(csms)
            cp = csms.charge_points[CP_ID]
            res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value="3"))
            assert res.status == "Accepted"
            assert sim.agent is not None
            await sim.agent.wait_line(r"SecurityProfile 3 could not connect .*: back to 2",
                                      timeout=45)
            await csms.wait_call("SecurityEventNotification",
                                 lambda p: p["type"] == "FailedToAuthenticateAtCentralSystem",
                                 timeout=30)
            assert await _profile(csms.charge_points[CP_ID]) == "2"
    finally:
        await csms.stop()
