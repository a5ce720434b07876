# On-target tests: a CALL of ours that never got its turn on the link within its time limit
# (another call of ours held it: here its send stalled, as on a link that stops draining for a
# while and recovers) was never sent. It is not an attempt of a transaction message (OCPP 1.6
# 4.10, TransactionMessageAttempts), nor a StatusNotification the CSMS ignored: both go out once
# the link is free. (Before, either was taken for a message the CSMS ignored: the queued one
# counted an attempt it never made and cost the link, the status was dropped unsent.)
import asyncio

from mphelp import Logs
from store import Store
from ocpp_client.config import Config
from ocpp_client.rpc import Rpc
from ocpp_client.txqueue import TxQueue, START
from test_rpc import FakeWs, _run_with, _outcome

_LIMIT_MS = 300  # every CALL's time limit here (call_timeout_s)
_STALL_MS = 500  # the first frame's send stalls this long: past a CALL queued behind it


class StallWs(FakeWs):
    # The first frame's send stalls (that CALL then gets no answer); every later CALL is
    # answered at once.
    closed = False
    r = None
    hung_up = False

    async def _send_frame(self, op, payload):  # (wsrare.hang_up's close frame)
        self.hung_up = True

    def abort(self):
        self.hung_up = True

    async def send(self, text):
        await FakeWs.send(self, text)
        m = self.sent[-1]
        if len(self.sent) == 1:
            await asyncio.sleep_ms(_STALL_MS)
        elif m[0] == 2:
            conf = '{"transactionId": 5, "idTagInfo": {"status": "Accepted"}}' if m[2] == START \
                else "{}"
            self.push('[3, "%s", %s]' % (m[1], conf))


class Session:
    # What txqrare.py and clientrare.answers() use of the OCPP session.
    def __init__(self, rpc):
        self.rpc = rpc

    def kick(self):
        pass

    async def _heartbeat(self, cid=None):
        await self.rpc.call("Heartbeat", {})


async def _link():
    rpc = Rpc({})
    rpc.timeout_ms = _LIMIT_MS
    ws = StallWs()
    task = await _run_with(rpc, ws)
    # another task's call (a FirmwareStatusNotification) takes the link first; its send stalls
    fsn = rpc.call("FirmwareStatusNotification", {"status": "Idle"})
    other = asyncio.create_task(_outcome(fsn))
    await asyncio.sleep_ms(0)
    assert len(ws.sent) == 1
    return rpc, ws, task, other


async def test_a_queued_message_that_never_got_its_turn_is_no_attempt():
    st = Store("busy_txq")
    q = TxQueue(st, Config(st))
    q.add(START, {"connectorId": 1, "idTag": "A", "meterStart": 0,
                  "timestamp": "2026-01-01T00:00:00.000Z"}, "r1")
    rpc, ws, task, other = await _link()
    q.session = Session(rpc)
    with Logs() as logs:
        err = await _outcome(q.deliver(rpc))
        assert err is None, "the delivery failed: %s (%s)" % (err, logs.warnings())
        await other
    assert logs.warned(START, "not sent", "busy"), logs.lines
    assert [m[2] for m in ws.sent] == ["FirmwareStatusNotification", START], (
        "no probe, no repeat: %s" % [m[2] for m in ws.sent])
    assert q.tx_id("r1") == 5 and len(q) == 0
    assert q._attempts == 0 and q.retry_at is None and not ws.hung_up
    assert not logs.said("ignored"), logs.lines
    ws.end()
    await task


