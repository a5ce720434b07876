# WebSocket client (RFC 6455) on MicroPython asyncio streams, for OCPP-J.
# Text messages for the application; ping/pong, close and fragmentation handled here.
#
# Memory: messages are assembled with readinto on memoryviews in one preallocated receive buffer
# (RX_SIZE, grown up to `max_size` only if a longer message comes; kept across reconnects);
# frames go out through one preallocated send buffer, masked in place by a native (viper) loop,
# so masking costs no per-byte Python work; a longer frame goes through it in pieces, and
# send_json() writes a long JSON message as json.dump makes it (wsjson.py), so neither the frame
# nor the text is ever built whole.
# A message over `max_size` (the RAM limit) is written to a spool file on flash as it arrives, if
# the connection has one, the message stays within `spool_max` and its head names a message the
# receiver can read from flash (`spool_if(head)`: anything else would only wear the flash), and
# handed up as a Spooled object (path, size, head) instead of a buffer; otherwise it is read to its
# end and dropped (WsTooBig, the connection lives on). Only past _DISCARD_MAX, or on a protocol
# violation, is the connection failed.
import os
import struct

import micropython

from supervisor import Turns, within

OP_CONT = const(0)
OP_TEXT = const(1)
OP_BIN = const(2)
OP_CLOSE = const(8)
OP_PING = const(9)
OP_PONG = const(10)
_HEAD_KEEP = const(128)  # bytes of an oversize message kept so the RPC layer can name it
_DISCARD_MAX = const(1048576)  # an oversize message longer than this fails the connection
SPOOL_MAX = const(262144)  # flash limit: a longer message is dropped, not spooled
# The receive buffer to start with (kept for good): an OCPP call is mostly well under it; a
# longer one grows it (up to max_size), one over max_size goes to flash (a 1,000-tag list).
# As the idle buffer lent to the reader of a spooled message (jsonstream.Reader), it also
# bounds one list entry's text (1,023 bytes; one with every character \u-escaped: ~800).
RX_SIZE = const(1024)
# The send buffer, where a frame is masked: a longer one goes out through it in pieces (a
# MeterValues of five measurands, ~600 bytes, in two). Half the receive buffer: an outgoing
# message is in RAM whole already (its text), this is only the masking's room.
TX_SIZE = const(512)
_RAM = const(0)  # recv_msg: assembling the message in the receive buffer
_SPOOL = const(1)  # writing it to the spool file
_ROOMLESS = const(3)  # no memory to grow the receive buffer: handled as over the RAM limit
_DROP = const(2)  # reading it to its end to drop it
# Protocol violations of the server, said by wsrare.fail() (its _WHY, in this order), which
# closes the connection and raises WsError.
_RSV = const(0)
_MASKED = const(1)
_LENGTH = const(2)
_CTL = const(3)
_CTL_OP = const(5)
_CONT = const(6)
_NESTED = const(7)
_OPCODE = const(8)
_HUGE = const(9)  # (1009: too big; the others 1002)


class WsError(Exception):
    pass


class WsClosed(WsError):
    pass


class WsTooBig(WsError):
    # A message over the size limit was read to its end and dropped; the connection is intact.
    def __init__(self, size, limit, head):
        super().__init__("message of %d bytes over the %d-byte limit" % (size, limit))
        self.size = size
        self.limit = limit
        self.head = head  # its first bytes (which name the message: '[2,"id",...')


class Spooled:
    # A complete message over the RAM limit, in the spool file (a store.Spool). The receiver reads
    # it with open() and must remove() it once handled; the next spooled message overwrites it.
    # `scratch` is the connection's receive buffer, idle until the next recv_msg(): the reader of
    # the file may use it instead of allocating its own.
    def __init__(self, spool, size, limit, head, scratch):
        self.spool = spool
        self.size = size
        self.limit = limit  # the RAM limit it is over
        self.head = head
        self.scratch = scratch

    def __len__(self):
        return self.size

    def open(self):
        return self.spool.open()

    def remove(self):
        self.spool.remove()


try:

    @micropython.viper
    def _mask(buf: ptr8, n: int, key: ptr8):
        i = 0
        while i < n:
            buf[i] ^= key[i & 3]
            i += 1

