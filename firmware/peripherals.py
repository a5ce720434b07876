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
        self._tasks = []
        drv = self._rfid_driver(board)
        if drv is not None:
            from rfid.reader import Reader

            self.rfid = Reader(
                drv,
                connector.on_tag,
                on_failure=lambda on: connector.device_fault("ReaderFailure", on),
                buzzer=self.buzzer,
            )
            self._tasks.append(self.rfid.run())
        else:
            log.info(_TAG, "no RFID reader on this board")
        self.meter = self._meter(board, settings, connector)
        if self.meter:
            self._tasks.append(self.meter.run())

    @staticmethod
    def _rfid_driver(board):
        # A board may build its reader itself (rfid_driver(): an MFRC522 on SPI, a PN532 on
        # I2C); otherwise a PN532 on the UART that rfid_stream() gives.
        make = getattr(board, "rfid_driver", None)
        if make is not None:
            return make()
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
            pulses = getattr(board, "meter_pulses", lambda: None)()
            if pulses is None:
                log.warn(_TAG, "meter model is pulse but the board has no S0 input")
                return None
            from meter.pulse import PulseMeter

            source = PulseMeter(pulses, settings.get("meter_wh_per_pulse", 1.0), settings.store)
        else:
            s = board.meter_stream()
            if s is None:
                log.info(_TAG, "no meter on this board")
                return None
            from link import Link
            from meter.modbus import Master
            from meter.meter import ModbusMeter

            # RS-485 at 8E1 (11 bits a character), the Eastron/ABB/Carlo Gavazzi default parity
            link = Link(s, baud=settings.get("meter_baud", 9600), bits_per_char=11)
            try:
                source = ModbusMeter(Master(link), model, settings.get("meter_addr", 1))
            except ValueError as e:
                log.error(_TAG, "%s", e)
                return None
        log.info(_TAG, "meter: %s", model)
        return Meter(
            source,
            max_current_a=settings.get("max_current_a", 32),
            phases=settings.get("phases", 3),
            on_failure=lambda on: connector.device_fault("PowerMeterFailure", on),
            publish=board.telemetry,
        )

    def tasks(self):
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

    def set_brightness(self, pct):
        # LightIntensity (0-100): the light follows at once, the setting survives a reboot.
        pct = max(0, min(100, int(pct)))
        if self.light:
            self.light.set_brightness(pct)
        if self.settings.get("led_brightness") != pct:
            self.settings.update(led_brightness=pct)
        return pct
