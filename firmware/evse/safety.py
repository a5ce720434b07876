# The relay invariant (DESIGN.md section 8) in one page: pure functions and the pilot watch, no
# I/O. The connector (connector.py) feeds them and is the only one to act on the answer: its
# _apply() opens the relay first, before anything is reported.
#
# The relay may be closed only while all of these hold:
#   the pilot is in C or D (the EV asks for energy),
#   a session is running, authorized (or free charging) and not stopped,
#   the connector is operative,
#   no fault is active (FAULT_CODES),
#   the offer is at least offer.MIN_A (6 A),
#   the EV's diode has been seen on the pilot's low plateau since the PWM (re)started.
from evse import offer, pilot

# fault -> the OCPP error code it is reported as; every one opens the relay
FAULT_CODES = {
    "rcd": "GroundFailure",
    "weld": "PowerSwitchFailure",
    "relay": "PowerSwitchFailure",
    "diode": "OtherError",
    "pilot": "OtherError",
    "meter": "PowerMeterFailure",
}
FAULT_ORDER = ("rcd", "weld", "relay", "pilot", "diode", "meter")  # which one the status names
# Faults that end the session and stay until the EV is unplugged and the inputs read sound
# (connector._check_latched) or the charger restarts: an RCD trip, a welded contact, a contactor
# whose auxiliary contact disagrees. The others clear with their cause.
LATCHED = ("rcd", "weld", "relay")
_INVALID_READINGS = const(5)  # 100 ms of pilot readings between bands: a pilot fault
_DIODE_BAD_READINGS = const(3)


def offering(session, operative, faults, offer_a):
    # PWM runs while a session may draw energy; otherwise steady +12 V tells the EV "wait".
    return (session is not None and session["auth"] and not session.get("stopped")
            and operative and not faults and not offer.paused(offer_a))


def relay_allowed(cp, session, operative, faults, offer_a, diode_verified):
    return (cp in ("C", "D") and offering(session, operative, faults, offer_a)
            and diode_verified)


class PilotWatch:
    # The pilot's readings, debounced into a state (A-F), with the two faults they can show:
    # a voltage that stays between bands (a broken pilot circuit) and a missing EV diode.
    # Leaving C/D is quicker than reaching it (IEC 61851-1: C -> B, the supply off within about
    # 100 ms): 2 of the last 3 readings out of C/D (between bands included) make it B, however
    # the C readings or glitches fall among them; C/D again needs 3 equal readings in a row.
    def __init__(self):
        self._deb = pilot.Debounce(3, "A")
        self._out = 0  # the last 3 readings, a bit each: 1 if out of C/D
        self._invalid = 0  # consecutive readings between bands
        self._diode_bad = 0  # consecutive readings with no diode while PWM runs
        self.diode_verified = False  # the diode check has passed since the PWM (re)started
        self.pilot_fault = False  # the last feed()'s faults (attributes, not a returned
        self.diode_fault = False  # tuple: a reading allocates nothing)
        self.leaving = False  # the last reading is not C/D, whatever the debounced state says

    def feed(self, mv, low_mv, pwm_on, diode_fault):
        # One reading: mv the high plateau, low_mv() reads the low one (only when it is used),
        # pwm_on: PWM runs and has settled, diode_fault: the diode fault is active now.
        # -> the state; sets pilot_fault and diode_fault
        raw = pilot.classify(mv)
        st = self._deb.feed(raw)
        self.leaving = out = raw != "C" and raw != "D"
        o = (self._out << 1) & 7
        if out:
            o |= 1
        self._out = o
        if o & (o - 1) and (st == "C" or st == "D"):  # (2 bits of 3 set)
            st = self._deb.state = "B"  # (the debounce still needs 3 readings for C, or A)
        # A single glitch between bands keeps the last stable state; a voltage that stays
        # between bands is a fault, the relay opens.
        self._invalid = self._invalid + 1 if raw is None else 0
        pilot_fault = st in ("E", "F") or self._invalid >= _INVALID_READINGS
        plugged = st in ("B", "C", "D")
        bad = plugged and not pilot.diode_ok(low_mv(), pwm_on)
        self._diode_bad = self._diode_bad + 1 if bad else 0
        if pwm_on and not bad and plugged:
            self.diode_verified = True
        elif st == "A":
            # Unplugged: the next EV's diode is checked anew, even while a session is kept
            # through the unplug (StopTransactionOnEVSideDisconnect false) and the PWM runs on
            self.diode_verified = False
        self.pilot_fault = pilot_fault
        self.diode_fault = self._diode_bad >= _DIODE_BAD_READINGS or (diode_fault and bad)
        return st
