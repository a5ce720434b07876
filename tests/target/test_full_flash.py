# A full flash (OSError 28, ENOSPC) is bad input like any other: it loses nothing and the charger
# keeps running and answering. Injected in Store.save and the journals' line writes (and in
# os.rename for a compaction). The relay never closes for a session whose document and
# StartTransaction are not on flash; a stop's session document stays until its StopTransaction
# is journaled; an ack the flash refuses is not a resend loop; a failed checkpoint does not cut
# the charge; a configuration change, a cached tag and a local list update fail cleanly.
import asyncio
import os

from mphelp import Logs
from store import Store
from store.journal import Journal
from ocpp_client.config import Config
from ocpp_client.txqueue import TxQueue, START, STOP, METER
from evse.connector import Connector
from evse import connrare
from test_oom import Boom, World, Events, _accept, _polls

FULL = {"on": False, "names": ()}
SAVES = []
_save = Store.save
_append_line = Journal._append_line


def _full(name):
    return FULL["on"] and (not FULL["names"] or name in FULL["names"])


def _save_full(self, name, data, version=1):
    SAVES.append(name)
    if _full(name):
        raise OSError(28)
    return _save(self, name, data, version)


def _append_full(self, line, payload=None):
    if _full("journal"):
        raise OSError(28)
    return _append_line(self, line, payload)


Store.save = _save_full
Journal._append_line = _append_full


def _fill(*names):
    FULL["on"] = True
    FULL["names"] = names


def _free():
    FULL["on"] = False


class Tx:
    # The transactions feature's part (ocpp_client/transactions.py): a StopTransaction kept in
    # RAM raises OSError, a held one reaching the flash removes its session's documents.
    def __init__(self, q, c):
        self.q = q
        self.dropped = []
        q.on_stop_journaled = lambda ref: connrare.stop_journaled(c, ref)

    def on_tx_start(self, s):
        self.q.add(START, {"idTag": s["tag"]}, s["ref"])

    def on_tx_starting(self):
        if not self.q.flush_held():
            raise OSError("a StopTransaction is not on flash yet")

    def on_tx_stop(self, s, reason):
        if not self.q.add(STOP, {"meterStop": s["meter_stop"], "reason": reason}, s["ref"]):
            raise OSError("StopTransaction kept in RAM")

    def on_start_dropped(self, tag, source, why):
        self.dropped.append((tag, source, why))


class _Meter:
    # A register at `wh`, no reading afresh at a stop.
    wh = 1000

    def energy_wh(self):
        return self.wh


class _FreshMeter(_Meter):
    # A stop reads the register afresh (the connector's finishing stop): 5 Wh on.
    async def fresh(self, *a):
        return self.wh + 5


def _connector(st):
    # -> (world, config, connector) on the store, every tap accepted, no settling wait.
    w = World(Boom())
    cfg = Config(st)
    c = Connector(w, st, Events(st, Boom()), cfg)
    c.authorizer = _accept
    c.settle_ms = 0
    return w, cfg, c


def _mk(name):
    st = Store(name)
    w, cfg, c = _connector(st)
    c.oom_hold_ms = 0
    signals = []
    c.feedback = signals.append
    q = TxQueue(st, cfg)
    tx = Tx(q, c)
    c.listen(tx)
    return st, w, c, q, tx, signals


def _plug_and_start(w, c, ev="C"):
    w.ev = "B"
    _polls(c, 4)
    assert c.remote_start("A-1") == "Accepted"
    _polls(c, 4)
    w.ev = ev
    _polls(c, 10)


def _start_on_full(w, c, *names):
    # Plugged in, a remote start and the EV asking for current, with the flash full for `names`.
    w.ev = "B"
    _polls(c, 4)
    _fill(*names)
    try:
        c.remote_start("A-1")
        w.ev = "C"
        _polls(c, 10)
    finally:
        _free()


def _actions(q):
    return [rec["a"] for _, rec in q.j.pending()]


def test_session_document_refused_no_session_no_relay():
    st, w, c, q, tx, signals = _mk("ff_doc")
    with Logs() as logs:
        _start_on_full(w, c, "session")
    assert w.closes == 0 and not w.relay, "the relay closed with no session document on flash"
    assert c.session is None
    assert _actions(q) == [], "a StartTransaction for a session that is not on flash"
    assert signals == [False], signals
    assert tx.dropped == [("A-1", "remote", "flash full")], tx.dropped
    assert logs.said("refused", "flash"), logs.lines
    assert c.status_of(1) == ("Preparing", "NoError")
    _polls(c, 10)
    assert c.poll() and w.closes == 0, "the connector went on"


class _OtherFails:
    # A listener that is not the transactions feature, listening before it (evse/limits.py:
    # its on_tx_start writes the session's offer, board.set_pwm, whose LEDC error is an OSError
    # on an ESP32), failing with an OSError of its own.
    def on_tx_start(self, s):
        raise OSError(5)

    def on_tx_stop(self, s, reason):
        raise OSError(5)


def test_another_listeners_oserror_neither_refuses_a_journaled_start_nor_holds_a_stop():
    # Only the transactions feature's OSError means its record is not on flash. Taken from any
    # listener, the start was refused with its StartTransaction journaled already (the CSMS
    # told of a transaction that never ends), and a stop held: Finishing for good.
    st = Store("ff_other")
    w, cfg, c = _connector(st)
    c.oom_hold_ms = 0
    c.listen(_OtherFails())
    q = TxQueue(st, cfg)
    c.listen(Tx(q, c))
    with Logs():
        _plug_and_start(w, c)
    assert _actions(q) == [START]
    assert c.session is not None and w.relay, "the start refused for another listener's error"
    with Logs():
        w.ev = "A"
        _polls(c, 10)
    assert _actions(q) == [START, STOP]
    assert not c.stop_held and c.status_of(1) == ("Available", "NoError")
    assert st.load("session", {}) == {}


def test_start_transaction_refused_no_session_no_relay():
    st, w, c, q, tx, signals = _mk("ff_start")
    _start_on_full(w, c, "journal")
    assert w.closes == 0 and not w.relay, "the relay closed with no StartTransaction on flash"
    assert c.session is None and q._nheld == 0
    assert st.load("session", {}) == {}, "a document left for a session that never was"
    assert signals == [False] and tx.dropped[0][2] == "flash full"
    # unplug, the flash free again: the next plug-in charges
    w.ev = "A"
    _polls(c, 6)
    _plug_and_start(w, c)
    assert w.relay and _actions(q) == [START]


