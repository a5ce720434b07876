# WS2812 ("NeoPixel") back end of the status light: the board builds a neopixel.NeoPixel-like
# object (indexable with (r, g, b) tuples, len(), write()) on its pin and hands it over. The
# whole ring or strip shows the light's colour; nothing is sent when the colour is unchanged.
# GRB ordering and timing are the neopixel driver's business.


class Ws2812:
    def __init__(self, np, count=None):
        self.np = np
        self.n = count if count is not None else len(np)
        self._last = None

    def show(self, r, g, b):
        c = (r, g, b)
        if c == self._last:
            return False
        self._last = c
        np = self.np
        for i in range(self.n):
            np[i] = c
        np.write()
        return True

    def off(self):
        self.show(0, 0, 0)
