# RGB LED on three PWM channels: the board builds machine.PWM-like objects (duty_u16(0..65535))
# for the red, green and blue pins and hands them over. common_anode=True inverts the duty
# (the LED's common pin at +V, each colour lit by pulling its pin low).


class RgbPwm:
    def __init__(self, red, green, blue, common_anode=False):
        self.ch = (red, green, blue)
        self.invert = common_anode
        self._last = [-1, -1, -1]

    def _set(self, k, v):
        if v == self._last[k]:
            return
        self._last[k] = v
        d = v * 257  # 0..255 -> 0..65535
        self.ch[k].duty_u16(65535 - d if self.invert else d)

    def show(self, r, g, b):
        self._set(0, r)
        self._set(1, g)
        self._set(2, b)

    def off(self):
        self.show(0, 0, 0)
