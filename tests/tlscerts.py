"""Certificates made by the tests: a CA, a server certificate for `localhost`, a client
certificate for a charge point, and the bad variants (expired, wrong host, unknown CA).

EC P-256 keys: quick to make, and what a charger's mbedTLS handles best.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        c, k = folder / f"{stem}.pem", folder / f"{stem}.key"
        c.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(self.key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        return c, k


class Ca:
    def __init__(self, cn: str = "borne test root") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def write(self, folder: Path, stem: str = "ca") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"{stem}.pem"
        p.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return p

    def issue(self, cn: str, server_names: tuple[str, ...] = (), client: bool = False,
              valid_days: tuple[int, int] = (-1, 365)) -> Issued:
        # A year by default: a client certificate expiring within 30 days is one the charger
        # renews by itself at profile 3 (diag/csr.py renew(), the whitepaper's A03).
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + valid_days[0] * _DAY)
            .not_valid_after(now + valid_days[1] * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server_names:
            alt: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    alt.append(x509.DNSName(n))
            b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return Issued(b.sign(self.key, hashes.SHA256()), key)


def server_context(ca: Ca, server: Issued, folder: Path, require_client: bool = False
                   ) -> ssl.SSLContext:
    """The CSMS's TLS context; with `require_client`, client certificates from `ca` only."""
    cert, key = server.write(folder, "server")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(ca.write(folder, "client-ca")))
    return ctx
