# RSA-2048 signature check, PKCS#1 v1.5 with SHA-256 (RFC 8017 8.2.2): what MicroPython has is
# enough (hashlib.sha256, big integers, three-argument pow). e = 65537 makes it cheap: 17
# modular squarings/multiplications of 2048-bit numbers (`borne bench ota` measures it).
_K = const(256)  # bytes of a 2048-bit modulus
# DER DigestInfo prefix for SHA-256 (RFC 8017 9.2, note 1)
_DI = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"


def verify(n, e, sig, digest):
    # n, e: the public key (ints); sig: bytes; digest: the SHA-256 of the signed message.
    if len(sig) != _K or len(digest) != 32 or n >> (8 * _K - 1) != 1:
        return False
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(_K, "big")
    want = b"\x00\x01" + b"\xff" * (_K - 3 - len(_DI) - 32) + b"\x00" + _DI + digest
    return em == want