def test_stop_kept_with_its_document_until_journaled():
    st, w, c, q, tx, signals = _mk("ff_stop")
    _plug_and_start(w, c)
    assert w.relay
    ref = c.session_ref
    _fill("journal", "stopping", "session")
    try:
        w.ev = "A"
        _polls(c, 10)
        assert not w.relay and c.session is None
        assert st.load("session", {}).get("ref") == ref, "the session's document went"
        assert q._nheld == 1 and q._held[0]["a"] == STOP, "the stop is not kept in RAM"
        assert _actions(q) == [START]
    finally:
        _free()
    # the next write journals it first (here: the session's delivery), the document goes
    assert q.flush_held()
    assert _actions(q) == [START, STOP]
    assert st.load("session", {}) == {}, "the document stayed after the stop was journaled"


def test_a_stop_held_in_ram_keeps_the_connector_finishing_until_journaled():
    # The EV left, its StopTransaction held in RAM (the flash full): no new user can start (the
    # next start is refused) and the CSMS has no stop yet. Available would tell the CSMS the
    # connector is free for a new user with its transaction still open (1.6 4.9: Finishing, "not
    # yet available for a new user"); Available once the stop is on flash.
    st, w, c, q, tx, signals = _mk("ff_finishing")
    _plug_and_start(w, c)
    _fill("journal", "stopping", "session")
    try:
        w.ev = "A"
        _polls(c, 10)
        assert q._nheld == 1 and c.session is None
        assert c.status_of(1)[0] == "Finishing", c.status_of(1)
    finally:
        _free()
    assert q.flush_held()
    _polls(c, 4)
    assert c.status_of(1)[0] == "Available", c.status_of(1)


def test_a_new_session_never_takes_the_document_of_a_stop_held_in_ram():
    # Session A's stop is held in RAM (the journal full), its document kept. A start meanwhile,
    # the journal still full but room for a small document, would write its own in that place:
    # a power cut would then lose A's stop. It is refused instead, A's document stays, and once
    # the flash frees, A's stop is journaled before the next session's start.
    st, w, c, q, tx, signals = _mk("ff_overwrite")
    _plug_and_start(w, c)
    ref = c.session_ref
    _fill("journal", "stopping")
    try:
        with Logs() as logs:
            w.ev = "A"
            _polls(c, 10)
            assert q._nheld == 1 and st.load("session", {}).get("ref") == ref
            w.ev = "B"
            _polls(c, 4)
            c.remote_start("A-2")
            w.ev = "C"
            _polls(c, 10)
        assert c.session is None and not w.relay, "a session started over a stop held in RAM"
        assert st.load("session", {}).get("ref") == ref, "the held stop's document was replaced"
        assert signals[-1] is False and tx.dropped[-1][2] == "flash full", (signals, tx.dropped)
        assert logs.said("refused", "not on flash"), logs.lines
    finally:
        _free()
    # a power cut now: the next boot ends A from its document
    c2 = Connector(World(Boom()), Store("ff_overwrite"), Events(st, Boom()), Config(st))
    assert [s["ref"] for s in c2.interrupted] == [ref]
    # or the flash frees: the next start journals A's stop first, then its own
    w.ev = "A"
    _polls(c, 6)
    _plug_and_start(w, c)
    assert w.relay and c.session_ref != ref
    assert _actions(q) == [START, STOP, START], _actions(q)
    assert st.load("session", {}).get("ref") == c.session_ref


def test_stop_document_ends_the_session_at_boot_when_never_journaled():
    st, w, c, q, tx, signals = _mk("ff_boot")
    _plug_and_start(w, c)
    ref = c.session_ref
    _fill("journal", "stopping")
    try:
        w.ev = "A"
        _polls(c, 10)
    finally:
        _free()
    # power cut: the RAM (the held stop) is gone, the document is there
    c2 = Connector(World(Boom()), Store("ff_boot"), Events(st, Boom()), Config(st))
    assert [s["ref"] for s in c2.interrupted] == [ref]


def test_stopping_document_kept_when_the_final_reading_cannot_be_journaled():
    st, w, c, q, tx, signals = _mk("ff_fresh")
    c.meter = _FreshMeter()

    async def run():
        _plug_and_start(w, c)
        ref = c.session_ref
        _fill("journal")
        try:
            w.ev = "A"
            _polls(c, 10)
            for _ in range(5):
                await asyncio.sleep_ms(0)
            assert c.finishing_stops == 0
            assert st.load("stopping", {}).get("ref") == ref, "the stopping document went"
            assert q._nheld == 1
        finally:
            _free()
        assert q.flush_held()
        assert st.load("stopping", {}) == {}

    asyncio.run(run())


def test_checkpoint_refused_charging_goes_on_and_no_write_when_unchanged():
    import time

    st, w, c, q, tx, signals = _mk("ff_ckpt")
    m = c.meter = _Meter()
    _plug_and_start(w, c)
    closes = w.closes
    m.wh = 1200
    _fill("session")
    try:
        with Logs() as logs:
            c._checkpoint_ms = time.ticks_add(time.ticks_ms(), -61000)
            ok = [c.poll() for _ in range(5)]
    finally:
        _free()
    assert all(ok) and w.relay and w.closes == closes and c.oom_count == 0, (ok, c.oom_count)
    assert logs.said("checkpoint"), logs.lines
    # the register stands still (SuspendedEV): no write
    SAVES.clear()
    c._checkpoint_ms = time.ticks_add(time.ticks_ms(), -61000)
    _polls(c, 3)
    assert "session" not in SAVES, SAVES
    m.wh = 1300
    c._checkpoint_ms = time.ticks_add(time.ticks_ms(), -61000)
    _polls(c, 3)
    assert SAVES.count("session") == 1 and st.load("session", {})["last_wh"] == 1300


def _answered(conf, on_result):
    # The CSMS's answer as rpc.py gives it: its result hook run first (a hook's failure logged
    # there, not raised).
    if on_result:
        try:
            on_result(conf)
        except Exception:
            pass
    return conf


class Rpc:
    def __init__(self):
        self.sent = []

    async def call(self, action, payload, on_result=None, mid=None):
        self.sent.append((action, payload.get("transactionId")))
        if len(self.sent) > 20:
            raise OSError(99)  # a loop: out
        await asyncio.sleep_ms(0)
        conf = {"transactionId": 7} if action == START else {}
        return _answered(conf, on_result)


def test_acks_the_flash_refuses_are_no_resend_loop():
    st = Store("ff_ack")
    q = TxQueue(st, Config(st))
    q.add(START, {"idTag": "A"}, "r1")
    q.add("MeterValues", {"connectorId": 1}, "r1")
    q.add(STOP, {"meterStop": 1}, "r1")
    rpc = Rpc()

    async def run():
        await q.deliver(rpc, 1)
        _fill()
        try:
            for _ in range(3):
                await q.deliver(rpc)
        finally:
            _free()

    asyncio.run(run())
    assert rpc.sent == [(START, None), ("MeterValues", 7), (STOP, 7)], rpc.sent
    assert len(q) == 0
    q2 = TxQueue(st, Config(st))  # a reboot: what was done in RAM only is sent again
    assert [rec["a"] for _, rec in q2.j.pending()] == ["MeterValues", STOP]
    assert q2.tx_id("r1") == 7, "the transactionId was forgotten before its save"