async def test_a_status_that_never_got_its_turn_is_kept_and_sent():
    from ocpp_client.client import OcppClient

    st = Store("busy_status")
    rpc, ws, task, other = await _link()

    class Connector:
        finishing_stops = 0

        def status_of(self, cid):
            return ("Preparing", "NoError")

        def vendor_error(self, cid, status, err):
            return None

    class Client(OcppClient):
        def __init__(self):  # (the fields _report_statuses() reads, set below)
            pass

    cl = Client()
    cl.rpc = rpc
    cl.settings = {}
    cl.config = Config(st)
    cl.queue = None
    cl.connector = Connector()
    cl._status_dirty = {}
    cl._since = {0: None, 1: None}
    cl._sent = {0: None, 1: None}
    cl._kick = asyncio.Event()
    cl._status_dirty[1] = ("Preparing", "NoError")
    with Logs() as logs:
        err = await _outcome(cl._report_statuses())  # the link busy past the limit: not sent
        assert err is None, "%s (%s)" % (err, logs.warnings())
        assert cl._status_dirty.get(1) == ("Preparing", "NoError"), (
            "a status never sent was dropped: %s" % logs.lines)
        await other
        err = await _outcome(cl._report_statuses())  # the link free again
        assert err is None, err
    names = [m[2] for m in ws.sent]
    assert names == ["FirmwareStatusNotification", "StatusNotification"], names
    assert ws.sent[1][3]["status"] == "Preparing"
    assert cl._sent[1] == ("Preparing", "NoError") and 1 not in cl._status_dirty
    assert not ws.hung_up
    ws.end()
    await task


class LateTurnWs(FakeWs):
    # The first CALL is answered after _LATE_MS, near the second's limit; the second's send
    # then stalls for _SHORT_STALL_MS (a slow link that recovers), and is answered.
    closed = False
    hung_up = False

    def abort(self):
        self.hung_up = True

    async def send(self, text):
        await FakeWs.send(self, text)
        m = self.sent[-1]
        if len(self.sent) == 1:
            asyncio.create_task(self._answer(m[1], _LATE_MS))
        else:
            await asyncio.sleep_ms(_SHORT_STALL_MS)
            self.answer_second(m[1])

    def answer_second(self, mid):  # with the write's end
        self.push('[3, "%s", {"currentTime": "2026-01-01T00:00:00.000Z"}]' % mid)

    async def _answer(self, mid, ms):
        await asyncio.sleep_ms(ms)
        self.push('[3, "%s", {}]' % mid)


_LATE_MS = 1800
_SHORT_STALL_MS = 1500


async def _heartbeat_behind_a_call(rpc, ws):
    # A CALL answered late holds the writer's turn; a Heartbeat (2 s limit) waits behind it.
    # -> (the link's task, the Heartbeat's outcome, its logs); the first CALL was answered.
    task = await _run_with(rpc, ws)
    first = asyncio.create_task(_outcome(rpc.call("FirmwareStatusNotification",
                                                  {"status": "Idle"}, 5000)))
    await asyncio.sleep_ms(0)
    with Logs() as logs:
        out = await _outcome(rpc.call("Heartbeat", {}, 2000))
    assert await first == {}
    return task, out, logs


async def test_a_call_whose_turn_comes_near_its_deadline_gets_a_fair_write():
    # Its turn came 0.2 s before its limit: the write got 1 s, and a stall of 1.5 s (a slow
    # link, not a dead one) dropped a healthy link. It gets a few seconds at least now.
    rpc = Rpc({})
    ws = LateTurnWs()
    dead = []
    rpc.on_dead = dead.append
    task, out, logs = await _heartbeat_behind_a_call(rpc, ws)
    assert [m[2] for m in ws.sent] == ["FirmwareStatusNotification", "Heartbeat"]
    assert not dead and not ws.closed and not ws.hung_up, (out, logs.warnings())
    # (its answer came with the write's end, after the limit: taken, or a CallTimeout whose
    # late answer clientrare.answers takes; no reconnect either way)
    assert out in ("CallTimeout", {"currentTime": "2026-01-01T00:00:00.000Z"}), (
        out, logs.warnings())
    ws.end()
    await task


class SlowAnswerWs(LateTurnWs):
    # As LateTurnWs, but the second CALL's answer comes a round trip after its slow write ends.
    def answer_second(self, mid):
        asyncio.create_task(self._answer(mid, _RTT_MS))


_RTT_MS = 400


async def test_a_call_written_past_its_limit_still_gets_a_round_trip_for_its_answer():
    # Its write ended after its limit (a slow link that recovers): the answer, a round trip
    # later, was waited for 1 ms, the Heartbeat timed out, and the session reconnected a healthy
    # link. A written CALL waits a couple of seconds at least now.
    rpc = Rpc({})
    ws = SlowAnswerWs()
    task, out, logs = await _heartbeat_behind_a_call(rpc, ws)
    assert out == {}, (out, logs.warnings())
    assert rpc.timed_out is None and not rpc.quiet
    ws.end()
    await task
