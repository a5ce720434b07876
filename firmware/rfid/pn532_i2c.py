# PN532 on I2C (UM0701-02 6.2.4): the chip answers at 7-bit address 0x24; a write is a frame;
# each read starts with a status byte whose bit 0 (RDY) says a frame follows, then the frame
# from its first byte. A transport for rfid.pn532.Pn532, like its Hsu.
import asyncio

_RX = const(96)


class I2c:
    # I2C: bus has writeto(addr, buf) and readfrom_into(addr, buf) (machine.I2C / SoftI2C).
    # A read returns the status byte (bit 0 = RDY), then the frame from its first byte.
    def __init__(self, bus, addr=0x24, poll_ms=2):
        self.bus = bus
        self.addr = addr
        self.poll_ms = poll_ms
        self._st = bytearray(1)
        self._buf = bytearray(1 + _RX)
        self._pos = 0
        self._end = 0  # 0: no frame fetched since begin()
        self._vb = None  # the view of the last frame written, kept for the next one like it
        self._vn = 0
        self._v = None

    async def wake(self):
        # The PN532 wakes on its own address; a write of nothing is that address on the bus.
        try:
            self.bus.writeto(self.addr, b"")
        except OSError:
            pass  # no ACK while waking up is expected
        await asyncio.sleep_ms(2)

    def begin(self):
        self._pos = self._end = 0

    def flush(self):
        self.begin()
        return 0

    def send_now(self, buf, n, off=0):
        # An I2C write is a whole frame (off is always 0). The view of buf's first n bytes is
        # kept: a poll writes the same frame every time, and a new memoryview is a heap object.
        if n == len(buf):
            v = buf
        else:
            if buf is not self._vb or n != self._vn:
                self._vb = buf
                self._vn = n
                self._v = memoryview(buf)[:n]
            v = self._v
        self.bus.writeto(self.addr, v)
        return n

    def _fetch(self):
        self.bus.readfrom_into(self.addr, self._st)
        if not self._st[0] & 0x01:
            return False  # not ready yet
        self.bus.readfrom_into(self.addr, self._buf)
        self._pos = 1  # past the status byte
        self._end = len(self._buf)
        return True

    def take(self, buf, off, n):
        if not self._end and not self._fetch():
            return 0
        got = 0
        while got < n and self._pos < self._end:
            buf[off + got] = self._buf[self._pos]
            self._pos += 1
            got += 1
        return got

    def wait_ms(self, n):
        return self.poll_ms
