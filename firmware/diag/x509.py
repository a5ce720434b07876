# A small X.509 (DER) reader for the certificates the CSMS installs and for firmware signing
# certificates: serial, issuer and subject names (as DER, for hashing and comparison), validity,
# the public key (RSA modulus and exponent; an EC P-256 key's SEC1 point bytes, `ec`; other kinds
# kept as bytes), basic constraints, the signature algorithm and value; signed_by() checks an RSA
# PKCS#1 v1.5 / SHA-256 certificate signature with the firmware's one RSA check (ota/rsa.py). An
# ECDSA-SHA256 signature by a P-256 key is checked by diag/p256.py, loaded only for it (the
# charge point's own certificate, diag/csr.py: ecdsa_by()); firmware signatures stay RSA.
import binascii
import hashlib

from ota import rsa

OID_RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"  # rsaEncryption
OID_RSA_SHA256 = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b"  # sha256WithRSAEncryption
OID_EC = b"\x2a\x86\x48\xce\x3d\x02\x01"  # id-ecPublicKey
OID_P256 = b"\x2a\x86\x48\xce\x3d\x03\x01\x07"  # prime256v1 (secp256r1)
OID_ECDSA_SHA256 = b"\x2a\x86\x48\xce\x3d\x04\x03\x02"  # ecdsa-with-SHA256
OID_BASIC = b"\x55\x1d\x13"  # basicConstraints


class BadCert(ValueError):
    pass


def tlv(b, i, end=None):
    # -> (tag, value start, value end) of the DER element at b[i].
    n = len(b) if end is None else end
    if i + 2 > n:
        raise BadCert("truncated")
    tag = b[i]
    ln = b[i + 1]
    i += 2
    if ln & 0x80:
        k = ln & 0x7F
        if k == 0 or k > 3 or i + k > n:
            raise BadCert("bad length")
        ln = 0
        for j in range(k):
            ln = ln << 8 | b[i + j]
        i += k
    if i + ln > n:
        raise BadCert("truncated")
    return tag, i, i + ln


def _expect(b, i, tag, end=None):
    t, s, e = tlv(b, i, end)
    if t != tag:
        raise BadCert("tag %02x where %02x was expected" % (t, tag))
    return s, e


def ecdsa_rs(b):
    # An ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }) -> (r, s), or None for anything else
    try:
        mv = memoryview(b)
        s0, e0 = _expect(mv, 0, 0x30)
        if e0 != len(b):
            return None
        rs, re_ = _expect(mv, s0, 0x02, e0)
        ss, se = _expect(mv, re_, 0x02, e0)
        if se != e0:
            return None
        return int.from_bytes(bytes(mv[rs:re_]), "big"), int.from_bytes(bytes(mv[ss:se]), "big")
    except ValueError:
        return None


def _time(b, s, e, tag):
    # UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) -> unix seconds
    import clock

    t = bytes(b[s:e])
    if tag == 0x17:
        if len(t) != 13 or t[-1:] != b"Z":
            raise BadCert("bad UTCTime")
        y = int(t[:2])
        y += 2000 if y < 50 else 1900
        t = t[2:]
    elif tag == 0x18:
        if len(t) != 15 or t[-1:] != b"Z":
            raise BadCert("bad GeneralizedTime")
        y = int(t[:4])
        t = t[4:]
    else:
        raise BadCert("bad time")
    mo, d, h, mi, sec = int(t[0:2]), int(t[2:4]), int(t[4:6]), int(t[6:8]), int(t[8:10])
    return clock.days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec


