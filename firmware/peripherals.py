# The charger's peripherals built from what the board offers: the RFID reader (PN532 on its
# UART), the energy meter (Modbus RTU on RS-485, or S0 pulses) and the buzzer. Each runs as its
# own task on the one loop; their events go to the connector (the only owner of sessions,
# status and the relay).
import log

_TAG = "periph"


class Peripherals:
    def __init__(self, board, settings, connector, light=None):
        from led.buzzer import Buzzer

        self.board = board
        self.settings = settings
        self.light = light
        self.buzzer = Buzzer(board)
        self.rfid = None
        self.meter = None
        self.supply = None
        self._tasks = []
        self._master = None
        # Load balancing: a grid meter shares the RS-485 bus, so every meter on it takes turns.
        grid = settings.get("grid_meter_model", "")
        self._bus = None
        if grid:
            from supply import Bus

            self._bus = Bus()
        try:
            drv = self._rfid_driver(board)
        except (ValueError, OSError) as e:
            # A reader the board cannot build (an unknown kind in its provisioning, a dead bus):
            # reported as the reader's fault; the charger runs on without it.
            log.error(_TAG, "RFID reader: %s", e)
            connector.device_fault("ReaderFailure", True)
            drv = None
        if drv is not None:
            from rfid.reader import Reader

            self.rfid = Reader(
                drv,
                connector.on_tag,
                on_failure=lambda on: connector.device_fault("ReaderFailure", on),
                buzzer=self.buzzer,
                confirm=2,  # a UID read twice in a row: line noise never makes a tag
            )
            self._tasks.append(("rfid", self.rfid.run))
        else:
            log.info(_TAG, "no RFID reader on this board")
        self.meter = self._meter(board, settings, connector)
        if self.meter:
            self._tasks.append(("meter", self.meter.run))
        if grid:
            self.supply = self._supply(board, settings, connector, grid)
            if self.supply:
                self._tasks.append(("supply", self.supply.run))

    @staticmethod
    def _rfid_driver(board):
        # A board may build its reader itself (rfid_driver(): an MFRC522 on SPI, a PN532 on
        # I2C); otherwise a PN532 on the UART that rfid_stream() gives.
        drv = board.rfid_driver()
        if drv is not None:
            return drv
        s = board.rfid_stream()
        if s is None:
            return None
        from link import Link
        from rfid.pn532 import Pn532, Hsu

        return Pn532(Hsu(Link(s, baud=115200)))

    def _meter(self, board, settings, connector):
        from meter.meter import Meter

        model = settings.get("meter_model", "sdm630")
        if model == "pulse":
            pulses = board.meter_pulses()
            if pulses is None:
                log.warn(_TAG, "meter model is pulse but the board has no S0 input")
                return None
            from meter.pulse import PulseMeter

            source = PulseMeter(pulses, settings.get("meter_wh_per_pulse", 1.0), settings.store)
        else:
            master = self._modbus(board, settings)
            if master is None:
                log.info(_TAG, "no meter on this board")
                return None
            from meter.meter import ModbusMeter

            try:
                source = ModbusMeter(master, model, settings.get("meter_addr", 1))
            except ValueError as e:
                log.error(_TAG, "%s", e)
                connector.device_fault("PowerMeterFailure", True)
                return None
            if self._bus is not None:
                from supply import Shared

                source = Shared(self._bus, source)
        log.info(_TAG, "meter: %s", model)
        return Meter(
            source,
            max_current_a=connector.hw_limit_a,  # the circuit's rating: plausibility limits
            phases=settings.get("phases", 3),
            on_failure=lambda on: connector.device_fault("PowerMeterFailure", on),
            publish=board.telemetry,
        )

    def _modbus(self, board, settings):
        # The RS-485 bus: one link and one Modbus master for every meter on it.
        if self._master is None:
            # The line settings are the installation's: 8 data bits, parity "E" (the Eastron/ABB/
            # Carlo Gavazzi default: 11 bits a character), "N" or "O", 1 stop bit.
            baud = settings.get("meter_baud", 9600)
            parity = settings.get("meter_parity", "E")
            if parity not in ("N", "E", "O"):
                log.error(_TAG, "meter parity %r: one of N, E, O; using E", parity)
                parity = "E"
            s = board.meter_stream(baud, parity)
            if s is None:
                return None
            from link import Link
            from meter.modbus import Master

            self._master = Master(Link(s, baud=baud, bits_per_char=10 if parity == "N" else 11))
        return self._master

    def _supply(self, board, settings, connector, model):
        # The grid meter and the load-balancing task. Without a working set-up the offer stays
        # at the fallback and the failure is reported: no headroom known is not "no limit".
        from meter.meter import Meter, ModbusMeter
        from supply import Supply

        fallback = settings.get("grid_fallback_a", 6)
        fuse = settings.get("main_fuse_a", 25)
        master = self._modbus(board, settings)
        try:
            if master is None:
                raise ValueError("no RS-485 bus on this board")
            source = ModbusMeter(master, model, settings.get("grid_meter_addr", 2))
        except ValueError as e:
            log.error(_TAG, "grid meter: %s; offer capped at the fallback %d A", e, fallback)
            connector.set_headroom(fallback)
            connector.device_fault("GridMeterFailure", True)
            return None
        if self.meter is None or not self._bus.shared:
            log.warn(_TAG, "the charger's own current is not measured: it counts as house load")
        grid = Meter(
            source,
            max_current_a=2 * fuse,  # plausibility only: an overload must still be seen
            phases=source.map["phases"],
            on_failure=lambda on: connector.device_fault("GridMeterFailure", on),
            publish=lambda k, v: board.telemetry("grid", v),
        )
        log.info(_TAG, "grid meter: %s at address %d, main fuse %d A", model, source.addr, fuse)
        return Supply(connector, grid, self._bus, own=self.meter, fuse_a=fuse, fallback_a=fallback,
                      publish=board.telemetry)

    def tasks(self):
        # (name, async fn) of each task to run: app.py supervises them (restarted after a
        # failure), so a function, not a coroutine.
        return self._tasks

    # -- for the charging logic and the OCPP client -------------------------------------------
    def tag_feedback(self, accepted):
        # An authorisation's answer at the charger: LED flash and buzzer tune.
        if self.light:
            self.light.tag_feedback(accepted)
        if accepted:
            self.buzzer.accepted()
        else:
            self.buzzer.rejected()
