# The connector state machine: the single owner of plug state, relay and OCPP status.
# Nothing else in the firmware calls board.set_relay(). This first version follows the pilot and
# reports status; sessions, authorization and charging come with the charging-controller work,
# so the relay is held open in every state here.
import asyncio

import log
from evse import pilot

_TAG = "evse"
_POLL_MS = const(20)


class Connector:
    def __init__(self, board, events):
        self.board = board
        self.events = events
        self.listeners = []  # fn(connector_id, status, error_code)
        self.cp = "A"
        self._deb = pilot.Debounce(3, "A")
        self._status = {0: ("Available", "NoError"), 1: ("Available", "NoError")}
        self.relay = False

    def status_of(self, cid):
        return self._status[cid]

    def _set_status(self, cid, status, err="NoError"):
        if self._status[cid] != (status, err):
            self._status[cid] = (status, err)
            log.info(_TAG, "connector %d: %s (%s)", cid, status, err)
            for fn in self.listeners:
                fn(cid, status, err)

    def _open_relay(self):
        # Safe output first: called before any state is reported.
        self.board.set_relay(False)
        self.relay = False

    async def run(self):
        b = self.board
        self._open_relay()
        b.set_pwm(100)
        while True:
            try:
                await asyncio.wait_for_ms(b.edge.wait(), _POLL_MS)
            except asyncio.TimeoutError:
                pass
            self.step()

    def step(self):
        st = self._deb.feed(pilot.classify(self.board.pilot_mv()))
        if st != self.cp:
            prev, self.cp = self.cp, st
            if st not in ("C", "D"):
                self._open_relay()
            log.info(_TAG, "pilot %s -> %s", prev, st)
            self.board.telemetry("cp", st)
            if st == "A":
                self.events.add("unplugged")
            elif prev == "A":
                self.events.add("plugged")
        if self.cp == "A":
            self._set_status(1, "Available")
        elif self.cp in ("B", "C", "D"):
            self._set_status(1, "Preparing")
        else:
            self._set_status(1, "Faulted", "OtherError")

    # -- peripherals (RFID, meter) --------------------------------------------------------
    # Stubs for the drivers' events: the charging-controller work replaces them with the real
    # authorisation and fault handling. They only log and record.
    last_tag = None
    device_faults = ()
    meter = None  # set by the app: meter.meter.Meter (.latest, .energy_wh()), or None

    def on_tag(self, id_tag):
        # A card was presented (one call per presentation; idTag = upper-case hex UID).
        self.last_tag = id_tag
        log.info(_TAG, "tag %s presented at connector 1", id_tag)
        self.board.telemetry("tag", id_tag)

    def device_fault(self, code, active):
        # A peripheral fault: ReaderFailure, PowerMeterFailure (OCPP ChargePointErrorCode).
        faults = set(self.device_faults)
        if active:
            faults.add(code)
            log.warn(_TAG, "%s", code)
        else:
            faults.discard(code)
            log.info(_TAG, "%s cleared", code)
        self.device_faults = tuple(sorted(faults))
        self.board.telemetry("device_faults", list(self.device_faults))
