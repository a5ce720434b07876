# The current the charger offers the EV through the pilot: the smallest of what the wiring
# allows (the installer's hardware limit, a protected setting), what smart charging allows and
# what the supply has left per phase. Pure functions; the connector state machine applies them.
# Below 6 A IEC 61851-1 has no duty cycle: the offer is paused (PWM 100 %, SuspendedEVSE) and
# resumes by itself when the limit rises again.
from evse import pilot

MIN_A = pilot.MIN_A
MAX_A = const(80)  # the highest current a pilot duty cycle can express


def _tenths_down(a):
    # Round down to 0.1 A: an offer never exceeds a limit. The small bias absorbs the binary
    # error of single-precision floats (the ESP32 port's), where 15.9 * 10 is 158.99998.
    return int(a * 10 + 0.001) / 10


def offer(hw_limit, smart=None, headroom=None):
    # -> amps to offer, rounded down to 0.1 A, or 0 when paused. hw_limit is required: without
    # a sane installer limit (missing, not a number, under 6 A) nothing is offered, because the
    # cable and breaker are unknown. smart / headroom None = no limit from that source.
    if type(hw_limit) not in (int, float) or not hw_limit >= MIN_A:  # `not >=` also catches NaN
        return 0
    a = hw_limit
    if smart is not None and not smart >= a:
        a = smart
    if headroom is not None and not headroom >= a:
        a = headroom
    if a > MAX_A:
        a = MAX_A
    if not a >= MIN_A:
        return 0
    return _tenths_down(a)


def paused(amps):
    return not amps >= MIN_A


def duty(amps):
    # PWM duty in percent for an offer (100 = steady +12 V, nothing offered).
    if paused(amps):
        return 100
    return pilot.duty_for(amps)


def headroom(limit_a, loads):
    # Per-phase headroom of the supply: limit_a (the main fuse per phase) minus the load each
    # phase already carries without the charger; the smallest counts, since the EV draws about
    # the same on every phase. -> amps (0 when a phase is already full), or None without
    # readings (the meter is down or absent: only the other limits apply).
    if limit_a is None or not loads:
        return None
    h = None
    for load in loads:
        if load is None:
            return None
        r = limit_a - load
        if h is None or r < h:
            h = r
    return h if h > 0 else 0
