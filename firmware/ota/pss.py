# EMSA-PSS verification (RFC 8017 9.1.2) with SHA-256 and MGF1-SHA-256: the signature scheme the
# 1.6 security whitepaper gives signed firmware (OCTT TC_080_CS). Loaded with diag/signedfw.py's
# check only; the RSA step is ota/rsa.py's open_sig(), shared with the PKCS#1 v1.5 fallback.
import hashlib

_H = const(32)  # SHA-256's length


def _bits(n):
    # bits of n (MicroPython's int has no bit_length()): the hex digits, the first one's bits
    d = hex(n)
    return (len(d) - 3) * 4 + len(bin(int(d[2], 16))) - 2


def check(em, n, digest):
    # em: sig^e mod n, as long as the modulus (rsa.open_sig); digest: SHA-256 of the message. The
    # salt's length is read from the encoding (any that fits): signers use the hash's length
    # (PSS.DIGEST_LENGTH) or the most there is room for (PSS.MAX_LENGTH).
    if len(digest) != _H:
        return False
    embits = _bits(n) - 1
    emlen = (embits + 7) // 8
    if len(em) > emlen:  # a modulus of 8k+1 bits: the encoding is a byte shorter
        if em[0]:
            return False
        em = em[1:]
    zbits = 8 * emlen - embits  # leading bits of EM that must be zero
    if emlen < _H + 2 or em[-1] != 0xBC or em[0] >> (8 - zbits):
        return False
    dblen = emlen - _H - 1
    h = em[dblen : dblen + _H]
    db = bytearray(em[:dblen])
    # MGF1(H, dblen) XORed into the masked DB block by block: no mask the size of DB
    i = c = 0
    while i < dblen:
        for b in hashlib.sha256(h + c.to_bytes(4, "big")).digest():
            if i == dblen:
                break
            db[i] ^= b
            i += 1
        c += 1
    db[0] &= 0xFF >> zbits
    i = 0
    while i < dblen and not db[i]:
        i += 1
    if i == dblen or db[i] != 1:
        return False
    return hashlib.sha256(bytes(8) + digest + db[i + 1 :]).digest() == h
