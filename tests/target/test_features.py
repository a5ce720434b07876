# On-target tests for ocpp_client.features: the feature table's loader. Lazy features attach at
# their first CALL; a feature that cannot be loaded (missing file, no memory) is logged once and
# its actions are answered with the spec's error, while the rest of the session answers on.
import sys

from mphelp import Logs
from ocpp_client import features
from ocpp_client.rpc import Rpc, load_checker
from test_rpc import serve_all


class Session:
    def __init__(self):
        self.features = {}
        self.attached = []


class Loud:
    # A feature module, put in sys.modules under ocpp_client.loud: counts its attaches.
    @staticmethod
    def attach(s):
        s.attached.append("loud")

        async def hello(p):
            return {"status": "Accepted"}

        return {"ClearCache": hello}


class Broken:
    @staticmethod
    def attach(s):
        raise MemoryError("memory allocation failed")


sys.modules["ocpp_client.loud"] = Loud
sys.modules["ocpp_client.broken"] = Broken

TABLE = (
    ("loud", False, ("ClearCache",)),
    ("gone", False, ("UpdateFirmware", "GetDiagnostics")),  # no such file
    ("broken", False, ("Reset", "UnlockConnector")),
)


async def test_lazy_feature_attaches_once_on_its_first_call():
    s = Session()
    rpc = Rpc(features.handlers(s, TABLE))
    assert s.attached == []  # nothing loaded at boot
    sent, _ = await serve_all(rpc, '[2, "a", "ClearCache", {}]', '[2, "b", "ClearCache", {}]')
    assert sent == [[3, "a", {"status": "Accepted"}], [3, "b", {"status": "Accepted"}]], sent
    assert s.attached == ["loud"]


async def test_missing_feature_answers_not_supported_logged_once():
    s = Session()
    rpc = Rpc(features.handlers(s, TABLE))
    with Logs() as logs:
        sent, _ = await serve_all(
            rpc,
            '[2, "a", "UpdateFirmware", {"location": "http://x/f.bin", "retrieveDate": '
            '"2030-01-01T00:00:00Z"}]',
            '[2, "b", "GetDiagnostics", {"location": "ftp://x/"}]',
            '[2, "c", "ClearCache", {}]')
    assert [m[:4] if m[0] == 4 else m for m in sent] == [
        [4, "a", "NotSupported", "feature gone is not available"],
        [4, "b", "NotSupported", "feature gone is not available"],
        [3, "c", {"status": "Accepted"}]], sent
    assert len([w for w in logs.warnings() if "feature gone" in w]) == 1, logs.lines


async def test_feature_out_of_memory_answers_internal_error_logged_once():
    s = Session()
    rpc = Rpc(features.handlers(s, TABLE))
    with Logs() as logs:
        # (a Reset is carried out all the same: test_reset_oom.py)
        sent, _ = await serve_all(rpc, '[2, "a", "UnlockConnector", {"connectorId": 1}]',
                                  '[2, "b", "UnlockConnector", {"connectorId": 1}]')
    assert [m[2] for m in sent] == ["InternalError", "InternalError"], sent
    assert len([w for w in logs.warnings() if "feature broken" in w]) == 1, logs.lines


def test_an_eager_feature_that_fails_leaves_the_others():
    s = Session()
    h = features.handlers(s, (("broken", True, ("Reset",)), ("loud", True, ("ClearCache",))))
    assert s.attached == ["loud"] and set(h) == {"Reset", "ClearCache"}


async def test_a_transient_feature_is_dropped_after_its_call():
    # features.TRANSIENT (vendor among them) keep no state: loaded for a CALL, out of
    # sys.modules and their package (so out of the heap) once it is answered, loaded again.
    import ocpp_client

    assert "vendor" in features.TRANSIENT
    s = Session()
    rpc = Rpc(features.handlers(s, (("vendor", False, ("DataTransfer",)),)))
    load_checker()  # (as the client does once connected)
    for mid in ("a", "b"):
        sent, _ = await serve_all(rpc, '[2, "%s", "DataTransfer", {"vendorId": "x"}]' % mid)
        assert sent == [[3, mid, {"status": "UnknownVendorId"}]], sent
        assert "ocpp_client.vendor" not in sys.modules and "vendor" not in s.features
        assert not hasattr(ocpp_client, "vendor")
    # the 1.6 rules stay once loaded (reloading them needs a block a fragmented heap may lack)
    assert "ocpp_client.validate" in sys.modules


class Tap(Session):
    # A session the authorization feature can attach to: a store, the configuration, offline.
    def __init__(self, folder):
        super().__init__()
        from ocpp_client.config import Config
        from store import Store

        self.store = Store(folder)
        self.config = Config(self.store)
        self.connector = self

    def online(self):
        return False


AUTH = (("authorization", False, ("ClearCache", "GetLocalListVersion", "SendLocalList")),)


