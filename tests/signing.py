"""RSA certificates for the security extension's tests: manufacturer roots, firmware signing
certificates (and their bad variants), firmware signatures; and the certificate hash data an
OCPP CSMS computes (issuer name hash, issuer key hash, serial)."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

_DAY = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "borne tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Rsa:
    """An RSA key and a certificate: a root (self-signed CA) or one issued by `issuer`."""

    def __init__(self, cn: str, issuer: Rsa | None = None, ca: bool = True,
                 days: tuple[int, int] = (-1, 365), bits: int = 2048,
                 key: rsa.RSAPrivateKey | None = None) -> None:
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=bits)
        now = dt.datetime.now(dt.UTC)
        signer = issuer or self
        b = (x509.CertificateBuilder().subject_name(_name(cn))
             .issuer_name(_name(cn) if issuer is None else issuer.cert.subject)
             .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now + days[0] * _DAY).not_valid_after(now + days[1] * _DAY)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        self.cert = b.sign(signer.key, hashes.SHA256())

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, data: bytes, pss: bool = True) -> bytes:
        """RSA-PSS with SHA-256 and MGF1-SHA-256 (the 1.6 security whitepaper's firmware
        signature, OCTT TC_080_CS), salt of the hash's length; `pss=False`: PKCS#1 v1.5."""
        if not pss:
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                               salt_length=padding.PSS.DIGEST_LENGTH),
                             hashes.SHA256())


def ec_root(cn: str, days: tuple[int, int] = (-1, 365)) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + days[0] * _DAY).not_valid_after(now + days[1] * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def hash_data(cert_pem: str, issuer_pem: str | None = None, alg: str = "SHA256"
              ) -> dict[str, str]:
    """CertificateHashDataType (alg: SHA256, SHA384 or SHA512) of a certificate; a root is its
    own issuer."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    issuer = x509.load_pem_x509_certificate((issuer_pem or cert_pem).encode())
    pub = issuer.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        bits = pub.public_bytes(serialization.Encoding.X962,
                                serialization.PublicFormat.UncompressedPoint)
    else:
        bits = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return {
        "hashAlgorithm": alg,
        "issuerNameHash": hashlib.new(alg.lower(), cert.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.new(alg.lower(), bits).hexdigest(),
        "serialNumber": format(cert.serial_number, "x"),
    }
