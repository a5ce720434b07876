# S0 pulse meter (EN 62053-31): the fallback when no Modbus meter is fitted. The board counts
# the pulses (the ESP32's pulse counter, in hardware); this source turns the count into
# energy (wh_per_pulse, e.g. 1 Wh for a 1000 imp/kWh meter) and estimates power from the time
# between pulses. Voltage, current and frequency are unknown (None), never invented.
#
# The pulse count restarts at every boot, so the energy register is the stored base plus the
# pulses since boot. The base is checkpointed through the store at most once a minute while
# energy flows (one small-file write: ~1 flash erase block per minute of charging), and at
# each StopTransaction (keep()), before its journal. A power cut loses at most a minute of
# pulses; the interrupted session's stop, floored by the registers it reported, then raises
# the base to its meterStop (keep()): the register never runs back below a published one.
import time

_DOC = "pulse_meter"
# The value slots of a reading: meter/maps.py's layout, as private copies (const() does not cross
# modules; tests/test_structure.py checks them against it).
_P = const(6)
_E = const(8)
_NVALUES = const(9)
_CHECKPOINT_MS = const(60000)
_IDLE_MS = const(60000)  # no pulse for this long: power is taken as 0


class PulseMeter:
    def __init__(self, pulses, wh_per_pulse=1.0, store=None):
        # pulses: an object with .count (pulses since boot, as the board counts them).
        self.pulses = pulses
        self.wh_per_pulse = wh_per_pulse
        self.store = store
        self.base_wh = 0
        if store:
            self.base_wh = store.load(_DOC, {"wh": 0}).get("wh", 0)
        self._count0 = pulses.count
        self._last_count = pulses.count
        self._last_pulse_ms = None
        self._interval_ms = None
        # The register as saved: a power cut goes back to it, never below (mqtt/ publishes it)
        self.saved_wh = self.base_wh
        self._saved_ms = time.ticks_ms()

    def energy_wh(self):
        n = self.pulses.count - self._count0
        return self.base_wh + int(n * self.wh_per_pulse)

    def _observe(self, now):
        n = self.pulses.count
        if n != self._last_count:
            if self._last_pulse_ms is not None:
                self._interval_ms = time.ticks_diff(now, self._last_pulse_ms) // (n - self._last_count)
            self._last_pulse_ms = now
            self._last_count = n

    async def read(self, out):
        now = time.ticks_ms()
        self._observe(now)
        for k in range(_NVALUES):
            out[k] = None
        e = self.energy_wh()
        out[_E] = e
        iv = self._interval_ms
        if self._last_pulse_ms is None or time.ticks_diff(now, self._last_pulse_ms) > _IDLE_MS:
            out[_P] = 0.0
        elif iv:
            # power from the last pulse interval, decaying if the next pulse is overdue
            since = time.ticks_diff(now, self._last_pulse_ms)
            out[_P] = 3600000.0 * self.wh_per_pulse / max(iv, since)
        if self.store and e != self.saved_wh and time.ticks_diff(now, self._saved_ms) >= _CHECKPOINT_MS:
            self.checkpoint(now)

    def keep(self, wh):
        # A published register (a StopTransaction's meterStop) is never gone back on: the
        # base rises to it, and is saved. The flash full or failing: the next checkpoint.
        e = self.energy_wh()
        if wh > e:
            self.base_wh += wh - e
        if self.store and self.energy_wh() != self.saved_wh:
            try:
                self.checkpoint()
            except OSError:
                pass

    def checkpoint(self, now=None):
        if not self.store:
            return
        e = self.energy_wh()
        self.store.save(_DOC, {"wh": e})
        self.saved_wh = e
        self._saved_ms = time.ticks_ms() if now is None else now
