# Running out of memory is bad input (issue 12): MemoryError injected at chosen points of the
# connector's poll and of the transaction journal, and a heap locked outright
# (micropython.heap_lock(): every allocation fails). The relay never closes on a MemoryError and
# opens when one hits the poll; the connector task lives on; a transaction message is never lost
# nor acknowledged before its answer. Seeded where random.
import asyncio
import gc
import random

import micropython

from mphelp import Logs
from store import Store
from eventlog import EventLog
from ocpp_client.config import Config
from ocpp_client.txqueue import TxQueue
from evse.connector import Connector
from supervisor import supervise
import supervisor
import sys
from ocpp_client import features
from ocpp_client.rpc import Rpc
from test_rpc import serve_all

_MV = {"A": 12000, "B": 9000, "C": 6000, "D": 3000}


class Boom:
    # MemoryError at the n-th call of a chosen name (0: never); counts the calls.
    def __init__(self):
        self.at = {}
        self.calls = {}

    def arm(self, name, n):
        self.calls[name] = 0
        self.at[name] = n

    def hit(self, name):
        n = self.at.get(name, 0)
        if not n:
            return
        self.calls[name] += 1
        if self.calls[name] == n:
            self.at[name] = 0
            raise MemoryError("injected: %s" % name)


class World:
    # The board: an EV and the outputs, with MemoryError injection on every input and output.
    def __init__(self, boom):
        self.boom = boom
        self.ev = "A"
        self.relay = False
        self.duty = 100
        self.closes = 0
        self.edge = asyncio.ThreadSafeFlag()

    def pilot_mv(self):
        self.boom.hit("pilot_mv")
        return _MV[self.ev]

    def pilot_low_mv(self):
        self.boom.hit("pilot_low_mv")
        return self.pilot_mv() if self.duty >= 100 else -12000

    def set_pwm(self, d):
        self.boom.hit("set_pwm")
        self.duty = d

    def set_relay(self, on):
        # opening never fails (on the charger: a pin write; unix_sim: a constant line)
        if on:
            self.boom.hit("set_relay")
            self.closes += 1
        self.relay = on

    def relay_feedback(self):
        self.boom.hit("relay_feedback")
        return self.relay

    def rcd_tripped(self):
        self.boom.hit("rcd_tripped")
        return False

    def telemetry(self, k, v):
        self.boom.hit("telemetry")


class Events(EventLog):
    def __init__(self, store, boom):
        super().__init__(store, 20)
        self.boom = boom

    def add(self, *a, **kw):
        self.boom.hit("events")
        return super().add(*a, **kw)


async def _accept(tag):
    return "Accepted", None


def _connector(name, boom):
    store = Store(name)
    w = World(boom)
    c = Connector(w, store, Events(store, boom), Config(store))
    c.authorizer = _accept
    c.settle_ms = 0
    c.oom_hold_ms = 0  # the hold is tested on its own below
    return w, c


def _polls(c, n):
    for _ in range(n):
        c.poll()


def _charging(w, c):
    w.ev = "B"
    _polls(c, 4)
    assert c.remote_start("A-1") == "Accepted"
    _polls(c, 4)
    w.ev = "C"
    _polls(c, 6)
    assert w.relay, "the EV charges"


def test_steady_charging_polls_allocate_nothing():
    # With the heap locked, a poll while charging steadily must not allocate at all: no
    # MemoryError can reach the charging path in steady state. Then, still locked, the EV stops
    # asking: the relay opens (the step needs memory for its log line and event: it fails safe).
    w, c = _connector("steady", Boom())
    _charging(w, c)
    gc.collect()
    micropython.heap_lock()
    try:
        ok = True
        for _ in range(50):
            ok = c.poll() and ok
        closed = w.relay
        w.ev = "B"
        for _ in range(4):
            c.poll()
        relay = w.relay
    finally:
        micropython.heap_unlock()
    assert ok and closed, "a steady poll allocated (it failed with the heap locked)"
    assert not relay, "the relay stayed closed with the EV no longer asking"