except Exception:  # a port without the native emitter: whole-buffer integer XOR, still no byte loop

    def _mask(buf, n, key):
        k = (bytes(key) * ((n >> 2) + 1))[:n]
        x = int.from_bytes(bytes(buf[:n]), "big") ^ int.from_bytes(k, "big")
        buf[:n] = x.to_bytes(n, "big")


def apply_mask(buf, key):
    # Exposed for tests and benchmarks: masks (or unmasks) a bytearray in place.
    _mask(buf, len(buf), key)


# The buffers of the connection: made when this module is imported (at boot, before the heap
# fragments: the first connection is made after code loaded on use came and went) and kept
# from one connection to the next, so a long-running charger never needs fresh blocks for
# them. One connection at a time, so one of each. `spare_rx` is public: net/dns.py borrows it
# for an answer while no connection holds it (None meanwhile).
spare_rx = bytearray(RX_SIZE)
_spare_tx = bytearray(TX_SIZE)


def _close_stream(w):
    # MicroPython's StreamWriter.close() does nothing: close the socket under it.
    try:
        s = getattr(w, "s", None)
        if s is not None:
            s.close()
        else:
            w.close()
    except Exception:
        pass


def _head(bv, op, n):
    # A client frame's head into bv (a memoryview, 14 bytes at least): FIN + op, the payload
    # length n, a fresh mask key. -> (the head's length, the key)
    bv[0] = 0x80 | op
    if n < 126:
        bv[1] = 0x80 | n
        hl = 2
    elif n < 65536:
        bv[1] = 0x80 | 126
        struct.pack_into("!H", bv, 2, n)
        hl = 4
    else:
        bv[1] = 0x80 | 127
        struct.pack_into("!Q", bv, 2, n)
        hl = 10
    key = os.urandom(4)
    bv[hl : hl + 4] = key
    return hl + 4, key


