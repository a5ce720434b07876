# NIST P-256 (secp256r1) in pure Python big integers, for the charge point certificate's key pair
# (1.6 security whitepaper, "Update Charge Point Certificate", OCTT TC_074_CS): key generation,
# ECDSA-SHA256 signing (the CSR's signature) and verification (a certificate the CA signed with
# an EC key). MicroPython's ssl/mbedTLS makes no keys, so this does. Loaded on use by
# diag/csr.py and diag/certs.py and dropped after: none of it is in the boot heap.
#
# Points are Jacobian (X, Y, Z) = affine (X/Z^2, Y/Z^3), Z = 0 the point at infinity; a = -3.
# Inversions are Fermat's pow(z, p - 2, p). Scalar multiplication is double-and-add, written as
# a generator that yields every few bits: the async callers (agen()) give the event loop a turn
# there, as a key takes seconds on an ESP32 (~20-50x the unix port's time). Not constant-time:
# no big-integer Python code is; the key is made and used for signing once, on the charger.
import os

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
_STEP = const(8)  # bits between two turns of the event loop


def _dbl(pt):
    x, y, z = pt
    if not z or not y:
        return (1, 1, 0)
    p = P
    d = z * z % p
    g = y * y % p
    be = x * g % p
    a = 3 * (x - d) * (x + d) % p
    x3 = (a * a - 8 * be) % p
    z3 = ((y + z) * (y + z) - g - d) % p
    y3 = (a * (4 * be - x3) - 8 * g * g) % p
    return (x3, y3, z3)


def _add(p1, p2):
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if not z1:
        return p2
    if not z2:
        return p1
    p = P
    zz1 = z1 * z1 % p
    zz2 = z2 * z2 % p
    u1 = x1 * zz2 % p
    u2 = x2 * zz1 % p
    s1 = y1 * zz2 * z2 % p
    s2 = y2 * zz1 * z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if not h:
        return _dbl(p1) if not r else (1, 1, 0)
    hh = h * h % p
    hhh = hh * h % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    z3 = z1 * z2 * h % p
    return (x3, y3, z3)


def affine(pt):
    # -> (x, y), or None for the point at infinity
    x, y, z = pt
    if not z:
        return None
    zi = pow(z, P - 2, P)
    zi2 = zi * zi % P
    return (x * zi2 % P, y * zi2 * zi % P)


def _mul2(k1, p1, k2=0, p2=None):
    # Generator: k1*p1 + k2*p2 (Shamir's trick: one pass of doublings for both), yielding every
    # _STEP bits; its value (StopIteration) is the Jacobian result.
    both = _add(p1, p2) if p2 is not None else None
    acc = (1, 1, 0)
    n = max(k1, k2)
    i = 0
    while n >> i:
        i += 1
    while i:
        i -= 1
        acc = _dbl(acc)
        b1 = k1 >> i & 1
        b2 = k2 >> i & 1
        if b1 and b2:
            acc = _add(acc, both)
        elif b1:
            acc = _add(acc, p1)
        elif b2:
            acc = _add(acc, p2)
        if not i % _STEP:
            yield
    return acc


def run(gen):
    # A generator of this module run to its end at once (tests, the host): -> its value.
    try:
        while True:
            next(gen)
    except StopIteration as e:
        return e.value


async def agen(gen):
    # The same with a turn of the event loop at each yield (the charger).
    import asyncio

    try:
        while True:
            next(gen)
            await asyncio.sleep_ms(0)
    except StopIteration as e:
        return e.value


def on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - x * x * x + 3 * x - B) % P == 0


def _scalar():
    # A uniform integer in [1, N-1]: 32 random bytes, drawn again while out of range.
    while True:
        k = int.from_bytes(os.urandom(32), "big")
        if 0 < k < N:
            return k


def keygen():
    # Generator: -> (d, (x, y)), a new key pair.
    d = _scalar()
    q = yield from _mul2(d, (GX, GY, 1))
    return d, affine(q)


def public(d):
    # Generator: the public point of private scalar d.
    q = yield from _mul2(d, (GX, GY, 1))
    return affine(q)


def _e(digest):
    # The leftmost 256 bits of the hash as an integer (FIPS 186-4 6.4; SHA-256's all of them).
    return int.from_bytes(digest[:32], "big")


def sign(d, digest):
    # Generator: ECDSA over `digest` (SHA-256) with private d: -> (r, s); k from os.urandom.
    e = _e(digest)
    while True:
        k = _scalar()
        pt = yield from _mul2(k, (GX, GY, 1))
        r = affine(pt)[0] % N
        if not r:
            continue
        s = pow(k, N - 2, N) * (e + r * d) % N
        if s:
            return r, s


def verify(q, digest, r, s):
    # Generator: does (r, s) sign `digest` under public point q = (x, y)? -> bool
    if not (0 < r < N and 0 < s < N) or q is None or not on_curve(q[0], q[1]):
        return False
    w = pow(s, N - 2, N)
    u1 = _e(digest) * w % N
    u2 = r * w % N
    pt = yield from _mul2(u1, (GX, GY, 1), u2, (q[0], q[1], 1))
    a = affine(pt)
    return a is not None and a[0] % N == r


# -- encodings ------------------------------------------------------------------------------
def point_bytes(q):
    # SEC1 uncompressed: 04 || X || Y
    return b"\x04" + q[0].to_bytes(32, "big") + q[1].to_bytes(32, "big")


def point_from(b):
    # SEC1 uncompressed point bytes -> (x, y), or None when not a point of the curve
    if len(b) != 65 or b[0] != 4:
        return None
    x = int.from_bytes(b[1:33], "big")
    y = int.from_bytes(b[33:], "big")
    return (x, y) if on_curve(x, y) else None


def der_int(v):
    # a non-negative INTEGER, minimal: leading zero bytes off, one kept before a high bit
    b = v.to_bytes(33, "big")
    i = 0
    while i < 32 and b[i] == 0 and b[i + 1] < 0x80:
        i += 1
    return der(0x02, b[i:])


def der(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    if n < 0x100:
        return bytes((tag, 0x81, n)) + body
    return bytes((tag, 0x82, n >> 8, n & 0xFF)) + body


def sig_der(r, s):
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }
    return der(0x30, der_int(r) + der_int(s))
