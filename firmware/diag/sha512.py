# SHA-384 and SHA-512 (FIPS 180-4), for DeleteCertificate's hash data only: OCPP's
# CertificateHashDataType allows SHA256, SHA384 and SHA512, and a CSMS may compute its hashes with
# any. MicroPython's hashlib has SHA-256 (and SHA-1, MD5) but neither of these, so they are
# computed here, in Python with big ints: slow (a few ms per 128-byte block on the unix port),
# which is fine for a certificate's issuer name and key. Loaded by diag/certs.py for such a
# request and dropped after it; hashlib's own is used where the port has one.
import struct

_M = 0xFFFFFFFFFFFFFFFF  # (not const(): a big int)
_K = None  # the 80 round constants, made at the first use (a table of big ints: ~4 KB)
_IV = {
    512: (0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
          0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179),
    384: (0xCBBB9D5DC1059ED8, 0x629A292A367CD507, 0x9159015A3070DD17, 0x152FECD8F70E5939,
          0x67332667FFC00B31, 0x8EB44A8768581511, 0xDB0C2E0D64F98FA7, 0x47B5481DBEFA4FA4),
}
# The constants are the first 64 bits of the fractional parts of the cube roots of the first 80
# primes: computed from the primes (exact integer cube roots), not written out as 80 numbers.


def _icbrt(n):
    # The integer cube root of n < 2^201 (Newton's method on integers, from above).
    x = 1 << 67
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            return x
        x = y


def _constants():
    ks = []
    p = 2
    while len(ks) < 80:
        if all(p % d for d in range(2, int(p**0.5) + 1)):
            ks.append(_icbrt(p << 192) & _M)  # cube root of p, scaled by 2^64: its fraction
        p += 1
    return ks


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M


def _block(h, w):
    # One 128-byte block (w: its 16 words) into the state h (8 words).
    k = _K
    for t in range(16, 80):
        a, b = w[t - 15], w[t - 2]
        s0 = _rotr(a, 1) ^ _rotr(a, 8) ^ (a >> 7)
        s1 = _rotr(b, 19) ^ _rotr(b, 61) ^ (b >> 6)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & _M)
    a, b, c, d, e, f, g, hh = h
    for t in range(80):
        t1 = (hh + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)) + ((e & f) ^ ((e ^ _M) & g))
              + k[t] + w[t]) & _M
        t2 = ((_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)) + ((a & b) ^ (a & c) ^ (b & c))) & _M
        hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & _M, c, b, a, (t1 + t2) & _M
    return [(x + y) & _M for x, y in zip(h, (a, b, c, d, e, f, g, hh))]


def digest(data, bits=512):
    # -> the SHA-512 (bits 512) or SHA-384 (bits 384) digest of data (bytes).
    global _K
    if _K is None:
        _K = _constants()
    n = len(data)
    pad = bytearray(b"\x80")
    pad.extend(bytes((111 - n) % 128))
    pad.extend((n * 8).to_bytes(16, "big"))
    msg = bytes(data) + pad
    h = list(_IV[bits])
    for i in range(0, len(msg), 128):
        h = _block(h, list(struct.unpack_from(">16Q", msg, i)))
    out = b"".join(x.to_bytes(8, "big") for x in h)
    return out[: bits // 8]
