# Modbus RTU master (Modbus over Serial Line V1.02 and Modbus Application Protocol V1.1b), on a
# link.Link to the RS-485 line.
#
# - Frame: address, function, data, CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF, sent low
#   byte first).
# - Timing: frames are separated by at least 3.5 character times of silence (1.75 ms fixed above
#   19200 baud). Before a request the master waits for that silence, discarding anything that
#   arrives (a late answer to an earlier request, noise), so it never answers to stale bytes.
# - Functions 0x03 (read holding registers) and 0x04 (read input registers); an exception
#   response (function | 0x80, exception code) raises ModbusError with that code. Timeouts, CRC
#   errors and malformed answers are retried (`retries` times); exceptions are not, except
#   0x05/0x06 (acknowledge / server busy).
#
# A transaction allocates nothing: read() hands out a link.Looped whose generator, made once,
# runs every transaction of this master (a coroutine per call would be a new heap object each
# time); each wait is one sleep for as long as the bytes take on the wire, so a transaction costs
# two scheduler rounds when the meter answers in time. Only a failure allocates (its exception).
import time
import asyncio

from link import Looped, ret, timeout

_RX = const(260)  # the longest RTU frame (256) with room
# CRC-16/MODBUS (reflected polynomial 0xA001) four bits at a time: the step of each nibble k,
# 0x0000, 0xCC01, 0xD801, ... 0x4400, low byte first at 2k. A bytes constant stays in flash with
# the code, where a byte-wise table of 256 entries took 512 bytes of heap.
_NIB = const((b"\x00\x00\x01\xcc\x01\xd8\x00\x14\x01\xf0\x00\x3c\x00\x28\x01\xe4"
        b"\x01\xa0\x00\x6c\x00\x78\x01\xb4\x00\x50\x01\x9c\x01\x88\x00\x44"))


def crc16(buf, n):
    # CRC-16/MODBUS of buf[:n] (a call allocates nothing).
    t = _NIB
    c = 0xFFFF
    i = 0
    while i < n:
        c ^= buf[i]
        k = (c & 0xF) << 1
        c = (c >> 4) ^ (t[k] | t[k + 1] << 8)
        k = (c & 0xF) << 1
        c = (c >> 4) ^ (t[k] | t[k + 1] << 8)
        i += 1
    return c


class ModbusError(Exception):
    # A bad answer (CRC, address, length: code None) or an exception response, whose code is 1
    # illegal function, 2 illegal data address, 3 illegal data value, 4 server device failure,
    # 5 acknowledge, 6 server device busy, ... A timeout is link.timeout()'s OSError(ETIMEDOUT).
    def __init__(self, msg, code=None):
        super().__init__(msg)
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
        self._addr = 0  # the transaction asked for
        self._fc = 0
        self._start = 0
        self._count = 0
        self._op = Looped(self._transactions)  # (its values, 2 x count, made by the meter)
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

    def read(self, addr, fc, start, count):
        # Reads `count` registers: `await master.read(...)` gives 2 * count, and their bytes are
        # in self.rx[3:3 + 2 * count] (big-endian words, as on the wire). Raises ModbusError (an
        # exception response has its code) or OSError(ETIMEDOUT). One transaction at a time (one
        # bus).
        if fc not in (3, 4) or not 1 <= count <= 125:
            raise ValueError("read: function 3 or 4, 1 to 125 registers")
        self._addr = addr
        self._fc = fc
        self._start = start
        self._count = count
        return self._op.begin()

    def _transactions(self):
        # Every transaction of this master, one pass of the loop each (see link.Looped): yields
        # None while it waits, then ret(2 * count) or the exception.
        link = self.link
        rx = self.rx
        while True:
            addr = self._addr
            fc = self._fc
            n = 2 * self._count
            res = None
            for attempt in range(self.retries + 1):
                # Silence before the request: t3.5 since our last frame and the last byte heard.
                now = time.ticks_ms()
                quiet = min(time.ticks_diff(now, self._tx_end),
                            time.ticks_diff(now, link.last_rx_ms))
                if quiet < self.t35_ms:
                    yield from asyncio.sleep_ms(self.t35_ms - quiet)
                if link.discard():
                    # Bytes nobody asked for (a late answer, noise): wait for the line to go
                    # quiet (at most timeout_ms), discarding what arrives.
                    t0 = time.ticks_ms()
                    while True:
                        now = time.ticks_ms()
                        quiet = time.ticks_diff(now, link.last_rx_ms)
                        if quiet >= self.t35_ms or time.ticks_diff(now, t0) >= self.timeout_ms:
                            break
                        yield from asyncio.sleep_ms(self.t35_ms - quiet)
                        link.discard()
                self.request(addr, fc, self._start, n >> 1)
                self.requests += 1
                k = link.send_now(self.tx, 8)
                while k < 8:  # (never on a UART: it buffers the whole frame)
                    yield from asyncio.sleep_ms(1)
                    k += link.send_now(self.tx, 8, k)
                self._tx_end = time.ticks_add(time.ticks_ms(), link.wire_ms(8))
                deadline = time.ticks_add(self._tx_end, self.timeout_ms)
                # The answer cannot be complete before request and answer have crossed the wire.
                yield from asyncio.sleep_ms(link.wire_ms(8 + 5 + n))
                # The shortest frame first: an exception response is 5 bytes (address,
                # function | 0x80, code, CRC); a normal one starts with address, function, count.
                got = link.take(rx, 0, 5)
                while got < 5:
                    left = time.ticks_diff(deadline, time.ticks_ms())
                    if left <= 0:
                        break
                    yield from asyncio.sleep_ms(min(left, link.wire_ms(5 + n - got)))
                    got += link.take(rx, got, 5 - got)
                if got < 5:
                    self.timeouts += 1
                    res = timeout("no answer from meter %d" % addr)
                    continue
                if rx[0] != addr:
                    self.bad_frames += 1
                    res = ModbusError("answer from address %d, not %d" % (rx[0], addr))
                    continue
                if rx[1] == fc | 0x80:
                    if crc16(rx, 3) != rx[3] | rx[4] << 8:
                        self.crc_errors += 1
                        res = ModbusError("CRC error")
                        continue
                    self.exceptions += 1
                    self._tx_end = time.ticks_ms()
                    res = ModbusError("exception response code %d" % rx[2], rx[2])
                    if rx[2] not in (5, 6):
                        break  # the meter's answer: not retried
                    # acknowledge / server busy: the same request again after a pause
                    yield from asyncio.sleep_ms(50 * (attempt + 1))
                    continue
                if rx[1] != fc or rx[2] != n:
                    self.bad_frames += 1
                    res = ModbusError("malformed answer (function %d, %d bytes)" % (rx[1], rx[2]))
                    continue
                rest = self._rx5
                got = link.take(rest, 0, n)
                while got < n:
                    left = time.ticks_diff(deadline, time.ticks_ms())
                    if left <= 0:
                        break
                    yield from asyncio.sleep_ms(min(left, link.wire_ms(n - got)))
                    got += link.take(rest, got, n - got)
                if got < n:
                    self.timeouts += 1
                    res = timeout("answer cut short")
                    continue
                if crc16(rx, 3 + n) != rx[3 + n] | rx[4 + n] << 8:
                    self.crc_errors += 1
                    res = ModbusError("CRC error")
                    continue
                self._tx_end = time.ticks_ms()
                res = ret(n)
                break
            yield res
