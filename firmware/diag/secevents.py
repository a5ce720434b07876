# Security events (OCPP 1.6 security extension, edition 3, section "Security events/logging"):
# each one the charger detects is written to the security log (a ring journal on flash, read by
# GetLog SecurityLog) and queued as a SecurityEventNotification in the transaction message
# journal (ocpp_client/txqueue.py): durable before add() returns, delivered in order after an
# outage, never lost. Noisy kinds (bad frames, no memory, refused connections) are throttled so
# a hostile peer cannot fill the queue; the security log keeps its newest _MAX_RECORDS.
#
# The one part of the security extension that runs from boot (kept small for the boot heap):
# SecurityEvents is also the feature's state object, whose hooks the feature
# ocpp_client/security_ext.py sets at boot (it records the boot's events too): the hooks that
# detect events, the central system roots wss:// trusts, the agent log's flush before a reset,
# and the status triggers. Everything else (uploads, certificate messages, signed updates) is in
# diag/feature.py, loaded at the first CALL that needs it (need()).
import time

import clock
import log

_TAG = const("security")
ACTION = "SecurityEventNotification"
_MAX_RECORDS = const(200)
# The hotspot's connection password failed FREE_TRIES times in a row (a lockout began or grew):
# not in the extension's list, which knows no local login; a vendor type under its rules.
HOTSPOT_LOCKOUT = "HotspotRepeatedFailedLogins"
current = None  # the app's SecurityEvents, for parts that have no handle on it (hotspot/guard.py)
_MAX_INFO = const(255)  # techInfo's maxLength in the schema


def _throttle_s(kind):
    # The least time between two events of a noisy kind, None (every one counts) or 0 (once per
    # failure burst: again only after a connection succeeded, on_link_error(None)).
    if kind == "InvalidMessages" or kind == "MemoryExhaustion":
        return 600
    if kind == "InvalidCentralSystemCertificate":
        # Each new burst of refused certificates is reported (OCTT TC_078_CS), however soon
        # after the last; the retries within one are not.
        return 0
    if kind == "FailedToAuthenticateAtCentralSystem":
        return 3600
    if kind == HOTSPOT_LOCKOUT:
        return 300
    return None


class SecurityEvents:
    def __init__(self, store, txq):
        self.j = store.journal("seclog", _MAX_RECORDS, True)
        self.txq = txq
        self._last = {}  # kind -> ticks_ms of the last one sent (throttled kinds)
        self.listeners = []  # fn(kind): the security log changed
        # as the feature's state object (ocpp_client/security_ext.py sets these):
        self.s = None  # the OCPP session (client.OcppClient)
        self.agentlog = None  # diag.agentlog.AgentLog
        self.reset = None  # the board's reset, which flush_then_reset() wraps
        self.diag = None  # diag.feature.Diag, once a CALL needed it
        self._certs = None

    def add(self, kind, info=None):
        # -> True when recorded and queued, False when throttled.
        every = _throttle_s(kind)
        now = time.ticks_ms()
        if every is not None:
            last = self._last.get(kind)
            if last is not None and (not every or time.ticks_diff(now, last) < every * 1000):
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
        # Queued at once, whatever the clock says: durable before add() returns (a critical event
        # made by an ESP32 cold-booted offline, FirmwareUpdated, ResetOrReboot, was lost to a
        # power cut while it waited in RAM for the time, and its next boot no longer saw the
        # change). One stamped before the clock was set (2000-01-01) goes out with its time moved
        # by the step that set it (txqueue.py, txqrare.restamp: exact in its own boot).
        self._queue(payload)
        for fn in self.listeners:
            fn(kind)
        return True

    def __len__(self):
        return len(self.j)

    # -- the rest of the extension, on demand --------------------------------------------------
    def need(self):
        if self.diag is None:
            from diag.feature import Diag

            self.diag = Diag(self.s, self)
        return self.diag

    def handler(self, action):
        async def h(p):
            try:
                return await self.need().call(action, p)
            finally:
                self.settle()

        return h

    def settle(self):
        # diag/feature.py out of the heap once idle (~12 KB at 64-bit kept for good after the
        # first CALL): its trigger states are Idle then, the rest lives in the store.
        d = self.diag
        if d is not None and d.idle():
            from supervisor import drop

            self.diag = None
            self.drop_certs()  # (kept with a signed job)
            drop("diag.feature", "diag.signedfw", "diag.location")

    def certs(self):
        # The certificate store, made for a certificate CALL (dropped after it: drop_certs())
        # or the signed job (kept with it).
        if self._certs is None:
            self._certs = self._store()
        return self._certs

    def drop_certs(self):
        # The store and its parsers out of the heap again (~9 KB of a 32-bit heap kept for good
        # otherwise): it lives in its document, which a connection reads alone (roots()) and
        # the next certificate CALL reads again.
        from supervisor import drop

        self._certs = None
        drop("diag.certs", "diag.roots", "diag.x509", "ota.rsa")

    def _store(self):
        from diag.certs import CertStore

        return CertStore(self.s.store, self.s.settings, self, self.s.config)

    def roots(self):
        # The central system roots, asked at each connection (security.connect_args): read from
        # the store's document (diag/roots.py). When ca_pem was provisioned anew (a claim), the
        # roots are its certificates: the connection trusts the text itself, and the store
        # (diag/certs.py, with x509.py to split it) follows it the next time it is used
        # (central_roots()), not in the heap of the first connection after a claim.
        c = self._certs
        if c is None:
            from diag import roots
            from supervisor import drop

            drop("diag.roots")  # read once a connection: not kept
            pem = roots.pem(roots.load(self.s.store), self.s.settings)
            return self.s.settings.get("ca_pem", "") if pem is None else pem
        return c.central_roots()

    # -- triggers: Idle until an upload ran ------------------------------------------------------
    async def trigger_diag(self, cid=None):
        st = self.diag.diag_status if self.diag is not None else "Idle"
        await self.s.send("DiagnosticsStatusNotification", {"status": st})

    async def trigger_log(self, cid=None):
        d = self.diag
        req = {"status": d.log_status if d is not None else "Idle"}
        if d is not None and d.log_request is not None and d.log_status != "Idle":
            req["requestId"] = d.log_request
        await self.s.send("LogStatusNotification", req)

    # -- hooks: the events the charger detects (those of each boot: ocpp_client/security_ext.py) --
    def flush_then_reset(self, hard):
        self.agentlog.flush()  # the last lines before a reboot are the ones wanted
        self.reset(hard)

    def _queue(self, payload):
        try:
            self.txq.add(ACTION, payload, None)
        except (OSError, ValueError) as e:
            log.exc(_TAG, "queueing %s" % payload["type"], e)

    def on_clock(self, step, source):
        if step > 60 or step < -60:
            self.add("SettingSystemTime", "step %d s from %s" % (step, source))

    def on_config(self, key, value):
        if key in ("SecurityProfile", "AuthorizationKey"):
            self.add("ReconfigurationOfSecurityParameters", key)

    def on_link_error(self, e):
        # e: why a connection attempt failed; None once one succeeded (the burst ended)
        if e is None:
            self._last.pop("InvalidCentralSystemCertificate", None)
            return
        text = "%s %s" % (type(e).__name__, e)
        up = text.upper()
        if "HTTP 401" in text or "CLIENT CREDENTIALS REFUSED" in up:
            self.add("FailedToAuthenticateAtCentralSystem", text[:120])
        elif "X509" in up or "CERT" in up or "VERIFY" in up:
            self.add("InvalidCentralSystemCertificate", text[:120])
