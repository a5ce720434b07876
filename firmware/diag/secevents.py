# Security events (OCPP 1.6 security extension, edition 3, section "Security events/logging"):
# each one the charger detects is written to the security log (a ring journal on flash, read by
# GetLog SecurityLog) and queued as a SecurityEventNotification in the transaction message
# journal (ocpp_client/txqueue.py): durable before add() returns, delivered in order after an
# outage, never lost. Noisy kinds (bad frames, no memory) are throttled so a hostile peer cannot
# fill the queue; the security log keeps its newest _MAX_RECORDS.
import time

import clock
import log

_TAG = "security"
ACTION = "SecurityEventNotification"
_MAX_RECORDS = const(200)
# The hotspot's connection password failed FREE_TRIES times in a row (a lockout began or grew):
# not in the extension's list, which knows no local login; a vendor type under its rules.
HOTSPOT_LOCKOUT = "HotspotRepeatedFailedLogins"
_THROTTLE_S = {"InvalidMessages": 600, "MemoryExhaustion": 600,
               "InvalidCentralSystemCertificate": 3600, "FailedToAuthenticateAtCentralSystem": 3600,
               HOTSPOT_LOCKOUT: 300}
current = None  # the app's SecurityEvents, for parts that have no handle on it (hotspot/guard.py)
_MAX_INFO = const(255)  # techInfo's maxLength in the schema


def firmware_version():
    # The running firmware's version (FirmwareUpdated when it changed since the last boot).
    try:
        import version

        return version.VERSION
    except ImportError:
        return "dev"


class SecurityEvents:
    def __init__(self, store, txq):
        self.j = store.journal("seclog", _MAX_RECORDS, True)
        self.txq = txq
        self._last = {}  # kind -> ticks_ms of the last one sent (throttled kinds)
        self.listeners = []  # fn(kind): the security log changed

    def add(self, kind, info=None):
        # -> True when recorded and queued, False when throttled.
        every = _THROTTLE_S.get(kind)
        now = time.ticks_ms()
        if every is not None:
            last = self._last.get(kind)
            if last is not None and time.ticks_diff(now, last) < every * 1000:
                return False
            self._last[kind] = now
        t = clock.now()
        rec = {"t": t, "type": kind}
        payload = {"type": kind, "timestamp": clock.iso(t)}
        if info:
            info = str(info)[:_MAX_INFO]
            rec["info"] = payload["techInfo"] = info
        log.info(_TAG, "security event %s%s", kind, (": " + info) if info else "")
        try:
            self.j.append(rec)
        except (OSError, ValueError) as e:
            log.exc(_TAG, "security log", e)
        try:
            self.txq.add(ACTION, payload, None)
        except (OSError, ValueError) as e:
            log.exc(_TAG, "queueing %s" % kind, e)
        for fn in self.listeners:
            fn(kind)
        return True

    def records(self, since=None, until=None):
        # (unix seconds, type, info or None), oldest first, one at a time.
        for _, r in self.j.records():
            t = r.get("t", 0)
            if (since is not None and t < since) or (until is not None and t > until):
                continue
            yield t, r.get("type", "?"), r.get("info")

    def __len__(self):
        return len(self.j)
