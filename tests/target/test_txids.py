# On-target tests for the transaction queue's transactionId document (txqueue.py: "txids"):
# an id is kept while its session's messages may still need it and forgotten after, so the
# document (and the dict the queue holds in RAM for good) does not grow with every session.
import asyncio

from mphelp import Logs
from store import Store
from ocpp_client.errors import CallError
from ocpp_client.txqueue import TxQueue, START, STOP, METER


class Cfg:
    def get(self, k):
        return {"TransactionMessageAttempts": 2, "TransactionMessageRetryInterval": 0}[k]


class Csms:
    # Answers StartTransaction with transactionId 7 (or refuses it: start_err), refuses every
    # StopTransaction with a CALLERROR (a CSMS that does not know the transaction).
    def __init__(self, start_err=False):
        self.start_err = start_err
        self.sent = []

    async def call(self, action, payload, on_result=None, mid=None):
        self.sent.append(action)
        await asyncio.sleep_ms(0)
        if action == STOP or (action == START and self.start_err):
            raise CallError("PropertyConstraintViolation", "unknown transaction")
        conf = {"transactionId": 7, "idTagInfo": {"status": "Accepted"}} if action == START \
            else {}
        if on_result is not None:
            on_result(conf)
        return conf


def _session(q, ref):
    q.add(START, {"idTag": "A"}, ref)
    q.add(METER, {"connectorId": 1}, ref)
    q.add(STOP, {"meterStop": 1}, ref)


def _dropped_stops_forget_their_ids(name, csms):
    st = Store(name)
    q = TxQueue(st, Cfg())
    with Logs():
        for i in range(3):
            _session(q, "r%d" % i)
            asyncio.run(q.deliver(csms, -1, True))
    assert len(q) == 0 and csms.sent.count(STOP) == 6, csms.sent
    assert q.ids == {}, q.ids
    assert TxQueue(st, Cfg()).ids == {}, "ids of finished sessions still on flash"


def test_a_stop_transaction_dropped_after_its_attempts_forgets_the_id():
    _dropped_stops_forget_their_ids("txids_drop", Csms())


def test_a_start_dropped_then_its_stop_dropped_forgets_the_minus_one():
    _dropped_stops_forget_their_ids("txids_drop2", Csms(True))


async def test_a_late_answer_too_short_to_read_is_still_an_answer_or_none():
    # A StartTransaction timed out, the probe (a Heartbeat) was answered, and its own answer came
    # in between, malformed ([4, id] with no code, [3, id] with no payload: rpc.py keeps it as
    # the late answer). A short CALLERROR is a CALLERROR (GenericError: retried under ".1", as
    # rpcrare.bad_answer takes one in time), a short CALLRESULT no answer (the repeat on a new
    # connection); neither may break the failure path (v[2] raised IndexError).
    from ocpp_client import txqrare
    from ocpp_client.errors import CallTimeout, Disconnected

    class Rpc:
        ws = None
        late = None

    class Session:
        rpc = Rpc()

        async def _heartbeat(self):
            pass

    class Q:
        config = Cfg()
        session = Session()

    q = Q()
    rec = {"a": START}
    with Logs() as logs:
        q.session.rpc.late = [4, "m-1"]
        assert await txqrare.failed(q, CallTimeout(START), 1, rec, 0, 0) == (1, 1, 0)
        assert logs.warned("GenericError")
        q.session.rpc.late = [3, "m-1"]
        try:
            await txqrare.failed(q, CallTimeout(START), 1, rec, 0, 0)
            raise AssertionError("no Disconnected")
        except Disconnected:
            pass


def test_a_spoiled_id_document_loses_no_transaction_id():
    # A bit flipped in txids.json (flash wear): load() takes the copy before it (.bak), which
    # must hold the newest transactionId too, or that session's MeterValues and
    # StopTransaction go out under -1 and the CSMS never closes its transaction.
    from mphelp import read, write

    st = Store("txids_flip")
    q = TxQueue(st, Cfg())
    with Logs():
        q.add(START, {"idTag": "A"}, "r0")
        asyncio.run(q.deliver(Csms(), -1, True))
        assert q.tx_id("r0") == 7
        p = st.path("txids")
        b = bytearray(read(p))
        b[-3] ^= 1
        write(p, bytes(b))
        assert TxQueue(Store("txids_flip"), Cfg()).tx_id("r0") == 7, "the transactionId lost"


