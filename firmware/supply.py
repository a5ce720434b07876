# Load balancing against the house supply: a supply-side (grid) meter on the charger's RS-485
# bus, polled right after the charger's own meter, gives the current on each phase of the main
# fuse; the headroom (evse/balance.py) caps the connector's offer (evse/offer.py).
#
# One bus, one master: the Modbus master (meter/modbus.py) and its link serialise nothing, and
# two polls that overlapped would mix their frames and share the master's buffers. So every read
# on a shared bus goes through Bus: the charger's meter source is wrapped (Shared), and the grid
# poll takes the bus itself. The grid's turn comes right after each charger poll (Bus.turn), so
# the two readings are one grid poll apart (~0.1 s at 9600 baud), not up to a second.
#
# Reaction: a house load that rises is seen at the next grid poll (within one meter period, 1 s,
# plus the poll's ~0.1 s) and lowers the pilot's offer (or opens the relay below 6 A) at once;
# the EV must follow a lower offer within 5 s (IEC 61851-1). A rise is followed after
# balance.RISE_MS. A silent grid meter: the headroom drops to grid_fallback_a once no good
# reading came for _STALE_MS; after 3 failed polls in a row it is reported (OtherError,
# vendorErrorCode GridMeterFailure).
import asyncio
import time

import log
from evse import balance, offer

_TAG = "supply"
_SETTLE_MS = const(500)  # after a relay or offer change the EV's draw is taken as moving
# Without a good grid reading for this long the headroom falls back. Not at the first failed
# poll: a reading whose two register blocks straddle a load change fails the V x I check now
# and then, and a fuse takes far longer than this to trip on the overloads a charger can cause.
_STALE_MS = const(3000)
_FAILED_EVERY = const(5)  # a silent grid meter is asked every 5th turn (each try holds the bus)


class Bus:
    # Turn-taking on one RS-485 bus. Uncontended, taking and giving it allocates nothing.
    def __init__(self):
        self.busy = False
        self._free = asyncio.Event()
        self.turn = asyncio.Event()  # set when the charger's meter has been read
        self.read_ms = time.ticks_ms()  # when the charger's last read began
        self.turn_ms = self.read_ms
        self.shared = False  # the charger's meter is on this bus

    async def _wait(self):
        while self.busy:
            self._free.clear()
            await self._free.wait()

    def give(self):
        self.busy = False
        self._free.set()


class Shared:
    # The charger's meter source on a shared bus: the same read(out), taking turns.
    def __init__(self, bus, src):
        self.bus = bus
        self.src = src
        bus.shared = True

    async def read(self, out):
        bus = self.bus
        if bus.busy:
            await bus._wait()
        bus.busy = True
        bus.read_ms = time.ticks_ms()
        try:
            await self.src.read(out)
        finally:
            bus.give()
            bus.turn_ms = time.ticks_ms()
            bus.turn.set()


