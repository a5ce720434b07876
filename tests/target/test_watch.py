# On-target test of the session's watch (client.OcppClient._watch) behind a blocked writer: a
# worker stuck in drain() on a dead socket (lwIP gives up after minutes) held the writer's turn,
# the watch's ping waited for it inline, and with it the half-open check and the heartbeat
# timer. The ping is bounded now: the watch goes on and drops the silent link.
import asyncio
import time

from ocpp_client import client
from ocpp_client.ws import WebSocket


class Stuck:
    # A socket that takes nothing: every drain() waits for ever; nothing arrives.
    closed = False

    def write(self, b):
        pass

    async def drain(self):
        await asyncio.Event().wait()

    async def readinto(self, buf):
        await asyncio.Event().wait()

    def close(self):
        self.closed = True


class Config:
    def get(self, key):
        return {"WebSocketPingInterval": 1}[key]


class Session:
    # What _watch uses of the session.
    config = Config()

    def __init__(self):
        self.stopped = None
        self.beats = 0

    def _beat_due(self):
        self.beats += 1

    def _stop(self, reason):
        self.stopped = reason


async def test_the_watch_drops_a_silent_link_behind_a_writer_stuck_in_drain():
    s = Stuck()
    ws = WebSocket(s, s, 1024)
    worker = asyncio.create_task(ws.send("[2,\"1\",\"Heartbeat\",{}]"))  # holds the turn
    await asyncio.sleep_ms(10)
    sess = Session()
    t0 = time.ticks_ms()
    watch = asyncio.create_task(client.OcppClient._watch(sess, ws))
    try:
        while sess.stopped is None and time.ticks_diff(time.ticks_ms(), t0) < 9000:
            await asyncio.sleep_ms(50)
        assert sess.stopped is not None, "the watch stalled behind the writer"
        assert "half-open" in str(sess.stopped), sess.stopped
        took = time.ticks_diff(time.ticks_ms(), t0)
        assert 5000 <= took <= 7500, took  # 5 s of silence (two intervals are less), checked
        # every second
        assert sess.beats >= 2, "the heartbeat timer ran on"
    finally:
        watch.cancel()
        worker.cancel()
        ws.abort()


class SlowPong:
    # A live link whose pongs come 3 s after their pings (a CSMS under load, a TLS link over a
    # mobile network): each ping's pong arrives, late.
    closed = False

    def __init__(self):
        self.last_rx_ms = time.ticks_ms()
        self.pings = 0

    async def ping(self, data=b"", wait_ms=0):
        self.pings += 1
        asyncio.create_task(self._pong())

    async def _pong(self):
        await asyncio.sleep_ms(3000)
        self.last_rx_ms = time.ticks_ms()


async def test_a_late_pong_at_a_one_second_interval_is_no_dead_link():
    # WebSocketPingInterval 1 s: two intervals (2 s) without a frame dropped a live link whose
    # pongs took 3 s (the `answers` campaign saw 4 such drops). Silence counts as a dead link
    # after two intervals, but never under 5 s (libocpp's WebsocketPongTimeout default).
    ws = SlowPong()
    sess = Session()
    watch = asyncio.create_task(client.OcppClient._watch(sess, ws))
    try:
        await asyncio.sleep_ms(6500)
        assert sess.stopped is None, sess.stopped
        assert ws.pings >= 5, ws.pings  # pinged every second all along
    finally:
        watch.cancel()