class Cert:
    def __init__(self, der):
        b = memoryview(der)
        self.der = der
        s, e = _expect(b, 0, 0x30)
        if e != len(b):
            raise BadCert("trailing bytes")
        ts, te = _expect(b, s, 0x30)  # tbsCertificate
        self.tbs = bytes(b[s:te])
        i = ts
        t, vs, ve = tlv(b, i, te)
        if t == 0xA0:  # [0] version
            i = ve
        vs, ve = _expect(b, i, 0x02, te)
        self.serial = bytes(b[vs:ve])
        _, i = _expect(b, ve, 0x30, te)  # signature algorithm (repeated outside)
        t, ns, ne = tlv(b, i, te)
        self.issuer = bytes(b[i:ne])
        vs, ve = _expect(b, ne, 0x30, te)  # validity
        t1, a, z = tlv(b, vs, ve)
        self.not_before = _time(b, a, z, t1)
        t2, a, z2 = tlv(b, z, ve)
        self.not_after = _time(b, a, z2, t2)
        t, ss, se = tlv(b, ve, te)
        if t != 0x30:
            raise BadCert("no subject")
        self.subject = bytes(b[ve:se])
        ks, ke = _expect(b, se, 0x30, te)  # subjectPublicKeyInfo
        als, ale = _expect(b, ks, 0x30, ke)
        os_, oe = _expect(b, als, 0x06, ale)
        self.key_alg = bytes(b[os_:oe])
        bs, be = _expect(b, ale, 0x03, ke)
        self.key_bits = bytes(b[bs + 1 : be])  # the BIT STRING's bytes (unused-bits byte off)
        self.rsa = None
        self.ec = None  # a P-256 public key: 04 || X || Y (SEC1 uncompressed)
        if self.key_alg == OID_EC and oe < ale:
            t, cs, ce = tlv(b, oe, ale)  # the named curve
            if (t == 0x06 and bytes(b[cs:ce]) == OID_P256 and len(self.key_bits) == 65
                    and self.key_bits[0] == 4):
                self.ec = self.key_bits
        if self.key_alg == OID_RSA:
            k = memoryview(self.key_bits)
            ps, pe = _expect(k, 0, 0x30)
            ms, me = _expect(k, ps, 0x02, pe)
            es, ee = _expect(k, me, 0x02, pe)
            self.rsa = (int.from_bytes(bytes(k[ms:me]), "big"),
                        int.from_bytes(bytes(k[es:ee]), "big"))
        self.ca = False
        i = ke
        while i < te:  # issuerUniqueID, subjectUniqueID, [3] extensions
            t, xs, xe = tlv(b, i, te)
            if t == 0xA3:
                self._extensions(b, xs, xe)
            i = xe
        ss, se = _expect(b, te, 0x30, e)  # signatureAlgorithm
        os_, oe = _expect(b, ss, 0x06, se)
        self.sig_alg = bytes(b[os_:oe])
        bs, be = _expect(b, se, 0x03, e)
        self.sig = bytes(b[bs + 1 : be])

    def _extensions(self, b, s, e):
        ls, le = _expect(b, s, 0x30, e)
        i = ls
        while i < le:
            _, xs, xe = tlv(b, i, le)
            os_, oe = _expect(b, xs, 0x06, xe)
            j = oe
            t, vs, ve = tlv(b, j, xe)
            if t == 0x01:  # critical flag
                t, vs, ve = tlv(b, ve, xe)
            if bytes(b[os_:oe]) == OID_BASIC and t == 0x04:
                cs, ce = _expect(b, vs, 0x30, ve)
                if cs < ce:
                    t, bs, be = tlv(b, cs, ce)
                    self.ca = t == 0x01 and be > bs and b[bs] != 0
            i = xe

    def serial_hex(self):
        h = binascii.hexlify(self.serial).decode().lstrip("0")
        return h or "0"

    def self_issued(self):
        return self.issuer == self.subject

    def valid_at(self, t):
        return self.not_before <= t <= self.not_after

    def hash_data(self, issuer_key_bits=None, alg="SHA256"):
        # OCPP CertificateHashDataType: the issuer's name and public key hashed (alg: SHA256,
        # SHA384 or SHA512), and the serial. For a root the issuer's key is its own.
        kb = issuer_key_bits if issuer_key_bits is not None else self.key_bits
        return {
            "hashAlgorithm": alg,
            "issuerNameHash": binascii.hexlify(_digest(alg, self.issuer)).decode(),
            "issuerKeyHash": binascii.hexlify(_digest(alg, kb)).decode(),
            "serialNumber": self.serial_hex(),
        }

    def signed_by(self, issuer):
        # Is this certificate's signature made by `issuer`'s RSA key (sha256WithRSAEncryption)?
        if self.sig_alg != OID_RSA_SHA256 or issuer.rsa is None or self.issuer != issuer.subject:
            return False
        n, e = issuer.rsa
        return rsa.verify(n, e, self.sig, hashlib.sha256(self.tbs).digest())

    def ecdsa_by(self, issuer):
        # -> a generator (diag/p256.py's: run it, or step it between event loop turns) whose
        # value says whether this certificate's ECDSA-SHA256 signature is made by `issuer`'s
        # P-256 key; None when it is not such a signature or `issuer` has no such key.
        if self.sig_alg != OID_ECDSA_SHA256 or issuer.ec is None or self.issuer != issuer.subject:
            return None
        from diag import p256

        rs = ecdsa_rs(self.sig)
        q = p256.point_from(issuer.ec)
        if rs is None or q is None:
            return iter(())  # ends at once: value None, a failed check
        return p256.verify(q, hashlib.sha256(self.tbs).digest(), rs[0], rs[1])


def from_pem(text):
    # Every CERTIFICATE block of a PEM text, as DER: [bytes]. Raises BadCert for non-PEM text.
    from ocpp_client.security import SecurityError, pem_to_der

    try:
        out = pem_to_der(text, "CERTIFICATE")
    except SecurityError as e:
        raise BadCert(str(e))
    if not out:
        raise BadCert("not a PEM certificate")
    return out


def to_pem(der):
    b64 = binascii.b2a_base64(der).replace(b"\n", b"").decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % "\n".join(lines)


def _digest(alg, data):
    # SHA256 from hashlib; SHA384/SHA512 from hashlib where the port has them, else computed by
    # diag/sha512.py (MicroPython's hashlib has neither; the caller drops that module after).
    if alg == "SHA256":
        return hashlib.sha256(data).digest()
    f = getattr(hashlib, alg.lower(), None)
    if f is not None:
        return f(data).digest()
    from diag import sha512

    return sha512.digest(data, int(alg[3:]))
