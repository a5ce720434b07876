"""OCPP security profiles 1, 2 and 3 each connect, with certificates the test makes; and the
charger refuses what it must refuse (bad credentials, a server certificate that is expired, for
another host or from an unknown CA, a profile lowered to ws://).

The CSMS is the `ocpp`-package one with TLS and an HTTP Basic check; the charger reaches it
through the simulator's network gate at `localhost`, the name in the server certificate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from borne.csms import Csms
from borne.sim.agent import Security
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from conftest import BOTH_BOARDS
from ocpp.v16 import call
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


async def test_upgrade_from_profile_1_to_2_connects_over_tls(
        ca: Ca, tmp_path: Path, flash: Path, stack: list[object]) -> None:
    # OCTT TC_083_CS: a charger on profile 1 over ws:// gets SecurityProfile 2 (its root
    # certificate installed beforehand), Accepted; after the Hard Reset it connects to the same
    # endpoint over wss:// (the certificate checked, HTTP Basic as before) and never in clear.
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
    cp = plain.charge_points[CP_ID]
    res = await cp.call(call.ChangeConfiguration(key="SecurityProfile", value="2"))
    assert res.status == "Accepted"
    # The endpoint the charger knows (localhost:<plain's port>) now leads to the TLS server:
    # the network gate carries the next connections there.
    assert sim.gate is not None
    sim.gate.target = ("127.0.0.1", int(tls.url.rsplit(":", 1)[1].split("/")[0]))
    res = await cp.call(call.Reset(type="Hard"))
    assert res.status == "Accepted"
    await _booted(tls)
    assert tls.auth_results and all(ok for _, ok in tls.auth_results)
    assert plain.connects == 1, "no connection in clear after the upgrade"
    assert sim.agent is not None
    await sim.agent.wait_line(r"profile 2: the CSMS URL ws://localhost:\d+/ocpp over TLS")
    res = await tls.charge_points[CP_ID].call(call.GetConfiguration(key=["SecurityProfile"]))
    assert res.configuration_key[0]["value"] == "2"


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
