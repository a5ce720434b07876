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


def _cert_session(name):
    # A client certificate renewed at profile 3 on trial (diag/csr.py), the old pair kept.
    s = Session(name)
    s.settings.update(security_profile=3, profile_fallback=-1, cert_trial=True,
                      cert_pem="NEW", key_pem="NEWKEY")
    s.store = s.settings.store
    s.store.save("certold", {"cert": "OLD", "key": "OLDKEY"})
    return s


def test_a_csms_down_does_not_undo_a_renewed_client_certificate():
    # The CSMS's port refusing TCP (the service restarting: the OS's bare ECONNREFUSED) before
    # any TLS says nothing of the certificate: the endpoint is the one the old pair reached.
    s = _cert_session("pt4")
    for _ in range(5):
        e = OSError(111)
        assert proftrial.settle(s, e) is e
    assert s.settings.get("cert_trial") is True and s.settings.get("cert_pem") == "NEW"
    # ... nor a dead uplink: the trial's ten minutes start at the first refusal
    for e in (OSError(110), OSError(113), asyncio.TimeoutError()):
        assert proftrial.settle(s, e) is e
    assert getattr(s, "trial", None) is None
    assert s.settings.get("cert_trial") is True and s.settings.get("cert_pem") == "NEW"
    assert s.store.load("certold", {}).get("cert") == "OLD"
    # The TLS end refusing it is counted: three of them, and the old pair is back.
    from ocpp_client.wsopen import TlsError

    for e in (TlsError("TLS handshake with h failed"), OSError(111, "client credentials refused"),
              WsClosed("cut")):
        out = proftrial.settle(s, e)
    assert isinstance(out, proftrial.ProfileFallback)
    assert s.settings.get("cert_pem") == "OLD" and s.settings.get("cert_trial") is False


def test_a_csms_down_does_not_undo_a_raise_from_2_to_3():
    s = Session("pt5")
    s.settings.update(security_profile=3, profile_fallback=2)
    for _ in range(5):
        proftrial.settle(s, OSError(111))
    assert _saved(s) == (3, 2)
    # once refused by its TLS end, the trial has its end: ten minutes on, whatever the failure
    proftrial.settle(s, WsError("TLS handshake with h failed"))
    s.trial[1] = time.ticks_add(time.ticks_ms(), -600001)
    assert isinstance(proftrial.settle(s, OSError(110)), proftrial.ProfileFallback)
    assert _saved(s) == (2, -1)
