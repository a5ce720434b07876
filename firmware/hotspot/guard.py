# The connection password check: constant-time comparison, growing lockouts after failures,
# and the bearer tokens it hands out. A lockout is the client's (its address on the hotspot): a
# neighbour with the Wi-Fi key sending wrong passwords locks out themselves, not the owner's
# phone. Wrong passwords in a row from all clients together (one cycling addresses) also arm a
# lock for all, a short one (_ALL_MAX_S): it bounds such a guesser's rate and locks the owner
# out for a moment at most. The counts are stored (one small save per wrong password; the locks
# bound how often), so a reboot does not reset them. The password is never stored or logged.
import binascii
import os
import time

_DOC = "claim_guard"
_FREE_TRIES = const(3)  # a client's failures before its first lock
_MAX_LOCK_S = const(3600)
_ALL_FREE = const(10)  # failures in a row from all clients before the lock for all
_ALL_MAX_S = const(30)
_CLIENTS = const(6)  # clients remembered: the one whose last failure is oldest goes first
_MAX_TOKENS = const(4)
_TOKEN_TTL_MS = const(900000)  # 15 min without use


def _norm(s):
    # The label prints groups like "abcd-efgh-jkmn": dashes, spaces and case do not count.
    return s.replace("-", "").replace(" ", "").lower().encode()


def same(a, b):
    # Constant-time in the attempt's length: no early exit on the first wrong character.
    if not b:
        return False
    diff = len(a) ^ len(b)
    for i in range(len(a)):
        diff |= a[i] ^ b[i % len(b)]
    return diff == 0


def peer(addr):
    # accept()'s address -> the client's IP as text: ("192.168.4.2", port) on the ESP32, a raw
    # sockaddr_in (a bytearray) on the unix port.
    if isinstance(addr, tuple):
        return str(addr[0])
    try:
        return "%d.%d.%d.%d" % tuple(addr[4:8])
    except (TypeError, ValueError):
        return "?"


def _security_event(fails, lock_s):
    # Repeated failed logins reach the CSMS as a security event (diag/secevents.py).
    from diag import secevents

    if secevents.current is not None:
        secevents.current.add(secevents.HOTSPOT_LOCKOUT,
                              "%d failed logins in a row; locked %d s" % (fails, lock_s))


class Guard:
    def __init__(self, store, password, base_ms=2000):
        self.store = store
        self._secret = _norm(password or "")
        self.base_ms = base_ms
        d = store.load(_DOC, {"fails": 0})
        n = d.get("fails")
        self.fails = n if isinstance(n, int) else 0  # in a row, from all clients
        self._until = self._arm(self.fails, _ALL_FREE, _ALL_MAX_S)  # the lock for all
        self._cl = {}  # client -> [failures in a row, lock deadline or None, last failure]
        for e in d.get("clients") or ():
            # A stored client's lock is armed again short: its address may be the owner's now
            # (the access point's DHCP hands them out again from the first); its count stays.
            if isinstance(e, list) and len(e) == 2 and isinstance(e[1], int):
                self._cl[str(e[0])] = [e[1], self._arm(e[1], _FREE_TRIES, _ALL_MAX_S),
                                       time.ticks_ms()]
        self._tokens = {}  # token -> last use (ticks_ms)

    def _arm(self, n, free, cap_s):
        # -> the deadline (ticks_ms) of the lock n failures in a row arm, or None
        if n < free:
            return None
        ms = min(self.base_ms << min(n - free, 20), cap_s * 1000)
        return time.ticks_add(time.ticks_ms(), ms)

    def retry_after_s(self, addr=None):
        # Seconds until the client at addr (None: any client) may try again (0: now). A lock
        # over is cleared: its deadline, days behind, would read as ahead once ticks wrap.
        now = time.ticks_ms()
        c = None if addr is None else peer(addr)
        left = 0
        if self._until is not None:
            left = time.ticks_diff(self._until, now)
            if left <= 0:
                self._until = None
        for k, e in self._cl.items():
            if e[1] is not None:
                t = time.ticks_diff(e[1], now)
                if t <= 0:
                    e[1] = None
                elif c is None or k == c:
                    left = max(left, t)
        return (left + 999) // 1000 if left > 0 else 0

    def login(self, attempt, addr=None):
        # -> ("ok", token) | ("locked", seconds) | ("wrong", seconds until next try)
        wait = self.retry_after_s(addr)
        if wait:
            return "locked", wait
        c = peer(addr)
        if not isinstance(attempt, str) or len(attempt) > 128 or not same(_norm(attempt),
                                                                            self._secret):
            cl = self._cl
            now = time.ticks_ms()
            e = cl.get(c)
            if e is None:
                if len(cl) >= _CLIENTS:
                    del cl[min(cl, key=lambda k: time.ticks_diff(cl[k][2], now))]
                e = cl[c] = [0, None, now]
            e[0] += 1
            e[2] = now
            e[1] = self._arm(e[0], _FREE_TRIES, _MAX_LOCK_S)
            self.fails += 1
            self._until = self._arm(self.fails, _ALL_FREE, _ALL_MAX_S)
            wait = self.retry_after_s(addr)
            if wait:
                _security_event(max(e[0], self.fails), wait)
            self._save()
            return "wrong", wait
        if c in self._cl or self.fails:
            self._cl.pop(c, None)
            self.fails = 0
            self._save()
        return "ok", self._new_token()

    def _save(self):
        try:
            self.store.save(_DOC, {"fails": self.fails,
                                   "clients": [[k, e[0]] for k, e in self._cl.items()]})
        except OSError:
            pass  # the locks still hold in RAM

    def _new_token(self):
        now = time.ticks_ms()
        self._expire(now)
        if len(self._tokens) >= _MAX_TOKENS:
            oldest = min(self._tokens, key=lambda t: time.ticks_diff(self._tokens[t], now))
            del self._tokens[oldest]
        tok = binascii.hexlify(os.urandom(16)).decode()
        self._tokens[tok] = now
        return tok

    def _expire(self, now):
        for t in [t for t, used in self._tokens.items()
                  if time.ticks_diff(now, used) > _TOKEN_TTL_MS]:
            del self._tokens[t]

    def check(self, header):
        # An "Authorization: Bearer <token>" value -> True when it names a live token.
        if not header or not header.startswith("Bearer "):
            return False
        tok = header[7:].strip()
        now = time.ticks_ms()
        self._expire(now)
        for t in self._tokens:
            if same(tok.encode(), t.encode()):
                self._tokens[t] = now
                return True
        return False

    def drop_tokens(self):
        self._tokens = {}