def test_memory_error_anywhere_in_the_poll_never_leaves_the_relay_closed():
    # Every injection point, at a random call: after each poll the relay is open unless the EV
    # asks, the session runs and the poll that closed it completed; a poll that failed leaves it
    # open; the connector charges again once the memory is back.
    names = ("pilot_mv", "pilot_low_mv", "set_pwm", "set_relay", "relay_feedback",
             "rcd_tripped", "telemetry", "events")
    rng = random.Random(12) if hasattr(random, "Random") else random
    if rng is random:
        random.seed(12)
    for k, name in enumerate(names):
        boom = Boom()
        w, c = _connector("inj%d" % k, boom)
        _charging(w, c)
        for trial in range(20):
            boom.arm(name, 1 + rng.getrandbits(2))
            failed = 0
            for i in range(8):
                if trial % 4 == 1 and i == 2:
                    w.ev = "B"  # the EV pauses mid-way
                if trial % 4 == 2 and i == 3:
                    w.ev = "C"
                before = c.oom_count
                done = c.poll()
                if not done:
                    failed += 1
                    assert c.oom_count == before + 1
                    assert not w.relay, "%s: relay closed after a failed poll" % name
                if w.relay:  # (the pilot is debounced: 3 readings)
                    assert c.cp in ("C", "D") and c.session is not None, name
                    assert w.ev in ("C", "D") or c.cp != c._watch._deb._cand, name
            if not failed and boom.at.get(name):
                boom.at[name] = 0  # never reached (e.g. no relay closing in that trial)
        w.ev = "C"
        _polls(c, 8)
        assert w.relay, "%s: charging did not resume once memory was back" % name


def test_relay_held_open_after_a_memory_error_then_charging_resumes():
    async def run():
        boom = Boom()
        w, c = _connector("hold", boom)
        c.oom_hold_ms = 300
        task = asyncio.create_task(c.run())  # the real poll loop: 20 ms and edges
        w.ev = "B"
        await asyncio.sleep_ms(100)
        c.remote_start("A-1")
        await asyncio.sleep_ms(100)
        w.ev = "C"
        await asyncio.sleep_ms(200)
        assert w.relay, "charging"
        closes = w.closes
        with Logs() as logs:
            boom.arm("pilot_mv", 1)
            await asyncio.sleep_ms(100)
            assert not w.relay and c.oom_count == 1, "the relay opened at the MemoryError"
            await asyncio.sleep_ms(100)
            assert not w.relay, "held open: no chatter while memory is short"
            await asyncio.sleep_ms(400)
        assert w.relay and w.closes == closes + 1, "closed again once, after the hold"
        assert logs.warned("poll failed: relay opened", "MemoryError"), logs.lines
        assert not task.done(), "the connector task lives on"
        task.cancel()

    asyncio.run(run())


def test_a_failing_task_is_restarted_with_backoff_and_logged_once_per_burst():
    async def run():
        n = [0]

        async def flaky():
            n[0] += 1
            if n[0] <= 4:
                raise MemoryError("no memory")
            await asyncio.sleep_ms(0)

        with Logs() as logs:
            await asyncio.wait_for_ms(supervise("flaky", flaky), 5000)
        assert n[0] == 5, n
        assert supervisor.restarts["flaky"] == 4
        failed = [t for t in logs.warnings() if "task flaky failed" in t]
        assert len(failed) == 1, logs.lines

    asyncio.run(run())


class Link:
    # An RPC stand-in: each call is answered (conf) or not (raises); `hooks` as rpc.call runs
    # them, the moment the answer is read.
    def __init__(self, answer):
        self.answer = answer
        self.sent = []

    async def call(self, action, payload, on_result=None, mid=None, **kw):
        self.sent.append((action, mid))
        conf = self.answer(action)
        if on_result is not None:
            on_result(conf)
        return conf


class Cfg:
    def get(self, k):
        return {"TransactionMessageAttempts": 3, "TransactionMessageRetryInterval": 0}[k]


def _fail_appends(j, n):
    # The journal's append raises MemoryError for its next n record writes (the line is never
    # written), as a heap without room for the record's JSON would.
    real = j._append
    left = [n]

    def append(obj):
        if left[0] > 0:
            left[0] -= 1
            raise MemoryError("injected: journal append")
        return real(obj)

    j._append = append
    return left


def test_journal_append_retries_after_a_collection():
    q = TxQueue(Store("jretry"), Cfg())
    _fail_appends(q.j, 2)  # two failures: the third try (after collections) writes it
    q.add("StartTransaction", {"connectorId": 1}, "r1")
    assert len(q.j) == 1 and q._nheld == 0
    assert [r["a"] for _, r in q.j.pending()] == ["StartTransaction"]