def test_held_records_wait_without_spinning_the_session():
    st = Store("ff_held")
    q = TxQueue(st, Config(st))
    q.add(START, {"idTag": "A"}, "r1")
    _fill("journal")
    try:
        assert q.add(STOP, {"meterStop": 1}, "r1") is False
        assert q._nheld == 1
        with Logs():
            try:
                q.add(START, {"idTag": "B"}, "r2")
                raise AssertionError("a StartTransaction kept in RAM on a full flash")
            except OSError:
                pass
        rpc = Rpc()

        async def run():
            await q.deliver(rpc)  # the START on flash goes out
            await q.deliver(rpc)  # the STOP still held: a pause, not a spin
            return q.waits()

        assert asyncio.run(run()), "no pause while held records wait for the flash"
        assert [a for a, _ in rpc.sent] == [START]
    finally:
        _free()


def test_change_configuration_on_a_full_flash_is_rejected_and_changes_nothing():
    st = Store("ff_cfg")
    cfg = Config(st)
    before = cfg.get("HeartbeatInterval")
    _fill("ocpp_config")
    try:
        with Logs() as logs:
            r = cfg.set("HeartbeatInterval", str(before + 60))
    finally:
        _free()
    assert r == "Rejected", r
    assert cfg.get("HeartbeatInterval") == before
    assert Config(st).get("HeartbeatInterval") == before
    assert logs.said("HeartbeatInterval", "not changed"), logs.lines
    assert cfg.set("HeartbeatInterval", str(before + 60)) == "Accepted"
    assert cfg.get("HeartbeatInterval") == before + 60


def test_settings_update_on_a_full_flash_changes_nothing():
    from settings import Settings

    st = Store("ff_settings")
    s = Settings(st, {"cp_id": "CP1"})
    _fill()
    try:
        try:
            s.update(cp_id="CP2")
            raise AssertionError("no error")
        except OSError:
            pass
    finally:
        _free()
    assert s.get("cp_id") == "CP1"


def _store_renames(fake, fn):
    import store as sm

    sm.os = fake
    try:
        fn()
    finally:
        sm.os = os


def test_a_change_whose_rename_the_flash_refuses_stays_rejected_after_a_reboot():
    # The .tmp written whole, then a rename refused (LittleFS can run out of blocks for the
    # directory's metadata): Rejected, so neither this boot's next load nor a reboot may take
    # the new copy (a SecurityProfile or AuthorizationKey the CSMS was told was not changed).
    for fail in (1, 2):  # the rename of .json to .bak, or of .tmp to .json
        st = Store("ff_rename%d" % fail)
        cfg = Config(st)
        cfg.set("HeartbeatInterval", "100")
        assert cfg.set("HeartbeatInterval", "200") == "Accepted"  # a .bak now: two renames
        fake = FakeOs(lambda n, fail=fail: 28 if n == fail else 0)
        out = []

        def change():
            with Logs():
                out.append(cfg.set("HeartbeatInterval", "300"))

        _store_renames(fake, change)
        assert out == ["Rejected"] and cfg.get("HeartbeatInterval") == 200, (fail, out)
        assert Config(st).get("HeartbeatInterval") == 200, fail
        assert Config(Store("ff_rename%d" % fail)).get("HeartbeatInterval") == 200, fail


def test_a_tap_accepted_by_the_csms_is_not_lost_to_a_full_cache():
    from ocpp_client.auth import Auth

    st = Store("ff_auth")
    a = Auth(st, Config(st))

    async def remote(tag):
        return {"status": "Accepted"}

    a.remote = remote
    _fill()
    try:
        with Logs():
            r = asyncio.run(a.authorize("04A1B2C3", True))
    finally:
        _free()
    assert r == ("Accepted", None), r


def _journal(name, n):
    j = Store(name).journal("j", 8)
    for i in range(n):
        j.append({"i": i})
    return j


class FakeOs:
    # store/journal.py's os, its rename made to fail (MicroPython's os module cannot be patched)
    def __init__(self, fail):
        self.fail = fail
        self.calls = []

    def rename(self, a, b):
        self.calls.append(a)
        e = self.fail(len(self.calls))
        if e:
            raise OSError(e)
        os.rename(a, b)

    def remove(self, p):
        os.remove(p)

    def stat(self, p):
        return os.stat(p)


def _patched(fake, fn):
    import store.journal as jm

    jm.os = fake
    try:
        fn()
    finally:
        jm.os = os


def test_compaction_that_fails_leaves_no_tmp_and_waits():
    j = _journal("ff_compact", 6)
    fake = FakeOs(lambda n: 28)

    def work():
        with Logs():
            j.ack(6)  # 7 lines; more (the acks below) compact
            for i in range(5):
                j.append({"k": i})
                j.ack(j.last_seq())

    _patched(fake, work)
    assert len(fake.calls) == 1, "compaction tried again at once: %r" % fake.calls
    assert "j.log.tmp" not in os.listdir("ff_compact"), os.listdir("ff_compact")
    assert "j.log" in os.listdir("ff_compact")
    again = Store("ff_compact").journal("j", 8)
    assert len(again) == 0 and again.last_seq() == j.last_seq()


def test_compaction_takes_the_remove_then_rename_way_only_on_eexist():
    j = _journal("ff_eexist", 6)
    fake = FakeOs(lambda n: 17 if n == 1 else 0)  # EEXIST: cannot rename over a file

    def work():
        j.ack(5)
        j.append({"x": 1})
        j.append({"x": 2})

    _patched(fake, work)
    assert len(fake.calls) == 2, fake.calls
    assert sorted(os.listdir("ff_eexist")) == ["j.log"]
    again = Store("ff_eexist").journal("j", 8)
    assert [o for _, o in again.pending()] == [{"i": 5}, {"x": 1}, {"x": 2}]


def _list_at(folder):
    # The local list as the feature loads it at boot (a half-done update finished first).
    from ocpp_client import listupdate
    from ocpp_client.locallist import LocalList

    ll = LocalList(Store(folder), 100)
    if ll.unfinished:
        listupdate.recover(ll, True)
    return ll


def _entries(n, prefix):
    for i in range(n):
        yield {"idTag": "%s%03d" % (prefix, i), "idTagInfo": {"status": "Accepted"}}


def _old_list_then_full(folder):
    # A Full list of 5 tags (version 1), then the flash full for the list's version document
    # (the caller frees it: _free()).
    from ocpp_client import listupdate

    ll = _list_at(folder)
    assert listupdate.update(ll, 1, "Full", _entries(5, "OLD")) == "Accepted"
    _fill("locallist")
    return ll


