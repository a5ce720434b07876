# IEC 61851-1 control pilot: voltage bands -> states A-F, and current offer -> PWM duty.
# Bands follow the standard's tolerances (Table A.4); a reading between bands is "unknown" and
# the caller keeps the last stable state.

# (state, low mV, high mV) for the positive plateau
_BANDS = const((
    ("A", 11000, 13000),
    ("B", 8000, 10000),
    ("C", 5000, 7000),
    ("D", 2000, 4000),
    ("E", -1000, 1000),
))
_F_MAX_MV = const(-11000)  # -12 V steady: the EVSE itself signals F


def classify(high_mv):
    # -> "A".."F", or None when the voltage sits between bands
    if high_mv <= _F_MAX_MV:
        return "F"
    for st, lo, hi in _BANDS:
        if lo <= high_mv <= hi:
            return st
    return None


def diode_ok(low_mv, pwm_running):
    # While PWM runs, the low plateau must reach about -12 V; an EV without the diode (or a
    # short) cannot pull it there.
    return (not pwm_running) or low_mv <= -11000


MIN_A = const(6)  # IEC 61851-1: no duty cycle below 6 A (evse/offer.py pauses the offer there)


def duty_for(amps):
    # Duty cycle in percent for a current offer; 100 means no offer (steady +12 V).
    if amps < MIN_A:
        return 100
    if amps <= 51:
        return amps / 0.6
    if amps < 52.5:
        # The high range's formula gives 84.4-85 % here, which an EV reads with the low one
        # (x 0.6: less than offered, down to 50.6 A); 85 % says 51 A, the most below the offer.
        return 85
    if amps <= 80:
        return amps / 2.5 + 64
    return 96


class Debounce:
    # A state counts once it has been read the same `n` times in a row.
    def __init__(self, n=3, initial="A"):
        self.n = n
        self.state = initial
        self._cand = initial
        self._count = 0

    def feed(self, st):
        if st is None:
            self._count = 0
            return self.state
        if st == self._cand:
            self._count += 1
        else:
            self._cand = st
            self._count = 1
        if self._count >= self.n:
            self.state = st
        return self.state