def test_transaction_records_without_memory_wait_in_ram_and_nothing_is_lost():
    async def run():
        q = TxQueue(Store("jheld"), Cfg())
        left = _fail_appends(q.j, 100)  # the journal cannot write for a while
        with Logs() as logs:
            q.add("StartTransaction", {"connectorId": 1}, "r1")
            q.add("MeterValues", {"connectorId": 1}, "r1")
        assert len(q) == 2 and len(q.j) == 0, "kept in RAM, counted"
        assert logs.warned("kept in RAM"), logs.lines
        link = Link(lambda a: {"transactionId": 7, "idTagInfo": {"status": "Accepted"}})
        await asyncio.wait_for_ms(q.deliver(link), 3000)  # no memory yet: nothing sent
        assert link.sent == [], "nothing is sent before it is journaled"
        left[0] = 0  # memory frees
        q.add("StopTransaction", {"meterStop": 5}, "r1")
        assert q._nheld == 0 and len(q.j) == 3, "journaled in order before the new one"
        await asyncio.wait_for_ms(q.deliver(link), 3000)
        assert [a for a, _ in link.sent] == ["StartTransaction", "MeterValues",
                                             "StopTransaction"]
        assert len(q) == 0

    asyncio.run(run())


def test_no_memory_for_the_ack_sends_the_message_again_never_drops_it():
    async def run():
        q = TxQueue(Store("jack"), Cfg())
        q.add("StartTransaction", {"connectorId": 1}, "r1")
        real = q.j._append_line
        fail = [6]  # both tries of the hook, each with the journal's own 3: the ack never lands

        def append_line(line, payload=None):
            if fail[0] > 0 and line.endswith(b" A\n"):
                fail[0] -= 1
                raise MemoryError("injected: ack")
            return real(line, payload)

        q.j._append_line = append_line
        link = Link(lambda a: {"transactionId": 7, "idTagInfo": {"status": "Accepted"}})
        await asyncio.wait_for_ms(q.deliver(link), 3000)
        # The first answer could not be acked: the record stayed, and its id was kept (in RAM),
        # so the repeat is recognised and acked without sending a second StartTransaction.
        assert len(q) == 0
        assert [a for a, _ in link.sent] == ["StartTransaction"], link.sent
        assert q.tx_id("r1") == 7

    asyncio.run(run())


class Meter:
    def __init__(self):
        self.wh = 1000

    def energy_wh(self):
        return self.wh

    async def fresh(self, timeout_ms=None):
        return self.wh


class Stops:
    def __init__(self):
        self.stops = []

    def on_tx_stop(self, s, reason):
        self.stops.append((s["ref"], reason, s["meter_stop"]))


def test_no_memory_at_a_stop_still_journals_it_once():
    # The stop's document ("stopping", for the final meter reading) cannot be written: the stop
    # goes to the listeners (the StopTransaction's journal) at once, at the last reading.
    async def run():
        boom = Boom()
        w, c = _connector("stopmem", boom)
        m = Meter()
        c.meter = m
        rec = Stops()
        c.listen(rec)
        _charging(w, c)
        m.wh = 1234
        real = c.store.save

        def save(name, doc):
            if name == "stopping":
                raise MemoryError("injected: store")
            return real(name, doc)

        c.store.save = save
        assert c.remote_stop(lambda ref: True) == "Accepted"
        assert not w.relay
        assert len(rec.stops) == 1 and rec.stops[0][1:] == ("Remote", 1234), rec.stops
        await asyncio.sleep_ms(50)
        assert len(rec.stops) == 1, "journaled once"

    asyncio.run(run())


class Sock:
    def __init__(self):
        self.n = 0

    def send(self, b):
        self.n += 1
        return len(b)


def test_the_simulation_board_opens_the_relay_allocating_nothing():
    import board as simboard  # boards/unix_sim: its relay line is a constant

    b = simboard.Board(["agent"])
    b._io = s = Sock()
    b.set_relay(True)
    gc.collect()
    micropython.heap_lock()
    try:
        b.set_relay(False)
    finally:
        micropython.heap_unlock()
    assert s.n == 2 and not b._relay


class Hungry:
    # A feature module (ocpp_client.hungry) without the memory to attach the first time.
    tries = 0

    @staticmethod
    def attach(s):
        Hungry.tries += 1
        if Hungry.tries == 1:
            raise MemoryError("memory allocation failed")

        async def send_list(p):
            return {"status": "Accepted"}

        return {"SendLocalList": send_list}


class Fs:
    def __init__(self):
        self.features = {}


