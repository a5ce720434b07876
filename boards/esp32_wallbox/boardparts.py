# The ESP32 wallbox board's parts it keeps once made but seldom needs, imported when first asked
# for: the S0 pulse counter (board.py's meter_pulses(), meter model "pulse") and the SPI device
# of an MFRC522 reader (boardonce.py's rfid_driver()). A charger with a Modbus meter and a PN532
# on the UART (the factory's default) never loads this module.
from machine import Counter, Pin

import pins

_S0_UNIT = const(0)  # the PCNT unit (of 8) that counts the S0 pulses
_S0_FILTER_NS = const(12000)  # glitches shorter than this are not pulses (the PCNT's longest)


class S0:
    # S0 pulses since boot (the PulseMeter reads .count), counted by the chip's pulse counter
    # (machine.Counter on esp32.PCNT) on falling edges: in hardware, so none is lost while the
    # loop is blocked. A pin IRQ could not promise that: the port only schedules its handler,
    # and an edge that finds the scheduler's queue (8) full is dropped.
    def __init__(self):
        pin = Pin(pins.S0_PULSE, Pin.IN, Pin.PULL_UP)
        self._c = Counter(_S0_UNIT, pin, edge=Counter.FALLING, filter_ns=_S0_FILTER_NS)

    @property
    def count(self):
        return self._c.value()


class SpiDevice:
    # An SPI device for drivers that take write_readinto(w, r): chip select held for it.
    def __init__(self, spi, cs):
        self.spi = spi
        self.cs = cs

    def write_readinto(self, w, r):
        self.cs.value(0)
        try:
            self.spi.write_readinto(w, r)
        finally:
            self.cs.value(1)
