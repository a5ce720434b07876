"""Update Charge Point Certificate by request of the Central System (1.6 security whitepaper;
OCTT TC_074_CS, and TC_077_CS's event): at security profile 3 the CSMS triggers
SignChargePointCertificate, the charger makes a new P-256 key pair and sends a CSR the host's
`cryptography` reads and finds well signed, with the charge point's serial number as CN and
CpoName as O. The test CA signs it; CertificateSigned is Accepted and the charger reconnects with
the new certificate (the CSMS sees it in the TLS handshake) and keeps it on flash. A certificate
for another key, or one that was never asked for, is Rejected and reported as
InvalidChargePointCertificate; the key in use stays. The renewed pair outlives a reboot whose
provisioning still holds the old one.

The whitepaper's A03: a charger whose client certificate expires within 30 days asks for a new
one by itself once its BootNotification is Accepted (no trigger), and installs what the CSMS has
signed; left unanswered, it asks again a day later on the same link; one valid for a year asks
for nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

from borne.csms import Csms
from borne.sim.agent import Security
from borne.sim.simulator import Simulator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v16 import call, call_result
from simctl import controlling, running
from tlscerts import Ca, server_context

CP_ID = "CP-TEST-1"
SERIAL = "SIM0001"  # the simulator's provisioned serial number
CPO = "Borne Test CPO"


def _settings(flash: Path) -> dict[str, object]:
    raw = (flash / "data" / "settings.json").read_bytes()
    return json.loads(raw.split(b"\n", 1)[1])


def _sign(ca: Ca, csr: x509.CertificateSigningRequest,
          days: tuple[float, float] = (-1, 365)) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder()
            .subject_name(csr.subject).issuer_name(ca.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days[0]))
            .not_valid_after(now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca.key, hashes.SHA256()))


def _pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _events(csms: Csms) -> list[str]:
    return [f.payload["type"] for f in csms.calls("SecurityEventNotification")]


async def test_profile_3_certificate_renewed_by_request_of_the_csms(
        tmp_path: Path, flash: Path) -> None:
    ca = Ca()
    ctx = server_context(ca, ca.issue("localhost", ("localhost",)), tmp_path, require_client=True)
    csms = Csms()
    await csms.start(ssl_context=ctx, url_host="localhost")
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    csms.respond("BootNotification", lambda p: call_result.BootNotification(
        current_time=behind.isoformat(), interval=3600, status="Accepted"))
    old_cert, old_key = ca.issue(CP_ID, client=True).write(tmp_path, "client")
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(3, ca=ca.write(tmp_path), cert=old_cert, key=old_key))
    try:
        async with running(sim):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                 timeout=30)
            cp = csms.charge_points[CP_ID]
            assert len(csms.client_certs) == 1
            first = x509.load_der_x509_certificate(csms.client_certs[0])
            res = await cp.call(call.ChangeConfiguration(key="CpoName", value=CPO))
            assert res.status == "Accepted"

            # A CertificateSigned nobody asked for: refused, reported (TC_077_CS).
            res = await cp.call(call.CertificateSigned(certificate_chain=_pem(first)))
            assert res.status == "Rejected"
            await csms.wait_for(lambda: "InvalidChargePointCertificate" in _events(csms), 20,
                                "InvalidChargePointCertificate")

            # TC_074_CS: the trigger, the CSR
            n = len(csms.frames)
            res = await cp.call(call.ExtendedTriggerMessage(
                requested_message="SignChargePointCertificate"))
            assert res.status == "Accepted"
            req = await csms.wait_call("SignCertificate", after=n, timeout=30)
            pem = req.payload["csr"]
            assert pem.startswith("-----BEGIN CERTIFICATE REQUEST-----")
            csr = x509.load_pem_x509_csr(pem.encode())
            assert csr.is_signature_valid
            assert csr.signature_hash_algorithm is not None
            assert csr.signature_hash_algorithm.name == "sha256"
            assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SERIAL
            assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == CPO
            key = csr.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey)
            assert key.curve.name == "secp256r1"
            assert key != first.public_key()
            assert sim.agent is not None
            line = await sim.agent.wait_line(r"new P-256 key pair and CSR .* made in \d+ ms")
            print(line)

            # A certificate for another key (the old one's): refused, the key stays pending.
            wrong = (x509.CertificateBuilder()
                     .subject_name(csr.subject).issuer_name(ca.cert.subject)
                     .public_key(first.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(first.not_valid_before_utc)
                     .not_valid_after(first.not_valid_after_utc)
                     .sign(ca.key, hashes.SHA256()))
            k = _events(csms).count("InvalidChargePointCertificate")
            res = await cp.call(call.CertificateSigned(certificate_chain=_pem(wrong, ca.cert)))
            assert res.status == "Rejected"
            await csms.wait_for(
                lambda: _events(csms).count("InvalidChargePointCertificate") == k + 1, 20,
                "InvalidChargePointCertificate for another key")
            ev = csms.calls("SecurityEventNotification")[-1].payload
            assert "not for the key" in ev["techInfo"]
            # Signed by a CA that is in the chain but did not sign it: refused too.
            liar = Ca("borne test root")  # same name, another key
            res = await cp.call(call.CertificateSigned(
                certificate_chain=_pem(_sign(ca, csr), liar.cert)))
            assert res.status == "Rejected"
            await sim.agent.wait_line("issuer in the chain does not verify")
            assert _settings(flash)["cert_pem"] == old_cert.read_text()

            # Well signed, but under a CA this charger does not trust as a central root: refused.
            stranger = Ca("another CPO's root")
            res = await cp.call(call.CertificateSigned(
                certificate_chain=_pem(_sign(stranger, csr), stranger.cert)))
            assert res.status == "Rejected"
            await sim.agent.wait_line("not issued under a central system root")

            # The CA's certificate, with its issuer: Accepted, then a reconnection with it. Its
            # notBefore is now by the CSMS's clock, two minutes ahead of the charger's (set from
            # a BootNotification answer that ran late): taken all the same.
            new = _sign(ca, csr, days=(0, 365))
            connects = csms.connects
            res = await cp.call(call.CertificateSigned(certificate_chain=_pem(new, ca.cert)))
            assert res.status == "Accepted"
            # the old link closed normally (1000), then a new one
            await csms.wait_for(lambda: csms.close_codes == [(CP_ID, 1000)]
                                and csms.connects > connects and CP_ID in csms.connections,
                                30, "the reconnection with the new certificate")
            assert len(csms.client_certs) == 2
            seen = x509.load_der_x509_certificate(csms.client_certs[-1])
            assert seen.serial_number == new.serial_number
            assert seen.public_key() == key
            await sim.agent.wait_line("connected to wss://", start=len(sim.agent.all_lines) - 20)
            assert len(csms.calls("BootNotification")) == 1, "a reconnection, not a reboot"
            st = _settings(flash)
            assert st["cert_pem"] == _pem(new, ca.cert)
            text = str(st["key_pem"])
            assert text.startswith("-----BEGIN EC PRIVATE KEY-----")
            priv = serialization.load_pem_private_key(text.encode(), None)
            assert isinstance(priv, ec.EllipticCurvePrivateKey)
            assert priv.public_key() == key
            assert not (flash / "data" / "csrkey.json").exists(), "no pending key left"
            assert not (flash / "data" / "certold.json").exists(), "the old pair dropped"
            assert st["cert_trial"] is False, "the new pair connected: kept"
            logs = "\n".join(sim.agent.all_lines)
            d = format(priv.private_numbers().private_value, "064x")
            assert d not in logs and "PRIVATE KEY" not in logs, "the key was logged"
            # Once installed, the same chain again has no key waiting for it.
            cp = csms.charge_points[CP_ID]  # the new link's
            res = await cp.call(call.CertificateSigned(certificate_chain=_pem(new, ca.cert)))
            assert res.status == "Rejected"

            # A reboot: the provisioning (still the old pair) does not put the old one back.
            async with controlling(sim) as control:
                await control("power_cut")
                await control("power_on")
            await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 40,
                                "the boot after the power cut")
            seen = x509.load_der_x509_certificate(csms.client_certs[-1])
            assert seen.serial_number == new.serial_number
    finally:
        await csms.stop()


async def _renewal_sim(tmp_path: Path, flash: Path, days: int, heartbeat_s: int = 300
                       ) -> tuple[Ca, Csms, Simulator]:
    ca = Ca()
    ctx = server_context(ca, ca.issue("localhost", ("localhost",)), tmp_path, require_client=True)
    csms = Csms(heartbeat_interval=heartbeat_s)
    await csms.start(ssl_context=ctx, url_host="localhost")
    cert, key = ca.issue(CP_ID, client=True, valid_days=(-1, days)).write(tmp_path, "client")
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(3, ca=ca.write(tmp_path), cert=cert, key=key))
    return ca, csms, sim


async def test_profile_3_certificate_renewed_by_the_charger_before_it_expires(
        tmp_path: Path, flash: Path) -> None:
    ca, csms, sim = await _renewal_sim(tmp_path, flash, 10)
    try:
        async with running(sim):
            req = await csms.wait_call("SignCertificate", timeout=60)
            assert not csms.calls("ExtendedTriggerMessage")
            boot = csms.calls("BootNotification")
            assert boot and csms.frames.index(boot[0]) < csms.frames.index(req), \
                "SignCertificate before BootNotification"
            assert sim.agent is not None
            await sim.agent.wait_line(r"client certificate expires .* renewing it")
            csr = x509.load_pem_x509_csr(req.payload["csr"].encode())
            assert csr.is_signature_valid
            assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SERIAL
            new = _sign(ca, csr)
            cp = csms.charge_points[CP_ID]
            res = await cp.call(call.CertificateSigned(certificate_chain=_pem(new, ca.cert)))
            assert res.status == "Accepted"
            await csms.wait_for(lambda: len(csms.client_certs) == 2, 30,
                                "the reconnection with the renewed certificate")
            seen = x509.load_der_x509_certificate(csms.client_certs[-1])
            assert seen.serial_number == new.serial_number
            assert _settings(flash)["cert_pem"] == _pem(new, ca.cert)
            # The renewed one is valid for a year: the reconnection asks for nothing more.
            await sim.agent.wait_line("connected to wss://", start=len(sim.agent.all_lines) - 20)
            await asyncio.sleep(4)
            assert len(csms.calls("SignCertificate")) == 1
    finally:
        await csms.stop()


async def test_profile_3_renewal_left_unanswered_is_asked_again_a_day_later(
        tmp_path: Path, flash: Path) -> None:
    # The CSMS accepts the SignCertificate but never sends the certificate; the link stays up.
    # Its heartbeats before a day has passed ask for nothing; the first one whose currentTime
    # is a day and an hour later asks again, so an expiring certificate cannot be forgotten on a
    # charger that runs for months without a reboot.
    _, csms, sim = await _renewal_sim(tmp_path, flash, 10, heartbeat_s=1)
    try:
        async with running(sim):
            first = await csms.wait_call("SignCertificate", timeout=60)
            n = len(csms.frames)
            for _ in range(3):
                n = csms.frames.index(await csms.wait_call("Heartbeat", after=n, timeout=20)) + 1
            assert csms.calls("SignCertificate") == [first], "asked again within the day"
            later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
            csms.respond("Heartbeat", lambda _p: call_result.Heartbeat(
                current_time=later.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
            again = await csms.wait_call("SignCertificate", after=n, timeout=30)
            csr = x509.load_pem_x509_csr(again.payload["csr"].encode())
            assert csr.is_signature_valid
            assert len(csms.calls("BootNotification")) == 1, "asked on the same link"
            assert sim.agent is not None
            await sim.agent.wait_line(r"client certificate expires .* \(in 8 days\): renewing it")
    finally:
        await csms.stop()


async def test_profile_3_certificate_valid_for_a_year_is_not_renewed(
        tmp_path: Path, flash: Path) -> None:
    _, csms, sim = await _renewal_sim(tmp_path, flash, 365)
    try:
        async with running(sim):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                 timeout=30)
            # A message not sent has no event to wait for: the check runs within about a second
            # of BootNotification's Accepted (it polls the session once a second), so a few
            # seconds after the statuses is where a SignCertificate would have come.
            await asyncio.sleep(5)
            assert not csms.calls("SignCertificate")
            assert sim.agent is not None
            assert not any("renewing it" in x for x in sim.agent.all_lines)
    finally:
        await csms.stop()


async def test_a_certificate_valid_from_later_is_used_from_then(
        tmp_path: Path, flash: Path) -> None:
    # Whitepaper A02/A03: the charger switches to the new certificate "as soon as Not valid
    # before is reached". One an hour ahead was Rejected (InvalidChargePointCertificate); one
    # a few minutes ahead was used at once, and the CSMS refused it until then (offline). Here
    # the charger's clock starts 200 s behind (a late BootNotification answer): the new
    # certificate is ahead of it by more than the 180 s taken as a CA's skew, and is kept; a
    # Heartbeat's answer sets the clock, and the charger switches then.
    ca = Ca()
    ctx = server_context(ca, ca.issue("localhost", ("localhost",)), tmp_path, require_client=True)
    csms = Csms()
    await csms.start(ssl_context=ctx, url_host="localhost")
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=200)
    csms.respond("BootNotification", lambda p: call_result.BootNotification(
        current_time=behind.isoformat(), interval=3600, status="Accepted"))
    old_cert, old_key = ca.issue(CP_ID, client=True).write(tmp_path, "client")
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(3, ca=ca.write(tmp_path), cert=old_cert, key=old_key))
    try:
        async with running(sim):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                 timeout=30)
            cp = csms.charge_points[CP_ID]
            n = len(csms.frames)
            res = await cp.call(call.ExtendedTriggerMessage(
                requested_message="SignChargePointCertificate"))
            assert res.status == "Accepted"
            req = await csms.wait_call("SignCertificate", after=n, timeout=30)
            csr = x509.load_pem_x509_csr(req.payload["csr"].encode())
            ahead_s = 4
            new = _sign(ca, csr, (ahead_s / 86400, 365))
            res = await cp.call(call.CertificateSigned(certificate_chain=_pem(new, ca.cert)))
            assert res.status == "Accepted"
            assert sim.agent is not None
            await sim.agent.wait_line(r"certificate kept until it is valid", 10)
            # (still on the old one, the link kept)
            assert csms.connects == 1 and "InvalidChargePointCertificate" not in _events(csms)
            await asyncio.sleep(ahead_s + 1)  # its notBefore comes by the CSMS's (CA's) clock
            assert (await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
                    ).status == "Accepted"  # its answer sets the charger's clock
            await csms.wait_for(lambda: csms.connects == 2, 30, "the reconnection with it")
            used = x509.load_der_x509_certificate(csms.client_certs[-1])
            assert used.serial_number == new.serial_number
            assert _settings(flash)["cert_pem"] == _pem(new, ca.cert)
    finally:
        await csms.stop()


async def test_a_new_certificate_the_csms_refuses_falls_back_to_the_old_pair(
        tmp_path: Path, flash: Path) -> None:
    # Whitepaper A02 installs the new pair; A05.FR.08's rule ("to prevent that the Charge Point
    # will become unable to reconnect on its own") applies as much to a client certificate the
    # CSMS's TLS end refuses: here it is signed under a root the CSMS installed on the charger
    # but its TLS terminator does not trust yet. The old pair was gone at once: every
    # reconnection refused, the charger locked out for good. Now the old pair is kept until the
    # new one has connected, and is back after three refused attempts, with a security event.
    ca, other = Ca(), Ca("a new CPO root")
    ctx = server_context(ca, ca.issue("localhost", ("localhost",)), tmp_path, require_client=True)
    csms = Csms()
    await csms.start(ssl_context=ctx, url_host="localhost")
    old_cert, old_key = ca.issue(CP_ID, client=True).write(tmp_path, "client")
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(3, ca=ca.write(tmp_path), cert=old_cert, key=old_key))
    try:
        async with running(sim):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                 timeout=30)
            cp = csms.charge_points[CP_ID]
            first = x509.load_der_x509_certificate(csms.client_certs[0])
            res = await cp.call(call.InstallCertificate(
                certificate_type="CentralSystemRootCertificate", certificate=_pem(other.cert)))
            assert res.status == "Accepted"
            n = len(csms.frames)
            res = await cp.call(call.ExtendedTriggerMessage(
                requested_message="SignChargePointCertificate"))
            assert res.status == "Accepted"
            req = await csms.wait_call("SignCertificate", after=n, timeout=30)
            csr = x509.load_pem_x509_csr(req.payload["csr"].encode())
            new = _sign(other, csr)
            res = await cp.call(call.CertificateSigned(certificate_chain=_pem(new, other.cert)))
            assert res.status == "Accepted"
            assert sim.agent is not None
            await sim.agent.wait_line("charge point certificate installed")
            await csms.wait_for(lambda: csms.connects == 2 and CP_ID in csms.connections, 60,
                                "the reconnection with the old pair")
            seen = x509.load_der_x509_certificate(csms.client_certs[-1])
            assert seen.serial_number == first.serial_number
            assert _settings(flash)["cert_pem"] == old_cert.read_text()
            assert not (flash / "data" / "certold.json").exists()
            await csms.wait_call("SecurityEventNotification",
                                 lambda p: p["type"] == "ReconfigurationOfSecurityParameters"
                                 and "client certificate" in p.get("techInfo", ""),
                                 timeout=30)
    finally:
        await csms.stop()


def _sub_ca(root: Ca) -> Ca:
    # A CA whose certificate the root signed (a CPO's issuing sub-CA).
    sub = Ca("borne test sub-CA")
    now = dt.datetime.now(dt.UTC)
    sub.cert = (x509.CertificateBuilder()
                .subject_name(sub.cert.subject).issuer_name(root.cert.subject)
                .public_key(sub.key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(root.key, hashes.SHA256()))
    return sub


async def test_a_certificate_from_a_sub_ca_is_presented_with_its_chain(
        tmp_path: Path, flash: Path) -> None:
    # CertificateSigned's chain "can also contain the necessary sub CA certificates" (whitepaper
    # A02): a CPO issues charge point certificates from a sub-CA, and its TLS end trusts the
    # root. Only the leaf went out in the handshake: the CSMS could not build the path and
    # refused every connection with it. Now the whole chain goes.
    ca = Ca()
    ctx = server_context(ca, ca.issue("localhost", ("localhost",)), tmp_path, require_client=True)
    csms = Csms()
    await csms.start(ssl_context=ctx, url_host="localhost")
    old_cert, old_key = ca.issue(CP_ID, client=True).write(tmp_path, "client")
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(3, ca=ca.write(tmp_path), cert=old_cert, key=old_key))
    try:
        async with running(sim):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                 timeout=30)
            cp = csms.charge_points[CP_ID]
            n = len(csms.frames)
            res = await cp.call(call.ExtendedTriggerMessage(
                requested_message="SignChargePointCertificate"))
            assert res.status == "Accepted"
            req = await csms.wait_call("SignCertificate", after=n, timeout=30)
            csr = x509.load_pem_x509_csr(req.payload["csr"].encode())
            sub = _sub_ca(ca)
            new = _sign(sub, csr)
            res = await cp.call(call.CertificateSigned(certificate_chain=_pem(new, sub.cert)))
            assert res.status == "Accepted"
            await csms.wait_for(lambda: csms.connects == 2 and CP_ID in csms.connections, 60,
                                "the reconnection with the new certificate")
            seen = x509.load_der_x509_certificate(csms.client_certs[-1])
            assert seen.serial_number == new.serial_number
            assert _settings(flash)["cert_pem"] == _pem(new, sub.cert)
    finally:
        await csms.stop()
