# The ESP32 wallbox board's parts it keeps once made but seldom needs, imported when first asked
# for: the S0 pulse counter (board.py's meter_pulses(), meter model "pulse") and the SPI device
# of an MFRC522 reader (boardonce.py's rfid_driver()). A charger with a Modbus meter and a PN532
# on the UART (the factory's default) never loads this module.
import asyncio

from machine import Pin

import pins


class S0:
    # S0 pulses since boot, counted on falling edges in the pin's IRQ handler, which the port
    # schedules (the PulseMeter reads .count and waits on .flag). Edges that come while the
    # scheduler's queue (8) is full are lost: a blocking call of over a second at the highest
    # pulse rates (a 22 kW charge on a 1,000 imp/kWh meter: ~6 a second).
    def __init__(self):
        self.count = 0
        self.flag = asyncio.ThreadSafeFlag()
        self._pin = Pin(pins.S0_PULSE, Pin.IN, Pin.PULL_UP)
        self._pin.irq(handler=self._on_pulse, trigger=Pin.IRQ_FALLING)

    def _on_pulse(self, _pin):
        self.count += 1
        self.flag.set()


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
