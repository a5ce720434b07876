# The register slots a meter reading fills and the decoding of the register types. The register
# maps of the known models are in meter/models.py (loaded when a meter is set up).
import math

F32 = const(0)  # IEEE 754 float, high word first
U32 = const(1)  # unsigned, high word first
S32 = const(2)  # signed, high word first
S32L = const(3)  # signed, low word first (Carlo Gavazzi)
U16 = const(4)
S16 = const(5)
U64 = const(6)  # 4 registers, high word first

# value slots filled by a poll
V1 = const(0)
V2 = const(1)
V3 = const(2)
I1 = const(3)
I2 = const(4)
I3 = const(5)
P = const(6)
F = const(7)
E = const(8)  # energy, Wh
NVALUES = const(9)

# Decoders: one small function per type (MicroPython allocates the frame of a function that
# needs more than ~11 slots on the heap; these stay under, so decoding allocates only the
# float results: one per F32 value, none for a zero).


_NEG_ZERO = -0.0


def _w(b, o):
    return b[o] << 8 | b[o + 1]


def _f32(b, o):
    hi = b[o] << 8 | b[o + 1]
    e = (hi >> 7) & 0xFF
    if e == 0xFF:
        return None  # NaN or infinity: no meter value may be that
    m = (hi & 0x7F) << 16 | b[o + 2] << 8 | b[o + 3]
    if not m and not e:
        return _NEG_ZERO if hi & 0x8000 else 0.0  # made once: no float per zero
    if e:
        m |= 0x800000
        e -= 150
    else:
        e = -149  # denormal
    # the sign on the integer mantissa, so the value is the one float ldexp makes
    return math.ldexp(-m if hi & 0x8000 else m, e)


def _s32(hi, lo):
    if hi & 0x8000:  # two's complement, staying in small ints
        return -((((hi ^ 0xFFFF) << 16) | (lo ^ 0xFFFF)) + 1)
    return hi << 16 | lo


def _u64(b, o):
    # Energy counters: the top words are zero for any plausible meter.
    v = _w(b, o) << 16 | _w(b, o + 2)
    return (v << 16 | _w(b, o + 4)) << 16 | _w(b, o + 6)


def decode(b, o, typ):
    # The raw value of type typ at byte offset o of b: an int, or a float for F32
    # (None for NaN and infinities).
    if typ == F32:
        return _f32(b, o)
    if typ == U16:
        return _w(b, o)
    if typ == S16:
        v = _w(b, o)
        return v - 0x10000 if v & 0x8000 else v
    if typ == U32:
        return _w(b, o) << 16 | _w(b, o + 2)
    if typ == S32:
        return _s32(_w(b, o), _w(b, o + 2))
    if typ == S32L:
        return _s32(_w(b, o + 2), _w(b, o))
    if typ == U64:
        return _u64(b, o)
    raise ValueError("register type %d" % typ)
