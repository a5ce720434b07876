# The ESP32 wallbox board's parts used once or seldom, imported on use and dropped after
# (board.py's _once()), so that only what runs all the time stays in the heap: the provisioning
# read from NVS at boot (board.py's header), the RFID reader the board builds itself (I2C or
# SPI).
import esp32
import machine
from machine import Pin
from micropython import const

import pins
from board import _warn

_NVS_NAMESPACE = "borne"
_NVS_KEY = "prov"
_INST_KEY = "inst"
_PROV_MAX = const(2048)
_INST_MAX = const(512)


def read_provisioning():
    # The factory's "prov", and over it the installer's "inst" (`borne install`): its own key,
    # so that a new meter never rewrites the identity and secrets.
    doc = _read(_NVS_KEY, _PROV_MAX, "provisioning")
    if doc is None:
        _warn("no provisioning in NVS %s/%s: device not provisioned", (_NVS_NAMESPACE, _NVS_KEY))
        return {}
    if doc:
        doc.update(_read(_INST_KEY, _INST_MAX, "installation") or {})
    return doc


def _read(key, size, what):
    # A JSON object from NVS, None if absent; a damaged one is logged and reads as {}.
    import json

    buf = bytearray(size)
    try:
        n = esp32.NVS(_NVS_NAMESPACE).get_blob(key, buf)
    except OSError:
        return None
    try:
        doc = json.loads(bytes(memoryview(buf)[:n]))
    except ValueError:
        _warn("%s in NVS is not JSON: ignored", (what,))
        return {}
    if not isinstance(doc, dict):
        _warn("%s in NVS is not a JSON object: ignored", (what,))
        return {}
    return doc


def rfid_driver(kind):
    # Board.rfid_driver() for the readers the board builds itself: "pn532_i2c" (the PN532 on
    # I2C, the same two wires) or "mfrc522" (on SPI).
    if kind == "pn532_i2c":
        from rfid.pn532 import Pn532
        from rfid.pn532_i2c import I2c

        bus = machine.I2C(
            pins.RFID_I2C_ID,
            scl=Pin(pins.PN532_I2C_SCL),
            sda=Pin(pins.PN532_I2C_SDA),
            freq=pins.PN532_I2C_HZ,
        )
        return Pn532(I2c(bus, pins.PN532_I2C_ADDR))
    if kind == "mfrc522":
        from rfid.mfrc522 import Mfrc522
        from boardparts import SpiDevice

        ss = Pin(pins.MFRC522_SS, Pin.OUT, value=1)
        Pin(pins.MFRC522_RST, Pin.OUT, value=1)  # out of hard power-down
        spi = machine.SPI(
            pins.RFID_SPI_ID,
            baudrate=pins.MFRC522_SPI_HZ,
            polarity=0,
            phase=0,
            sck=Pin(pins.MFRC522_SCK),
            mosi=Pin(pins.MFRC522_MOSI),
            miso=Pin(pins.MFRC522_MISO),
        )
        return Mfrc522(SpiDevice(spi, ss))
    return None