def test_a_feature_without_memory_to_load_is_tried_again_at_its_next_call():
    sys.modules["ocpp_client.hungry"] = Hungry
    s = Fs()
    rpc = Rpc(features.handlers(s, (("hungry", False, ("SendLocalList",)),)))
    frame = '[2, "%s", "SendLocalList", {"listVersion": 1, "updateType": "Full"}]'

    async def run():
        return await serve_all(rpc, frame % "a", frame % "b")

    with Logs() as logs:
        sent, _ = asyncio.run(run())
    # The first: Failed (what a SendLocalList without memory gets), the second loads it.
    assert sent == [[3, "a", {"status": "Failed"}], [3, "b", {"status": "Accepted"}]], sent
    assert Hungry.tries == 2
    assert len([w for w in logs.warnings() if "feature hungry failed" in w]) == 1, logs.lines


def test_a_list_update_out_of_memory_half_way_fails_and_keeps_the_old_list():
    from ocpp_client import listupdate
    from ocpp_client.locallist import LocalList

    ll = LocalList(Store("llmem"), 1000)
    ok = [{"idTag": "OLD%d" % i, "idTagInfo": {"status": "Accepted"}} for i in range(5)]
    assert listupdate.update(ll, 1, "Full", ok) == "Accepted"

    def entries(kind):
        for i in range(300):
            if i == 200:
                raise MemoryError("injected: list entry")
            yield {"idTag": "NEW%d" % i, "idTagInfo": {"status": "Accepted"}}

    for kind in ("Full", "Differential"):
        with Logs() as logs:
            st = asyncio.run(listupdate.apply(ll, 2, kind, entries(kind)))
        assert st == "Failed", (kind, st)
        assert logs.warned("update failed: no memory"), logs.lines
        assert ll.version == 1 and ll.count == 5
        assert ll.lookup("OLD3") is not None and ll.lookup("NEW5") is None


def test_an_odd_message_id_still_gets_valid_json_when_out_of_memory():
    import json

    async def boom(p):
        raise MemoryError("no memory")

    rpc = Rpc({"SendLocalList": boom})
    frame = '[2, "q\\"x", "SendLocalList", {"listVersion": 1, "updateType": "Full"}]'

    async def run():
        return await serve_all(rpc, frame)

    sent, _ = asyncio.run(run())
    assert sent == [[3, 'q"x', {"status": "Failed"}]], sent
    json.dumps(sent)


def test_a_call_with_a_number_or_an_overlong_id_is_answered_under_it_when_out_of_memory():
    # No memory to parse the frame (json.loads raises): the CALL was answered under "-1" when
    # its id was not a string of 1..36 characters, and the CSMS, which matches its answer by
    # "the exact same ID" (OCPP-J 4.2.3), waited out its timeout for one that had come.
    import json

    from ocpp_client import rpc as rpc_mod

    class NoRoom:
        # json, but a frame's parse finds no memory (as a fragmented heap's)
        dumps = json.dumps

        def loads(s):
            raise MemoryError("memory allocation failed")

    long_id = "x" * 60
    frames = ('[2, 17, "Reset", {"type": "Soft"}]',
              '[2, "%s", "Reset", {"type": "Soft"}]' % long_id,
              '[2, "q\\"x", "Reset", {"type": "Soft"}]')  # (not read safely: "-1" still)
    rpc = Rpc({"Reset": _accept})
    rpc_mod.json = NoRoom
    try:
        with Logs():
            sent, _ = asyncio.run(serve_all(rpc, *frames))
    finally:
        rpc_mod.json = json
    assert [m[:3] for m in sent] == [[4, "17", "InternalError"], [4, long_id, "InternalError"],
                                     [4, "-1", "InternalError"]], sent


def test_a_session_has_room_for_what_its_stop_adds_without_a_larger_block():
    # A stop in a heap with no block larger than a few hundred bytes (squeezed: the Reset of
    # tests/test_low_memory.py) opened the relay, then failed to grow the session's dict for
    # its fields (368 bytes), so the session was never ended nor its StopTransaction journaled.
    # The dict has room for them from the start: no allocation to add them.
    w, c = _connector("stoproom", Boom())
    _charging(w, c)
    s = c.session
    gc.collect()
    micropython.heap_lock()
    try:
        s["tx"] = 7
        s["by"] = "A-1"
        s["stopped"] = "Remote"
        s["meter_stop"] = 1
        s["stop_ms"] = 2
        s["stop_t"] = 3
    finally:
        micropython.heap_unlock()
