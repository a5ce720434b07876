# On-target tests for a tap's wait for the CSMS (ocpp_client/authorization.py): bounded by its
# own limit whatever the link does, and an Authorize the CSMS answers after the tap was decided
# still goes into the authorization cache (1.6 3.5.1).
import asyncio
import json
import time

from mphelp import Logs, until
from ocpp_client import features
from ocpp_client.rpc import Rpc
from test_features import AUTH, Tap
from test_rpc import FakeWs, _Stalled, _run_with

CARD = "04A1B2C3"


class Online(Tap):
    # A session with a link (rpc) whose CSMS is there, the authorization feature on its table.
    def __init__(self, folder, rpc):
        super().__init__(folder)
        self.rpc = rpc
        self._sent = {0: None}
        self.cached = None
        rpc.handlers = features.handlers(self, AUTH)

    def online(self):
        return True

    def feature(self, name):  # (as client.py's)
        features.need(self, self.rpc.handlers, name)
        return self.features.get(name)


async def _online(folder):
    # -> (rpc, its link, the link's task, a session on it) with a CSMS that answers when told.
    rpc = Rpc({})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    return rpc, ws, task, Online(folder, rpc)


async def _tap(s, ms):
    # -> (the tap's decision, ms it took), as client.authorize() decides one.
    t0 = time.ticks_ms()
    a = s.feature("authorization")
    try:
        r = await a.authorize_now(CARD, ms)
    finally:
        features.release(s, s.rpc.handlers, "authorization")
    return r, time.ticks_diff(time.ticks_ms(), t0)


async def test_a_tap_whose_authorize_gets_the_writer_late_waits_its_limit_only():
    # Another frame holds the writer's turn (a long answer on a congested link) until just
    # before the tap's limit; the Authorize's write then gets rpc.py's floor (the limit, at
    # most 5 s) and the link takes nothing: the tap waited twice its limit (7 s + 5 s on a
    # charger). Decided offline at its limit instead.
    from ocpp_client.ws import WebSocket

    rpc = Rpc({})
    st = _Stalled()
    ws = WebSocket(st, st, 4096)
    task = await _run_with(rpc, ws)
    rpc.on_dead = lambda e: None
    s = Online("flash/writer", rpc)
    assert await ws.writing.take()

    async def free():
        await asyncio.sleep_ms(900)
        ws.writing.give()

    asyncio.create_task(free())
    with Logs():
        r, took = await _tap(s, 1000)
        assert r == ("Invalid", None)  # unknown, offline, AllowOfflineTxForUnknownId false
        assert took < 1300, "the tap waited %d ms" % took
        await asyncio.sleep_ms(1200)  # the Authorize's write gives up too
    st.gone()
    await task


async def test_an_authorize_answered_after_the_tap_was_decided_goes_into_the_cache():
    # A roaming hub answers after the tap's limit: the tap was decided offline (refused, the
    # card unknown), but what the CSMS said is cached, so the card's next tap decided offline
    # charges (LocalAuthorizeOffline).
    rpc, ws, task, s = await _online("flash/late")
    with Logs() as logs:
        r, took = await _tap(s, 300)
        assert r == ("Invalid", None)
        assert ws.sent and ws.sent[0][2] == "Authorize"
        # The CALL's own wait ends just after the tap's (its write came first): the answer
        # comes after both.
        await until(lambda: rpc.timed_out == ws.sent[0][1], "the Authorize's timeout")
        info = {"status": "Accepted", "parentIdTag": "FLEET01"}
        ws.push(json.dumps([3, ws.sent[0][1], {"idTagInfo": info}]))
        await asyncio.sleep_ms(50)
    assert logs.warned("Authorize", "no answer within 300 ms")
    a = s.feature("authorization")
    assert a.cache_entry(CARD)[0] == info
    assert await a._auth().authorize(CARD, False) == ("Accepted", "FLEET01")
    # Only that Authorize's answer: another CALL's, late too, caches nothing.
    a.clear_cache()
    with Logs():
        await _tap(s, 300)
        try:
            await rpc.call("Heartbeat", {}, 100)
        except Exception:
            pass
        assert ws.sent[-1][2] == "Heartbeat"
        ws.push(json.dumps([3, ws.sent[-1][1], {"idTagInfo": info}]))
        await asyncio.sleep_ms(50)
    assert a.cache_entry(CARD) is None
    ws.end()
    await task


async def test_a_tap_cancelled_while_waiting_is_not_woken_later():
    # The tap's task is cancelled during its wait (the card's task ended) and then sleeps
    # elsewhere: the Authorize's answer, coming after, must not wake that other sleep (the
    # waker still named the task: asyncio's queue would lose its order, or end a sleep early).
    rpc, ws, task, s = await _online("flash/cancel")
    woke = []

    async def tap_then_sleep():
        try:
            await _tap(s, 2000)
        except asyncio.CancelledError:
            pass
        t0 = time.ticks_ms()
        await asyncio.sleep_ms(600)
        woke.append(time.ticks_diff(time.ticks_ms(), t0))

    with Logs():
        t = asyncio.create_task(tap_then_sleep())
        await asyncio.sleep_ms(100)
        assert ws.sent and ws.sent[0][2] == "Authorize"
        t.cancel()
        await asyncio.sleep_ms(100)
        ws.push(json.dumps([3, ws.sent[0][1], {"idTagInfo": {"status": "Accepted"}}]))
        await asyncio.sleep_ms(800)
    assert woke and woke[0] >= 580, "the other sleep ended after %s ms" % woke
    ws.end()
    await task


async def test_two_cards_tapped_while_the_hub_is_slow_both_get_their_late_answers_cached():
    # A second card tapped while the first's Authorize waits (its owner tries another card, a
    # roaming hub taking its time): its Authorize goes out once the first's timed out, and times
    # out too. Only the last timed-out CALL's answer was taken, so the first card's, coming
    # after that, was lost for the cache: its next tap was decided offline without it.
    rpc, ws, task, s = await _online("flash/late2")

    async def tap(card):
        a = s.feature("authorization")
        try:
            return await a.authorize_now(card, 300)
        finally:
            features.release(s, s.rpc.handlers, "authorization")

    with Logs():
        first = asyncio.create_task(tap(CARD))
        await asyncio.sleep_ms(50)
        assert await tap("04D5E6F7") == ("Invalid", None)
        assert await first == ("Invalid", None)
        await until(lambda: len(ws.sent) == 2 and rpc.timed_out == ws.sent[1][1],
                    "the second Authorize's timeout")
        assert [(m[2], m[3]["idTag"]) for m in ws.sent] == [("Authorize", CARD),
                                                           ("Authorize", "04D5E6F7")]
        info = {"status": "Accepted"}
        for m in ws.sent:
            ws.push(json.dumps([3, m[1], {"idTagInfo": info}]))
        await until(lambda: s.feature("authorization").cache_entry("04D5E6F7") is not None,
                    "the second card cached")
    a = s.feature("authorization")
    assert a.cache_entry(CARD) is not None and a.cache_entry(CARD)[0] == info
    assert a.cache_entry("04D5E6F7")[0] == info
    ws.end()
    await task
