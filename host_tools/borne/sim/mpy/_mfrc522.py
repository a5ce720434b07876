# The MFRC522 on the emulated ESP32's SPI bus (host side only): the register-level chip model
# of sim/chips/mfrc522emu.py, with the card in its field given by the simulation's taps
# ("card <uid hex> <hold ms>" on the I/O socket; the card leaves after hold ms).
import utime

import _wires
from mfrc522emu import Card, Mfrc522Emu

_chip = None
_until = [0]


class _Fielded:
    # The chip as the SPI bus sees it: the card leaves the field when its time is up.
    def write_readinto(self, w, r):
        _expire()
        _chip.write_readinto(w, r)


def chip():
    global _chip
    if _chip is None:
        _chip = Mfrc522Emu()
        _wires.on("card", _on_card)
    return _Fielded()


def _on_card(w):
    uid = w[1].decode()
    if uid == "-":
        _chip.cards = []
        return
    hold = int(w[2]) if len(w) > 2 else 1000
    _chip.cards = [Card(bytes.fromhex(uid))]
    _until[0] = utime.ticks_add(utime.ticks_ms(), hold)


def _expire():
    if _chip.cards and utime.ticks_diff(utime.ticks_ms(), _until[0]) >= 0:
        _chip.cards = []
