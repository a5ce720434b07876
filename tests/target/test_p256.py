# On-target tests for diag/p256.py (NIST P-256, the charge point certificate's key pair) and the
# CSR of diag/csr.py: multiples of the generator and the RFC 6979 A.2.5 key against the values
# the host's `cryptography` package gives, the RFC 6979 SHA-256 signature of "sample" and one the
# host made verify, our own signatures verify and forgeries do not; the SEC1 key and the CSR's
# DER are well formed (tests/test_csr.py checks the CSR with `cryptography` on the host).
import hashlib

from diag import csr, p256, x509

# k * G, from `cryptography` (ec.derive_private_key(k, SECP256R1()))
MULTIPLES = (
    (1, p256.GX, p256.GY),
    (2, 0x7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978,
     0x07775510db8ed040293d9ac69f7430dbba7dade63ce982299e04b79d227873d1),
    (3, 0x5ecbe4d1a6330a44c8f7ef951d4bf165e6c6b721efada985fb41661bc6e7fd6c,
     0x8734640c4998ff7e374b06ce1a64a2ecd82ab036384fb83d9a79b127a27d5032),
    (7, 0x8e533b6fa0bf7b4625bb30667c01fb607ef9f8b8a80fef5b300628703187b2a3,
     0x73eb1dbde03318366d069f83a6f5900053c73633cb041b21c55e1a86c1f400b4),
    (112233445566778899, 0x339150844ec15234807fe862a86be77977dbfb3ae3d96f4c22795513aeaab82f,
     0xb1c14ddfdc8ec1b2583f51e85a5eb3a155840f2034730e9b5ada38b674336a21),
)
# RFC 6979 A.2.5: the private key, its public key, and the SHA-256 signature of "sample"
RFC_D = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
RFC_Q = (0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6,
         0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299)
RFC_R = 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
RFC_S = 0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8
# a signature the host's `cryptography` made (ec.ECDSA(SHA256())) over b"borne csr test"
HOST_Q = (0x2a1bc15232f2bc6dfbf186395b3d61710666460c6eeb141a222e009a5573ac90,
          0x7214c0b37459714ffe916fab4e3efe830649a2aa4c77054bc3a108e51e9a8ec8)
HOST_SIG = bytes.fromhex(
    "3045022100f85740f218bdb060bd4a58eb56d73a7a154b9d478f13c30bcff9669d6c20aad002207ee990b02cb5"
    "dfe6fe5bb683f16d85d3db28822d888ffb83cc689146d8819bfe")


def _h(m):
    return hashlib.sha256(m).digest()


def test_multiples_of_the_generator():
    for k, x, y in MULTIPLES:
        assert p256.run(p256.public(k)) == (x, y), k
        assert p256.on_curve(x, y)
    assert p256.run(p256.public(p256.N - 1)) == (p256.GX, p256.P - p256.GY)  # -G
    assert p256.affine(p256.run(p256._mul2(p256.N, (p256.GX, p256.GY, 1)))) is None  # n*G = O


def test_rfc6979_key_and_signature():
    assert p256.run(p256.public(RFC_D)) == RFC_Q
    assert p256.run(p256.verify(RFC_Q, _h(b"sample"), RFC_R, RFC_S))
    assert not p256.run(p256.verify(RFC_Q, _h(b"sample!"), RFC_R, RFC_S))
    assert not p256.run(p256.verify(RFC_Q, _h(b"sample"), RFC_S, RFC_R))


def test_a_signature_from_cryptography_verifies():
    r, s = x509.ecdsa_rs(HOST_SIG)
    assert p256.sig_der(r, s) == HOST_SIG
    assert p256.run(p256.verify(HOST_Q, _h(b"borne csr test"), r, s))
    assert not p256.run(p256.verify(RFC_Q, _h(b"borne csr test"), r, s))
    assert not p256.run(p256.verify(HOST_Q, _h(b"borne csr test"), r, p256.N - s + 1))


def test_sign_then_verify_with_a_new_key():
    d, q = p256.run(p256.keygen())
    assert 0 < d < p256.N and p256.on_curve(q[0], q[1])
    assert p256.point_from(p256.point_bytes(q)) == q
    for m in (b"", b"csr", b"x" * 200):
        r, s = p256.run(p256.sign(d, _h(m)))
        assert p256.run(p256.verify(q, _h(m), r, s))
        assert not p256.run(p256.verify(q, _h(m + b"."), r, s))
        assert x509.ecdsa_rs(p256.sig_der(r, s)) == (r, s)
    r1, _ = p256.run(p256.sign(d, _h(b"csr")))
    r2, _ = p256.run(p256.sign(d, _h(b"csr")))
    assert r1 != r2, "a fresh nonce per signature"
    d2, _ = p256.run(p256.keygen())
    assert d2 != d


def test_bad_inputs_are_refused():
    q = RFC_Q
    assert not p256.run(p256.verify(q, _h(b"sample"), 0, RFC_S))
    assert not p256.run(p256.verify(q, _h(b"sample"), RFC_R, p256.N))
    assert not p256.run(p256.verify((q[0], q[1] + 1), _h(b"sample"), RFC_R, RFC_S))
    assert p256.point_from(b"\x04" + bytes(64)) is None
    assert p256.point_from(p256.point_bytes(q)[:-1]) is None
    assert x509.ecdsa_rs(b"\x30\x02\x02\x00") is None
    assert x509.ecdsa_rs(HOST_SIG + b"\x00") is None


def test_der_integers_are_minimal():
    assert p256.der_int(0) == b"\x02\x01\x00"
    assert p256.der_int(1) == b"\x02\x01\x01"
    assert p256.der_int(0x80) == b"\x02\x02\x00\x80"
    assert p256.der_int(p256.N)[:3] == b"\x02\x21\x00"


async def test_csr_and_key_encodings():
    d, q = p256.run(p256.keygen())
    der = await csr.build(d, q, "SERIAL-1", "Borne CPO")
    b = memoryview(der)
    s, e = x509._expect(b, 0, 0x30)
    assert e == len(der)
    is_, ie = x509._expect(b, s, 0x30)  # CertificationRequestInfo
    info = bytes(b[s:ie])
    as_, ae = x509._expect(b, ie, 0x30)
    assert bytes(b[as_ + 2 : ae]) == x509.OID_ECDSA_SHA256
    bs, be = x509._expect(b, ae, 0x03)
    r, sg = x509.ecdsa_rs(bytes(b[bs + 1 : be]))
    assert p256.run(p256.verify(q, _h(info), r, sg))
    assert p256.point_bytes(q) in info and b"SERIAL-1" in info and b"Borne CPO" in info
    k = csr.key_der(d, q)
    assert d.to_bytes(32, "big") in k and p256.point_bytes(q) in k
    text = csr.pem(k, "EC PRIVATE KEY")
    assert text.startswith("-----BEGIN EC PRIVATE KEY-----\n")
    from ocpp_client.security import pem_to_der

    assert pem_to_der(text, ("EC PRIVATE KEY",)) == [k]


def test_the_tls_module_takes_the_key():
    # mbedTLS (MicroPython's tls module) reads the SEC1 key as DER, before the certificate: with
    # a certificate that is no certificate, our key gets past its parse and a broken one does not
    import tls

    k = csr.key_der(RFC_D, RFC_Q)
    for key, want in ((k, "invalid cert"), (k[:-3] + b"xyz", "invalid key")):
        try:
            tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).load_cert_chain(b"\x30\x00", key)
            raise AssertionError("accepted")
        except ValueError as e:
            assert str(e) == want, e
