# The part of the security extension that runs from boot (the feature ocpp_client/security_ext.py
# attaches it; kept small for the boot heap): security events the charger detects, the hooks
# that detect them, the central system roots wss:// trusts, the agent log's periodic flush, and
# the status triggers. Everything else (uploads, certificate messages, signed updates) is in
# diag/feature.py, loaded at the first CALL that needs it.
import clock
import log
from diag import secevents

_TAG = "diag"


class SecurityLogging:
    def __init__(self, s, agentlog=None):
        # s: the OCPP session (client.OcppClient); the transactions feature is attached (s.queue)
        self.s = s
        self.agentlog = agentlog
        self.sec = secevents.SecurityEvents(s.store, s.queue)
        secevents.current = self.sec
        self.diag = None  # diag.feature.Diag, once a CALL needed it
        self._certs = None
        s.triggers["DiagnosticsStatusNotification"] = self._diag_now
        s.triggers["LogStatusNotification"] = self._log_now  # ExtendedTriggerMessage only
        s.rpc.on_bad = self.sec.add
        s.on_link_error = self._link_error
        s.settings.roots = self.roots  # wss:// trusts the certificate store's roots
        clock.listeners.append(self._clock_set)
        s.config.listen(self)
        if agentlog is not None:
            reset = s.board.reset

            def flush_then_reset(hard):
                agentlog.flush()  # the last lines before a reboot are the ones wanted
                reset(hard)

            s.board.reset = flush_then_reset
        if s.connector.interrupted:
            s.tasks.append(self._boot_events_after_recovery())
        else:
            self._boot_events()
        if s.store.load("signedfw", {"rid": None})["rid"] is not None:
            self.need()  # a signed update is installing: its statuses are the signed job's

    # -- the rest, on demand ------------------------------------------------------------------
    def need(self):
        if self.diag is None:
            from diag.feature import Diag

            self.diag = Diag(self.s, self)
        return self.diag

    def handler(self, action):
        async def h(p):
            return await self.need().handlers()[action](p)

        return h

    def certs(self):
        # The certificate store, kept once diag/feature.py needs it.
        if self._certs is None:
            self._certs = self._store()
        return self._certs

    def _store(self):
        from diag.certs import CertStore

        return CertStore(self.s.store, self.s.settings, self.sec, self.s.config)

    def roots(self):
        # The central system roots, asked at each connection (security.connect_args): read from
        # the store's document (diag/roots.py); the store itself (diag/certs.py) only when they
        # must follow a new ca_pem, and not kept: the connection drops both once the link is up.
        c = self._certs
        if c is None:
            from diag import roots

            pem = roots.pem(roots.load(self.s.store), self.s.settings)
            if pem is not None:
                return pem
            c = self._store()
        return c.central_roots()

    def tasks(self):
        # (name, fn): supervised by the session (client.py), restarted after a failure
        return [("agentlog", self.agentlog.run)] if self.agentlog is not None else []

    # -- triggers: Idle until an upload ran ------------------------------------------------------
    async def _diag_now(self, cid=None):
        st = self.diag.diag_status if self.diag is not None else "Idle"
        await self.s.send("DiagnosticsStatusNotification", {"status": st})

    async def _log_now(self, cid=None):
        d = self.diag
        req = {"status": d.log_status if d is not None else "Idle"}
        if d is not None and d.log_request is not None and d.log_status != "Idle":
            req["requestId"] = d.log_request
        await self.s.send("LogStatusNotification", req)

    # -- security events the charger detects ------------------------------------------------
    async def _boot_events_after_recovery(self):
        # A power cut ended a session: its StopTransaction happened before this boot, so it is
        # journaled first (the transactions feature reads the meter, then journals it).
        await self.s.feature("transactions").recovered.wait()
        self._boot_events()

    def _boot_events(self):
        # StartupOfTheDevice every boot; ResetOrReboot when the boot before ended in a reset the
        # CSMS (or the owner) asked for; FirmwareUpdated when the firmware version changed;
        # SecurityLogWasCleared when the security log holds less than at the last boot (its
        # file was removed or lost). One small store save per boot.
        store = self.s.store
        sec = self.sec
        prev = None
        n = 0
        for rec in self.s.events.recent(2):
            n += 1
            if n == 2:
                prev = rec
        doc = store.load("diag_boot", {"fw": "", "sec": 0})
        if sec.j.last_seq() < doc["sec"]:
            sec.add("SecurityLogWasCleared", "%d records before" % doc["sec"])
        sec.add("StartupOfTheDevice")
        if prev is not None and prev.get("k") in ("reset", "factory_reset"):
            sec.add("ResetOrReboot", "%s reset" % prev.get("type", "factory"))
        fw = secevents.firmware_version()
        if doc["fw"] != fw and doc["fw"]:
            sec.add("FirmwareUpdated", "%s -> %s" % (doc["fw"], fw))
        doc["fw"] = fw
        doc["sec"] = sec.j.last_seq()
        try:
            store.save("diag_boot", doc)
        except OSError as e:
            log.exc(_TAG, "diag_boot", e)

    def _clock_set(self, step, source):
        if step > 60 or step < -60:
            self.sec.add("SettingSystemTime", "step %d s from %s" % (step, source))

    def on_config(self, key, value):
        if key in ("SecurityProfile", "AuthorizationKey"):
            self.sec.add("ReconfigurationOfSecurityParameters", key)

    def _link_error(self, e):
        text = "%s %s" % (type(e).__name__, e)
        up = text.upper()
        if "HTTP 401" in text:
            self.sec.add("FailedToAuthenticateAtCentralSystem", text[:120])
        elif "X509" in up or "CERT" in up or "VERIFY" in up:
            self.sec.add("InvalidCentralSystemCertificate", text[:120])
