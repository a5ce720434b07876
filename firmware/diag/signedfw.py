# SignedUpdateFirmware (security extension): the signing certificate must be issued by an
# installed ManufacturerRootCertificate (RSA, sha256WithRSAEncryption, checked here with big-int
# pow) and valid now; the downloaded file must carry the request's signature (RSA-PSS over its
# SHA-256, as the 1.6 security whitepaper says, or PKCS#1 v1.5; by the signing certificate's
# key). Only then does the file go to the same install path as UpdateFirmware (ota/: the
# bundle's own signature and manifest, install into the other slot, trial boot, commit or
# rollback). Every step goes out as
# SignedFirmwareStatusNotification with the requestId (ota's notifications are routed here
# while a signed job is on, across the trial reboot).
# The job is a store document from its acceptance on, so a power cut resumes it (the boot loads
# this module for it: ocpp_client/security_ext.py); `ph` says where it was:
#   get   scheduled or downloading: the boot starts it again once online, from its retrieve time
#         (DownloadScheduled or Downloading again), the partial file resumed (Range / REST),
#         its tries counted on and the rest of a retry's wait waited out
#   wait  verified, waiting for installDateTime (InstallScheduled; again after a reboot), then
#         for ota/; also a hand-over a cut lost (the file still here: done again; nowhere:
#         InstallationFailed)
#   ota   handed to ota/, whose statuses are the job's until a final one
import asyncio
import binascii
import hashlib

import clock
import log
from diag import x509
from ota import rsa

_TAG = "signedfw"
_DOC = "signedfw"
_FILE = "signed_fw.part"  # the download, in the store's folder, until ota takes it
_FINAL = ("Installed", "InstallationFailed", "DownloadFailed", "InvalidSignature",
          "InstallVerificationFailed", "Idle")