def test_full_local_list_whose_version_cannot_be_saved_is_accepted_and_kept():
    from ocpp_client import listupdate

    ll = _old_list_then_full("ff_ll")  # the list moved in, its version not saved
    try:
        with Logs():
            st = listupdate.update(ll, 2, "Full", _entries(3, "NEW"))
    finally:
        _free()
    assert st == "Accepted", "the new list is live: Failed would be a lie"
    assert ll.lookup("NEW001") is not None and ll.lookup("OLD001") is None
    assert (ll.version, ll.count) == (2, 3)
    assert not any(n.endswith(".old") for n in os.listdir("ff_ll")), "the old list stayed"
    ll = _list_at("ff_ll")  # a reboot: the version is saved then
    assert (ll.version, ll.count) == (2, 3) and ll.lookup("NEW002") is not None
    ll = _list_at("ff_ll")
    assert (ll.version, ll.count) == (2, 3) and not ll.unfinished


def test_remote_start_txprofile_goes_with_a_start_the_flash_refused():
    from evse.limits import Limits
    from test_smart_onuse import prof

    st, w, c, q, tx, signals = _mk("ff_txprof")
    c.listeners.remove(tx)
    lim = Limits(c, st)  # (app.py's order: the limits listen before the transactions feature)
    c.listen(tx)
    w.ev = "B"
    _polls(c, 4)
    assert lim.expect("R1", prof(7, "TxProfile", 10)["csChargingProfiles"]) is None
    _fill("journal")
    try:
        with Logs():
            assert c.remote_start("R1") == "Accepted"
            w.ev = "C"
            _polls(c, 10)
    finally:
        _free()
    assert c.session is None and w.closes == 0
    assert lim.smart is None or lim.smart.profiles() == [], lim.smart.profiles()
    assert not lim.pending


def test_the_transactions_feature_tells_the_csms_and_keeps_the_stop_document():
    # The real feature (ocpp_client/transactions.py) in place of Tx above.
    from ocpp_client.transactions import Transactions

    st = Store("ff_feature")
    w = World(Boom())
    cfg = Config(st)
    c = Connector(w, st, Events(st, Boom()), cfg)
    c.authorizer = _accept
    c.settle_ms = 0
    sent = []

    class Session:
        connector = c
        config = cfg
        store = st
        meter = None
        events = c.events
        queue = None

        def __init__(self):
            self.tasks = []

        def kick(self):
            pass

        def online(self):
            return True

        async def send(self, action, req):
            sent.append((action, req))

    s = Session()
    t = Transactions(s)
    for coro in s.tasks:
        coro.close()

    async def run():
        w.ev = "B"
        _polls(c, 4)
        _fill("journal")
        try:
            with Logs():
                c.remote_start("A-1")
                _polls(c, 4)
                await asyncio.sleep_ms(0)
        finally:
            _free()
        assert c.session is None and w.closes == 0
        assert [(a, r["errorCode"], r["info"], r["status"]) for a, r in sent] == [
            ("StatusNotification", "InternalError", "flash full", "Preparing")], sent
        c.remote_start("A-2")
        w.ev = "C"
        _polls(c, 10)
        assert w.relay
        ref = c.session_ref
        _fill("journal", "stopping")
        try:
            with Logs():
                w.ev = "A"
                _polls(c, 6)
        finally:
            _free()
        assert not w.relay and st.load("session", {}).get("ref") == ref
        assert len(t.txq) == 2 and t.txq._nheld == 1
        assert t.txq.flush_held()
        assert st.load("session", {}) == {}
        assert [rec["a"] for _, rec in t.txq.j.pending()] == [START, STOP]

    asyncio.run(run())


def test_a_stop_with_no_slot_left_in_ram_keeps_its_document_and_is_journaled_later():
    # The flash full through a session: its MeterValues and two security events fill the 8
    # records txqueue.py holds in RAM, and the StopTransaction finds no slot (MemoryError). Its
    # session's document stays (it was removed: the stop lost for good, the CSMS never heard the
    # transaction end), no session starts over it, and once the flash takes the held records
    # the stop is journaled after them (a retry each second) and the document goes.
    from ocpp_client.transactions import Transactions

    st = Store("ff_owed")
    w, cfg, c = _connector(st)
    s = _BootSession(c, st, cfg)
    t = Transactions(s)
    for coro in s.tasks:
        coro.close()
    q = t.txq

    async def run():
        w.ev = "B"
        _polls(c, 4)
        c.remote_start("A-1")
        w.ev = "C"
        _polls(c, 10)
        assert w.relay
        ref = c.session_ref
        _fill("journal")
        try:
            with Logs():
                for i in range(6):
                    q.add(METER, {"connectorId": 1, "meterValue": []}, ref, {"wh": 1000 + i})
                for i in range(2):
                    q.add("SecurityEventNotification", {"type": "InvalidMessages"}, None)
                assert q._nheld == 8
                w.ev = "A"
                _polls(c, 6)
                assert not w.relay and c.session is None
                assert st.load("session", {}).get("ref") == ref, "the owed stop's document went"
                # a start meanwhile would take that document's place: refused
                w.ev = "B"
                _polls(c, 4)
                c.remote_start("A-2")
                w.ev = "C"
                _polls(c, 10)
                await asyncio.sleep_ms(1200)  # (a retry: the flash still full)
            assert c.session is None and w.closes == 1, "a session started over an owed stop"
            assert st.load("session", {}).get("ref") == ref
        finally:
            _free()
        w.ev = "A"
        _polls(c, 6)
        with Logs() as logs:
            await asyncio.sleep_ms(1200)
        assert [rec["a"] for _, rec in q.j.pending()] == [START] + [METER] * 6 + [
            "SecurityEventNotification"] * 2 + [STOP], [rec["a"] for _, rec in q.j.pending()]
        assert q._nheld == 0 and not t.owed
        assert st.load("session", {}) == {}, "the document stayed after its stop was journaled"
        assert logs.said(ref, "owed", "journaled"), logs.lines
        _plug_and_start(w, c)
        assert c.session is not None and w.relay, "no session once the stop is journaled"

    asyncio.run(run())


def test_a_start_with_no_memory_to_journal_it_is_refused_and_the_relay_stays_open():
    # No memory to build or journal the StartTransaction, even after a collection (MemoryError
    # out of the transactions feature's on_tx_start): the session must not run (it ran, relay
    # closed, with no StartTransaction anywhere: the CSMS never heard of it, its stop went with
    # transactionId -1). Refused as a start the flash refuses; the next start charges.
    from ocpp_client.transactions import Transactions

    st = Store("ff_nomem_start")
    w, cfg, c = _connector(st)
    s = _BootSession(c, st, cfg)
    t = Transactions(s)
    for coro in s.tasks:
        coro.close()
    q = t.txq
    signals = []
    c.feedback = signals.append
    add = q.add

    def no_memory(action, *a, **k):
        if action == START:
            raise MemoryError("injected")
        return add(action, *a, **k)

    q.add = no_memory
    w.ev = "B"
    _polls(c, 4)
    with Logs() as logs:
        c.remote_start("A-1")
        w.ev = "C"
        _polls(c, 10)
    assert w.closes == 0 and not w.relay, "the relay closed for a session with no StartTransaction"
    assert c.session is None and len(q) == 0
    assert st.load("session", {}) == {}, "a document left for a session that never was"
    assert signals == [False], signals
    assert logs.said("refused", "no memory"), logs.lines
    q.add = add
    w.ev = "A"
    _polls(c, 6)
    _plug_and_start(w, c)
    assert w.relay and [rec["a"] for _, rec in q.j.pending()] == [START]


