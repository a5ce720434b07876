# The firmware's one RSA signature check: PKCS#1 v1.5 with SHA-256 (RFC 8017 8.2.2), for signed
# update bundles (ota/bundle.py: 2048-bit keys only) and for X.509 certificates and signed
# firmware (diag/x509.py, diag/signedfw.py: keys of 1024 bits and more). What MicroPython has is
# enough (hashlib.sha256, big integers, three-argument pow). e = 65537 makes it cheap: 17
# modular squarings/multiplications of 2048-bit numbers (`borne bench ota` measures it).
_MIN_K = const(128)  # bytes of the smallest modulus accepted (1024 bits)
# DER DigestInfo prefix for SHA-256 (RFC 8017 9.2, note 1)
_DI = const(b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20")


def verify(n, e, sig, digest, bits=0):
    # n, e: the public key (ints); sig: bytes, as long as the modulus; digest: the SHA-256 of the
    # signed message; bits: the modulus size required (0 = any from 1024 bits). sig^e mod n must
    # be 00 01 FF..FF 00 DigestInfo(SHA-256, digest).
    if bits:
        if n >> (bits - 1) != 1:
            return False
        k = bits // 8
    else:
        k = (len(hex(n)) - 1) // 2  # bytes of n ("0x" and the hex digits)
    if k < _MIN_K or len(sig) != k or len(digest) != 32:
        return False
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    return em == b"\x00\x01" + b"\xff" * (k - 3 - len(_DI) - 32) + b"\x00" + _DI + digest
