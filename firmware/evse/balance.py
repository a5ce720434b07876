# Dynamic load balancing against the house supply: what the main fuse leaves the charger on each
# phase, and how the offer follows it. Pure logic, times passed in (time.ticks_ms values); the
# task that polls the supply-side meter is supply.py, the offer itself evse/offer.py.
#
# The headroom is main fuse - (grid current - the charger's own current) on each phase: the load
# the house carries without the charger. It follows a drop at once (the fuse first) and a rise
# only when it has held for a while (rise_ms) and is worth it (a whole amp), taking the smallest
# value seen meanwhile; a pause (below 6 A) ends only at 6 A + 1 A. So a house load that comes and
# goes, or meter noise, never makes the pilot flap.
import time

from evse.offer import MIN_A

RISE_STEP_A = const(1)  # a rise smaller than this is not followed (PWM churn for nothing)
RESUME_A = const(7)  # a pause ends only when MIN_A + 1 A is there
RISE_MS = const(5000)

# ConnectorPhaseRotation (OCPP 1.6 9.1.7): which grid phase (R, S, T = L1, L2, L3) each of the
# connector's phases L1, L2, L3 is wired to.
_ROTATIONS = {"RST": (0, 1, 2), "RTS": (0, 2, 1), "SRT": (1, 0, 2), "STR": (1, 2, 0),
              "TRS": (2, 0, 1), "TSR": (2, 1, 0)}


def rotation(csl, cid=1):
    # "0.RST,1.STR" -> (1, 2, 0) for connector 1; None when it is Unknown, NotApplicable or absent.
    if not isinstance(csl, str):
        return None
    want = str(cid) + "."
    for item in csl.split(","):
        item = item.strip()
        if item.startswith(want):
            return _ROTATIONS.get(item[len(want):])
    return None


def house(grid, own, rot, out):
    # The load each grid phase carries without the charger, into out (3 floats, >= 0); False when
    # a grid current is missing. grid: the supply meter's currents L1-L3 (a single-phase meter
    # gives 0 on L2, L3); own: the charger's currents L1-L3 (None entries count 0: unknown is
    # taken as nothing, so the house looks fuller, never emptier), or None when it draws nothing.
    # rot None (wiring unknown): each grid phase is relieved only of the smallest own current,
    # exact for a three-phase EV and on the safe side for a single-phase one.
    for k in range(3):
        g = grid[k]
        if g is None:
            return False
        out[k] = g
    if own is not None:
        if rot is None:
            lo = None
            for i in own:
                i = i or 0
                if lo is None or i < lo:
                    lo = i
            for k in range(3):
                out[k] -= lo
        else:
            for k in range(3):
                i = own[k]
                if i:
                    out[rot[k]] -= i
    for k in range(3):
        if out[k] < 0:
            out[k] = 0  # the two meters' readings are ~0.1 s apart: never more than the fuse
    return True


class Headroom:
    # The headroom the offer follows. value: amps; it starts at the fallback (no reading yet).
    def __init__(self, fallback_a, rise_ms=RISE_MS):
        self.value = fallback_a
        self.rise_ms = rise_ms
        self._first = True  # the first trusted reading is taken as it is, up or down
        self._since = None  # ticks when the current rise began, None: no rise under way
        self._low = 0  # the smallest headroom seen since

    def update(self, now, raw, may_rise=True, fixed=False):
        # Feeds one headroom figure; returns the value to apply. may_rise False: a figure that
        # may only lower the headroom (taken while the charger's own draw was changing).
        # fixed: the fallback while the meter is silent (a constant: no resume margin).
        v = self.value
        if self._first and may_rise and not fixed:
            self._first = False
            self._since = None
            self.value = raw
            return raw
        if not raw > v:  # a drop (or no change): at once
            self.value = raw
            self._since = None
            return raw
        if not may_rise:
            return v
        need = v + RISE_STEP_A
        if v < MIN_A and not fixed and need < RESUME_A:
            need = RESUME_A
        if fixed:
            need = raw
        if raw < need:
            self._since = None
            return v
        if self._since is None:
            self._since = now
            self._low = raw
        elif raw < self._low:
            self._low = raw
        if time.ticks_diff(now, self._since) >= self.rise_ms:
            self.value = self._low
            self._since = None
        return self.value
