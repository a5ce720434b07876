"""Certificate management of the security extension: InstallCertificate, GetInstalledCertificateIds
(hash data as a CSMS computes it), DeleteCertificate (never the root the wss:// link needs); the
installed central system roots are what the next wss:// connection trusts, across reboots; bad
certificates are refused and change nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

from borne.csms import Csms
from borne.sim.agent import Security
from borne.sim.simulator import Simulator
from ocpp.v16 import call
from signing import Rsa, ec_root, hash_data
from simctl import controlling, running
from tlscerts import Ca, server_context

CP_ID = "CP-TEST-1"
CS = "CentralSystemRootCertificate"
MFR = "ManufacturerRootCertificate"


def _camel(items: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """Hash data as on the wire (the `ocpp` package hands it over in snake_case)."""
    def one(k: str) -> str:
        head, *rest = k.split("_")
        return head + "".join(w.capitalize() for w in rest)
    return [{one(k): v for k, v in d.items()} for d in items or ()]


def _pem(ca: Ca) -> str:
    from cryptography.hazmat.primitives import serialization

    return ca.cert.public_bytes(serialization.Encoding.PEM).decode()


async def _tls_csms(ca: Ca, folder: Path, port: int = 0) -> Csms:
    server = ca.issue("localhost", ("localhost",))
    c = Csms()
    await c.start(port=port, ssl_context=server_context(ca, server, folder),
                  url_host="localhost")
    return c


async def _booted(csms: Csms, n: int = 1):  # type: ignore[no-untyped-def]
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) >= n, 30, "a boot")
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)
    return csms.charge_points[CP_ID]


async def _linked(csms: Csms):  # type: ignore[no-untyped-def]
    """The charger connected to this CSMS (a reconnect: no new BootNotification)."""
    await csms.wait_for(lambda: CP_ID in csms.connections, 40, "the charger to connect")
    return csms.charge_points[CP_ID]


async def test_install_list_delete_and_the_next_wss_connection(flash: Path, tmp_path: Path
                                                               ) -> None:
    ca1, ca2 = Ca("csms root one"), Ca("csms root two")
    csms = await _tls_csms(ca1, tmp_path / "one")
    port = int(csms.url.rsplit(":", 1)[1].split("/")[0])
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(0, ca=ca1.write(tmp_path, "ca1")))
    try:
        async with running(sim), controlling(sim) as control:
            cp = await _booted(csms)
            ids = await cp.call(call.GetInstalledCertificateIds(certificate_type=CS))
            assert ids.status == "Accepted"
            assert _camel(ids.certificate_hash_data) == [hash_data(_pem(ca1))]
            ids = await cp.call(call.GetInstalledCertificateIds(certificate_type=MFR))
            assert ids.status == "NotFound"
            res = await cp.call(call.InstallCertificate(certificate_type=CS, certificate=_pem(ca2)))
            assert res.status == "Accepted"
            ids = await cp.call(call.GetInstalledCertificateIds(certificate_type=CS))
            assert _camel(ids.certificate_hash_data) == [hash_data(_pem(ca1)), hash_data(_pem(ca2))]
            # The link runs on a server certificate from ca1: that root stays.
            res = await cp.call(call.DeleteCertificate(certificate_hash_data=hash_data(_pem(ca1))))
            assert res.status == "Failed"
            unknown = dict(hash_data(_pem(ca1)), serialNumber="1234")
            res = await cp.call(call.DeleteCertificate(certificate_hash_data=unknown))
            assert res.status == "NotFound"
            # The CSMS moves to a certificate from ca2: the charger follows, trusting ca2.
            await csms.stop()
            csms = await _tls_csms(ca2, tmp_path / "two", port)
            cp = await _linked(csms)
            sim.dns.queries.clear()
            res = await cp.call(call.DeleteCertificate(certificate_hash_data=hash_data(_pem(ca1))))
            assert res.status == "Accepted"
            # (its TLS probe of the CSMS asked the network's resolver, not getaddrinfo)
            assert sim.dns.queries == ["localhost"], sim.dns.queries
            # ... and now ca2 is the last root the link needs.
            res = await cp.call(call.DeleteCertificate(certificate_hash_data=hash_data(_pem(ca2))))
            assert res.status == "Failed"
            await control("power_cut")
            await control("power_on")
            cp = await _booted(csms)  # persisted: after a reboot only ca2, and it connects
            ids = await cp.call(call.GetInstalledCertificateIds(certificate_type=CS))
            assert _camel(ids.certificate_hash_data) == [hash_data(_pem(ca2))]
            await csms.wait_for(lambda: any(
                f.payload.get("techInfo") == f"{CS} deleted"
                for f in csms.calls("SecurityEventNotification")), 20, "the security event")
    finally:
        await csms.stop()


async def test_delete_by_sha384_and_sha512_hash_data(csms: Csms, control, sim) -> None:
    # CertificateHashDataType allows SHA256, SHA384 and SHA512: a CSMS that hashes with either
    # of the longer ones deletes what it names too (and an unknown serial is NotFound).
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    for alg in ("SHA384", "SHA512"):
        root = Rsa(f"maker root {alg}")
        assert (await cp.call(call.InstallCertificate(certificate_type=MFR, certificate=root.pem))
                ).status == "Accepted"
        hd = hash_data(root.pem, alg=alg)
        res = await cp.call(call.DeleteCertificate(
            certificate_hash_data=dict(hd, serialNumber="1234")))
        assert res.status == "NotFound", alg
        res = await cp.call(call.DeleteCertificate(certificate_hash_data=hd))
        assert res.status == "Accepted", alg
        ids = await cp.call(call.GetInstalledCertificateIds(certificate_type=MFR))
        assert ids.status == "NotFound", (alg, ids)


async def test_bad_certificates_are_refused_and_nothing_changes(csms: Csms, control, sim,
                                                                flash: Path) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    root = Rsa("maker root")
    assert (await cp.call(call.InstallCertificate(certificate_type=MFR, certificate=root.pem))
            ).status == "Accepted"
    doc = flash / "data" / "certs.json"
    before = doc.read_bytes()
    leaf = Rsa("a signing certificate", issuer=root, ca=False)
    expired = Rsa("old root", days=(-30, -1))
    cases = {
        "not PEM": "hello, I am not a certificate",
        "broken base64": "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        "garbage DER": "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n",
        "expired": expired.pem,
        "not a CA": leaf.pem,
        "a chain": leaf.pem + root.pem,
    }
    for why, pem in cases.items():
        res = await cp.call(call.InstallCertificate(certificate_type=MFR, certificate=pem))
        assert res.status == "Rejected", why
    # Longer than the schema's 5500 characters: the frame itself is refused.
    long = root.pem + "x" * 5500
    text = json.dumps([2, "long-1", "InstallCertificate",
                       {"certificateType": MFR, "certificate": long}])
    ans = await csms.call_raw(CP_ID, text, "long-1")
    assert ans.msg[2] == "PropertyConstraintViolation"
    # CertificateStoreMaxLength: 8 in all; the 9th is refused.
    for i in range(7):
        assert (await cp.call(call.InstallCertificate(
            certificate_type=CS, certificate=ec_root(f"root {i}")))).status == "Accepted"
    before = doc.read_bytes()
    res = await cp.call(call.InstallCertificate(certificate_type=CS, certificate=ec_root("nine")))
    assert res.status == "Rejected"
    assert doc.read_bytes() == before
    conf = await cp.call(call.GetConfiguration(key=["CertificateStoreMaxLength",
                                                    "CertificateSignedMaxChainSize"]))
    assert {k["key"]: k["value"] for k in conf.configuration_key} == {
        "CertificateStoreMaxLength": "8", "CertificateSignedMaxChainSize": "5500"}
    # No SignCertificate was sent: a CertificateSigned has no key of the charger's to go with
    # (the renewal itself: tests/test_csr.py).
    res = await cp.call(call.CertificateSigned(certificate_chain=leaf.pem))
    assert res.status == "Rejected"
    assert sim.agent is not None
    for line in ("InstallCertificate ManufacturerRootCertificate rejected: not a PEM",
                 "rejected: not valid now", "rejected: not a root CA certificate",
                 "rejected: 2 certificates", "CertificateStoreMaxLength",
                 "no SignCertificate pending"):
        await sim.agent.wait_line(line, timeout=5)


async def test_at_profile_3_a_root_the_link_does_not_need_is_deleted(
    flash: Path, tmp_path: Path
) -> None:
    # The deletion's probe (a handshake on the roots that remain) presented no client
    # certificate: a CSMS that requires one refused it, so at profile 3 no root could ever be
    # deleted (Failed), and roots could not be rotated.
    ca = Ca("csms root")
    ctx = server_context(ca, ca.issue("localhost", ("localhost",)), tmp_path, require_client=True)
    csms = Csms(client_cert_cn=True)
    await csms.start(ssl_context=ctx, url_host="localhost")
    cert, key = ca.issue(CP_ID, client=True).write(tmp_path, "client")
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(3, ca=ca.write(tmp_path), cert=cert, key=key))
    try:
        async with running(sim):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                 timeout=30)
            cp = csms.charge_points[CP_ID]
            extra = ec_root("an unused extra root")
            res = await cp.call(call.InstallCertificate(certificate_type=CS, certificate=extra))
            assert res.status == "Accepted"
            res = await cp.call(call.DeleteCertificate(certificate_hash_data=hash_data(extra)))
            assert res.status == "Accepted", res
            own = ca.write(tmp_path / "own").read_text()
            res = await cp.call(call.DeleteCertificate(certificate_hash_data=hash_data(own)))
            assert res.status == "Failed", "the root the link needs stays"
    finally:
        await csms.stop()