# -- boot on a full flash: every recovery step runs, nothing journaled is lost ------------------
class _BootSession:
    # The OCPP session as ocpp_client/transactions.py sees it at boot (no link yet).
    def __init__(self, c, st, cfg):
        self.connector = c
        self.config = cfg
        self.store = st
        self.meter = None
        self.events = c.events
        self.queue = None
        self.tasks = []

    def kick(self):
        pass

    def online(self):
        return False


def _boot(name):
    # A boot after a power cut: the connector reads the flash, the transactions feature attaches
    # and runs its recovery task. -> (store, world, connector, feature)
    from ocpp_client.transactions import Transactions

    st = Store(name)
    w, cfg, c = _connector(st)
    s = _BootSession(c, st, cfg)
    t = Transactions(s)
    for coro in s.tasks:
        asyncio.run(coro)  # the recovery (once the meter was read)
    return st, w, c, t


def _cut_mid_session(name, journal_start=True):
    # A session charging when the power went: its document on flash, its StartTransaction
    # journaled (or, cut between the two writes, not).
    st, w, c, q, tx, signals = _mk(name)
    if not journal_start:
        c.listeners.remove(tx)  # the cut came before the StartTransaction's line
    _plug_and_start(w, c)
    assert w.relay
    return c.session_ref


def test_boot_on_a_full_flash_ends_the_interrupted_session_and_holds_its_stop():
    ref = _cut_mid_session("ff_boot_full")
    _fill()
    try:
        with Logs() as logs:
            st, w, c, t = _boot("ff_boot_full")
        assert t.recovered.is_set()
        q = t.txq
        assert [r["a"] for r in q._held[:q._nheld]] == [STOP], q._held
        assert q._held[0]["p"]["reason"] == "PowerLoss"
        assert st.load("session", {}).get("ref") == ref, "the document went with its stop in RAM"
        assert logs.said("kept in RAM", "flash full"), logs.lines
        # the connector runs: not blocked by the recovery, and no session on a full flash
        assert c.interrupted == [] and c.poll()
        w.ev = "B"
        _polls(c, 4)
        with Logs():
            c.remote_start("A-2")
            w.ev = "C"
            _polls(c, 10)
        assert c.session is None and w.closes == 0
        assert c.status_of(1)[0] == "Finishing", "free for a new user with its stop in RAM"
    finally:
        _free()
    # the flash free again: the held stop is journaled (the session's delivery), its document goes
    assert q.flush_held()
    assert [rec["a"] for _, rec in q.j.pending()] == [START, STOP]
    assert st.load("session", {}) == {}, "the document stayed after its stop was journaled"
    c.remote_start("A-3")
    _polls(c, 10)
    assert c.session is not None and w.relay, "no session once the flash is free"


def test_boot_on_a_full_flash_holds_a_start_never_journaled_with_its_stop():
    # The cut came between the session's document and its StartTransaction: at boot both are
    # owed. The flash full, both wait in RAM, in order, the document kept until they are written.
    ref = _cut_mid_session("ff_boot_nostart", journal_start=False)
    _fill()
    try:
        with Logs():
            st, w, c, t = _boot("ff_boot_nostart")
        q = t.txq
        assert [(r["a"], r["r"]) for r in q._held[:q._nheld]] == [(START, ref), (STOP, ref)]
        assert st.load("session", {}).get("ref") == ref
    finally:
        _free()
    assert q.flush_held()
    assert [(rec["a"], rec["r"]) for _, rec in q.j.pending()] == [(START, ref), (STOP, ref)]
    assert st.load("session", {}) == {}
    # a second cut before the flash freed would have ended the session again from its document
    # (tested above); here it was journaled: the next boot owes nothing
    _, _, c2, t2 = _boot("ff_boot_nostart")
    assert c2.power_cut_stops == () and len(t2.txq) == 2


def test_boot_on_a_full_flash_with_a_change_scheduled_for_the_cut_session():
    # A ChangeAvailability Scheduled for the session the cut ended applies at boot (its
    # transaction is over); its save refused by the flash must not stop the boot.
    st, w, c, q, tx, signals = _mk("ff_boot_avail")
    _plug_and_start(w, c)
    assert c.change_availability(False) == "Scheduled"
    _fill()
    try:
        with Logs() as logs:
            st, w, c, t = _boot("ff_boot_avail")
        assert not c.operative and c.status_of(1)[0] == "Unavailable"
        assert logs.said("availability"), logs.lines
        assert t.txq._nheld == 1
    finally:
        _free()


def test_local_list_update_finished_at_boot_on_a_still_full_flash():
    # A Full list moved in, its version not saved (the flash full), then a reboot with the flash
    # still full: the list loads (authorization works, GetLocalListVersion tells the truth),
    # the version is saved once the flash takes it.
    from ocpp_client import listupdate

    ll = _old_list_then_full("ff_ll_boot")  # the list moved in, its version not saved
    try:
        with Logs():
            assert listupdate.update(ll, 2, "Full", _entries(3, "NEW")) == "Accepted"
        with Logs() as logs:
            ll = _list_at("ff_ll_boot")  # the reboot, the flash still full
        assert (ll.version, ll.count) == (2, 3) and ll.lookup("NEW001") is not None
        assert logs.said("version"), logs.lines
    finally:
        _free()
    ll = _list_at("ff_ll_boot")  # the next boot, the flash free: saved
    assert (ll.version, ll.count) == (2, 3) and ll.lookup("NEW002") is not None
    assert not _list_at("ff_ll_boot").unfinished


def test_settings_provisioned_anew_on_a_full_flash_boot_in_force_from_ram():
    # Provisioning that changes the settings at boot (a new CSMS, a CA) with the flash full: the
    # boot goes on with them in force (the PEM text too, which is otherwise read from flash),
    # merged and saved again at the next boot.
    from settings import Settings

    st = Store("ff_settings_boot")
    Settings(st, {"cp_id": "CP1"})
    prov = {"cp_id": "CP1", "csms_url": "ws://csms.example/ocpp", "ca_pem": "-----CA-----"}
    _fill()
    try:
        with Logs() as logs:
            s = Settings(st, prov)
    finally:
        _free()
    assert s.get("csms_url") == "ws://csms.example/ocpp" and s.is_claimed()
    assert s.get("ca_pem") == "-----CA-----", s.get("ca_pem")
    assert logs.said("provisioning", "not saved"), logs.lines
    s = Settings(st, prov)
    assert Store("ff_settings_boot").load("settings", {}).get("ca_pem") == "-----CA-----"
    assert s.get("ca_pem") == "-----CA-----"


