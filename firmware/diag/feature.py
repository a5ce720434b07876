# The security extension's CALLs, loaded at the first one (ocpp_client/security_ext.py; the part
# that runs from boot is diag/secevents.py): GetDiagnostics with DiagnosticsStatusNotification,
# GetLog with LogStatusNotification, ExtendedTriggerMessage, the certificate messages (certs.py)
# and SignedUpdateFirmware (signedfw.py). Work after a .conf goes through the session's after(),
# so a triggered message always follows its answer. One upload at a time, in its own task: a new
# request cancels the one running (reported failed: _start).
import asyncio

import clock
import log

_TAG = "diag"
_DEF_ATTEMPTS = const(3)  # uploads tried when the CSMS gives no `retries`
_DEF_RETRY_S = const(30)
_MAX_RETRY_S = const(3600)
_MAX_ATTEMPTS = const(10)
_SCRATCH = "diag.out"  # the file being uploaded, in the store's folder
_CERT_CALLS = ("InstallCertificate", "GetInstalledCertificateIds", "DeleteCertificate",
               "CertificateSigned")  # diag/certs.py's handlers()


class Diag:
    def __init__(self, s, logging):
        # s: the OCPP session; logging: diag.secevents.SecurityEvents (what runs from boot)
        self.s = s
        self.board = s.board
        self.store = s.store
        self.root = s.store.root
        self.settings = s.settings
        self.config = s.config
        self.events = s.events
        self.connector = s.connector
        self.agentlog = logging.agentlog
        self.sec = logging
        self.diag_status = "Idle"  # DiagnosticsStatusNotification's current state
        self.log_status = "Idle"  # LogStatusNotification's, with its requestId
        self.log_request = None
        self._task = None
        self._rid = None  # the running upload's GetLog requestId (None: a GetDiagnostics)
        self._sf = None
        # After-the-answer work queued or running (after()), by all and by the CALL being
        # handled: the feature leaves the heap only once none is left (secevents.settle()).
        self._work = 0
        self._added = 0
        h = {"GetDiagnostics": self._on_get_diagnostics, "GetLog": self._on_get_log,
             "ExtendedTriggerMessage": self._on_ext_trigger,
             "SignedUpdateFirmware": self._on_signed}
        for a in _CERT_CALLS:
            h[a] = self._on_cert(a)
        self._handlers = h

    def handlers(self):
        return self._handlers

    async def call(self, action, p):
        # A CALL's handler, with the work it queues counted (after()): a refused CALL's after-
        # work never runs (rpc.py), so it is taken off the count again.
        self._added = 0
        try:
            return await self._handlers[action](p)
        except BaseException:
            self._work -= self._added
            raise

    def after(self, fn, *args):
        # s.after() counted: a status a task still owes keeps this object, and the state it
        # answers triggers with, in place.
        self._work += 1
        self._added += 1
        self.s.after(self._then, fn, args)

    async def _then(self, fn, args):
        try:
            await fn(*args)
        finally:
            self._work -= 1
            self.sec.settle()

    def idle(self):
        # No work owed after an answer, no upload, no signed job or its firmware feature.
        sf = self._sf
        return self._work == 0 and self._task is None and (sf is None or sf.idle())

    # The certificate store and the signed update (with x509, ota/rsa.py and the firmware
    # feature's updater, ~20 KB of code) are made at their own first use: an upload needs none.
    @property
    def certs(self):
        return self.sec.certs()

    @property
    def signedfw(self):
        sf = self._sf
        if sf is None:
            from diag.signedfw import SignedFirmware

            sf = self._sf = SignedFirmware(self)
        return sf

    def signed_job(self):
        # The signed job if one was made (the firmware feature, attached again, routes to it).
        return self._sf

    async def _on_signed(self, p):
        return await self.signedfw.on_request(p)

    def _on_cert(self, action):
        async def h(p):
            try:
                return await self.certs.handlers(self.s)[action](p)
            finally:
                if self._sf is None:  # (the signed job reads the store too: kept with it)
                    self.sec.drop_certs()

        return h

    async def _send(self, action, payload, final=False):
        # A status notification. A job's final one goes through the transaction queue (journaled:
        # delivered once online, a link down or a power cut meanwhile), as the CSMS would wait
        # for it for ever; others are sent if the link is up, else lost (the CSMS asks with a
        # trigger).
        if final:
            try:
                self.sec.txq.add(action, payload, None)
                return
            except (OSError, ValueError, MemoryError) as e:
                log.exc(_TAG, "queueing " + action, e)  # sent now, if it can be
        await self.s.send(action, payload)

    # -- identity (the diagnostics file) ------------------------------------------------------
    def firmware_version(self):
        from supervisor import fw_version

        return fw_version()

    def board_name(self):
        import board

        return getattr(board, "NAME", "?")

    # -- triggers ----------------------------------------------------------------------------
    async def _on_ext_trigger(self, p):
        # SignChargePointCertificate: a new key pair and its CSR, after the answer (csr.py);
        # LogStatusNotification and SignedFirmwareStatusNotification: their state. The
        # rest is TriggerMessage's (remote.py), with its rules: a connectorId the message has no
        # use for is ignored (1.6 5.17), StatusNotification/MeterValues for connector 2 Rejected.
        s = self.s
        what = p["requestedMessage"]
        if what == "SignChargePointCertificate":
            self.after(self._csr)
            return {"status": "Accepted"}
        fn = s.triggers.get(what) if what == "LogStatusNotification" else None
        if what == "FirmwareStatusNotification":
            if self._sf is None and "firmware" not in s.features and _fw_idle(self.store):
                self.after(self._send, "SignedFirmwareStatusNotification", {"status": "Idle"})
                return {"status": "Accepted"}  # (no job this boot, none to tell of: nothing loaded)
            sf = self.signedfw
            if sf.status() is not None or not sf.fw.updater.busy():
                # SignedFirmwareStatusNotification (the whitepaper's MessageTriggerEnumType),
                # Idle when no job runs; an UpdateFirmware's job, which has no requestId,
                # answers in its own FirmwareStatusNotification (TriggerMessage's)
                fn = sf.trigger
        if fn is None:
            return await s.rpc.handlers.get("TriggerMessage")(p)
        self.after(fn, None)
        return {"status": "Accepted"}

    async def _csr(self):
        from supervisor import drop

        try:
            from diag import csr

            await csr.request(self.s)
        finally:
            drop("diag.csr", "diag.p256")  # loaded on use: out of the heap again

    # -- GetDiagnostics / GetLog ------------------------------------------------------------
    def _window(self, a, b):
        out = []
        for s in (a, b):
            if s is None:
                out.append(None)
                continue
            try:
                out.append(clock.parse_iso(s))
            except ValueError:
                out.append(None)
        return out

    def _file_name(self, kind):
        t = clock.iso().replace(":", "").replace("-", "")
        cp = "".join(c for c in self.settings.get("cp_id", "cp") if c.isalpha() or c.isdigit()
                     or c in "._-")[:48] or "cp"
        return "%s-%s-%s.txt" % (cp, kind, t[:15])

    def _start(self, job, rid=None):
        # One upload at a time: a new request ends the one running, which ends failed for its
        # CSMS (a GetLog's under its requestId: the whitepaper's N01.FR.07/10; it stayed
        # Uploading for ever). Not a GetDiagnostics replaced by another: with no requestId, its
        # UploadFailed would read as the new one's.
        # The job is marked on flash before the answer goes out, with the replaced one's failure
        # if still owed: a power cut right after the answer (before the work after it) left the
        # CSMS waiting for ever; the boot reports both failed (ocpp_client/security_ext.py).
        old, self._task = self._task, None
        was = self._rid
        owed = old is not None and (was is not None or rid is not None)
        self._n = getattr(self, "_n", 0) + 1
        path = self.store.path("%s%d" % (_SCRATCH, self._n), "")  # never the cancelled one's
        self._mark([rid, path], [was] if owed else None)
        if old is not None:
            log.info(_TAG, "an upload in progress is cancelled by a new request")
            old.cancel()
            if owed:
                self.after(self._owed, was)
        self._rid = rid
        self.after(self._spawn, job, path)
        return old is not None

    async def _owed(self, was):
        # A replaced upload's failure, queued: no longer the boot's to report.
        await self._status(was, "UploadFailed" if was is None else "UploadFailure")
        self._mark(False)

    async def _spawn(self, job, path):
        self._task = asyncio.create_task(job(path))

    def _attempts(self, p):
        n = p.get("retries")
        n = _DEF_ATTEMPTS if n is None else max(1, min(n, _MAX_ATTEMPTS))
        wait = p.get("retryInterval")
        wait = _DEF_RETRY_S if wait is None else max(0, min(wait, _MAX_RETRY_S))
        return n, wait

    async def _on_get_diagnostics(self, p):
        from diag import location

        url = p["location"]
        try:
            name = _used(location.parse(url, self._file_name("diag")))
        except location.BadLocation as e:
            log.warn(_TAG, "GetDiagnostics to %s refused: %s", log.url(url), e)
            self.diag_status = "Idle"
            self.after(self._send, "DiagnosticsStatusNotification", {"status": "UploadFailed"},
                         True)
            return {}
        since, until = self._window(p.get("startTime"), p.get("stopTime"))
        n, wait = self._attempts(p)

        async def job(path):
            await self._upload(url, name, path, n, wait, "diag", since, until)

        self._start(job)
        return {"fileName": name}

    async def _on_get_log(self, p):
        from diag import location

        lp = p["log"]
        url = lp["remoteLocation"]
        kind = "security" if p["logType"] == "SecurityLog" else "diag"
        name = self._file_name("securitylog" if kind == "security" else "diag")
        try:
            name = _used(location.parse(url, name))
        except location.BadLocation as e:
            log.warn(_TAG, "GetLog to %s refused: %s", log.url(url), e)
            return {"status": "Rejected"}
        since, until = self._window(lp.get("oldestTimestamp"), lp.get("latestTimestamp"))
        n, wait = self._attempts(p)
        rid = p["requestId"]

        async def job(path):
            await self._upload(url, name, path, n, wait, kind, since, until, rid)

        canceled = self._start(job, rid)
        return {"status": "AcceptedCanceled" if canceled else "Accepted", "filename": name}

    async def _status(self, rid, status):
        final = status != "Uploading"
        if rid is None:
            self.diag_status = "Idle" if final else status
            await self._send("DiagnosticsStatusNotification", {"status": status}, final)
        else:
            self.log_status = "Idle" if final else status
            self.log_request = rid
            await self._send("LogStatusNotification", {"status": status, "requestId": rid},
                             final)

    async def _upload(self, url, name, path, attempts, wait_s, kind, since, until, rid=None):
        # (marked on flash by _start(), before the answer)
        from diag import location, report, upload

        shown = log.url(url)
        ok = False
        why = None  # GetLog's status for the last failure, when not UploadFailure
        try:
            if kind == "security":
                report.security_log(path, self.sec, since, until)
            else:
                report.diagnostics(path, self, since, until)
            for i in range(attempts):
                await self._status(rid, "Uploading")
                try:
                    n = await upload.upload(url, name, path, self.board, self.settings)
                    log.info(_TAG, "%s uploaded to %s (%d bytes)", name, shown, n)
                    ok = True
                    break
                except upload.UploadError as e:
                    why = e.st
                    log.warn(_TAG, "upload %d/%d of %s to %s failed: %s", i + 1, attempts, name,
                             shown, e)
                if i + 1 < attempts:
                    await asyncio.sleep(wait_s)
        except MemoryError:
            import gc

            gc.collect()  # shed: charging and OCPP go on, the CSMS hears UploadFailed
            log.warn(_TAG, "%s not uploaded: no memory for it", name)
        except OSError as e:
            log.exc(_TAG, "writing %s" % name, e)
        except asyncio.CancelledError:
            log.info(_TAG, "upload of %s cancelled", name)
            if rid is None:
                self.diag_status = "Idle"
            else:
                self.log_status = "Idle"
            raise
        finally:
            try:
                import os

                os.remove(path)
            except OSError:
                pass
        if rid is None:
            await self._status(None, "Uploaded" if ok else "UploadFailed")
        else:
            await self._status(rid, "Uploaded" if ok else why or "UploadFailure")
        self._mark(None)
        self._task = None
        from supervisor import drop

        drop("diag.report", "diag.upload", "diag.location")  # (the next request loads them)
        self.sec.settle()

    def _mark(self, up, owed=None):
        # The upload running ([requestId or None, its file]) or none (None; False: left as it
        # is), and [requestId] of a replaced one whose failure is not queued yet (`was`; cleared
        # with up False), in the document the boot reads anyway (ocpp_client/security_ext.py):
        # after a power cut the boot reports them failed and removes the file. A cancelled one
        # stays marked until the next one marks.
        st = self.store
        try:
            d = st.load("diag_boot", {"fw": "", "sec": 0})
            if up is None:
                d.pop("up", None)
            elif up is False:
                d.pop("was", None)
            else:
                d["up"] = up
            if owed is not None:
                d["was"] = owed
            st.save("diag_boot", d)
        except (OSError, MemoryError) as e:  # the upload goes on, unmarked
            log.exc(_TAG, "diag_boot", e)


def _fw_idle(store):
    # The signed job's document (diag/signedfw.py) names no job and no status to repeat: an
    # ExtendedTriggerMessage(FirmwareStatusNotification) is answered Idle (L01.FR.28).
    d = store.load("signedfw", {})
    return d.get("rid") is None and (d.get("lr") is None or d.get("st") in (None, "Installed"))


def _used(loc):
    # The name the file goes under (the answer's fileName): the generated one in a folder
    # location, the location's own otherwise (location.parse's path).
    from diag import location

    p = loc[5] if loc[0] == "ftp" else location._unquote(loc[5].split("?")[0])
    return p[p.rfind("/") + 1 :]
