# A byte link to a peripheral on a non-blocking byte stream: machine.UART(timeout=0) on the
# charger, a non-blocking socket under the unix port (an asyncio.StreamReader around either is
# accepted too: its raw stream is used). Drivers (PN532, Modbus) talk through one of these and
# never see a pin.
#
# Reads have deadlines and allocate nothing: the caller's buffer is filled in place, and waiting
# is time-aware polling (sleep for as long as the missing bytes take on the wire at this baud
# rate, at least 1 ms, never past the deadline), so a frame costs a scheduler round or two
# rather than a task and a timeout wrapper per read (asyncio.wait_for_ms allocates ~2 KB a
# call). Hot paths call take() (synchronous) and sleep themselves, so they do not allocate a
# coroutine per read either.
import asyncio
import time

_SCRATCH = const(32)


class Link:
    def __init__(self, stream, baud=9600, bits_per_char=10):
        self.s = getattr(stream, "s", stream)  # an asyncio Stream wraps the raw object in .s
        self.char_us = 1000000 * bits_per_char // baud  # time one character takes on the wire
        self.rx_bytes = 0  # counters, for diagnostics
        self.dropped = 0
        self.last_rx_ms = time.ticks_ms()
        self._scratch = bytearray(_SCRATCH)

    def wire_ms(self, nbytes):
        # How long nbytes take on the wire (rounded up, at least 1 ms).
        return (nbytes * self.char_us + 999) // 1000 or 1

    def send_now(self, buf, n):
        # Writes what the stream takes now; returns how many bytes (a UART takes them all).
        k = self.s.write(buf if n == len(buf) else memoryview(buf)[:n])
        return k or 0

    async def send(self, buf, n=-1):
        # Writes n bytes of buf (all of it by default). A socket may take part of it: the rest is
        # sent when it has room again.
        if n < 0:
            n = len(buf)
        done = self.send_now(buf, n)
        while done < n:
            await asyncio.sleep_ms(1)
            k = self.s.write(memoryview(buf)[done:n])
            if k:
                done += k

    def _got(self, k):
        if k:
            self.rx_bytes += k
            self.last_rx_ms = time.ticks_ms()
            return k
        return 0  # None (nothing yet) or 0 (a closed socket): nothing arrived

    def _read_at(self, buf, off, n):
        return self._got(self.s.readinto(memoryview(buf)[off:], n))

    def take(self, buf, off, n):
        # Reads up to n bytes into buf[off:] from what has arrived, without waiting; returns
        # how many. Allocation-free when off is 0 and the bytes come in one piece (pass a
        # memoryview kept for a fixed offset). Kept to <= 11 slots of locals and stack: a
        # bigger frame is heap-allocated by MicroPython at every call.
        if off:
            return self._take_at(buf, off, n)
        k = self.s.readinto(buf, n)
        if not k:
            return 0
        self._got(k)
        if k < n:
            k = self._more(buf, k, n)
        return k

    def _more(self, buf, got, n):
        return got + self._take_at(buf, got, n - got)

    def _take_at(self, buf, off, n):
        got = 0
        while got < n:
            k = self._read_at(buf, off + got, n - got)
            if not k:
                break
            got += k
        return got

    async def recv(self, buf, off, n, deadline):
        # Reads exactly n bytes into buf[off:off+n] unless the deadline (time.ticks_ms) passes
        # first. Returns how many arrived (< n means the deadline passed: a timeout).
        got = self.take(buf, off, n)
        while got < n:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                break
            await asyncio.sleep_ms(min(left, self.wire_ms(n - got)))
            got += self.take(buf, off + got, n - got)
        return got

    def discard(self):
        # Drops whatever has arrived and not been read; returns how many bytes.
        n = 0
        while True:
            k = self.take(self._scratch, 0, _SCRATCH)
            if not k:
                break
            n += k
        self.dropped += n
        return n

    async def quiet(self, silence_ms, max_ms):
        # Waits until the line has been silent for silence_ms (discarding what arrives), or
        # max_ms passed. Returns True when it went quiet. Used to resynchronise after noise.
        t0 = time.ticks_ms()
        self.discard()
        while True:
            now = time.ticks_ms()
            quiet_for = time.ticks_diff(now, self.last_rx_ms)
            if quiet_for >= silence_ms:
                return True
            if time.ticks_diff(now, t0) >= max_ms:
                return False
            await asyncio.sleep_ms(silence_ms - quiet_for)
            self.discard()
