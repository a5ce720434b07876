# SignedUpdateFirmware (security extension): the signing certificate must be issued by an
# installed ManufacturerRootCertificate (RSA, sha256WithRSAEncryption, checked here with big-int
# pow) and valid now; the downloaded file must carry the request's signature (RSA-PSS over its
# SHA-256, as the 1.6 security whitepaper says, or PKCS#1 v1.5; by the signing certificate's
# key). Only then does the file go to the same install path as UpdateFirmware (ota/: the
# bundle's own signature and manifest, install into the other slot, trial boot, commit or
# rollback). Every step goes out as
# SignedFirmwareStatusNotification with the requestId (ota's notifications are routed here
# while a signed job is on, across the trial reboot: the job is a store document).
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
        self.doc = self.store.load(_DOC, {"rid": None})
        self._task = None
        fw = self.fw
        if fw is not None:
            fw.signed = self._route  # ota's statuses, while a signed job is on

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

    def _route(self, st):
        # ota's status -> (action, payload) to send instead, or None (ota sends its own). Asked
        # once a status, at its first try (ota/ocpp.py): its retries keep the answer.
        rid = self.doc["rid"]
        if rid is None:
            return None
        if st in _FINAL:
            self.doc["rid"] = None
            self._save()
        return "SignedFirmwareStatusNotification", {"status": st, "requestId": rid}

    async def _notify(self, st, rid):
        await self.diag._send("SignedFirmwareStatusNotification", {"status": st, "requestId": rid})

    # -- the signing certificate ------------------------------------------------------------
    def check_certificate(self, pem):
        # -> (x509.Cert, None) or (None, reason)
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
        try:
            sig = binascii.a2b_base64(fw["signature"])
        except ValueError:
            sig = b""
        up = self.fw.updater if self.fw is not None else None
        if up is None:
            log.warn(_TAG, "SignedUpdateFirmware %d rejected: no update path in this build", rid)
            return {"status": "Rejected"}
        if up.doc["phase"] in ("verify", "install", "trial", "itrial"):
            log.warn(_TAG, "SignedUpdateFirmware %d rejected: an update is being installed", rid)
            return {"status": "Rejected"}
        try:
            at = clock.parse_iso(fw["retrieveDateTime"])
        except ValueError:
            at = 0
        retries = p.get("retries")
        interval = p.get("retryInterval")
        canceled = self._task is not None
        if canceled:
            self._task.cancel()
            self._task = None
        job = (fw["location"], at, 3 if retries is None else max(1, retries),
               60 if interval is None else max(0, interval), cert.rsa, sig, rid)
        self.diag.s.after(self._spawn, job)
        return {"status": "AcceptedCanceled" if canceled else "Accepted"}

    async def _spawn(self, job):
        self._task = asyncio.create_task(self._job(*job))

    async def _job(self, url, at, attempts, interval, key, sig, rid):
        from ota.update import _final, _why, fetch

        path = self.store.path(_FILE, "")
        try:
            # A retrieve time within the clock's own granularity (whole seconds, set from the
            # CSMS's) is "now": it is waited for but not announced as a schedule.
            if at > clock.now() + 2:
                await self._notify("DownloadScheduled", rid)
                while at > clock.now():
                    await asyncio.sleep(min(at - clock.now(), 60))
            await self._notify("Downloading", rid)
            ok = False
            for i in range(attempts):
                try:
                    # http(s):// or ftp:// (ota/update.py's fetch: net/http.py, net/ftp.py)
                    n = await fetch(url, path, self.diag.settings, self.diag.board,
                                    resume=i > 0)
                    log.info(_TAG, "downloaded %d bytes", n)
                    ok = True
                    break
                except Exception as e:
                    if isinstance(e, asyncio.CancelledError):
                        raise
                    log.warn(_TAG, "download %d/%d failed: %s", i + 1, attempts, _why(e))
                    if _final(e):
                        break  # a retry cannot mend it (HTTP 404, FTP 530 or 550, ...)
                    if i + 1 < attempts:
                        await asyncio.sleep(interval)
            if not ok:
                await self._notify("DownloadFailed", rid)
                return
            await self._notify("Downloaded", rid)
            digest = await _sha256(path)
            scheme = _verify(key, sig, digest)
            if scheme is None:
                log.warn(_TAG, "firmware of request %d: signature does not verify", rid)
                self.diag.sec.add("InvalidFirmwareSignature", "request %d" % rid)
                await self._notify("InvalidSignature", rid)
                return
            log.info(_TAG, "firmware of request %d: %s signature verified", rid, scheme)
            await self._notify("SignatureVerified", rid)
            self.doc["rid"] = rid
            self._save()
            why = self.fw.updater.local(path, signed=True)
            path = None  # ota has it now
            if why:
                log.warn(_TAG, "install refused: %s", why)
                self.doc["rid"] = None
                self._save()
                await self._notify("InstallationFailed", rid)
        finally:
            if path is not None:
                try:
                    import os

                    os.remove(path)
                except OSError:
                    pass
            self._task = None


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
