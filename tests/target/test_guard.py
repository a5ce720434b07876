# On-target tests for hotspot/guard.py, the claim hotspot's login lockouts: one client's wrong
# passwords lock that client only; many clients' together lock all of them, briefly; the counts
# survive a reboot; and the ESP32's tick counter wrapping never reads as a lock.
import json

from hotspot import guard

PASSWORD = "wxyz-2345-6789"
_PERIOD = 1 << 30  # the ESP32's ticks_ms period (a small int: 30 bits); the unix port's is wider


class Ticks:
    # The ESP32's tick counter, set by the test: ticks_diff wraps at half the period.
    def __init__(self, now=0):
        self.now = now

    def ticks_ms(self):
        return self.now

    def ticks_add(self, t, d):
        return (t + d) & (_PERIOD - 1)

    def ticks_diff(self, a, b):
        return ((a - b + _PERIOD // 2) & (_PERIOD - 1)) - _PERIOD // 2

    def wait(self, s):
        self.now = self.ticks_add(self.now, s * 1000)


class MemStore:
    def __init__(self):
        self.docs = {}

    def load(self, name, defaults):
        return json.loads(self.docs[name]) if name in self.docs else defaults

    def save(self, name, data):
        self.docs[name] = json.dumps(data)


def _guard(store=None, now=1000):
    t = Ticks(now)
    guard.time = t
    return guard.Guard(store or MemStore(), PASSWORD, 1000), t


def _ip(n):
    return ("192.168.4.%d" % n, 50000 + n)  # accept()'s address on the ESP32


def _lock(g, t, addr):
    # Wrong passwords from addr until it is locked. -> the lock's seconds
    for _ in range(20):
        res, wait = g.login("nope-nope-nope", addr)
        assert res == "wrong", res
        if wait:
            return wait
    assert False, "never locked"


def test_one_clients_wrong_passwords_lock_that_client_only():
    g, t = _guard()
    prank, owner = _ip(2), _ip(3)
    for n in range(3):  # locked, then again each time the lock ends: it grows
        wait = _lock(g, t, prank)
        assert g.login(PASSWORD, prank)[0] == "locked"
        assert g.retry_after_s(owner) == 0
        res, tok = g.login(PASSWORD, owner)
        assert res == "ok" and g.check("Bearer " + tok)
        t.wait(wait)
    assert wait >= 4
    # the unix port's raw sockaddr_in names the same client as its text
    raw = bytearray(b"\x02\x00\xc3\x52\xc0\xa8\x04\x02" + bytes(8))
    assert guard.peer(raw) == "192.168.4.2" and guard.peer(prank) == "192.168.4.2"
    assert guard.peer(None) == "?"


def test_many_clients_together_meet_a_short_lock_for_all():
    g, t = _guard()
    n = 10
    waits = []
    for i in range(30):  # one guesser cycling addresses: never more than one try per lock
        w = g.retry_after_s(_ip(100 + i))
        assert w <= 30, w
        t.wait(w)
        res, w = g.login("nope-nope-nope", _ip(100 + i))
        assert res == "wrong"
        waits.append(w)
    assert waits[:n - 1] == [0] * (n - 1) and all(1 <= w <= 30 for w in waits[n - 1:]), waits
    assert waits[-1] == 30
    assert g.login(PASSWORD, _ip(3))[0] == "locked"  # the owner too, for those seconds
    t.wait(30)
    assert g.login(PASSWORD, _ip(3))[0] == "ok"
    assert len(g._cl) <= 6, "the clients' table is bounded"


def test_the_counts_survive_a_reboot():
    st = MemStore()
    g, t = _guard(st)
    for _ in range(6):  # locked for over a minute
        t.wait(_lock(g, t, _ip(2)))
    assert _lock(g, t, _ip(2)) > 60
    g, t = _guard(st, 5000)  # rebooted: locked again, for 30 s at most (the address may be
    # another's now), its count kept
    assert 1 <= g.retry_after_s(_ip(2)) <= 30 and g.login(PASSWORD, _ip(2))[0] == "locked"
    assert g.login(PASSWORD, _ip(3))[0] == "ok"
    t.wait(30)
    assert g.login("nope-nope-nope", _ip(2))[1] > 60
    st.docs = {"claim_guard": json.dumps({"fails": 12})}  # an older firmware's document
    g, t = _guard(st)
    assert 1 <= g.retry_after_s(_ip(3)) <= 30


def test_no_lock_when_the_tick_counter_is_past_half_its_period():
    # A charger up 7 days (ticks past 2**29) opens its hotspot: no failure, so no lock. (A lock
    # deadline of 0 read as 5 days ahead: the owner was told to wait 468,942 s.)
    g, t = _guard(now=7 * 86400 * 1000)
    assert g.retry_after_s() == 0 and g.retry_after_s(_ip(3)) == 0
    assert g.login(PASSWORD, _ip(3))[0] == "ok"
    # a lock that ended days ago does not come back when the ticks wrap round
    wait = _lock(g, t, _ip(2))
    t.wait(wait)
    assert g.retry_after_s() == 0
    t.wait(6 * 86400)
    assert g.retry_after_s(_ip(2)) == 0 and g.retry_after_s() == 0
