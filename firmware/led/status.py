# What the status light means: connector status, link state and the charger's modes -> a look
# (colour and animation, led/patterns.py), rendered through the board (board.led(r, g, b): a
# WS2812 or RGB PWM back end on hardware) at the brightness setting, and reported to the
# simulation (board.led_state). Animations run on the one loop and never block it: static looks
# are drawn once, blinks wake only at their edges, breathing at 20 frames a second.
#
# Priority: a transient tag feedback (accepted: 1.5 s; rejected: BlinkRepeat blinks) > the
# connector's status (offline replaces "available" when the cloud cannot be reached), where a mode
# (claim, update) stands in for an idle connector's look only: a session or a fault always shows.
import asyncio
import time

from led import patterns

_FRAME_MS = const(50)
_CHECK_MS = const(100)  # how often the status and link state are looked at
_FEEDBACK_MS = const(1500)
_IDLE = const(("available", "offline", "preparing", "reserved", "unavailable"))  # a mode hides


class StatusLight:
    def __init__(self, board, connector, link, brightness=80, hotspot=None, blinks=3):
        self.board = board
        self.blinks = blinks  # the OCPP BlinkRepeat key: a refused tag's red blinks
        self.connector = connector
        self.link = link  # object with .connected
        self.brightness = max(0, min(100, int(brightness)))
        self.mode = None  # "claim", "update" or None (the connector's `held` shows "update" too)
        self.hotspot = hotspot  # object with .open (claim mode), or None
        self._feedback = None
        self._feedback_until = 0
        self.frames = 0  # frames drawn (tests, benchmarks)
        self._name = None  # the look last read from the table, and its (colour, animation)
        self._look = None

    # -- what others set -------------------------------------------------------------------
    def set_brightness(self, pct):
        # 0-100 (the OCPP LightIntensity key / the app's LED brightness). Returns the value
        # used; out-of-range values are clamped.
        self.brightness = max(0, min(100, int(pct)))
        return self.brightness

    def on_config(self, key, value):
        # The OCPP configuration listener: LightIntensity is this light's brightness,
        # BlinkRepeat its refusal's blinks.
        if key == "LightIntensity":
            self.set_brightness(value)
        elif key == "BlinkRepeat":
            self.blinks = value

    def set_mode(self, mode):
        # "claim" (hotspot open), "update" (firmware update running) or None.
        if mode is not None:
            try:
                patterns.look(mode)
            except KeyError:
                raise ValueError("unknown light mode %r" % mode)
        self.mode = mode

    def tag_feedback(self, accepted):
        # Short confirmation of an authorisation: green, or red blinking `blinks` times (a look
        # starts its animation afresh, so each blink is one whole period; 0: none, the buzzer's
        # tune alone).
        ms = _FEEDBACK_MS if accepted else self.blinks * patterns.period("fast_blink")
        self._feedback = "tag_accepted" if accepted else "tag_rejected"
        self._feedback_until = time.ticks_add(time.ticks_ms(), ms)

    # -- the look now ----------------------------------------------------------------------
    def look(self, now):
        # -> (name, colour, animation)
        if self._feedback and time.ticks_diff(self._feedback_until, now) > 0:
            name = self._feedback
        else:
            self._feedback = None
            name = patterns.status_look(self.connector.status_of(1)[0])
            if name == "available" and not self.link.connected:
                name = "offline"
            if name in _IDLE:
                if self.mode:
                    name = self.mode
                elif self.connector.held:  # a firmware update installs (evse/connector hold())
                    name = "update"
                elif self.hotspot is not None and self.hotspot.open:
                    name = "claim"
        if name != self._name:  # the table is read when the look changes, not every check
            self._name = name
            self._look = patterns.look(name)
        return name, self._look[0], self._look[1]

    async def run(self):
        # Changes (status, mode, brightness, feedback) show within _CHECK_MS.
        b = self.board
        name = br = None
        r = g = bl = 0
        sr = sg = sb = -1
        t0 = time.ticks_ms()
        while True:
            now = time.ticks_ms()
            n, color, anim = self.look(now)
            if n != name or self.brightness != br:
                name, br = n, self.brightness
                r, g, bl = patterns.rgb(color)
                t0 = now  # each look starts its animation from the beginning
                b.led_state(color, anim, br)
            t = time.ticks_diff(now, t0)
            lvl = patterns.level(anim, t)
            nr, ng, nb = patterns.scaled(r, lvl, br), patterns.scaled(g, lvl, br), \
                patterns.scaled(bl, lvl, br)
            if nr != sr or ng != sg or nb != sb:
                sr, sg, sb = nr, ng, nb
                b.led(nr, ng, nb)
                self.frames += 1
            wait = patterns.next_change_ms(anim, t, _FRAME_MS)
            await asyncio.sleep_ms(_CHECK_MS if wait is None or wait > _CHECK_MS else wait)
