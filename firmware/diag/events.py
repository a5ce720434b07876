# The part of the security extension that runs from boot (the feature ocpp_client/security_ext.py
# attaches it and records the boot's events; kept small for the boot heap): security events the
# charger detects, the hooks that detect them, the central system roots wss:// trusts, the agent
# log's periodic flush, and the status triggers. Everything else (uploads, certificate
# messages, signed updates) is in diag/feature.py, loaded at the first CALL that needs it.
import clock
from diag import secevents


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
            self._reset = s.board.reset
            s.board.reset = self._flush_then_reset

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
            from supervisor import drop

            drop("diag.roots")  # read once a connection: not kept
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

    # -- security events the charger detects (those of each boot: ocpp_client/security_ext.py) --
    def _flush_then_reset(self, hard):
        self.agentlog.flush()  # the last lines before a reboot are the ones wanted
        self._reset(hard)

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