def test_a_trial_boot_on_a_full_flash_runs_the_committed_slot():
    # main.py's slot choice counts a trial boot on flash before the new version runs; the flash
    # full, it cannot: the committed version runs (a trial nothing counts could hang for ever),
    # the boot goes on, and the update ends InstallationFailed ("slot b was not booted").
    import slotchoice

    def _open_full(p, mode="r"):
        if "w" in mode or "a" in mode:
            raise OSError(28)
        return open(p, mode)

    try:
        os.mkdir("app_b")
    except OSError:
        pass
    for p, text in (("app_b/.manifest", "{}"), ("boot_slot", "a"), ("boot_trial", "b 1")):
        with open(p, "w") as f:
            f.write(text)
    slotchoice.open = _open_full
    try:
        assert slotchoice.choose() == ("a", False)
    finally:
        del slotchoice.open
        for p in ("boot_slot", "boot_trial", "boot_note", "boot_note.tmp", "boot_trial.tmp",
                  "app_b/.manifest"):
            try:
                os.remove(p)
            except OSError:
                pass
    assert "boot_trial" not in os.listdir("."), "the trial goes on uncounted"


# -- a StartTransaction answered while its transactionId cannot be saved ------------------------
class MidRpc:
    # The CSMS: every frame as sent (action, transactionId, message id); StartTransaction.conf
    # gives `tid` (a CSMS that recognises a repeat by its message id gives the same again).
    def __init__(self, tid=7):
        self.tid = tid
        self.sent = []

    async def call(self, action, payload, on_result=None, mid=None):
        self.sent.append((action, payload.get("transactionId"), mid))
        await asyncio.sleep_ms(0)
        conf = {"transactionId": self.tid, "idTagInfo": {"status": "Accepted"}} \
            if action == START else {}
        return _answered(conf, on_result)


def _answered_on_a_full_flash(name):
    # A session's StartTransaction answered (transactionId 7) while the flash is full, then a
    # MeterValues answered still full: both carry the id from RAM.
    st = Store(name)
    q = TxQueue(st, Config(st))
    q.add(START, {"idTag": "A"}, "r1")
    q.add(METER, {"connectorId": 1}, "r1")
    rpc = MidRpc()
    _fill()
    try:
        with Logs():
            asyncio.run(q.deliver(rpc))
    finally:
        _free()
    assert [(a, t) for a, t, _ in rpc.sent] == [(START, None), (METER, 7)], rpc.sent
    assert q.tx_id("r1") == 7
    return st, q, rpc


def test_an_id_not_saved_never_leaves_the_stop_at_minus_one_after_a_reboot():
    # The flash frees; the next MeterValues' ack line reaches flash. A power cut after it: the
    # StopTransaction must still carry 7 (the ack's watermark passed the StartTransaction: it is
    # not sent again, so 7 is known only if it reached flash before that ack).
    st, q, rpc = _answered_on_a_full_flash("ff_id_ack")
    q.add(METER, {"connectorId": 1}, "r1")
    asyncio.run(q.deliver(rpc))
    q.add(STOP, {"meterStop": 1}, "r1")  # journaled; the power goes before it is sent
    q2 = TxQueue(st, Config(st))
    rpc2 = MidRpc(8)
    asyncio.run(q2.deliver(rpc2))
    assert [(a, t) for a, t, _ in rpc2.sent] == [(STOP, 7)], rpc2.sent


def test_an_id_not_saved_is_saved_once_the_flash_frees():
    # Nothing answered after the flash freed: the next message queued saves the id, so a reboot
    # does not send the StartTransaction again (a CSMS that does not recognise the message id
    # would book the transaction twice).
    st, q, rpc = _answered_on_a_full_flash("ff_id_free")
    q.add(STOP, {"meterStop": 1}, "r1")
    q2 = TxQueue(st, Config(st))  # a power cut
    assert q2.tx_id("r1") == 7
    rpc2 = MidRpc(8)
    asyncio.run(q2.deliver(rpc2))
    # (the MeterValues acked in RAM only is repeated, under its message id: at least once)
    assert rpc2.sent == [(METER, 7, rpc.sent[1][2]), (STOP, 7, rpc2.sent[1][2])], rpc2.sent


def test_an_id_not_saved_with_the_flash_still_full_after_a_reboot():
    # Nothing could reach flash: the reboot repeats the StartTransaction byte for byte (its
    # message id too, so a CSMS can tell the repeat), then the rest with what that answer gives.
    st, q, rpc = _answered_on_a_full_flash("ff_id_full")
    start_mid = rpc.sent[0][2]
    q2 = TxQueue(st, Config(st))
    rpc2 = MidRpc(7)
    _fill()
    try:
        with Logs():
            asyncio.run(q2.deliver(rpc2))
    finally:
        _free()
    assert rpc2.sent == [(START, None, start_mid), (METER, 7, rpc.sent[1][2])], rpc2.sent


