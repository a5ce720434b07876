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
# Buffers are preallocated; a transaction allocates nothing but its own coroutine and asyncio's
# scheduling of its (two) sleeps. Hot functions keep their frames small: MicroPython puts a
# function's frame on the heap when it needs more than ~11 slots of locals and stack.
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


def crc16(buf, n):
    # CRC-16/MODBUS of buf[:n] (table-driven; a small frame, so a call allocates nothing).
    t = _table()
    c = 0xFFFF
    i = 0
    while i < n:
        c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
        i += 1
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
        self._rx5 = memoryview(self.rx)[5:]  # the rest of an answer after its first 5 bytes
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
        # Each wait is one sleep for as long as the bytes take on the wire, so a transaction
        # costs two scheduler rounds when the meter answers in time (asyncio allocates a little
        # at every round: fewer rounds, less garbage).
        link = self.link
        # Silence before the request: t3.5 since our last frame and since the last byte heard.
        now = time.ticks_ms()
        quiet = min(time.ticks_diff(now, self._tx_end), time.ticks_diff(now, link.last_rx_ms))
        if quiet < self.t35_ms:
            await asyncio.sleep_ms(self.t35_ms - quiet)
        if link.discard():
            # Bytes nobody asked for (a late answer, noise): wait for the line to go quiet.
            await link.quiet(self.t35_ms, self.timeout_ms)
        self.request(addr, fc, start, count)
        self.requests += 1
        if link.send_now(self.tx, 8) < 8:
            await link.send(self.tx, 8)  # (never on a UART: it buffers the whole frame)
        n = 2 * count
        self._tx_end = time.ticks_add(time.ticks_ms(), link.wire_ms(8))
        deadline = time.ticks_add(self._tx_end, self.timeout_ms)
        # The answer cannot be complete before request and answer have crossed the wire.
        await asyncio.sleep_ms(link.wire_ms(8 + 5 + n))
        rx = self.rx
        # The shortest frame first: an exception response is 5 bytes (address, function | 0x80,
        # code, CRC); a normal one starts with address, function, byte count.
        got = link.take(rx, 0, 5)
        while got < 5:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                self.timeouts += 1
                raise ModbusTimeout("no answer from meter %d" % addr)
            await asyncio.sleep_ms(min(left, link.wire_ms(5 + n - got)))
            got += link.take(rx, got, 5 - got)
        if rx[0] != addr:
            self.bad_frames += 1
            raise ModbusError("answer from address %d, not %d" % (rx[0], addr))
        if rx[1] == fc | 0x80:
            if crc16(rx, 3) != rx[3] | rx[4] << 8:
                self.crc_errors += 1
                raise ModbusError("CRC error")
            self.exceptions += 1
            self._tx_end = time.ticks_ms()
            raise ModbusException(rx[2])
        if rx[1] != fc or rx[2] != n:
            self.bad_frames += 1
            raise ModbusError("malformed answer (function %d, %d bytes)" % (rx[1], rx[2]))
        rest = self._rx5
        got = link.take(rest, 0, n)
        while got < n:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                self.timeouts += 1
                raise ModbusTimeout("answer cut short")
            await asyncio.sleep_ms(min(left, link.wire_ms(n - got)))
            got += link.take(rest, got, n - got)
        if crc16(rx, 3 + n) != rx[3 + n] | rx[4 + n] << 8:
            self.crc_errors += 1
            raise ModbusError("CRC error")
        self._tx_end = time.ticks_ms()
        return n
