# MicroPython's neopixel module for the unix port (host side only): the pixels a NeoPixel
# holds; write() on the board's status LED pin shows the first pixel's colour to the
# simulation ("pixel rrggbb"), as the WS2812 would light.
import _wires
import machine
import pins


class NeoPixel:
    ORDER = (1, 0, 2, 3)

    def __init__(self, pin, n, bpp=3, timing=1):
        self.pin = pin
        self.n = n
        self.bpp = bpp
        self.buf = bytearray(n * bpp)
        self.timing = timing
        self._last = None
        if machine._gpio(pin) >= 34:
            raise ValueError("pin can only be input")

    def __len__(self):
        return self.n

    def __setitem__(self, i, v):
        off = i * self.bpp
        for k in range(self.bpp):
            self.buf[off + self.ORDER[k]] = v[k]

    def __getitem__(self, i):
        off = i * self.bpp
        return tuple(self.buf[off + self.ORDER[k]] for k in range(self.bpp))

    def fill(self, v):
        for i in range(self.n):
            self[i] = v

    def write(self):
        if machine._gpio(self.pin) != pins.LED_WS2812 or not self.n:
            return
        r, g, b = self[0][:3]
        px = "%02x%02x%02x" % (r, g, b)
        if px != self._last:
            self._last = px
            _wires.send("pixel " + px)
