# Strings of a parsed message made valid Unicode, and the strict UTF-8 check MicroPython's own
# lacks. Loaded only for a frame that may need them (rpc._suspect).


def unsurrogate(v):
    # MicroPython's json turns an escaped surrogate pair ("\\ud83d\\ude00", valid JSON, what
    # CPython sends by default) into two 3-byte sequences that are not UTF-8; echoed, they break
    # the link (close 1007), logged or journaled they poison what reads them. Every string of a
    # parsed message is mended here: a pair becomes its character, a lone half U+FFFD.
    if isinstance(v, str):
        b = v.encode()
        return _mend(b) if b.find(b"\xed") >= 0 else v
    if isinstance(v, dict):
        for k in list(v):
            x = unsurrogate(v[k])
            k2 = unsurrogate(k)
            if k2 is not k:
                del v[k]
            v[k2] = x
        return v
    if isinstance(v, list):
        for i in range(len(v)):
            v[i] = unsurrogate(v[i])
    return v


def _mend(b):
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == 0xED and i + 2 < n and b[i + 1] >= 0xA0:
            # ED A0..AF xx: a high half (D800..DBFF); ED B0..BF xx: a low half (DC00..DFFF)
            if b[i + 1] < 0xB0 and i + 5 < n and b[i + 3] == 0xED and b[i + 4] >= 0xB0:
                hi = ((b[i + 1] & 0x0F) << 6) | (b[i + 2] & 0x3F)
                lo = ((b[i + 4] & 0x0F) << 6) | (b[i + 5] & 0x3F)
                cp = 0x10000 + (hi << 10) + lo
                out += bytes((0xF0 | cp >> 18, 0x80 | (cp >> 12) & 0x3F,
                              0x80 | (cp >> 6) & 0x3F, 0x80 | cp & 0x3F))
                i += 6
                continue
            out += b"\xef\xbf\xbd"  # U+FFFD for a lone half
            i += 3
            continue
        out.append(c)
        i += 1
    return str(out, "utf-8")


def utf8_ok(raw):
    # Strict UTF-8 (RFC 3629): no overlong forms, no encoded surrogates, nothing past U+10FFFF.
    b = bytes(raw) if not isinstance(raw, str) else raw.encode()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k = 2
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            k = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return False
        if i + k >= n:
            return False
        if not lo <= b[i + 1] <= hi:
            return False
        for j in range(2, k + 1):
            if not 0x80 <= b[i + j] <= 0xBF:
                return False
        i += k + 1
    return True
