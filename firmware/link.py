# A byte link to a peripheral on a non-blocking byte stream: machine.UART(timeout=0) on the
# charger, a non-blocking socket under the unix port (an asyncio.StreamReader around either is
# accepted too: its raw stream is used). Drivers (PN532, Modbus) talk through one of these and
# never see a pin.
#
# Nothing here allocates in the steady state: reads fill the caller's buffer in place (at an
# offset, through a scratch buffer: a memoryview slice would be a new object at every read),
# and waiting is time-aware polling (sleep as long as the missing bytes take on the wire at this
# baud rate, at least 1 ms, never past a deadline) rather than a task and a timeout wrapper per
# read (asyncio.wait_for_ms allocates ~2 KB a call).
#
# Looped (below) is how a driver's exchange runs without allocating: a coroutine is a new heap
# object at every call, and an exchange used to be three or four of them nested.
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
        self._vb = None  # the last buffer sent in part (its first _vn bytes), and that view
        self._vn = 0
        self._v = None

    def wire_ms(self, nbytes):
        # How long nbytes take on the wire (rounded up, at least 1 ms).
        return (nbytes * self.char_us + 999) // 1000 or 1

    def send_now(self, buf, n, off=0):
        # Writes buf[off:n] as far as the stream takes it now; returns how many bytes (a UART
        # takes them all). The view of a buffer's first n bytes is kept for the next frame of
        # the same length (a driver sends the same frame at every poll).
        if off:
            v = memoryview(buf)[off:n]  # the rest of a frame a socket took in part: rare
        elif n == len(buf):
            v = buf
        else:
            if buf is not self._vb or n != self._vn:
                self._vb = buf
                self._vn = n
                self._v = memoryview(buf)[:n]
            v = self._v
        return self.s.write(v) or 0

    async def send(self, buf, n=-1):
        # Writes n bytes of buf (all of it by default). A socket may take part of it: the rest is
        # sent when it has room again.
        if n < 0:
            n = len(buf)
        done = self.send_now(buf, n)
        while done < n:
            await asyncio.sleep_ms(1)
            done += self.send_now(buf, n, done)

    def _got(self, k):
        self.rx_bytes += k
        self.last_rx_ms = time.ticks_ms()

    def take(self, buf, off, n):
        # Reads up to n bytes into buf[off:] from what has arrived, without waiting; returns
        # how many. A short read (None: nothing yet; 0: a closed socket) is 0.
        # This and the helpers below keep to <= 11 slots of locals and stack: MicroPython
        # heap-allocates a bigger frame at every call (and frees it at the return).
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
        while n:
            k = self._chunk(buf, off, n)
            if not k:
                break
            off += k
            n -= k
            got += k
        return got

    def _chunk(self, buf, off, n):
        # readinto() fills a buffer from its start: at an offset the bytes go through the
        # scratch buffer and are copied (a memoryview slice would be an object a read).
        sc = self._scratch
        k = self.s.readinto(sc, n if n < _SCRATCH else _SCRATCH)
        if not k:
            return 0
        self._got(k)
        _copy(buf, off, sc, k)
        return k

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


def _copy(dst, off, src, n):
    i = 0
    while i < n:
        dst[off] = src[i]
        off += 1
        i += 1


# -- Looped: an exchange without a coroutine per call ------------------------------------------

_RETS = {}  # value -> its StopIteration (ints, None)
_BOOLS = {}  # True/False apart: True == 1 as a dict key


def ret(v):
    # The StopIteration that makes `await x` give v. One instance per value, made at first use
    # and reused (exchanges return few distinct values: True, False, None, lengths); its
    # traceback is cleared before each raise, which also keeps the raise from allocating one
    # (MicroPython records no traceback into an exception whose __traceback__ is None).
    d = _BOOLS if v is True or v is False else _RETS
    e = d.get(v)
    if e is None:
        e = d[v] = StopIteration(v)
    e.__traceback__ = None
    return e


def timeout(what):
    # A device that did not answer in time: the port's own OSError(ETIMEDOUT), as a socket's
    # timeout is, rather than a driver's exception class in the heap.
    from errno import ETIMEDOUT

    return OSError(ETIMEDOUT, what)


class Looped:
    # An awaitable exchange (a poll, a transaction) run by a generator that is made once and
    # loops forever, one pass per exchange: a coroutine is a new heap object at every call (its
    # frame inside), a resumed generator is not, and a try block in it costs nothing per pass.
    # The generator yields None while it waits (`yield from asyncio.sleep_ms(ms)`: sleep_ms()
    # returns asyncio's preallocated singleton), then what ends the exchange: ret(value) (the
    # await gives value) or an exception (raised at the await). MicroPython's `await x` is
    # `yield from x`, so an object with __iter__/__next__ is awaitable as it is, and exchanges
    # nest the same way (`yield from` one in another's generator).
    # Its owner sets the exchange's parameters, then hands out begin(): one exchange at a time.
    def __init__(self, fn, *values):
        # fn: the generator function (a bound method); values: those its exchanges give.
        # The generator and their StopIterations are made now, with the driver, rather than
        # at the first poll: objects that live for good are best allocated together, before
        # the heap fills with shorter-lived ones they would otherwise sit between.
        self._fn = fn
        self._gen = fn()
        self._busy = False
        for v in values:
            ret(v)

    def begin(self):
        if self._busy:
            # the last exchange never ended (cancelled, or an exception escaped its
            # generator): a fresh generator, so nothing is resumed half-way
            self._gen = self._fn()
        self._busy = True
        return self

    def __iter__(self):
        return self

    def __next__(self):
        r = next(self._gen)
        if r is None:
            return None
        self._busy = False
        raise r

    # A Task runs its coroutine with send() and cancels it with throw(): with these an exchange
    # can also be given to asyncio.create_task(), wait_for() or gather() directly.
    def send(self, _):
        return self.__next__()

    def throw(self, e, *_):
        raise e  # abandoned mid-way: begin() starts the next exchange on a fresh generator
