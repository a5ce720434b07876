# The meter task: polls the energy meter, checks every reading, and keeps the latest good one in
# `latest` (updated in place; a dict of energy_wh, power_w, current_a [3], voltage_v [3],
# frequency_hz, ok, ts).
#
# A reading is rejected, with a logged reason, when it is not plausible for this installation:
# negative energy, energy going backwards or rising faster than the circuit can deliver, power
# or current beyond the circuit's rating, power beyond V x I, voltage or frequency out of range.
# Energy is never invented: while the meter fails, `latest` keeps the last good reading with its
# timestamp and ok = False, and energy_wh() answers None. fail_after failed or rejected polls in
# a row are a PowerMeterFailure (on_failure(True)); the first good reading clears it.
#
# A poll allocates nothing of its own in the steady state (the bench `drivers` measures it):
# poll() is a link.Looped exchange (no coroutine per call), the pause between polls is a sleep
# fresh() can cut short (an Event under wait_for_ms was a task, a coroutine and a TimeoutError
# every second), and the checks stay in integers whenever that settles them. What remains is
# inherent to publishing floats: every value whose register changed since the last poll is a
# new float object (a float is a heap object in MicroPython; meter.modbusmeter), and on the unix
# port clock.now()'s time.time() is a float too (an int on the ESP32).
import asyncio
import time

import clock
import log
from link import Looped, ret
from meter.modbusmeter import ModbusMeter  # noqa: F401 (its users import it from here)
from supervisor import wake

_TAG = const("meter")
_FRESH_POLL_MS = const(20)  # fresh(): how often it looks for the poll it waits for
# The value slots of a reading: meter/maps.py's layout, as private copies (const() does not cross
# modules; tests/test_structure.py checks them against it).
_V1 = const(0)
_V2 = const(1)
_V3 = const(2)
_I1 = const(3)
_I2 = const(4)
_I3 = const(5)
_P = const(6)
_F = const(7)
_E = const(8)
_NVALUES = const(9)
_V_MIN = const(180)  # a connected phase: 230 V -20 % .. +15 %, well outside EN 50160's +-10 %
_V_MAX = const(265)
_V_ABSENT = const(50)  # below this a phase is not connected (a single-phase installation)


