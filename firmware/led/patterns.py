# What the status light shows for each state of the charger: a colour and an animation, and
# the animations themselves as a level (0-255) over time. No hardware here: status.py picks the
# appearance and drives a back end (ws2812.py, rgbpwm.py) through the board.

# meaning -> colour rrggbb and animation, one line each: a text constant, in flash with the code
# (dicts of tuples took ~1 KB of heap); look() reads a line when the light's look changes.
_LOOKS = const((
    "\navailable 00ff00 solid"
    "\npreparing 0000ff solid"
    "\ncharging 0000ff breathe"  # animated: energy is flowing
    "\nsuspended ffa500 slow_blink"  # SuspendedEV / SuspendedEVSE
    "\nfinishing 0000ff slow_blink"
    "\nreserved ffff00 solid"
    "\nunavailable 808080 solid"
    "\nfaulted ff0000 fast_blink"
    "\noffline 00ffff slow_blink"  # usable, but the cloud cannot be reached
    "\nclaim ff00ff breathe"  # hotspot open, waiting to be added to an account
    "\nupdate ffffff fast_breathe"  # firmware update in progress
    "\ntag_accepted 00ff00 solid"
    "\ntag_rejected ff0000 fast_blink"
    "\noff 000000 off"
    "\n"
))


def look(name):
    # (colour, animation) of a meaning; KeyError for an unknown one.
    ok = type(name) is str and "\n" not in name and " " not in name
    i = _LOOKS.find("\n" + name + " ") if ok else -1
    if i < 0:
        raise KeyError(name)
    i += len(name) + 2
    return _LOOKS[i:i + 6], _LOOKS[i + 7:_LOOKS.find("\n", i)]


def status_look(status):
    # The meaning of an OCPP ChargePointStatus of connector 1 ("faulted" for an unknown one).
    if status == "Available":
        return "available"
    if status == "Preparing":
        return "preparing"
    if status == "Charging":
        return "charging"
    if status == "SuspendedEV" or status == "SuspendedEVSE":
        return "suspended"
    if status == "Finishing":
        return "finishing"
    if status == "Reserved":
        return "reserved"
    if status == "Unavailable":
        return "unavailable"
    return "faulted"


def __getattr__(attr):
    # LOOKS, the whole table as a dict (meaning -> (colour, animation)): built when asked for
    # (tests, tools), never by the firmware.
    if attr != "LOOKS":
        raise AttributeError(attr)
    d = {}
    for ln in _LOOKS.split("\n"):
        if ln:
            name = ln.split()[0]
            d[name] = look(name)
    return d


_FLOOR = const(16)  # a breathing light never goes fully dark


def period(anim):
    # An animation's period in ms (0: static).
    if anim == "breathe":
        return 3000
    if anim == "slow_blink":
        return 2000
    if anim == "fast_breathe":
        return 1000
    if anim == "fast_blink":
        return 400
    return 0


def level(anim, t_ms):
    # The light's level (0-255) for an animation at time t_ms.
    if anim == "off":
        return 0
    p = period(anim)
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
    p = period(anim)
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