async def test_authorization_loads_on_use_and_stays():
    # Loaded by the first tap (need() ... release()) or CALL of it, then kept where the bytecode
    # is in the heap (here: source files): under memory pressure a tap or a GetLocalListVersion
    # must not need a module load (its modules may find no block to load into:
    # tests/test_low_memory.py).
    # The list's updates and the reader of long lists load with the first list, not with a
    # tap (the sessions before it have no use for their ~11 KB: issue 12), and stay.
    import supervisor

    assert "authorization" not in features.TRANSIENT
    lists = ("ocpp_client.listupdate", "ocpp_client.spooled", "ocpp_client.jsonstream")
    supervisor.drop(*lists)
    s = Tap("flash/auth")
    s._sent = {0: None}
    s.authorizing = True  # (the connector deciding a tap: connector.py, conntask.py)
    h = features.handlers(s, AUTH)
    assert "authorization" not in s.features  # not at boot
    features.need(s, h, "authorization")
    a = s.features["authorization"]
    features.release(s, h, "authorization")
    assert s.features["authorization"] is a and "ocpp_client.locallist" in sys.modules
    assert [m for m in lists if m in sys.modules] == []  # not for a tap
    assert await h.get("GetLocalListVersion")({}) == {"listVersion": 0}
    assert s.features["authorization"] is a and "ocpp_client.auth" in sys.modules
    full = {"listVersion": 1, "updateType": "Full",
            "localAuthorizationList": [{"idTag": "A1", "idTagInfo": {"status": "Accepted"}}]}
    assert await h.get("SendLocalList")(full) == {"status": "Accepted"}
    # loaded by the first list, short or not, and kept: a long one later, in a heap a session
    # fragmented (tests/test_low_memory.py squeezes it), needs no load for its reader
    assert [m for m in lists if m in sys.modules] == list(lists)
    assert await h.get("GetLocalListVersion")({}) == {"listVersion": 1}
    # Attached by a CALL of its own (no tap deciding), the feature loads them at once.
    supervisor.drop(*lists)
    s = Tap("flash/auth-call")
    h = features.handlers(s, AUTH)
    assert await h.get("GetLocalListVersion")({}) == {"listVersion": 0}
    assert [m for m in lists if m in sys.modules] == list(lists)


async def test_authorization_is_transient_where_the_code_is_out_of_the_heap():
    # Frozen or in a ROMFS image (supervisor.code_in_heap() False) a load makes small objects
    # only: the feature is held from a tap or CALL to its end, then out of the heap with the
    # modules only it loads; its state is on flash and read again at the next load.
    # A tap loads neither the list's updates nor the reader of long lists nor the checker it
    # imports; and the session keeps what the cache was last told (s.cached), which
    # transactions.py need not tell again.
    import supervisor
    from ocpp_client.authorization import OWN

    saved = features.TRANSIENT, supervisor.code_in_heap
    features.TRANSIENT = saved[0] + ("authorization",)
    supervisor.code_in_heap = lambda: False
    try:
        never = ("ocpp_client.listupdate", "ocpp_client.spooled", "ocpp_client.jsonstream",
                 "ocpp_client.validate")
        supervisor.drop(*never, "ocpp_client.auth")
        s = Tap("flash/auth-transient")
        h = features.handlers(s, AUTH)
        features.need(s, h, "authorization")  # a tap
        for m in never:
            assert m not in sys.modules, m
        # The decision (the rules, the cache) loads at its first use: a list's CALL does
        # without it.
        assert "ocpp_client.auth" not in sys.modules
        s.features["authorization"].remember("04A1B2C3", {"status": "Accepted"})
        assert "ocpp_client.auth" in sys.modules
        assert s.cached == ("04A1B2C3", {"status": "Accepted"})
        features.release(s, h, "authorization")
        assert "authorization" not in s.features
        for m in ("ocpp_client.authorization",) + OWN:
            assert m not in sys.modules, m
        # A CALL of it: loaded, answered, dropped again.
        assert await h.get("GetLocalListVersion")({}) == {"listVersion": 0}
        assert "ocpp_client.authorization" not in sys.modules and "authorization" not in s.features
        features.need(s, h, "authorization")  # the next tap finds the cache it left on flash
        assert s.features["authorization"].cache_entry("04A1B2C3")[0] == {"status": "Accepted"}
        assert s.features["authorization"].clear_cache() == "Accepted" and s.cached is None
        features.release(s, h, "authorization")
        assert "ocpp_client.auth" not in sys.modules
    finally:
        features.TRANSIENT, supervisor.code_in_heap = saved


async def test_no_memory_for_the_decision_refuses_the_tap_and_keeps_the_feature():
    # Out of the heap, the decision's code (auth.py) loads at the first tap: without the memory
    # for it the tap is refused (as when the feature cannot load), an idTagInfo goes uncached,
    # nothing raises into the connector or the transaction queue, and the next tap, memory
    # back, is decided.
    import supervisor

    class NoRoom:
        def __getattr__(self, name):
            raise MemoryError("no block for auth.py")

    saved = features.TRANSIENT, supervisor.code_in_heap
    features.TRANSIENT = saved[0] + ("authorization",)
    supervisor.code_in_heap = lambda: False
    try:
        supervisor.drop("ocpp_client.auth")
        s = Tap("flash/auth-noroom")
        h = features.handlers(s, AUTH)
        features.need(s, h, "authorization")
        a = s.features["authorization"]
        sys.modules["ocpp_client.auth"] = NoRoom()
        try:
            assert await a.authorize_now("04A1B2C3") == ("Invalid", None)
            a.remember("04A1B2C3", {"status": "Accepted"})
            assert getattr(s, "cached", None) is None
        finally:
            del sys.modules["ocpp_client.auth"]
        a.remember("04A1B2C3", {"status": "Accepted"})
        assert await a.authorize_now("04A1B2C3") == ("Accepted", None)
        features.release(s, h, "authorization")
    finally:
        features.TRANSIENT, supervisor.code_in_heap = saved