class Meter:
    def __init__(self, source, max_current_a=32, phases=3, period_ms=1000, on_failure=None,
                 fail_after=3, publish=None):
        self.source = source  # async read(values) filling a list of _NVALUES (None: unknown)
        self.max_current_a = max_current_a
        self.phases = phases
        self.period_ms = period_ms
        self.on_failure = on_failure
        self.fail_after = fail_after
        self.publish = publish  # fn(key, value): board.telemetry (a no-op on hardware)
        # the circuit's limits: rated current on each phase at the highest plausible voltage
        self.max_power_w = phases * _V_MAX * max_current_a * 5 // 4
        self._max_i = max_current_a * 1.25 + 1  # a current beyond this is not plausible
        self.latest = {
            "energy_wh": None, "power_w": None, "current_a": [None, None, None],
            "voltage_v": [None, None, None], "frequency_hz": None, "ok": False, "ts": None,
        }
        self.failed = False
        self.polls = 0
        self.rejected = 0
        self.errors = 0
        self._bad = 0  # failed or rejected polls in a row
        self._vals = [None] * _NVALUES
        self._last_ms = 0
        self._why = None
        self._started = 0  # polls begun
        self._done = 0  # the number of the last poll that finished
        self._kicked = False  # fresh() wants a poll now
        self._napper = None  # the run task while it sleeps between polls
        self._poll = Looped(self._polls, True, False)

    def energy_wh(self):
        # The meter's import register (Wh) when the meter is healthy, else None: callers
        # never get a stale or invented figure as if it were current.
        return self.latest["energy_wh"] if self.latest["ok"] else None

    def keep(self, wh):
        # A StopTransaction's meterStop, before its journal: a source that keeps its register
        # itself (the S0 counter, meter/pulse.py) saves it, and raises it after a power cut.
        f = getattr(self.source, "keep", None)
        if f is not None:
            f(wh)
            e = self.latest["energy_wh"]
            if e is not None and e < wh:
                self.latest["energy_wh"] = wh  # (the next reading's checks start from it)

    async def run(self):
        while True:
            t0 = time.ticks_ms()
            self._kicked = False
            self._started += 1
            try:
                await self.poll()
            except MemoryError:
                pass  # (no block for a fresh exchange): the next poll tries, at its period
            self._done = self._started
            if self._kicked:
                continue  # a fresh() during the poll wants the next one at once
            spent = time.ticks_diff(time.ticks_ms(), t0)
            self._napper = asyncio.current_task()
            try:
                await asyncio.sleep_ms(max(10, self.period_ms - spent))
            finally:
                self._napper = None

    def _wake(self):
        # Ends the sleep between polls now (supervisor.wake()).
        t = self._napper
        if t is not None:
            self._napper = None
            wake(t)

    async def fresh(self, timeout_ms=2000):
        # The register as it is now: wakes the poll loop and waits for a poll that started
        # after this call (one bus, one master: no concurrent request). Used at a session's
        # end, when the relay is already open and the register has stopped moving.
        want = self._started + 1
        self._kicked = True
        self._wake()
        t_end = time.ticks_add(time.ticks_ms(), timeout_ms)
        while self._done < want:  # (looked at every _FRESH_POLL_MS: an Event under
            # wait_for_ms was a task and three coroutines at each session's end)
            if time.ticks_diff(t_end, time.ticks_ms()) <= 0:
                return self.energy_wh()
            await asyncio.sleep_ms(_FRESH_POLL_MS)
        return self.energy_wh()

    def poll(self):
        # One reading: `await meter.poll()` is True when it was good and accepted. One poll at a
        # time (the run loop's, or a test's).
        self.polls += 1
        return self._poll.begin()

    def _polls(self):
        # Every poll, one pass of the loop each (see link.Looped).
        while True:
            try:
                yield from self.source.read(self._vals)
            except MemoryError:
                # The heap, not the meter: no failure counted (a squeezed heap must not fault
                # the charger), and nothing formatted; the next poll reads again.
                self.errors += 1
                yield ret(False)
                continue
            except Exception as e:
                yield ret(self._unread(e))
                continue
            yield ret(self._judge())

    def _judge(self):
        # The source has filled self._vals: check the reading, keep it or count it as failed.
        v = self._vals
        now = time.ticks_ms()
        why = self.check(v, now)
        if why:
            self.rejected += 1
            self._failed("reading rejected: " + why)
            return False
        self._accept(v, now)
        return True

    def _unread(self, e):
        self.errors += 1
        self._failed("no reading: %s" % e)
        return False

    def _failed(self, why):
        self._bad += 1
        if why != self._why or self._bad % 60 == 0:
            log.warn(_TAG, "%s (%d in a row)", why, self._bad)
            self._why = why
        if self._bad >= self.fail_after:
            self.latest["ok"] = False
            if not self.failed:
                self.failed = True
                log.error(_TAG, "meter failing: PowerMeterFailure")
                if self.publish:
                    self.publish("meter", self.latest)
                if self.on_failure:
                    self.on_failure(True)

    def _accept(self, v, now):
        L = self.latest
        L["energy_wh"] = v[_E]
        L["power_w"] = v[_P]
        c = L["current_a"]
        u = L["voltage_v"]
        c[0], c[1], c[2] = v[_I1], v[_I2], v[_I3]
        u[0], u[1], u[2] = v[_V1], v[_V2], v[_V3]
        L["frequency_hz"] = v[_F]
        L["ts"] = clock.now()
        L["ok"] = True
        self._last_ms = now
        self._bad = 0
        self._why = None
        if self.publish:
            self.publish("meter", L)
        if self.failed:
            self.failed = False
            log.info(_TAG, "meter answering again: PowerMeterFailure cleared")
            if self.on_failure:
                self.on_failure(False)

    # The checks are split into small functions on purpose: MicroPython puts the frame of a
    # function needing more than ~11 slots on the heap, at every call, every second.
    def check(self, v, now):
        # -> None for a plausible reading, else the reason it is not.
        why = self._check_energy(v[_E], now)
        if why:
            return why
        why = self._check_phases(v)
        if why:
            return why
        f = v[_F]
        if f is not None and not 45 <= f <= 65:
            return "frequency %.2f Hz out of range" % f
        return None

    def _check_phases(self, v):
        p = v[_P]
        if p is not None and not -self.max_power_w <= p <= self.max_power_w:
            return "power %d W beyond the circuit's %d W" % (p, self.max_power_w)
        for k in range(3):
            why = self._check_phase(v, k)
            if why:
                return why
        if p is not None:
            return self._check_va(p, v)
        return None

    def _check_va(self, p, v):
        # |P| cannot exceed the sum of V x I (plus a margin for rounding and idle draw). Float
        # arithmetic makes a heap object per result, so a lower bound of the sum in integers
        # settles the usual reading; the exact sum is worked out only when the bound is not
        # enough (or a value is negative).
        lb = _va_floor(v)
        if lb == -1:
            return None
        lim = (11 * lb + 500) // 10 - 1  # below 1.1 x lb + 50, itself <= the exact limit
        if lb >= 0 and -lim <= p <= lim:
            return None
        return self._check_va_exact(p, v)

    def _check_va_exact(self, p, v):
        vi = 0.0
        for k in range(3):
            i = v[_I1 + k]
            u = v[_V1 + k]
            if i is None or u is None:
                return None
            vi += u * i
        if abs(p) > vi * 1.1 + 50:
            return "power %d W beyond V x I (%d VA)" % (p, vi)
        return None

    def _check_energy(self, e, now):
        if e is None:
            return "no energy register"
        if e < 0:
            return "negative energy %d Wh" % e
        last = self.latest["energy_wh"]
        if last is None:
            return None
        if e < last:
            return "energy went backwards (%d Wh after %d Wh)" % (e, last)
        dt = time.ticks_diff(now, self._last_ms)
        most = self.max_power_w * dt * 3 // 7200000 + 20  # 1.5 x the rating, + rounding
        if e - last > most:
            return "energy rose %d Wh in %d ms (at most %d Wh possible)" % (e - last, dt, most)
        return None

    def _check_phase(self, v, k):
        i = v[_I1 + k]
        u = v[_V1 + k]
        if i is None or u is None:
            return None
        if not -0.5 <= i <= self._max_i:
            return "current L%d %.1f A beyond %.1f A" % (k + 1, i, self._max_i)
        if u > _V_ABSENT or k == 0:
            if not _V_MIN <= u <= _V_MAX:
                return "voltage L%d %.1f V out of range" % (k + 1, u)
        elif i > 0.5:
            return "current on L%d without voltage" % (k + 1)
        return None


def _va_floor(v):
    # The sum of whole volts x whole amps over the phases (<= the sum of V x I); -1 when a value
    # is unknown, -2 when one is negative (before any unknown one: the exact check sorts it out).
    s = 0
    for k in range(3):
        i = v[_I1 + k]
        u = v[_V1 + k]
        if i is None or u is None:
            return -1
        if i < 0 or u < 0:
            return -2
        s += int(u) * int(i)
    return s
