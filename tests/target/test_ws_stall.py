# On-target tests of frames cut short on a link that stalls and recovers: asyncio's stream keeps
# a write it could not finish in its out_buf, whole, and its drain() sends it again from the start
# (a cancelled drain forgets how much went out); a frame whose write was cancelled mid-way must
# therefore never be followed by another on the same link, and the watchdog's ping must not be
# cut at 1 s on a slow link that is only stalled.
import asyncio
import time

from ocpp_client import client
from ocpp_client.ws import WebSocket, WsClosed
from test_ws import client_frames


class Choke:
    # A socket under asyncio's Stream, write()/drain() as extmod/asyncio/stream.py has them: the
    # socket takes `room` bytes (None: all), the rest waits in out_buf; drain() sends out_buf
    # from its start as room comes, and a drain cancelled mid-way keeps out_buf whole.
    def __init__(self, room=None):
        self.room = room
        self.wire = bytearray()  # what the peer got
        self.out_buf = b""
        self.closed = False

    def _sock_write(self, b):
        if self.closed:
            raise OSError(9)
        k = len(b) if self.room is None else min(self.room, len(b))
        if not k:
            return None  # EAGAIN
        self.wire += bytes(b[:k])
        if self.room is not None:
            self.room -= k
        return k

    def write(self, buf):
        if not self.out_buf:
            ret = self._sock_write(buf)
            if ret == len(buf):
                return
            if ret is not None:
                buf = buf[ret:]
        self.out_buf += buf

    async def drain(self):
        if not self.out_buf:
            return await asyncio.sleep_ms(0)
        mv = memoryview(self.out_buf)
        off = 0
        while off < len(mv):
            await asyncio.sleep_ms(5)  # (waiting for the socket to be writable)
            ret = self._sock_write(mv[off:])
            if ret is not None:
                off += ret
        self.out_buf = b""

    async def readinto(self, buf):
        await asyncio.Event().wait()

    def close(self):
        self.closed = True


def intact(wire, want):
    # The peer's view: the frames `want` ((op, payload), ...), whole, or nothing after a cut.
    try:
        got = [(f[1], f[2]) for f in client_frames(wire)]
    except Exception as e:  # a corrupt stream
        got = e
    return got == want


async def _stall_mid_drain(s, after_ms):
    # The socket took a few bytes, then one more from drain() (which now counts it sent), then
    # nothing until `after_ms`.
    while not s.wire:
        await asyncio.sleep_ms(5)
    await asyncio.sleep_ms(20)
    s.room = 1
    await asyncio.sleep_ms(after_ms)
    s.room = None


async def test_a_frame_cut_short_mid_write_is_never_followed_by_another():
    s = Choke(room=3)
    ws = WebSocket(s, s, 1024)
    asyncio.create_task(_stall_mid_drain(s, 300))
    try:
        await asyncio.wait_for_ms(ws.ping(b"abcd"), 150)
        raise AssertionError("the ping went out")
    except asyncio.TimeoutError:
        pass
    await asyncio.sleep_ms(300)  # the link recovers
    try:
        await ws.send('[2,"1","Heartbeat",{}]')
    except WsClosed:
        pass
    if not ws.closed:
        assert intact(s.wire, [(9, b"abcd"), (1, b'[2,"1","Heartbeat",{}]')]), bytes(s.wire)
    else:
        assert s.closed and len(s.wire) == 4, bytes(s.wire)  # nothing after the half frame


class Config:
    def get(self, key):
        return {"WebSocketPingInterval": 3}[key]


class Session:
    config = Config()

    def __init__(self):
        self.stopped = None

    def _beat_due(self):
        pass

    def _stop(self, reason):
        self.stopped = reason


async def test_the_watchdogs_ping_survives_a_stall_of_a_slow_link():
    # The ping's write stalls 1.5 s (a cellular link retransmitting): it goes out whole once the
    # link recovers, and the frames after it are intact; the session is not stopped.
    s = Choke(room=3)
    ws = WebSocket(s, s, 1024)
    sess = Session()
    watch = asyncio.create_task(client.OcppClient._watch(sess, ws))
    stall = asyncio.create_task(_stall_mid_drain(s, 1500))
    try:
        t0 = time.ticks_ms()
        while not stall.done() and time.ticks_diff(time.ticks_ms(), t0) < 8000:
            ws.last_rx_ms = time.ticks_ms()  # the CSMS talks: no half-open link
            await asyncio.sleep_ms(50)
        assert stall.done(), "no ping"
        await asyncio.sleep_ms(100)
        await ws.send('[2,"1","Heartbeat",{}]')
        assert sess.stopped is None, sess.stopped
        assert intact(s.wire, [(9, b""), (1, b'[2,"1","Heartbeat",{}]')]), bytes(s.wire)
    finally:
        watch.cancel()
        ws.abort()


async def test_the_watchdog_ends_a_link_whose_ping_never_goes_out():
    s = Choke(room=0)
    ws = WebSocket(s, s, 1024)
    sess = Session()
    watch = asyncio.create_task(client.OcppClient._watch(sess, ws))
    try:
        t0 = time.ticks_ms()
        while sess.stopped is None and time.ticks_diff(time.ticks_ms(), t0) < 9000:
            ws.last_rx_ms = time.ticks_ms()  # reads go on: only the writes stall
            await asyncio.sleep_ms(50)
        assert "stalled" in str(sess.stopped), sess.stopped
        assert ws.closed and s.closed
    finally:
        watch.cancel()
        ws.abort()