class Supply:
    def __init__(self, connector, grid, bus, own=None, fuse_a=25, fallback_a=6, period_ms=1000,
                 publish=None):
        self.connector = connector
        self.grid = grid  # meter.meter.Meter on the grid meter's source; polled here, not run
        self.bus = bus
        self.own = own  # the charger's Meter (its currents), or None
        self.fuse_a = fuse_a
        self.fallback_a = fallback_a
        self.period_ms = period_ms
        self.publish = publish
        self.head = balance.Headroom(fallback_a)
        self.rot = balance.rotation(self._cfg("ConnectorPhaseRotation"))
        self.loads = [0.0, 0.0, 0.0]  # the house's load per phase, last computed
        self.raw = None  # the last headroom figure from a reading
        self._cur = [0.0, 0.0, 0.0]
        self._up = [0.0, 0.0, 0.0]
        self._turns = 0
        self._good_ms = time.ticks_ms()
        self._shown = None
        self._shown_ok = None
        connector.config.listen(self)
        connector.set_headroom(fallback_a)  # until the first reading: the conservative figure

    def _cfg(self, key):
        try:
            return self.connector.config.get(key)
        except KeyError:
            return None

    def on_config(self, key, value):
        # The OCPP configuration listener: the phase rotation may change at any time.
        if key == "ConnectorPhaseRotation":
            self.rot = balance.rotation(value)

    async def run(self):
        bus = self.bus
        if bus.shared and not getattr(self, "_watching", False):  # once: run() may restart
            self._watching = True
            asyncio.create_task(self._watchdog())
        while True:
            if bus.shared:
                await bus.turn.wait()  # right after the charger's meter was read
                bus.turn.clear()
            else:
                await asyncio.sleep_ms(self.period_ms)
            self._turns += 1
            if self.grid.failed and self._turns % _FAILED_EVERY:
                continue
            await self.step()

    async def _watchdog(self):
        # Should the charger's meter stop taking turns, the grid is still read every period.
        bus = self.bus
        while True:
            await asyncio.sleep_ms(self.period_ms)
            if time.ticks_diff(time.ticks_ms(), bus.turn_ms) > 2 * self.period_ms:
                bus.turn_ms = time.ticks_ms()
                bus.turn.set()

    async def step(self):
        bus = self.bus
        if bus.busy:
            await bus._wait()
        bus.busy = True
        if not bus.shared:
            bus.read_ms = time.ticks_ms()
        try:
            ok = await self.grid.poll()
        finally:
            bus.give()
        self.update(time.ticks_ms(), ok)

    def update(self, now, ok):
        # One grid poll's outcome -> the connector's headroom.
        c = self.connector
        if not ok:
            if time.ticks_diff(now, self._good_ms) < _STALE_MS:
                return  # the last figure holds a little longer
            self.raw = None
            h = self.head.update(now, self.fallback_a, fixed=True)
        else:
            self._good_ms = now
            # Trusted: nothing the charger changed could still be moving its draw when its own
            # meter was read. Otherwise the draw is taken at its upper bound (the offer), which
            # can only make the house look emptier: such a figure may lower the headroom, never
            # raise it.
            trusted = time.ticks_diff(self.bus.read_ms, c.output_ms()) >= _SETTLE_MS
            if not balance.house(self.grid.latest["current_a"], self._own(trusted), self.rot,
                                 self.loads):
                self.raw = None
                h = self.head.update(now, self.fallback_a, fixed=True)
            else:
                self.raw = offer.headroom(self.fuse_a, self.loads)
                h = self.head.update(now, self.raw, may_rise=trusted)
        c.set_headroom(h)
        self._show(h, ok)

    def _own(self, trusted):
        # The charger's draw per phase, or None when the relay is open (nothing flows).
        c = self.connector
        if not c.relay:
            return None
        cur = self._cur
        m = self.own
        got = m is not None and m.latest["ok"]
        for k in range(3):
            cur[k] = (m.latest["current_a"][k] or 0) if got else 0
        if trusted:
            return cur  # unknown (an S0 meter, a failed one) counts 0: the house looks fuller
        up = self._up
        for k in range(3):
            up[k] = c.offer_a if c.offer_a > cur[k] else cur[k]
        return up

    def _show(self, h, ok):
        # Logged and published only when the applied figure or the meter's state changes.
        if h == self._shown and ok == self._shown_ok:
            return
        self._shown = h
        self._shown_ok = ok
        L = self.loads
        if ok:
            log.info(_TAG, "headroom %.1f A (house %.1f/%.1f/%.1f A, main fuse %d A)", h, L[0], L[1],
                     L[2], self.fuse_a)
        else:
            log.info(_TAG, "no grid reading: headroom %.1f A (fallback)", h)
        if self.publish:
            self.publish("supply", {"headroom_a": h, "raw_a": self.raw, "house_a": L,
                                    "fuse_a": self.fuse_a, "fallback": not ok})
