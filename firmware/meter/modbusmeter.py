# A Modbus RTU meter as a source for meter.meter.Meter: read(out) reads every register block of
# the model's map (meter.models) through a meter.modbus.Master and decodes the values into out.
# (Kept apart from meter.meter, which re-exports it, so that neither module is big to compile:
# from source, MicroPython needs one module's whole parse tree in RAM at once.)
#
# A read allocates nothing of its own: read() hands out a link.Looped exchange (no coroutine per
# call), and a value whose register bytes have not changed since the last poll is the same object
# as before, so only a changed value makes a new float (a float is a heap object in MicroPython).
import math

from link import Looped, ret

# The value slots of a reading and the register types: meter/maps.py's layout, as private copies
# (const() does not cross modules; tests/test_structure.py checks them against it).
_V2 = const(1)
_V3 = const(2)
_I2 = const(4)
_I3 = const(5)
_E = const(8)
_NVALUES = const(9)
_F32 = const(0)
_U32 = const(1)
_S32 = const(2)
_S32L = const(3)
_U16 = const(4)
_S16 = const(5)
_U64 = const(6)

# The values a single-phase meter does not have: 0, not unknown.
_ONE_PHASE_ZERO = const((_V2, _V3, _I2, _I3))


class ModbusMeter:
    # A Modbus RTU meter of a known model (meter.models.names()) at a bus address.
    def __init__(self, master, model, addr=1):
        from meter import models  # the register maps: set-up only, out of the heap again after
        from supervisor import drop

        drop("meter.models")
        self.map = models.model(model)
        if self.map is None:
            raise ValueError("unknown meter model %r (known: %s)" % (model, ", ".join(models.names())))
        self.m = master
        self.model = model
        self.addr = addr
        self._last = bytearray(8 * _NVALUES)  # each value's register bytes, at slot * 8
        self._at = bytearray(_NVALUES)  # where each value is in its answer, and its width
        self._wd = bytearray(_NVALUES)
        for slot, _, off, typ, _ in self.map["values"]:
            self._at[slot] = 3 + 2 * off
            self._wd[slot] = models.width(typ)
        self._vals = [None] * _NVALUES  # and the value made from them (None: none yet)
        self._out = None
        self._op = Looped(self._reads, None)
        for _, count in self.map["blocks"]:
            ret(2 * count)  # what the master's reads give: made now, with the rest (see Looped)

    def read(self, out):
        # Fills out (_NVALUES slots, SI units; None: unknown) with one reading of every
        # block: `await meter.read(out)`. Raises the Modbus errors, or ValueError for a value
        # that is not a number.
        self._out = out
        return self._op.begin()

    def _reads(self):
        # Every read, one pass of the loop each (see link.Looped).
        mp = self.map
        blocks = mp["blocks"]
        while True:
            out = self._out
            for k in range(_NVALUES):
                out[k] = None
            if mp["phases"] == 1:
                for k in _ONE_PHASE_ZERO:
                    out[k] = 0.0
            res = ret(None)
            try:
                for bi in range(len(blocks)):
                    yield from self.m.read(self.addr, mp["fc"], blocks[bi][0], blocks[bi][1])
                    self._decode(bi, out)
            except Exception as e:
                res = e
            yield res

    # Small functions on purpose: MicroPython puts a frame of more than ~11 slots of locals and
    # stack on the heap at every call.
    def _decode(self, bi, out):
        # The values of block bi (map entries: slot, block, register, type, scale), from the
        # answer in the master's buffer, into out.
        vs = self.map["values"]
        i = len(vs)
        while i:
            i -= 1
            d = vs[i]
            if d[1] == bi:
                self._value(d, out)

    def _value(self, d, out):
        slot = d[0]
        x = self._vals[slot]
        if x is None or not self._unchanged(slot):
            x = self._new_value(d)
        out[slot] = x

    def _unchanged(self, slot):
        # The value's register bytes are the ones it was made from.
        return _same(self.m.rx, self._at[slot], self._last, slot << 3, self._wd[slot])

    def _new_value(self, d):
        slot = d[0]
        x = decode(self.m.rx, self._at[slot], d[3])
        if x is None:
            start = self.map["blocks"][d[1]][0]
            raise ValueError("register %d+%d is not a number" % (start, d[2]))
        if d[4] != 1:
            x = x * d[4]
        if slot == _E and not isinstance(x, int):
            x = int(x + 0.5) if x >= 0 else -int(-x + 0.5)  # whole Wh
        self._keep(slot)
        self._vals[slot] = x
        return x

    def _keep(self, slot):
        _copy(self._last, slot << 3, self.m.rx, self._at[slot], self._wd[slot])


def _same(a, ao, b, bo, n):
    # a[ao:ao + n] == b[bo:bo + n], without slicing (a slice is a new object)
    n += ao
    while ao < n:
        if a[ao] != b[bo]:
            return False
        ao += 1
        bo += 1
    return True


def _copy(dst, do, src, so, n):
    n += so
    while so < n:
        dst[do] = src[so]
        do += 1
        so += 1


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
    if typ == _F32:
        return _f32(b, o)
    if typ == _U16:
        return _w(b, o)
    if typ == _S16:
        v = _w(b, o)
        return v - 0x10000 if v & 0x8000 else v
    if typ == _U32:
        return _w(b, o) << 16 | _w(b, o + 2)
    if typ == _S32:
        return _s32(_w(b, o), _w(b, o + 2))
    if typ == _S32L:
        return _s32(_w(b, o + 2), _w(b, o))
    if typ == _U64:
        return _u64(b, o)
    raise ValueError("register type %d" % typ)
