# The connection password check: constant-time comparison, a growing lockout after failures,
# and the bearer tokens it hands out. The failure count is stored (one small save per wrong
# password; the lockout itself bounds how often that can happen, about 30 a day at most once
# locked), so a reboot does not reset it. The password itself is never stored here or logged.
import binascii
import os
import time

_DOC = "claim_guard"
_FREE_TRIES = const(3)  # failures before the first lockout
_MAX_LOCK_S = const(3600)
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


def _security_event(fails, lock_ms):
    # Repeated failed logins reach the CSMS as a security event (diag/secevents.py).
    from diag import secevents

    if secevents.current is not None:
        secevents.current.add(secevents.HOTSPOT_LOCKOUT,
                              "%d failed logins in a row; locked %d s" % (fails, lock_ms // 1000))


class Guard:
    def __init__(self, store, password, base_ms=2000):
        self.store = store
        self._secret = _norm(password or "")
        self.base_ms = base_ms
        d = store.load(_DOC, {"fails": 0})
        self.fails = d["fails"] if isinstance(d.get("fails"), int) else 0
        self._until = 0  # ticks_ms deadline of the lock (RAM: starts over from boot)
        if self.fails >= _FREE_TRIES:
            self._until = time.ticks_add(time.ticks_ms(), self._lock_ms())
        self._tokens = {}  # token -> last use (ticks_ms)

    def _lock_ms(self):
        n = self.fails - _FREE_TRIES
        ms = self.base_ms << min(n, 20)
        return min(ms, _MAX_LOCK_S * 1000)

    def retry_after_s(self):
        # Seconds until a new attempt is allowed (0: now).
        left = time.ticks_diff(self._until, time.ticks_ms())
        return (left + 999) // 1000 if left > 0 else 0

    def login(self, attempt):
        # -> ("ok", token) | ("locked", seconds) | ("wrong", seconds until next try)
        wait = self.retry_after_s()
        if wait:
            return "locked", wait
        if not isinstance(attempt, str) or len(attempt) > 128 or not same(_norm(attempt),
                                                                            self._secret):
            self.fails += 1
            if self.fails >= _FREE_TRIES:
                self._until = time.ticks_add(time.ticks_ms(), self._lock_ms())
                _security_event(self.fails, self._lock_ms())
            self._save()
            return "wrong", self.retry_after_s()
        if self.fails:
            self.fails = 0
            self._save()
        return "ok", self._new_token()

    def _save(self):
        try:
            self.store.save(_DOC, {"fails": self.fails})
        except OSError:
            pass  # the lockout still holds in RAM

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
