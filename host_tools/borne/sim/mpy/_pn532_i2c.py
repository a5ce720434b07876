# The PN532 in I2C mode on the emulated ESP32's bus (host side only). The simulation's PN532
# (sim/pn532_emu.py) speaks HSU frames on the --rfid socket; the chip's I2C interface carries
# the same frames (UM0701-02 6.2.4): a write is one frame; a read gives a status byte (bit 0:
# RDY) and, when ready, the next frame the chip has to send (ACK, then the response), one frame
# per read. Addressing the chip wakes it (on HSU that is the 0x55 preamble, sent here once).
import _wires

_WAKE = b"\x55\x55\x00\x00\x00"


class Bridge:
    def __init__(self, addr):
        self.addr = addr
        self._sock = _wires.connect("rfid")
        if self._sock is not None:
            self._sock.setblocking(False)
        self._woken = False
        self._rx = bytearray()

    def present(self, addr):
        return addr == self.addr and self._sock is not None

    def write(self, buf):
        if not self._woken:
            self._woken = True
            self._sock.send(_WAKE)
        if len(buf):
            self._sock.send(bytes(buf))

    def _frame_len(self):
        # Length of the complete frame at the front of _rx (from its 00 00 FF), or 0.
        rx = self._rx
        i = rx.find(b"\x00\x00\xff")
        if i < 0:
            return 0
        if i:
            self._rx = rx = rx[i:]
        if len(rx) < 5:
            return 0
        ln, lcs = rx[3], rx[4]
        if (ln, lcs) in ((0x00, 0xFF), (0xFF, 0x00)):  # ACK, NACK
            n = 6
        else:
            n = 5 + ln + 2
        return n if len(rx) >= n else 0

    def read_into(self, buf):
        try:
            b = self._sock.recv(256)
            if b:
                self._rx.extend(b)
        except OSError:
            pass
        n = self._frame_len()
        for i in range(len(buf)):
            buf[i] = 0
        if not n:
            return
        buf[0] = 0x01  # RDY
        if len(buf) > 1:
            k = min(n, len(buf) - 1)
            buf[1 : 1 + k] = self._rx[:k]
            self._rx = self._rx[n:]
