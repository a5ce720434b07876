# On-target tests for ocpp_client/proftrial.py: a raised security profile kept at its first
# connection, undone after 3 refused attempts (a dead network not counted) or 10 minutes.
import asyncio
import time

from diag import secevents
from ocpp_client import proftrial
from ocpp_client.ws import WsClosed, WsError
from settings import Settings
from store import Store


class Session:
    def __init__(self, name):
        self.settings = Settings(Store(name), {"cp_id": "CP1", "security_profile": 1})
        self.settings.update(security_profile=2, profile_fallback=1)  # as configuration.py


class Events:
    def __init__(self):
        self.added = []

    def add(self, kind, info=None):
        self.added.append((kind, info))
        return True


def _saved(s):
    d = s.settings.store.load("settings", {})
    return d["security_profile"], d["profile_fallback"]


def test_the_first_connection_keeps_the_new_profile():
    s = Session("pt1")
    assert proftrial.settle(s, WsError("TLS handshake failed")) is not None
    ws = object()
    assert proftrial.settle(s, ws) is ws
    assert _saved(s) == (2, -1) and s.trial is None


def test_three_refusals_fall_back_and_tell_the_csms():
    secevents.current = ev = Events()
    try:
        s = Session("pt2")
        for e in (WsError("TLS handshake with h failed"), OSError(111), WsClosed("cut")):
            assert _saved(s) == (2, 1)
            out = proftrial.settle(s, e)
        assert isinstance(out, proftrial.ProfileFallback) and "back to 1" in str(out)
        assert _saved(s) == (1, -1) and s.settings.get("security_profile") == 1
        assert ev.added[0][0] == "ReconfigurationOfSecurityParameters"
        assert "SecurityProfile 2 could not connect (WsClosed cut): back to 1" == ev.added[0][1]
    finally:
        secevents.current = None


def test_a_dead_network_is_not_counted_but_the_trial_has_an_end():
    s = Session("pt3")
    dead = (OSError(110), OSError(113), asyncio.TimeoutError(), Exception("clock not set"))
    for _ in range(3):
        for e in dead:
            assert proftrial.settle(s, e) is e
    assert _saved(s) == (2, 1) and s.trial[0] == 0
    s.trial[1] = time.ticks_add(time.ticks_ms(), -600001)  # 10 minutes since the first failure
    assert isinstance(proftrial.settle(s, OSError(110)), proftrial.ProfileFallback)
    assert _saved(s) == (1, -1)
