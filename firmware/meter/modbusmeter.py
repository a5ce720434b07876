# A Modbus RTU meter as a source for meter.meter.Meter: read(out) reads every register block of
# the model's map (meter.models) through a meter.modbus.Master and decodes the values into out.
# (Kept apart from meter.meter, which re-exports it, so that neither module is big to compile:
# from source, MicroPython needs one module's whole parse tree in RAM at once.)
#
# A read allocates nothing of its own: read() hands out a link.Looped exchange (no coroutine per
# call), and a value whose register bytes have not changed since the last poll is the same object
# as before, so only a changed value makes a new float (a float is a heap object in MicroPython).
from link import Looped, ret
from meter import maps


# The values a single-phase meter does not have: 0, not unknown.
_ONE_PHASE_ZERO = (maps.V2, maps.V3, maps.I2, maps.I3)


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
        self._last = bytearray(8 * maps.NVALUES)  # each value's register bytes, at slot * 8
        self._at = bytearray(maps.NVALUES)  # where each value is in its answer, and its width
        self._wd = bytearray(maps.NVALUES)
        for slot, _, off, typ, _ in self.map["values"]:
            self._at[slot] = 3 + 2 * off
            self._wd[slot] = models.width(typ)
        self._vals = [None] * maps.NVALUES  # and the value made from them (None: none yet)
        self._out = None
        self._op = Looped(self._reads, None)
        for _, count in self.map["blocks"]:
            ret(2 * count)  # what the master's reads give: made now, with the rest (see Looped)

    def read(self, out):
        # Fills out (maps.NVALUES slots, SI units; None: unknown) with one reading of every
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
            for k in range(maps.NVALUES):
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
        x = maps.decode(self.m.rx, self._at[slot], d[3])
        if x is None:
            start = self.map["blocks"][d[1]][0]
            raise ValueError("register %d+%d is not a number" % (start, d[2]))
        if d[4] != 1:
            x = x * d[4]
        if slot == maps.E and not isinstance(x, int):
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