def test_a_dropped_stop_whose_end_the_flash_refuses_is_not_acked_on_flash():
    # The StopTransaction dropped after its attempts while the flash refuses the txids document
    # (its ref among the sessions ended): its ack line must not reach the flash before that, or
    # a session document left behind is taken at boot for a session the power cut interrupted,
    # and booked again (a second StopTransaction, PowerLoss). Kept in RAM: a reboot repeats it.
    st = Store("txids_dropfull")
    q = TxQueue(st, Cfg())
    save = st.save

    def full(name, data, version=1):
        if name == "txids":
            raise OSError(28)
        return save(name, data, version)

    with Logs():
        q.add(START, {"idTag": "A"}, "r0")
        asyncio.run(q.deliver(Csms(), -1, True))
        q.add(STOP, {"meterStop": 1}, "r0")
        st.save = full
        asyncio.run(q.deliver(Csms(), -1, True))
        assert len(q) == 0
        del st.save
        q2 = TxQueue(Store("txids_dropfull"), Cfg())  # a reboot, nothing saved since
    pending = [(rec["a"], rec["r"]) for _, rec in q2.j.pending()]
    assert "r0" in q2.done or pending == [(STOP, "r0")], (q2.done, pending)
    assert q2.tx_id("r0") == 7


class Cut(Exception):
    pass


class Refusing:
    # Refuses every StartTransaction with a CALLERROR; the power goes at its `cut`-th CALL.
    def __init__(self, cut=0):
        self.cut = cut
        self.mids = []

    async def call(self, action, payload, on_result=None, mid=None):
        if len(self.mids) + 1 == self.cut:
            raise Cut()
        self.mids.append(mid)
        await asyncio.sleep_ms(0)
        raise CallError("InternalError", "database down")


def test_a_message_s_failed_attempts_survive_a_power_cut():
    # TransactionMessageAttempts 2: X refused, then the power goes as X.1 is sent (it may have
    # been booked, its answer lost). After the reboot X.1 goes again, the second and last
    # attempt: never X (refused; at a CSMS that does not keep refused ids, a second booking), nor
    # two attempts more.
    st = Store("txids_attempts")
    q = TxQueue(st, Cfg())
    first = Refusing(cut=2)
    with Logs():
        q.add(START, {"idTag": "A"}, "r0")
        try:
            asyncio.run(q.deliver(first, -1, True))
            raise AssertionError("no power cut")
        except Cut:
            pass
        x = first.mids[0]
        q = TxQueue(Store("txids_attempts"), Cfg())  # the reboot
        again = Refusing()
        asyncio.run(q.deliver(again, -1, True))
    assert again.mids == [x + ".1"], (x, again.mids)
    assert len(q) == 0 and q.tx_id("r0") == -1, "not dropped after its attempts"


async def test_a_retry_wait_stays_within_the_ticks_range():
    # 1.6 4.10: the wait before a retry is TransactionMessageRetryInterval x the transmissions
    # so far. Up to a day x 100 attempts it passed the ticks' range on an ESP32 (2**29 ms: about
    # 6.2 days): ticks_add raised OverflowError (or wrapped: an early retry). It is capped at
    # a day, the interval's own bound.
    from ocpp_client import txqrare

    class Big:
        def get(self, k):
            return {"TransactionMessageAttempts": 100, "TransactionMessageRetryInterval": 86400}[k]

    class Q:
        config = Big()
        session = None

    with Logs():
        a, _, wait = await txqrare.failed(Q(), CallError("InternalError", "x"), 1, {"a": STOP},
                                          49, 0)
    assert a == 50 and wait * 1000 < 2**29, wait
    assert wait == 86400, wait
