# Modbus RTU master (Modbus over Serial Line V1.02 and Modbus Application Protocol V1.1b), on a
# link.Link to the RS-485 line.
#
# - Frame: address, function, data, CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF, sent low
#   byte first).
# - Timing: frames are separated by at least 3.5 character times of silence (1.75 ms fixed above
#   19200 baud). Before a request the master waits for that silence, discarding anything that
#   arrives (a late answer to an earlier request, noise), so it never answers to stale bytes.
# - Functions 0x03 (read holding registers) and 0x04 (read input registers); an exception
#   response (function | 0x80, exception code) raises ModbusException. Timeouts, CRC errors and
#   malformed answers are retried (`retries` times); exceptions are not, except 0x05/0x06
#   (acknowledge / server busy).
# Buffers are preallocated; a transaction allocates nothing but its own coroutine.
import time
import asyncio

_RX = const(260)  # the longest RTU frame (256) with room
_TABLE = None


def _table():
    global _TABLE
    if _TABLE is None:
        from array import array

        t = array("H", bytearray(512))
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
            t[i] = c
        _TABLE = t
    return _TABLE


def crc16(buf, n, start=0):
    # CRC-16/MODBUS of buf[start:start+n].
    t = _table()
    c = 0xFFFF
    for i in range(start, start + n):
        c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
    return c


class ModbusError(Exception):
    pass


class ModbusTimeout(ModbusError):
    pass


class ModbusException(ModbusError):
    # An exception response: code 1 illegal function, 2 illegal data address, 3 illegal data
    # value, 4 server device failure, 5 acknowledge, 6 server device busy, ...
    def __init__(self, code):
        super().__init__("exception response code %d" % code)
        self.code = code


class Master:
    def __init__(self, link, timeout_ms=500, retries=2):
        self.link = link
        self.timeout_ms = timeout_ms
        self.retries = retries
        cu = link.char_us
        # t3.5 (at least 1750 us above 19200 baud, where 3.5 chars would be shorter)
        self.t35_ms = (max(35 * cu // 10, 1750) + 999) // 1000
        self.tx = bytearray(8)
        self.rx = bytearray(_RX)
        self._tx_end = time.ticks_ms()
        # counters (diagnostics, benchmarks)
        self.requests = 0
        self.timeouts = 0
        self.crc_errors = 0
        self.exceptions = 0
        self.bad_frames = 0

    def request(self, addr, fc, start, count):
        # Builds the 8-byte read request in self.tx.
        t = self.tx
        t[0] = addr
        t[1] = fc
        t[2] = start >> 8
        t[3] = start & 0xFF
        t[4] = count >> 8
        t[5] = count & 0xFF
        c = crc16(t, 6)
        t[6] = c & 0xFF
        t[7] = c >> 8
        return t

    async def read(self, addr, fc, start, count):
        # Reads `count` registers; their bytes are in self.rx[3:3 + 2 * count] (big-endian
        # words, as on the wire). Raises ModbusTimeout, ModbusException or ModbusError.
        if fc not in (3, 4) or not 1 <= count <= 125:
            raise ValueError("read: function 3 or 4, 1 to 125 registers")
        last = None
        for attempt in range(self.retries + 1):
            try:
                return await self._transact(addr, fc, start, count)
            except ModbusException as e:
                if e.code not in (5, 6):
                    raise
                last = e
                await asyncio.sleep_ms(50 * (attempt + 1))
            except ModbusError as e:
                last = e
        raise last

    async def _transact(self, addr, fc, start, count):
        link = self.link
        # Silence before the request: the previous frame (ours or an answer) must be over.
        wait = self.t35_ms - time.ticks_diff(time.ticks_ms(), self._tx_end)
        if wait > 0:
            await asyncio.sleep_ms(wait)
        await link.quiet(self.t35_ms, self.timeout_ms)
        self.request(addr, fc, start, count)
        self.requests += 1
        await link.send(self.tx, 8)
        self._tx_end = time.ticks_add(time.ticks_ms(), link.wire_ms(8))
        deadline = time.ticks_add(self._tx_end, self.timeout_ms)
        rx = self.rx
        # Header: address, function, byte count (or exception code).
        if await link.recv(rx, 0, 3, deadline) < 3:
            self.timeouts += 1
            raise ModbusTimeout("no answer from meter %d" % addr)
        if rx[0] != addr:
            self.bad_frames += 1
            raise ModbusError("answer from address %d, not %d" % (rx[0], addr))
        if rx[1] == fc | 0x80:
            if await link.recv(rx, 3, 2, deadline) < 2:
                self.timeouts += 1
                raise ModbusTimeout("exception response cut short")
            if crc16(rx, 3) != rx[3] | rx[4] << 8:
                self.crc_errors += 1
                raise ModbusError("CRC error")
            self.exceptions += 1
            raise ModbusException(rx[2])
        n = 2 * count
        if rx[1] != fc or rx[2] != n:
            self.bad_frames += 1
            raise ModbusError("malformed answer (function %d, %d bytes)" % (rx[1], rx[2]))
        if await link.recv(rx, 3, n + 2, deadline) < n + 2:
            self.timeouts += 1
            raise ModbusTimeout("answer cut short")
        if crc16(rx, 3 + n) != rx[3 + n] | rx[4 + n] << 8:
            self.crc_errors += 1
            raise ModbusError("CRC error")
        self._tx_end = time.ticks_ms()
        return n