class WebSocket:
    # One connection. `recv_msg()` returns the next message as a memoryview of the receive buffer
    # (valid until the next call), or a Spooled one; `recv()` the same as a str; `send(str)` sends
    # one text message. `spool` (a store.Spool, or None) takes messages over max_size whose head
    # (first _HEAD_KEEP bytes) `spool_if` accepts (None: all).
    def __init__(self, reader, writer, max_size, spool=None, spool_max=SPOOL_MAX, spool_if=None):
        if max_size < 256:
            raise ValueError("max_size under 256 bytes")
        self.r = reader
        self.w = writer
        self.max_size = max_size
        self.spool = spool
        self.spool_max = spool_max if spool is not None else max_size
        self.spool_if = spool_if
        self.closed = False
        self.last_rx_ms = _ticks()
        # No byte of the next message read yet (a MemoryError out of recv_msg then leaves the
        # stream in step: rpc.serve reads again once memory is back).
        self.edge = True
        global spare_rx, _spare_tx
        self._rx = spare_rx or bytearray(RX_SIZE)
        self._rxv = memoryview(self._rx)
        self._tx = _spare_tx or bytearray(TX_SIZE)
        spare_rx = _spare_tx = None
        self._h = bytearray(8)
        self._hv = memoryview(self._h)
        self._ctl = bytearray(125)
        self._ctlv = memoryview(self._ctl)
        self.writing = Turns()  # one frame written at a time (wsjson.py takes it too)

    # -- receiving -----------------------------------------------------------------------
    async def _fill(self, mv):
        # Fill mv completely from the stream. Every read is a sign of life: a long message on a
        # slow link is no silence (the half-open watch, client.py; the pongs to its pings queue
        # behind the message).
        n = len(mv)
        got = 0
        r = self.r
        if r is None:
            raise WsClosed("connection aborted")
        while got < n:
            try:
                k = await r.readinto(mv[got:] if got else mv)
            except MemoryError:
                # No memory for the read's coroutine: nothing was read, the stream is in step;
                # read again once memory is back (the watch, client.py, ends a silent link).
                await oom_wait()
                continue
            if k is None:
                continue  # TLS: a record with no application data yet
            if not k:
                raise WsClosed("connection closed mid-frame")
            got += k
            self.edge = False
            self.last_rx_ms = _ticks()

    async def _skip(self, n):
        # Read and drop n bytes, using the receive buffer past the kept head as scratch.
        scratch = self._rxv[_HEAD_KEEP:]
        while n > 0:
            k = n if n < len(scratch) else len(scratch)
            await self._fill(scratch[:k])
            n -= k

    async def _spool_in(self, f, n, done):
        # Read n bytes of the message into the spool file `f` through the receive buffer past the
        # kept head (chunks as large as that space, written straight from the buffer), keeping the
        # message's first _HEAD_KEEP bytes at the buffer's start; `done`: bytes already in the
        # file. -> False when writing failed (flash full or failing): the rest of the n bytes is
        # then only read (the head still kept), and the caller gives up spooling.
        rxv = self._rxv
        scratch = rxv[_HEAD_KEEP:]
        ok = True
        while n > 0:
            k = n if n < len(scratch) else len(scratch)
            c = scratch[:k]
            await self._fill(c)
            n -= k
            if done < _HEAD_KEEP:
                h = min(k, _HEAD_KEEP - done)
                rxv[done : done + h] = c[:h]
            done += k
            if ok:
                try:
                    f.write(c)
                except OSError as e:
                    _log_spool(e)
                    ok = False
        return ok

    async def _fail(self, why, arg=None):
        # A protocol violation (_RSV ..): said, the connection closed, WsError (wsrare.py).
        await _rare("fail", self, why, arg)

    async def _head(self):
        # -> (fin, opcode, payload length) of the next frame.
        h = self._h
        await self._fill(self._hv[:2])
        b0 = h[0]
        b1 = h[1]
        if b0 & 0x70:
            await self._fail(_RSV)
        if b1 & 0x80:
            await self._fail(_MASKED)
        n = b1 & 0x7F
        if n == 126:
            await self._fill(self._hv[:2])
            n = h[0] << 8 | h[1]
        elif n == 127:
            await self._fill(self._hv[:8])
            if h[0] & 0x80:
                await self._fail(_LENGTH)
            n = struct.unpack("!Q", h)[0]
        return b0 & 0x80, b0 & 0x0F, n

    async def _control(self, op, n, fin):
        if n > 125 or not fin:
            await self._fail(_CTL)
        data = self._ctlv[:n]
        await self._fill(data)
        if op == OP_PING:
            await self._send_frame(OP_PONG, data)
        elif op == OP_CLOSE:
            await _rare("closed", self, n)  # echoed, WsClosed raised (wsrare.py)
        elif op != OP_PONG:
            await self._fail(_CTL_OP, op)

    def _grow(self, keep, need):
        # A message longer than the receive buffer (still within max_size): a bigger buffer,
        # kept from now on. Rare: OCPP messages are mostly well under RX_SIZE.
        n = min(self.max_size, max(need, 2 * len(self._rx)))
        buf = bytearray(n)
        buf[:keep] = self._rxv[:keep]
        self._rx = buf
        self._rxv = memoryview(buf)

    async def recv_msg(self):
        # The next complete message (text or binary) as a memoryview into the receive buffer, or
        # a Spooled one when it is over max_size and within the flash limit. Pings are answered
        # and fragments joined on the way. Raises WsTooBig for a dropped oversize message (the
        # connection is fine), WsClosed/WsError when it is not.
        size = 0  # bytes of the message so far
        first = -1  # opcode of the message being assembled
        mode = _RAM
        f = None  # the spool file while spooling
        try:
            while True:
                fin, op, n = await self._head()
                if op >= 8:
                    await self._control(op, n, fin)
                    if first < 0:
                        self.edge = True
                    continue
                if op == OP_CONT:
                    if first < 0:
                        await self._fail(_CONT)
                elif op == OP_TEXT or op == OP_BIN:
                    if first >= 0:
                        await self._fail(_NESTED)
                    first = op
                else:
                    await self._fail(_OPCODE, op)
                if size + n > _DISCARD_MAX:
                    await self._fail(_HUGE, _DISCARD_MAX)
                if mode == _RAM and len(self._rx) < size + n <= self.max_size:
                    try:
                        self._grow(size, size + n)
                    except MemoryError:
                        # No room for a bigger buffer: the message goes as one over the RAM
                        # limit does (to flash if its receiver reads it there, else dropped
                        # with its answer); the link lives on.
                        _log_no_room(size + n)
                        mode = _ROOMLESS
                if (mode == _RAM and size + n > self.max_size) or mode == _ROOMLESS:
                    mode = _DROP
                    if size < _HEAD_KEEP:
                        # Complete the head first (this frame brings at least the rest of it:
                        # max_size >= 256): it names the message, and decides.
                        k = min(n, _HEAD_KEEP - size)
                        await self._fill(self._rxv[size : size + k])
                        size += k
                        n -= k
                    if size + n <= self.spool_max and self._spool_wanted(size):
                        f = self._spool_start(size)
                        if f is not None:
                            mode = _SPOOL
                if mode == _SPOOL and size + n > self.spool_max:
                    self._spool_end(f, False)
                    f = None
                    mode = _DROP
                if mode == _RAM:
                    if n:
                        await self._fill(self._rxv[size : size + n])
                elif mode == _SPOOL:
                    if not await self._spool_in(f, n, size):
                        self._spool_end(f, False)
                        f = None
                        mode = _DROP
                else:
                    await self._skip(n)  # (the head is kept: it was completed above)
                size += n
                if not fin:
                    continue
                head = self._rxv[: min(size, _HEAD_KEEP)]
                # (what is handed up is made before the edge is marked: out of memory for it,
                # the message read is lost, and the link with it)
                if mode == _RAM:
                    m = self._rxv[:size]
                    self.edge = True
                    return m
                if mode == _SPOOL:
                    kept = self._spool_end(f, True)
                    f = None
                    if kept:
                        m = Spooled(self.spool, size, self.max_size, bytes(head), self._rx)
                        self.edge = True
                        return m
                # over the flash limit, or not spooled (not wanted, no spool, the flash failed)
                limit = self.spool_max if size > self.spool_max else self.max_size
                m = WsTooBig(size, limit, bytes(head))
                self.edge = True
                raise m
        finally:
            if f is not None:  # the connection failed mid-message
                self._spool_end(f, False)

    def _spool_wanted(self, size):
        if self.spool is None:
            return False
        if self.spool_if is None:
            return True
        try:
            return self.spool_if(self._rxv[: min(size, _HEAD_KEEP)])
        except Exception:
            return False

    def _spool_start(self, size):
        # The message outgrows RAM: open the spool file and write what is already in the buffer.
        # -> the open file, or None (no spool, or flash failing: the message is dropped instead).
        if self.spool is None:
            return None
        f = None
        try:
            f = self.spool.create()
            if size:
                f.write(self._rxv[:size])
            return f
        except OSError as e:
            _log_spool(e)
            if f is not None:
                self._spool_end(f, False)
            return None

    def _spool_end(self, f, keep):
        # Close the spool file; remove it unless it holds a complete message. -> kept
        if f is not None:
            try:
                f.close()  # closing flushes to flash
            except OSError as e:
                _log_spool(e)
                keep = False
        if not keep:
            self.spool.remove()
        return keep

    async def recv(self):
        # The next message as a str (a Spooled one as it is); see recv_msg.
        m = await self.recv_msg()
        return m if isinstance(m, Spooled) else str(m, "utf-8")

    # -- sending -------------------------------------------------------------------------
    async def _send_frame(self, op, payload, held=False):
        # payload: str (its UTF-8 bytes are read in place), bytes, bytearray or memoryview.
        # A payload longer than the send buffer goes out in pieces through it (masked piece by
        # piece: each a multiple of 4 bytes, so the key stays aligned), never copied whole.
        # `held`: the caller took the writer's turn already.
        if not held:
            await self.turn()
        try:
            pv = memoryview(payload)
            n = len(pv)
            buf, w = self._tx, self.w  # (w kept: an abort() meanwhile lets self.w go)
            if buf is None:
                raise WsClosed("send on a closed socket")
            bv = memoryview(buf)
            hl, key = _head(bv, op, n)
            if hl + n <= len(buf):
                body = bv[hl : hl + n]
                body[:] = pv
                _mask(body, n, key)
                w.write(bv[: hl + n])
                await w.drain()
                return
            w.write(bv[:hl])
            step = len(buf) & ~3
            i = 0
            while i < n:
                if self._tx is not buf:  # aborted during a drain: the buffer went to the pool
                    raise WsClosed("connection aborted while sending")
                k = min(step, n - i)
                body = bv[:k]
                body[:] = pv[i : i + k]
                _mask(body, k, key)
                w.write(body)
                await w.drain()
                i += k
        except BaseException:
            # Cut short (cancelled at a deadline, or the stream failed): part of the frame may be
            # out, and asyncio's stream would send its buffer again, whole, before the next frame:
            # the peer would see a corrupt frame. The link is not used again.
            self.abort()
            raise
        finally:
            self.writing.give()

    async def turn(self):
        # The writer's turn (given back with self.writing.give()).
        if not await self.writing.take():
            raise WsClosed("no turn to write for a day and a half: the link is stuck")

    async def send(self, text, held=False):
        # held: the caller took the writer's turn (rpc.call, to bound its wait apart).
        if self.closed:
            if held:
                self.writing.give()
            raise WsClosed("send on a closed socket")
        await self._send_frame(OP_TEXT, text, held)

    def send_now(self, text):
        # A short text message written at once, with no coroutine: each call of one allocates
        # its frame (_send_frame's: 272 bytes), which a heap out of memory may not have, and the
        # answer to a CALL that ran out of memory (rpc.py) must still go. -> False, nothing
        # written, while another frame is being written or when it exceeds the send buffer: the
        # caller sends it the usual way. (A socket taking only part of it leaves the rest in
        # the stream's buffer, flushed by the next frame's drain.)
        buf, w = self._tx, self.w
        if self.closed or self.writing.busy or buf is None:
            return False
        pv = memoryview(text)
        n = len(pv)
        bv = memoryview(buf)
        if n + 14 > len(buf):
            return False
        hl, key = _head(bv, OP_TEXT, n)
        body = bv[hl : hl + n]
        body[:] = pv
        _mask(body, n, key)
        try:
            w.write(bv[: hl + n])
        except BaseException:
            self.abort()
            raise
        return True

    async def send_json(self, obj):
        # A text message of json.dumps(obj); a long one is never built whole (wsjson.py).
        if self.closed:
            raise WsClosed("send on a closed socket")
        from ocpp_client import wsjson

        await wsjson.send(self, obj, _mask, _head)

    async def ping(self, data=b"", wait_ms=0x7FFFFFF):
        # -> False when the writer's turn did not come within wait_ms (nothing sent).
        if not await self.writing.take(wait_ms):
            return False
        await self._send_frame(OP_PING, data, True)
        return True

    async def close(self, code=1000):
        if not self.closed:
            self.closed = True
            try:
                await within(self._send_frame(OP_CLOSE, struct.pack("!H", code)), 500)
            except Exception:
                pass
        self.abort()

    def abort(self):
        # Drop the connection at once; the buffers go back to the pool for the next one, and the
        # stream and its socket are let go: a finished task's frame may hold this object for a
        # while after (asyncio's run queue can keep a finished task: a pairing heap's stale
        # child_last), and then only the shell stays, not the socket (a reconnect's peak).
        self.closed = True
        _close_stream(self.w)
        self.r = self.w = None
        global spare_rx, _spare_tx
        if self._rx is not None:
            spare_rx, _spare_tx = self._rx, self._tx
            self._rx = self._tx = None


def _rare(name, *args):
    # A seldom-run path (wsrare.py: a protocol violation, the server's close), loaded for it and
    # out of the heap after (supervisor.rare).
    from supervisor import rare

    return rare("ocpp_client.wsrare", name, *args)


def _log_no_room(size):
    import gc
    import log

    gc.collect()
    log.warn("ws", "no memory for a %d-byte receive buffer: message taken as over the limit", size)


def _log_spool(e):
    import log

    log.warn("ws", "cannot spool a long message to flash (%s): dropping it", e)


def oom_wait():
    # A read that found no memory waits for it here: a collection, then 50 ms (rpc.serve too).
    import asyncio
    import gc

    gc.collect()
    return asyncio.sleep_ms(50)  # (allocates nothing: a singleton)


def _ticks():
    import time

    return time.ticks_ms()