class SignedFirmware:
    def __init__(self, diag):
        self.diag = diag
        self.store = diag.store
        # a document written before `ph` existed had rid set only once handed to ota
        self.doc = self.store.load(_DOC, {"rid": None, "ph": "ota"})
        self._task = None
        # (status, requestId) the signed job said last: ExtendedTriggerMessage's answer while
        # it runs and after, until another job reports (ota's statuses not routed here); an
        # ended job's requestId is kept as `lr` for it, across a boot (L01.FR.29)
        d = self.doc
        rid = d["rid"] if d["rid"] is not None else d.get("lr")
        self.last = (d["st"], rid) if rid is not None and d.get("st") else None
        o = d.get("owed")
        if o:
            # A replaced job's final status the power cut kept from the queue (cancel())
            try:
                self.diag.sec.txq.add("SignedFirmwareStatusNotification",
                                      {"status": o[0], "requestId": o[1]}, None)
                del d["owed"]
                self._save()
            except (OSError, ValueError, MemoryError) as e:
                log.exc(_TAG, "queueing request %d's status" % o[1], e)
        fw = self.fw
        if fw is not None:
            fw.signed = self  # route(): ota's statuses, while a signed job is on
            if self._resumable(fw.updater):
                self._task = asyncio.create_task(self._job(True))

    def _resumable(self, up):
        # At boot: a job a reboot interrupted before ota had it, or lost on the way to ota.
        d = self.doc
        if d["rid"] is None or d["ph"] != "ota":
            return d["rid"] is not None
        if up.busy() or up.unsent() is not None:
            return False  # ota has it: its statuses come routed here
        d["ph"] = "wait"  # the cut came before ota took the file
        return True

    def idle(self):
        # No job on, and the firmware feature that routes to it gone (ota/ocpp.py drops it).
        return self.doc["rid"] is None and self._task is None and \
            self.diag.s.features.get("firmware") is None

    @property
    def fw(self):
        # The firmware update feature's state (ota/ocpp.py: its updater does the install),
        # attached now if it was not yet (it is lazy).
        return self.diag.s.feature("firmware")

    def _save(self):
        try:
            self.store.save(_DOC, self.doc)
        except OSError as e:
            log.exc(_TAG, "saving", e)

    def route(self, st):
        # ota's status -> (action, payload) to send instead, or None (ota sends its own). Asked
        # once a status, as ota says it (or at its first try: ota/ocpp.py): its retries keep
        # the answer.
        d = self.doc
        rid = d["rid"]
        if rid is None or d["ph"] != "ota":
            if rid is None:
                self.last = None  # another job's status: the firmware's state is its now
                if d.pop("lr", None) is not None:
                    self._save()
            return None  # no signed job, or one that has not handed its file over yet
        if st in _FINAL:
            d["rid"] = None
            d["lr"] = rid
        d["st"] = st
        self.last = (st, rid)
        self._save()  # Installing, InstallRebooting: the trigger's answer after the reset
        return "SignedFirmwareStatusNotification", {"status": st, "requestId": rid}

    def status(self):
        # -> (status, requestId) for ExtendedTriggerMessage(FirmwareStatusNotification), or
        # None: ota answers (Idle, or an UpdateFirmware job started since).
        if self.last is None or (self.doc["rid"] is None and self.fw.updater.busy()):
            return None
        return self.last

    def plain(self):
        # TriggerMessage(FirmwareStatusNotification) while the job has not reached ota: its
        # phase as a FirmwareStatus, or None (ota answers).
        d = self.doc
        if d["rid"] is None or d["ph"] == "ota" or self.last is None:
            return None
        st = self.last[0]
        return st if st == "Downloading" else "Idle" if st == "DownloadScheduled" else "Downloaded"

    def cancel(self, by="UpdateFirmware"):
        # An UpdateFirmware was accepted (ota/ocpp.py), or another SignedUpdateFirmware: it
        # replaces a job that has not reached ota, as it replaces another UpdateFirmware. The
        # job ends (its file goes with its task), the CSMS hears how under its requestId, and
        # no boot resumes it. -> True when there was one.
        d = self.doc
        rid = d["rid"]
        if rid is None or d["ph"] == "ota":
            return False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        log.warn(_TAG, "request %d replaced by %s", rid, by)
        st = "DownloadFailed" if d["ph"] == "get" else "InstallationFailed"
        d["rid"] = None
        d["st"], d["lr"] = st, rid
        # Owed until queued (after the answer: _owed), saved with the end: a power cut right
        # after the answer leaves it to the boot (ocpp_client/security_ext.py, __init__)
        d["owed"] = [st, rid]
        self._save()
        self.diag.after(self._owed, st, rid)
        return True

    async def _owed(self, st, rid):
        await self._notify(st, rid, True)
        if self.doc.pop("owed", None) is not None:  # (the next job's document carries it)
            self._save()

    async def trigger(self, cid=None):
        # ExtendedTriggerMessage(FirmwareStatusNotification): the status sent last (whitepaper
        # L01.FR.29), or Idle without a requestId once it was Installed (L01.FR.28) or when no
        # signed job reported since the boot.
        last = self.status()
        if last is None or last[0] == "Installed":
            await self.diag._send("SignedFirmwareStatusNotification", {"status": "Idle"})
        else:
            await self._notify(*last)

    async def _notify(self, st, rid, final=False):
        if rid == self.doc["rid"]:  # (not a replaced job's)
            self.doc["st"] = st  # saved with the job's next phase
        self.last = (st, rid)
        await self.diag._send("SignedFirmwareStatusNotification", {"status": st, "requestId": rid},
                              final)

    # -- the signing certificate ------------------------------------------------------------
    def check_certificate(self, pem):
        # -> (x509.Cert, None) or (None, reason); ocpp_client.security (x509's PEM reader, the
        # clock check) out of the heap after it unless in use before (netdrop.py)
        from supervisor import rare

        return rare("netdrop", "call", self._check, pem)

    def _check(self, pem):
        from diag.certs import MFR
        from ocpp_client import security

        try:
            ders = x509.from_pem(pem)
            cert = x509.Cert(ders[0])
        except (x509.BadCert, ValueError, IndexError) as e:
            return None, "signing certificate unreadable: %s" % e
        if cert.rsa is None:
            return None, "signing certificate has no RSA key"
        if not security.clock_ok():
            return None, "clock not set: validity cannot be checked"
        now = clock.now()
        if not cert.valid_at(now):
            return None, "signing certificate not valid now (%s .. %s)" % (
                clock.iso(cert.not_before), clock.iso(cert.not_after))
        for root, _ in self.diag.certs.certs(MFR):
            if root.subject != cert.issuer:
                continue
            if not root.valid_at(now):
                continue
            if cert.signed_by(root):
                return cert, None
        return None, "not issued by an installed ManufacturerRootCertificate"

    # -- SignedUpdateFirmware -----------------------------------------------------------------
    async def on_request(self, p):
        fw = p["firmware"]
        rid = p["requestId"]
        cert, why = self.check_certificate(fw["signingCertificate"])
        if cert is None:
            log.warn(_TAG, "SignedUpdateFirmware %d refused: %s", rid, why)
            # The answer says it; SignedFirmwareStatus has no such value: the security event
            # is the report.
            self.diag.sec.add("InvalidFirmwareSigningCertificate", why)
            return {"status": "InvalidCertificate"}
        up = self.fw.updater if self.fw is not None else None
        if up is None:
            log.warn(_TAG, "SignedUpdateFirmware %d rejected: no update path in this build", rid)
            return {"status": "Rejected"}
        if up.busy() and not up.replaceable():  # (installing, on trial, a hotspot upload's)
            log.warn(_TAG, "SignedUpdateFirmware %d rejected: an update is being installed", rid)
            return {"status": "Rejected"}
        from ota.update import MAX_TRIES, MAX_WAIT_S  # (loaded: the updater's)

        retries = p.get("retries")
        interval = p.get("retryInterval")
        # A signed job not yet in ota's hands ends (its final status under its own requestId)
        canceled = self.cancel("SignedUpdateFirmware %d" % rid)
        # One firmware job: one in ota's hands not yet installing ends (its status routed, a
        # signed one's under its requestId: route())
        if up.cancel("replaced by SignedUpdateFirmware %d" % rid):
            canceled = True
        n, e = cert.rsa
        owed = self.doc.get("owed")  # (the replaced job's status: kept until queued)
        self.doc = {"rid": rid, "ph": "get", "url": fw["location"],
                    "at": _when(fw["retrieveDateTime"]), "inst": _when(fw.get("installDateTime")),
                    "tries": 3 if retries is None else max(1, min(retries, MAX_TRIES)),
                    "iv": 60 if interval is None else max(0, min(interval, MAX_WAIT_S)),
                    "key": ["%x" % n, e], "sig": fw["signature"]}
        if owed:
            self.doc["owed"] = owed
        self._save()  # from now on a power cut resumes the job
        self.last = None  # until it says something: ota's Idle
        self.diag.after(self._spawn)
        return {"status": "AcceptedCanceled" if canceled else "Accepted"}

    async def _spawn(self):
        self._task = asyncio.create_task(self._job(False))

    async def _end(self, st):
        # The job's own final status (not one of ota's): no job on any more.
        d = self.doc
        rid = d["rid"]
        d["rid"] = None
        d["st"], d["lr"] = st, rid  # the trigger's answer after a boot
        self._save()
        await self._notify(st, rid, True)

    async def _job(self, resumed):
        from ota.slots import exists

        d = self.doc
        rid = d["rid"]
        path = self.store.path(_FILE, "")
        try:
            if resumed:
                log.info(_TAG, "request %d resumed after the reboot (%s)", rid, d["ph"])
                # Its statuses go out once the CSMS can hear them (the session has no event for
                # it: diag/csr.py polls the same way).
                while not self.diag.s.online():
                    await asyncio.sleep(1)
            if d["ph"] == "get":
                if not await self._get(path, rid, resumed):
                    return
                d["ph"] = "wait"
                self._save()
            if not exists(path):
                log.warn(_TAG, "firmware of request %d lost before its installation", rid)
                await self._end("InstallationFailed")
                return
            inst = d.get("inst", 0)
            if inst > clock.now() + 2:  # (the retrieve time's rule below)
                await self._notify("InstallScheduled", rid)
            while inst > clock.now():
                await asyncio.sleep(min(inst - clock.now(), 60))
            d["ph"] = "ota"
            self._save()
            why = self.fw.updater.local(path, signed=True)
            path = None  # ota has it now
            if why:
                log.warn(_TAG, "install refused: %s", why)
                await self._end("InstallationFailed")
        finally:
            if path is not None:
                try:
                    import os

                    os.remove(path)
                except OSError:
                    pass
            self._task = None
            self.diag.sec.settle()

    async def _get(self, path, rid, resumed):
        # Schedule, download, signature. -> True once the file is verified (the job's end
        # reported otherwise).
        from ota.update import MAX_TRIES, MAX_WAIT_S, SYNC_BYTES, _final, _why, fetch

        d = self.doc
        # (capped again: a job an older build saved uncapped, as ota/update.py's _boot())
        d["iv"] = min(d["iv"], MAX_WAIT_S)
        at = d["at"]
        # A retrieve time within the clock's own granularity (whole seconds, set from the
        # CSMS's) is "now": it is waited for but not announced as a schedule.
        if at > clock.now() + 2:
            await self._notify("DownloadScheduled", rid)
        while at > clock.now():
            await asyncio.sleep(min(at - clock.now(), 60))
        await self._notify("Downloading", rid)
        ok = False
        attempts = min(d["tries"], MAX_TRIES)
        up = self.fw.updater
        # The tries made and the next one's time are saved at each failure: a boot goes on with
        # the count (`retries` is how many times, not how many a boot) and waits out the rest
        # of retryInterval (at most all of it: a clock that went back).
        wait = min(d.get("nx", 0) - clock.now(), d["iv"])
        if wait > 0:
            await asyncio.sleep(wait)
        while d.setdefault("n", 0) < attempts:
            try:
                # http(s):// or ftp:// (ota/update.py's fetch: net/http.py, net/ftp.py); after a
                # reboot the partial file is resumed, synced to flash as it comes as ota's own.
                # Bounded as ota's own download (free flash and the partial file, less its
                # reserve for the store): too big is final.
                room = up._room(False)
                if room is not None:
                    room += up.slots.tree_bytes(path)
                val = [d.get("val")]  # (the partial file's validator: net/http.py)
                n = await fetch(d["url"], path, self.diag.settings, self.diag.board,
                                resume=resumed or d["n"] > 0, max_size=room,
                                sync_every=SYNC_BYTES, validator=val)
                log.info(_TAG, "downloaded %d bytes", n)
                ok = True
                break
            except Exception as e:
                if isinstance(e, asyncio.CancelledError):
                    raise
                d["n"] += 1
                d["val"] = val[0]  # saved with the next try's time
                log.warn(_TAG, "download %d/%d failed: %s", d["n"], attempts, _why(e))
                if _final(e):
                    break  # a retry cannot mend it (HTTP 404, FTP 530 or 550, ...)
                if d["n"] < attempts:
                    d["nx"] = clock.now() + d["iv"]
                    self._save()
                    await asyncio.sleep(d["iv"])
        if not ok:
            await self._end("DownloadFailed")
            return False
        await self._notify("Downloaded", rid)
        try:
            sig = binascii.a2b_base64(d["sig"])
        except ValueError:
            sig = b""
        digest = await _sha256(path)
        scheme = _verify((int(d["key"][0], 16), d["key"][1]), sig, digest)
        if scheme is None:
            log.warn(_TAG, "firmware of request %d: signature does not verify", rid)
            self.diag.sec.add("InvalidFirmwareSignature", "request %d" % rid)
            await self._end("InvalidSignature")
            return False
        log.info(_TAG, "firmware of request %d: %s signature verified", rid, scheme)
        await self._notify("SignatureVerified", rid)
        return True


def _when(s):
    # A request's date-time -> clock seconds (0, "now", when absent or unreadable).
    try:
        return clock.parse_iso(s) if s else 0
    except ValueError:
        return 0


def _verify(key, sig, digest):
    # -> the scheme the signature verifies with, or None. RSA-PSS with SHA-256 is the 1.6
    # security whitepaper's (OCTT TC_080_CS); PKCS#1 v1.5, what this charger took before, stays
    # accepted. One pow for both (rsa.open_sig); the PSS check is loaded for this only.
    em = rsa.open_sig(key[0], key[1], sig)
    if em is None:
        return None
    from ota import pss
    from supervisor import drop

    ok = pss.check(em, key[0], digest)
    drop("ota.pss")
    if ok:
        return "RSA-PSS"
    return "RSA PKCS#1 v1.5" if rsa.pkcs1(em, digest) else None


async def _sha256(path):
    h = hashlib.sha256()
    buf = bytearray(1024)
    mv = memoryview(buf)
    f = open(path, "rb")
    try:
        while True:
            n = f.readinto(buf)
            if not n:
                return h.digest()
            h.update(mv[:n])
            await asyncio.sleep_ms(0)  # a yield per KiB: the loop runs on
    finally:
        f.close()
