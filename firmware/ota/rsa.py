# The firmware's one RSA signature check: PKCS#1 v1.5 with SHA-256 (RFC 8017 8.2.2), for signed
# update bundles (ota/bundle.py: 2048-bit keys only) and for X.509 certificates and signed
# firmware (diag/x509.py, diag/signedfw.py: keys of 1024 bits and more). What MicroPython has is
# enough (hashlib.sha256, big integers, three-argument pow). e = 65537 makes it cheap: 17
# modular squarings/multiplications of 2048-bit numbers (`borne bench ota` measures it).
# RSA-PSS (signed firmware, ota/pss.py) reads the same opened signature (open_sig()).
_MIN_K = const(128)  # bytes of the smallest modulus accepted (1024 bits)
# DER DigestInfo prefix for SHA-256 (RFC 8017 9.2, note 1)
_DI = const(b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20")


def open_sig(n, e, sig, bits=0):
    # n, e: the public key (ints); sig: bytes, as long as the modulus; bits: the modulus size
    # required (0 = any from 1024 bits). -> sig^e mod n as bytes as long as the modulus (RFC 8017
    # RSAVP1 + I2OSP), or None for a key or signature out of bounds.
    if bits:
        if n >> (bits - 1) != 1:
            return None
        k = bits // 8
    else:
        k = (len(hex(n)) - 1) // 2  # bytes of n ("0x" and the hex digits)
    if k < _MIN_K or len(sig) != k:
        return None
    s = int.from_bytes(sig, "big")
    if s >= n:
        return None
    return pow(s, e, n).to_bytes(k, "big")


def pkcs1(em, digest):
    # em (open_sig's) must be 00 01 FF..FF 00 DigestInfo(SHA-256, digest).
    k = len(em)
    return len(digest) == 32 and em == (b"\x00\x01" + b"\xff" * (k - 3 - len(_DI) - 32) + b"\x00"
                                        + _DI + digest)


def verify(n, e, sig, digest, bits=0):
    # PKCS#1 v1.5 over `digest`, the SHA-256 of the signed message.
    if len(digest) != 32:
        return False
    em = open_sig(n, e, sig, bits)
    return em is not None and pkcs1(em, digest)