def _reading(ms, wh):
    # A MeterValues as metering.py journals it (the default measurands), with its register/time.
    ts = "2026-12-%02dT%02d:%02d:%02dZ" % (1 + ms // 86400000, ms // 3600000 % 24,
                                          ms // 60000 % 60, ms // 1000 % 60)
    sv = [{"value": str(wh), "context": "Sample.Periodic",
           "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
          {"value": "11000", "context": "Sample.Periodic", "measurand": "Power.Active.Import",
           "unit": "W"}]
    return {"connectorId": 1, "meterValue": [{"timestamp": ts, "sampledValue": sv}]}, \
        {"wh": wh, "ms": ms}


def test_a_long_outage_thins_meter_values_and_keeps_start_and_stop():
    # A session charging through three days offline at MeterValueSampleInterval 60: 4,320
    # readings (~1.7 MB of a 3 MiB filesystem; a week at 10 s would be ~24 MB). The queue must
    # not fill the flash (every later session refused "flash full", the settings unsaveable):
    # the first ~10 h of readings stay as they came, later ones are thinned to one each 15 min,
    # Start and Stop always kept.
    st = Store("ff_outage")
    q = TxQueue(st, Config(st))
    q.add(START, {"idTag": "A"}, "r1")
    n = 3 * 1440
    with Logs() as logs:
        for i in range(n):
            p, extra = _reading(i * 60000, 1000 + i)
            q.add(METER, p, "r1", extra)
        q.add(STOP, {"meterStop": 1000 + n}, "r1")
    size = os.stat(st.path("txq", ".log"))[6]
    assert size < 400000, size
    acts = []
    k = 0
    last = gap = 0
    for _, rec in q.j.pending():  # (no list of them: the unix port's heap is the charger's)
        if rec["a"] != METER:
            acts.append(rec["a"])
            continue
        ms = rec["ms"]
        if k < 600:
            assert ms == k * 60000, "the first readings not kept as they came"
        else:
            gap = max(gap, ms - last)
        last = ms
        k += 1
    assert acts == [START, STOP], acts
    assert last >= (n - 15) * 60000, "nothing kept of the outage's end"
    assert 0 < gap <= 15 * 60000, gap
    assert any("MeterValues" in ln[2] for ln in logs.lines), logs.lines


def _phased_reading(i, n=1):
    # A StopTxnSampledData reading of four measurands with their phases (~0.8 KB as JSON), or
    # n times as many sampled values.
    sv = [{"value": str(1000 + i), "context": "Sample.Periodic",
           "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
          {"value": "11040", "context": "Sample.Periodic", "measurand": "Power.Active.Import",
           "unit": "W"}]
    for ph in ("L1", "L2", "L3"):
        sv.append({"value": "16.0", "context": "Sample.Periodic", "measurand": "Current.Import",
                   "phase": ph, "unit": "A"})
        sv.append({"value": "230.1", "context": "Sample.Periodic", "measurand": "Voltage",
                   "phase": ph + "-N", "unit": "V"})
    return {"timestamp": "2026-12-06T10:%02d:00.000Z" % i, "sampledValue": sv * n}


def test_a_stop_with_a_long_transaction_data_is_journaled_not_lost():
    # Twelve kept readings of four measurands with their phases were ~10 KB of transactionData,
    # past the journal's 8 KB line: the StopTransaction raised "record too big" and was lost
    # (its session document removed all the same: the CSMS never heard the transaction end).
    st, w, c, t = _boot("ff_longstop")
    for k, (n, want_data) in enumerate(((12, 1), (1, 0))):
        w.ev = "B"
        _polls(c, 4)
        assert c.remote_start("A-%d" % k) == "Accepted"
        w.ev = "C"
        _polls(c, 10)
        ref = c.session_ref
        assert ref is not None
        for i in range(n):
            t.stop_value(ref, _phased_reading(i, 1 if n > 1 else 12))  # (1: one huge reading)
        with Logs():
            w.ev = "A"
            _polls(c, 6)
        stops = [rec for _, rec in t.txq.j.pending() if rec["a"] == STOP and rec["r"] == ref]
        assert len(stops) == 1, "the StopTransaction of session %d was lost" % k
        data = stops[0]["p"].get("transactionData", [])
        if want_data:
            ts = [mv["timestamp"] for mv in data]
            assert ts and ts == ["2026-12-06T10:%02d:00.000Z" % i for i in range(12 - len(ts), 12)]
        else:
            assert data == [], "a stop too long for the journal goes without its data"
        assert st.load("session", {}) == {}


# -- a session's document left behind after its stop went -------------------------------------
def _delivered_then_rebooted(name, fail):
    # A session charged and stopped; `fail(store, connector)` (-> its undo) keeps its document
    # on flash after its StopTransaction was journaled (a removal the flash ignores, no memory
    # to load connrare.py); the flash frees (if `fail` filled it), the stop is delivered (its
    # transactionId forgotten), then the charger reboots. -> (the session's ref, the next
    # boot's (st, w, c, t)).
    from ocpp_client.transactions import Transactions

    st = Store(name)
    w, cfg, c = _connector(st)
    s = _BootSession(c, st, cfg)
    t = Transactions(s)
    for coro in s.tasks:
        coro.close()
    q = t.txq
    rpc = _NoInfoRpc(41)
    _plug_and_start(w, c)
    ref = c.session_ref
    with Logs():
        asyncio.run(q.deliver(rpc))
        undo = fail(st, c)
        try:
            w.ev = "A"
            _polls(c, 6)
            _free()
            asyncio.run(q.deliver(rpc))
        finally:
            _free()
            undo()
    assert not w.relay and c.session is None and len(q) == 0
    assert [(a, tid) for a, tid, _ in rpc.sent] == [(START, None), (STOP, 41)], rpc.sent
    assert q.ids == {} and st.load("session", {}).get("ref") == ref
    with Logs():
        return ref, _boot(name)


class _NoInfoRpc(MidRpc):
    # (a StartTransaction.conf without idTagInfo: no authorization cache to update here)
    async def call(self, action, payload, on_result=None, mid=None):
        self.sent.append((action, payload.get("transactionId"), mid))
        await asyncio.sleep_ms(0)
        return _answered({"transactionId": self.tid} if action == START else {}, on_result)


def _removal_ignored(st, c):
    # store._remove swallows an OSError (a failing flash): the session's document stays.
    remove = Store.remove
    Store.remove = lambda self, n: None if n == "session" else remove(self, n)

    def undo():
        Store.remove = remove
    return undo


def _no_memory_for_the_removal(st, c):
    # The stop held in RAM (the flash full), journaled once the flash frees (the delivery), and
    # no memory then to load connrare.py for its document's removal (transactions.py).
    import ocpp_client.transactions as tx

    rare = tx.rare

    def no_memory(mod, name, *a):
        if name == "stop_journaled":
            raise MemoryError("injected")
        return rare(mod, name, *a)

    _fill("journal")
    tx.rare = no_memory

    def undo():
        tx.rare = rare
    return undo


def _not_booked_again(name, fail):
    # Booked again, the CSMS got a NEW StartTransaction and a StopTransaction (PowerLoss) for
    # the session: one charge billed twice.
    ref, (st, w, c, t) = _delivered_then_rebooted(name, fail)
    assert [rec["a"] for _, rec in t.txq.j.pending()] == [], "the session booked again"
    assert all(s["ref"] != ref for s, _ in c.power_cut_stops), c.power_cut_stops
    assert st.load("session", {}) == {}, "the document left behind is still there"
    _plug_and_start(w, c)
    assert w.relay and c.session_ref != ref


def test_a_session_whose_stop_went_is_not_booked_again_from_a_document_left_behind():
    _not_booked_again("ff_left_doc", _removal_ignored)


def test_a_held_stop_whose_document_could_not_go_is_not_booked_again():
    _not_booked_again("ff_left_held", _no_memory_for_the_removal)


# -- sessions of boots that began with the same clock -----------------------------------------
class _Frozen:
    # The connector's time module in a boot offline after a power cut: the ESP32 counts from
    # 2000-01-01, and a start at a fixed delay after boot (free charging, the EV plugged in
    # through the cut) comes at the same ms since boot each time.
    ticks_add = staticmethod(__import__("time").ticks_add)
    ticks_diff = staticmethod(__import__("time").ticks_diff)

    @staticmethod
    def ticks_ms():
        return 5123


def test_sessions_of_boots_that_began_alike_keep_their_own_refs_and_stops():
    # Each of two boots starts a session at the same clock second and ms since boot, and the
    # power goes during each. Built from those alone, both sessions had one ref: the third boot
    # took the stop journaled for the first (PowerLoss, still queued: offline) for the second's,
    # which never got one (its transaction open at the CSMS for good).
    import clock
    import evse.connector as cm

    now_ms = clock.now_ms
    clock.now_ms = lambda: 946684805123
    cm.time = _Frozen
    try:
        ref = _cut_mid_session("ff_same_refs")  # boot 1: a session, then the power goes
        with Logs():
            st, w, c, t = _boot("ff_same_refs")  # boot 2: ends it, then a new one, the power goes
            _plug_and_start(w, c)
            ref2 = c.session_ref
            st, w, c, t = _boot("ff_same_refs")  # boot 3
    finally:
        clock.now_ms = now_ms
        cm.time = __import__("time")
    assert [(rec["a"], rec["r"]) for _, rec in t.txq.j.pending()] == [
        (START, ref), (STOP, ref), (START, ref2), (STOP, ref2)], list(t.txq.j.pending())
    assert ref2 != ref, "two sessions under one ref"


def test_a_stop_delivered_whose_end_the_flash_refused_is_not_booked_again():
    # The ack line of the delivered StopTransaction reached the flash, the txids document (the
    # refs of the sessions ended) did not, and the session's document stayed behind: the next
    # boot took the session for one a power cut interrupted and booked a second StopTransaction
    # (PowerLoss) under its transactionId.
    from ocpp_client.transactions import Transactions

    name = "ff_left_ids"
    st = Store(name)
    w, cfg, c = _connector(st)
    s = _BootSession(c, st, cfg)
    t = Transactions(s)
    for coro in s.tasks:
        coro.close()
    q = t.txq
    rpc = _NoInfoRpc(41)
    _plug_and_start(w, c)
    ref = c.session_ref
    with Logs():
        asyncio.run(q.deliver(rpc))
        undo = _removal_ignored(st, c)
        try:
            w.ev = "A"
            _polls(c, 6)
            _fill("txids")
            asyncio.run(q.deliver(rpc))
        finally:
            _free()
            undo()
    assert [(a, tid) for a, tid, _ in rpc.sent] == [(START, None), (STOP, 41)], rpc.sent
    assert st.load("session", {}).get("ref") == ref
    with Logs():
        st, w, c, t = _boot(name)
    # At most the same StopTransaction again (its ack not on flash: at least once, under its
    # message id and transactionId), never a second one of the session's own.
    booked = [(rec["a"], rec["r"], rec["i"]) for _, rec in t.txq.j.pending()]
    assert booked in ([], [(STOP, ref, rpc.sent[1][2])]), "booked again: %r" % booked
    rpc2 = _NoInfoRpc(42)
    asyncio.run(t.txq.deliver(rpc2))
    assert rpc2.sent in ([], [(STOP, 41, rpc.sent[1][2])]), rpc2.sent


class _Cut(Exception):
    pass


class _Refuse:
    # Answers MeterValues, refuses StartTransaction with a CALLERROR; the power goes at its
    # `cut`-th CALL (0: never).
    def __init__(self, cut=0):
        self.cut = cut
        self.sent = []

    async def call(self, action, payload, on_result=None, mid=None):
        if len(self.sent) + 1 == self.cut:
            raise _Cut()
        self.sent.append((action, mid))
        await asyncio.sleep_ms(0)
        if action == START:
            from ocpp_client.errors import CallError

            raise CallError("InternalError", "database down")
        return _answered({}, on_result)


class _Attempts2:
    def get(self, k):
        return {"TransactionMessageAttempts": 2, "TransactionMessageRetryInterval": 0}[k]


def test_a_retry_s_last_id_survives_a_reboot_behind_a_message_whose_ack_was_lost():
    # M delivered, its ack refused by a full journal (done in RAM: sent again after a reboot);
    # S refused (its attempt saved: txretry), the power goes as S.1 is sent (it may be booked).
    # After the reboot M goes first, then S under S.1 again, its last attempt: never under S,
    # which the CSMS refused (a second booking at one that does not keep refused ids). The
    # saved attempt was used up by M, the first record met, which it does not name.
    st = Store("ff_retry_id")
    q = TxQueue(st, _Attempts2())
    q.add(METER, {"connectorId": 1}, "r0")
    q.add(START, {"idTag": "A"}, "r1")
    first = _Refuse(cut=3)
    with Logs():
        _fill("journal")
        try:
            asyncio.run(q.deliver(first, -1, True))
            raise AssertionError("no power cut")
        except _Cut:
            pass
        finally:
            _free()
        s = first.sent[1][1]
        q = TxQueue(Store("ff_retry_id"), _Attempts2())  # the reboot
        again = _Refuse()
        asyncio.run(q.deliver(again, -1, True))
    assert [m for a, m in again.sent if a == START] == [s + ".1"], (s, again.sent)
    assert len(q) == 0 and q.tx_id("r1") == -1, "not dropped after its attempts"


class _Learning:
    # What the vendor feature uses of the session to learn a card: the queue, the reader, the
    # event log (a note only).
    def __init__(self, q, r):
        self.queue = q
        self.reader = r
        self.events = self

    def add(self, *a, **kw):
        pass


def _learn_one(q, card):
    # The owner's app asks to learn a card, the card is presented: -> what the owner heard.
    from ocpp_client import vendor
    from test_reader import reader, show, H

    import time

    r, tags = reader()
    dt = vendor.attach(_Learning(q, r))["DataTransfer"]
    assert asyncio.run(dt({"vendorId": "borne", "messageId": "learnTag"})) == {
        "status": "Accepted"}
    show(r, H(card), time.ticks_ms())
    assert tags == [] and not r.learning
    return r.buzzer.log


def test_a_learned_card_the_flash_or_memory_cannot_keep_gets_the_refusal_not_the_click():
    # The click tells the owner the card was added; kept in RAM only (flash full, no memory to
    # journal it) a power cut would lose it after the click, and with the flash full it would
    # never be sent at all. So the owner hears the refusal, nothing is kept to be sent later, and
    # once the flash takes it the next presentation clicks.
    st = Store("ff_learn")
    q = TxQueue(st, Config(st))
    with Logs():
        _fill("journal")
        try:
            assert _learn_one(q, "04a2b3c4") == ["refused"]
        finally:
            _free()
        assert len(q) == 0, "a card the owner was told was not added is not sent later"
        append = Journal._append_line

        def no_memory(self, line, payload=None):
            raise MemoryError("injected")

        Journal._append_line = no_memory
        try:
            assert _learn_one(q, "04a2b3c4") == ["refused"]
        finally:
            Journal._append_line = append
        assert len(q) == 0
        assert _learn_one(q, "04a2b3c4") == ["click"]
    assert [rec["p"]["data"] for _, rec in q.j.pending()] == ["04A2B3C4"]
