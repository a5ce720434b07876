# A byte link to a peripheral on a non-blocking byte stream: machine.UART(timeout=0) on the
# charger, a non-blocking socket under the unix port (an asyncio.StreamReader around either is
# accepted too: its raw stream is used). Drivers (PN532, Modbus) talk through one of these and
# never see a pin.
#
# Reads have deadlines and allocate nothing: the caller's buffer is filled in place, and waiting
# is time-aware polling (sleep for as long as the missing bytes take on the wire at this baud
# rate, at least 1 ms, never past the deadline), so a frame costs a few scheduler rounds rather
# than a task and a timeout wrapper per read (asyncio.wait_for_ms allocates ~2 KB a call here).
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

    async def send(self, buf, n=-1):
        # Writes n bytes of buf (all of it by default). A socket may take part of it: the rest is
        # sent when it has room again.
        if n < 0:
            n = len(buf)
        s = self.s
        done = 0
        while done < n:
            k = s.write(buf if done == 0 and n == len(buf) else memoryview(buf)[done:n])
            if k:
                done += k
            else:
                await asyncio.sleep_ms(1)

    def _read(self, buf, off, n):
        if off == 0:
            k = self.s.readinto(buf, n)
        else:
            k = self.s.readinto(memoryview(buf)[off:], n)
        if k:
            self.rx_bytes += k
            self.last_rx_ms = time.ticks_ms()
            return k
        return 0  # None (nothing yet) or 0 (a closed socket): nothing arrived

    async def recv(self, buf, off, n, deadline):
        # Reads exactly n bytes into buf[off:off+n] unless the deadline (time.ticks_ms) passes
        # first. Returns how many arrived (< n means the deadline passed: a timeout).
        got = 0
        while True:
            while True:  # take everything that is there (a UART hands it out in pieces)
                k = self._read(buf, off + got, n - got)
                got += k
                if got >= n:
                    return got
                if not k:
                    break
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                return got
            await asyncio.sleep_ms(min(left, self.wire_ms(n - got)))

    def discard(self):
        # Drops whatever has arrived and not been read; returns how many bytes.
        n = 0
        while True:
            k = self._read(self._scratch, 0, _SCRATCH)
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
