# What the status light means: connector status and link state -> colour and pattern.
# The board renders it (WS2812 or RGB PWM on hardware; reported to the simulation under unix).
import asyncio

_COLORS = {
    "Available": ("00ff00", "solid"),
    "Preparing": ("0000ff", "solid"),
    "Charging": ("0000ff", "breathe"),
    "SuspendedEV": ("0000ff", "slow_blink"),
    "SuspendedEVSE": ("ffa500", "slow_blink"),
    "Finishing": ("0000ff", "slow_blink"),
    "Reserved": ("ffff00", "solid"),
    "Unavailable": ("808080", "solid"),
    "Faulted": ("ff0000", "fast_blink"),
}


CLAIM_MODE = ("ff00ff", "breathe")  # hotspot open: magenta, breathing


def appearance(status, online, claiming=False):
    color, pattern = _COLORS.get(status, ("ff0000", "fast_blink"))
    if claiming and status != "Faulted":
        return CLAIM_MODE
    if not online and status == "Available":
        return "00ffff", "slow_blink"  # offline but usable: cyan
    return color, pattern


class StatusLight:
    def __init__(self, board, connector, link, brightness=80, hotspot=None):
        self.board = board
        self.connector = connector
        self.link = link  # object with .connected
        self.brightness = brightness
        self.hotspot = hotspot  # object with .open (claim mode), or None

    async def run(self):
        while True:
            claiming = self.hotspot is not None and self.hotspot.open
            color, pattern = appearance(self.connector.status_of(1)[0], self.link.connected,
                                        claiming)
            self.board.led_state(color, pattern, self.brightness)
            r, g, b = (int(color[i : i + 2], 16) * self.brightness // 100 for i in (0, 2, 4))
            self.board.led(r, g, b)
            await asyncio.sleep_ms(100)
