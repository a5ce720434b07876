# What the status light shows for each state of the charger: a colour and an animation, and
# the animations themselves as a level (0-255) over time. No hardware here: status.py picks the
# appearance and drives a back end (ws2812.py, rgbpwm.py) through the board.

# meaning -> (colour rrggbb, animation)
LOOKS = {
    "available": ("00ff00", "solid"),
    "preparing": ("0000ff", "solid"),
    "charging": ("0000ff", "breathe"),  # animated: energy is flowing
    "suspended": ("ffa500", "slow_blink"),  # SuspendedEV / SuspendedEVSE
    "finishing": ("0000ff", "slow_blink"),
    "reserved": ("ffff00", "solid"),
    "unavailable": ("808080", "solid"),
    "faulted": ("ff0000", "fast_blink"),
    "offline": ("00ffff", "slow_blink"),  # usable, but the cloud cannot be reached
    "claim": ("ff00ff", "breathe"),  # hotspot open, waiting to be added to an account
    "update": ("ffffff", "fast_breathe"),  # firmware update in progress
    "tag_accepted": ("00ff00", "solid"),
    "tag_rejected": ("ff0000", "fast_blink"),
    "off": ("000000", "off"),
}

# OCPP ChargePointStatus of connector 1 -> meaning
STATUS_LOOK = {
    "Available": "available",
    "Preparing": "preparing",
    "Charging": "charging",
    "SuspendedEV": "suspended",
    "SuspendedEVSE": "suspended",
    "Finishing": "finishing",
    "Reserved": "reserved",
    "Unavailable": "unavailable",
    "Faulted": "faulted",
}

# animation -> period ms (0: static)
_PERIOD = {"solid": 0, "off": 0, "breathe": 3000, "fast_breathe": 1000, "slow_blink": 2000,
           "fast_blink": 400}
_FLOOR = const(16)  # a breathing light never goes fully dark


def period(anim):
    return _PERIOD.get(anim, 0)


def level(anim, t_ms):
    # The light's level (0-255) for an animation at time t_ms.
    if anim == "off":
        return 0
    p = _PERIOD.get(anim, 0)
    if not p:
        return 255
    ph = t_ms % p
    if anim == "slow_blink" or anim == "fast_blink":
        return 255 if ph < p // 2 else 0
    # breathing: a triangle wave, squared so it lingers near dark and rises smoothly
    half = p // 2
    x = ph if ph < half else p - ph  # 0..half
    v = x * 255 // half
    return _FLOOR + (255 - _FLOOR) * v * v // (255 * 255)


def next_change_ms(anim, t_ms, frame_ms=50):
    # How long the level stays as it is from t_ms: blinks change twice a period, breathing
    # every frame, static looks never (None).
    p = _PERIOD.get(anim, 0)
    if not p:
        return None
    if anim == "slow_blink" or anim == "fast_blink":
        half = p // 2
        return half - (t_ms % half)
    return frame_ms


def rgb(color):
    # "rrggbb" -> (r, g, b)
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def scaled(c, lvl, brightness):
    # One channel (0-255) at level 0-255 and brightness 0-100. Perceptual: the brightness
    # percentage is squared, so 50 % looks about half as bright, and 1 % is still lit.
    return c * lvl * brightness * brightness // 2550000
