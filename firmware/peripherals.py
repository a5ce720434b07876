# The charger's peripherals built from what the board offers: the RFID reader (PN532 on its
# UART), the energy meter (Modbus RTU on RS-485, or S0 pulses) and the buzzer. Each runs as its
# own task on the one loop; their events go to the connector (the only owner of sessions,
# status and the relay).
import log

_TAG = "periph"


class Peripherals:
    def __init__(self, board, settings, connector):
        from led.buzzer import Buzzer

        self.board = board
        self.buzzer = Buzzer(board)
        self.rfid = None
        self.meter = None
        self._tasks = []
        s = board.rfid_stream()
        if s is not None:
            from link import Link
            from rfid.pn532 import Pn532, Hsu
            from rfid.reader import Reader

            self.rfid = Reader(
                Pn532(Hsu(Link(s, baud=115200))),
                connector.on_tag,
                on_failure=lambda on: connector.device_fault("ReaderFailure", on),
                buzzer=self.buzzer,
            )
            self._tasks.append(self.rfid.run())
        else:
            log.info(_TAG, "no RFID reader on this board")

    def tasks(self):
        return self._tasks
