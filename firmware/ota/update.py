# The firmware update job: download (or a local upload) -> check -> install into the inactive
# slot -> trial boot -> commit after proof, or rollback. One job at a time; its phase is a store
# document written at each phase change (never per chunk), so a power cut anywhere resumes it:
#   wait      until retrieveDate
#   download  the bundle streamed to flash (ota_bundle.fw beside main.py) over http(s)://
#             (net/http.py) or ftp:// (net/ftp.py); HTTP Range or FTP REST resumes it after a
#             network cut or a power cut (the file is synced every SYNC_BYTES); a cut in a
#             retry's wait leaves the boot the rest of retryInterval to wait
#   verify    signature, manifest, every file's hash (bundle.check)
#   install   waits until no transaction runs, holds the connector Unavailable, checks again,
#             unpacks into the inactive slot, sets the trial boot record, resets
#   trial     the new version runs on trial (main.py counts its boots); it commits itself once
#             it proved itself (PROOF below), else main.py falls back and the old version,
#             finding boot_note, reports InstallationFailed with the reason
# Status changes go to `listeners` (fn(status)): the OCPP module sends FirmwareStatusNotification.
import asyncio
import time

import clock
import log
from ota.slots import Slots, exists, remove

_TAG = "ota"
_DOC = "ota"
BUNDLE = "ota_bundle.fw"
SYNC_BYTES = const(32768)
_RESERVE = const(16384)  # flash kept free for the store and journals during an update
_IDLE, _WAIT, _DOWNLOAD, _VERIFY, _INSTALL, _TRIAL = ("idle", "wait", "download", "verify",
                                                    "install", "trial")
_ITRIAL = "itrial"  # an interpreter image on trial (ota/image.py)
_KEEP = "boot_slot.img"  # the committed slot, set aside while an image's frozen app is tried
# PROOF: the trial version commits once every part was built and runs (this task is gathered
# with them), the connector task has run, and BootNotification was Accepted; or after
# `ota_trial_s` seconds (setting, default TRIAL_S) without a crash, where the CSMS answered its
# BootNotification at all or the bundle came from a local upload (maybe no CSMS there). A job
# the CSMS asked for whose version never reached it rolls back (once no session runs): it would
# leave the charger out of the CSMS's reach for good.
TRIAL_S = const(600)
# A CSMS's retries and retryInterval (UpdateFirmware, SignedUpdateFirmware: diag/signedfw.py)
# are capped as GetDiagnostics' are: past ~6.2 days an ESP32's asyncio.sleep overflows its
# ticks (2**70 raised OverflowError on any port), and endless tries keep a job Downloading.
MAX_TRIES = const(10)
MAX_WAIT_S = const(86400)
_SETTLE_MS = const(2000)
CURRENT = None  # the charger's Updater, for the hotspot's local upload (ota/local.py)

DEFAULTS = {
    "phase": _IDLE,
    "status": "Idle",  # the last FirmwareStatus
    "sent": True,  # that status reached the CSMS
    "loc": "",
    "at": 0,  # retrieveDate, unix seconds
    "retries": 0,
    "interval": 0,
    "tries": 0,
    "version": "",  # the bundle's version, once checked
    "slot": "",  # the slot on trial
    "why": "",  # the last failure's reason
    "down": False,  # a downgrade was allowed for this job
}


def running_version():
    # "0" without a version.py (a source tree): below any bundle's, so no update is a downgrade.
    from supervisor import fw_version

    return fw_version("0")


class Updater:
    def __init__(self, store, board, settings, connector, events, board_name, root=""):
        self.store = store
        self.board = board
        self.settings = settings
        self.connector = connector
        self.events = events
        self.board_name = board_name
        self.root = root.rstrip("/") + "/" if root else ""
        self.slots = Slots(root)
        self.bundle = self.root + BUNDLE
        self.doc = store.load(_DOC, DEFAULTS)
        self.listeners = []
        self.proof = None  # fn() -> True once the CSMS accepted our BootNotification
        self.progress = None  # (bytes, total or None) while downloading
        self.trial = None
        self._task = None
        self._restart = False
        self._ended = False
        self._wake = asyncio.Event()
        self._boot()
        global CURRENT
        CURRENT = self

    # -- state ---------------------------------------------------------------------------
    def _save(self):
        try:
            self.store.save(_DOC, self.doc)
        except OSError as e:
            log.exc(_TAG, "saving the update state", e)

    def _status(self, st, why=None):
        d = self.doc
        d["status"] = st
        d["sent"] = False
        if why is not None:
            d["why"] = why
        for fn in self.listeners:
            try:
                fn(st)
            except Exception as e:
                log.exc(_TAG, "status listener", e)

    def _phase(self, ph):
        self.doc["phase"] = ph
        self._save()

    def busy(self):
        return self.doc["phase"] != _IDLE

    def current(self):
        # What TriggerMessage(FirmwareStatusNotification) answers: the job's state, or Idle.
        # An install waiting for the session to end is still Downloaded (the status sent last).
        d = self.doc
        if d["phase"] in (_IDLE, _WAIT):
            return "Idle"
        if d["phase"] == _DOWNLOAD:
            return "Downloading"
        if d["phase"] == _VERIFY or d["phase"] == _INSTALL and d["status"] != "Installing":
            return "Downloaded"
        return "Installing"

    def _fail(self, st, why):
        log.warn(_TAG, "firmware update failed (%s): %s", st, why)
        self.events.add("fw_failed", status=st, why=why[:80])
        remove(self.bundle)
        self.doc["phase"] = _IDLE
        self._status(st, why)
        self._save()

    def _boot(self):
        # What a boot finds: a trial running, a trial given up, or a job to resume.
        d = self.doc
        # A job an older build saved without request()'s caps: its retry's wait (up to 68
        # years; asyncio.sleep overflows on the ESP32) or its tries never ended.
        d["retries"] = min(d["retries"], MAX_TRIES)
        d["interval"] = min(d["interval"], MAX_WAIT_S)
        note = self.slots.take_note()
        self.trial = self.slots.trial()
        if (self.trial or d["phase"] in (_IDLE, _TRIAL, _ITRIAL)) and exists(self.bundle):
            remove(self.bundle)  # a cut came after the install, before the bundle went
        if d["phase"] == _ITRIAL:
            if self._image_boot():
                self.trial = "image"
            return
        if self.trial:
            log.info(_TAG, "running slot %s on trial", self.trial)
            d["phase"] = _TRIAL
            d["slot"] = self.trial
            return
        if note:
            log.warn(_TAG, "new firmware rolled back: %s", note)
            self._fail("InstallationFailed", "rolled back: " + note)
            return
        if d["phase"] == _TRIAL:
            if self.slots.committed() == d["slot"]:
                self._installed()  # committed just before a power cut
            else:
                self._fail("InstallationFailed", "slot %s was not booted" % d["slot"])
        elif d["phase"] in (_VERIFY, _INSTALL) and not exists(self.bundle):
            self._fail("InstallationFailed", "bundle lost before installation")

    # -- requests ------------------------------------------------------------------------
    def request(self, location, retrieve_at, retries=0, interval=0, allow_downgrade=False):
        # UpdateFirmware. -> None when accepted, or the reason it is ignored. A job of the CSMS's
        # that has not begun installing (waiting, downloading, checking, waiting for the session
        # to end: nothing written) is replaced, its bundle dropped; one installing or on trial
        # cannot be stopped, nor is a local upload's replaced (a signed job's is ended first:
        # ota/ocpp.py).
        d = self.doc
        if self.busy() and not self.replaceable():
            return "an update is being installed (%s)" % d["phase"]
        # A location it cannot download from is a job all the same, DownloadFailed at its first
        # try (fetch): ignored, the CSMS heard no status at all and waited for one for ever.
        self._stop_task()
        remove(self.bundle)
        d.update(loc=location, at=retrieve_at, retries=max(0, min(retries, MAX_TRIES)),
                 interval=max(0, min(interval, MAX_WAIT_S)),
                 tries=0, version="", why="", down=allow_downgrade, val=None)
        self.events.add("fw_update", loc=_show(location)[:80])
        self._phase(_WAIT)
        self._start()
        return None

    def local(self, path, allow_downgrade=False, signed=False):
        # A bundle uploaded at the charger (hotspot), already on flash at `path`; or `signed`:
        # the file of a SignedUpdateFirmware (diag/signedfw.py), which announced Downloaded.
        d = self.doc
        if d["phase"] in (_VERIFY, _INSTALL, _TRIAL, _ITRIAL):
            remove(path)
            return "an update is being installed (%s)" % d["phase"]
        self._stop_task()
        if path != self.bundle:
            remove(self.bundle)
            import os

            os.rename(path, self.bundle)
        loc = "signed" if signed else "local"
        d.update(loc=loc, tries=0, version="", why="", down=allow_downgrade)
        self.events.add("fw_update", loc=loc)
        if not signed:
            self._status("Downloaded")
        self._phase(_VERIFY)
        self._start()
        return None

    def replaceable(self):
        # A job not begun installing (nothing written): waiting, downloading, or a CSMS's
        # bundle being checked or waiting for the session to end; never a hotspot upload's.
        d = self.doc
        ph = d["phase"]
        return ph in (_WAIT, _DOWNLOAD) or ph in (_VERIFY, _INSTALL) and d["loc"] != "local" \
            and d["status"] != "Installing"

    def cancel(self, why):
        # A SignedUpdateFirmware replaces such a job (diag/signedfw.py; the whitepaper's
        # AcceptedCanceled): DownloadFailed before its file was whole, InstallationFailed after.
        # -> True when there was one.
        if not self.replaceable():
            return False
        st = "DownloadFailed" if self.doc["phase"] in (_WAIT, _DOWNLOAD) else "InstallationFailed"
        self._stop_task()
        self.progress = None
        self._fail(st, why)
        return True

    def _stop_task(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _start(self):
        self._wake.set()

    # -- the job -------------------------------------------------------------------------
    async def run(self):
        if self.trial:
            asyncio.create_task(self._prove())
        if self._restart:
            # Back from an image rollback with a slot to run: report, then restart into it.
            for _ in range(100 if self.listeners else 0):
                if self.doc["sent"]:
                    break
                await asyncio.sleep_ms(100)
            self.board.reset(True)
        while True:
            if self.doc["phase"] in (_WAIT, _DOWNLOAD, _VERIFY, _INSTALL):
                self._task = asyncio.create_task(self._job())
                try:
                    await self._task
                except asyncio.CancelledError:
                    pass
                except Exception as e:
                    log.exc(_TAG, "update job", e)
                    self._fail("InstallationFailed", "%s: %s" % (type(e).__name__, e))
                self._task = None
            if self.doc["phase"] in (_WAIT, _DOWNLOAD, _VERIFY, _INSTALL):
                continue  # a new request replaced the job
            self._wake.clear()
            await self._wake.wait()
            if self._ended:
                return

    def end(self):
        # The feature is dropped (ota/ocpp.py): run() returns, nothing refers to this updater.
        global CURRENT
        self._ended = True
        self._wake.set()
        if CURRENT is self:
            CURRENT = None

    async def _job(self):
        d = self.doc
        if d["phase"] == _WAIT or d["phase"] == _DOWNLOAD and d["tries"]:
            # retrieveDate; or, a boot in a retry's wait (`at` moved on at the failure), the rest
            # of retryInterval (at most all of it: a clock that went back)
            end = d["at"] if d["phase"] == _WAIT else min(d["at"], clock.now() + d["interval"])
            while True:
                left = end - clock.now()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, 60))
        if d["phase"] == _WAIT:
            self._phase(_DOWNLOAD)
        if d["phase"] == _DOWNLOAD:
            if not await self._download():
                return
        if d["phase"] == _VERIFY:
            if await self._check() is None:
                return
            self._phase(_INSTALL)
        if d["phase"] == _INSTALL:
            await self._install()

    def _room(self, replaced=True):
        # Flash the update may use: free space and any partial download, less the reserve; with
        # `replaced`, the inactive slot's too, which the install empties first (a download
        # cannot count on it: it is still there).
        free = self.slots.free_bytes()
        if free is None:
            return None
        other = self.slots.tree_bytes(self.slots.dir(self.slots.inactive())) if replaced else 0
        return free + other + self.slots.tree_bytes(self.bundle) - _RESERVE

    async def _download(self):
        d = self.doc
        url = d["loc"]
        self._status("Downloading")
        while True:
            room = self._room(False)
            # The partial bundle's validator (net/http.py: a resume of a file that changed on
            # the server starts over), saved as soon as a try learns it, for a boot's resume.
            self._val = [d.get("val")]
            try:
                # The whole room: an image bundle needs no more (its image goes into an app
                # partition); the check then refuses an application that would not fit unpacked.
                n = await fetch(url, self.bundle, self.settings, self.board, resume=True,
                                max_size=room, validator=self._val,
                                progress=self._progress, sync_every=SYNC_BYTES)
                log.info(_TAG, "downloaded %d bytes from %s", n, _show(url))
                self.progress = None
                self._status("Downloaded")
                self._phase(_VERIFY)
                return True
            except Exception as e:  # HttpError, FtpError, SecurityError, OSError (flash full)
                why = _why(e)
                if isinstance(e, asyncio.CancelledError):
                    raise
                d["tries"] += 1
                if d["tries"] >= max(1, d["retries"]) or _final(e):
                    self.progress = None
                    self._fail("DownloadFailed", why)
                    return False
                log.warn(_TAG, "download try %d of %d failed: %s; again in %d s", d["tries"],
                         d["retries"], why, d["interval"])
                d["at"] = clock.now() + d["interval"]
                self._save()
                await asyncio.sleep(d["interval"])

    def _progress(self, done, total):
        self.progress = (done, total)
        if self._val[0] != self.doc.get("val"):
            self.doc["val"] = self._val[0]
            self._save()

    async def _check(self):
        from ota import bundle, keys

        d = self.doc
        room = self._room()
        # A bundle refused before anything is written: SignedFirmwareStatus has a value for it
        # (the whitepaper's InstallVerificationFailed), FirmwareStatus has not.
        st = "InstallVerificationFailed" if d["loc"] == "signed" else "InstallationFailed"
        try:
            b = await bundle.check(self.bundle, keys.load(self.root), self.board_name,
                                   running_version(), d["down"],
                                   None if room is None else room - _size(self.bundle))
        except bundle.Refused as e:
            self._fail(st, str(e))
            return None
        if "keys" in b.manifest:
            try:
                keys.check_rotation(keys.load(self.root), b.manifest["keys"])
            except ValueError as e:
                self._fail(st, str(e))
                return None
        d["version"] = b.version
        log.info(_TAG, "bundle %s checked: %d files, %d bytes", b.version,
                 len(b.manifest["files"]), b.size())
        return b

    async def _no_session(self, what):
        conn = self.connector
        if conn.session is not None:
            log.info(_TAG, "%s waits for the transaction to end", what)
            while conn.session is not None:
                await asyncio.sleep(1)

    async def _install(self):
        conn = self.connector
        await self._no_session("installation")
        conn.hold(True)
        self._status("Installing")
        try:
            b = await self._check()
            if b is None:
                conn.hold(False)
                return
            if b.manifest.get("kind") == "image":
                s = await self._install_image(b)
            else:
                s = self.slots.inactive()
                from ota import bundle

                await bundle.install(b, self.slots.dir(s))
                self.slots.start_trial(s)
        except BaseException as e:
            conn.hold(False)
            if isinstance(e, Exception):
                self._fail("InstallationFailed", "%s: %s" % (type(e).__name__, e))
                return
            raise
        if self.doc["phase"] != _ITRIAL:
            self.doc["slot"] = s
            self._phase(_TRIAL)
        remove(self.bundle)
        self.events.add("fw_trial", version=self.doc["version"], slot=s)
        log.info(_TAG, "version %s installed in slot %s: restarting to try it",
                 self.doc["version"], s)
        if self.doc["loc"] == "signed":
            # SignedFirmwareStatus has InstallRebooting (FirmwareStatus has not). Saved unsent:
            # a reset before it went out sends it after the boot (ota/ocpp.py, unsent()).
            self._status("InstallRebooting")
            self._save()
        # Let the last notification go out first (bounded), then restart into the trial.
        for _ in range(50 if self.listeners else 0):
            if self.doc["sent"]:
                break
            await asyncio.sleep_ms(100)
        # The hold starts no session; should one run all the same, the restart waits for it:
        # a reset never cuts a transaction off.
        await self._no_session("the restart")
        self.board.reset(True)

    async def _install_image(self, b):
        # The image into the next app partition, then the boot choice; the slot in use is set
        # aside so the image's own (frozen) application runs. -> the partition's label.
        parts = self.board.app_partitions()
        if parts is None:
            raise ValueError("this board cannot update its interpreter")
        from ota import image

        nxt = parts[1]
        name, size, sha = b.manifest["files"][0]
        f = open(b.path, "rb")
        try:
            f.seek(b.data_off)
            await image.write(nxt, f, size, sha)
        finally:
            f.close()
        keep = self.slots.path(_KEEP)
        if self.slots.committed() and not exists(keep):
            import os

            os.rename(self.slots.path("boot_slot"), keep)
        # The phase first: a cut after set_boot() must find the image on trial, never install
        # it again over the partition that is now the fallback.
        self.doc["slot"] = image.label(nxt)
        self._phase(_ITRIAL)
        try:
            nxt.set_boot()
        except OSError:
            self._phase(_INSTALL)
            raise
        log.info(_TAG, "image %s written to %s, set to boot once", b.version, image.label(nxt))
        return image.label(nxt)

    def _image_boot(self):
        # A boot after an image was installed: running it (on trial), or the bootloader went
        # back. -> True when on trial.
        from ota import image

        parts = self.board.app_partitions()
        running = image.label(parts[0]) if parts else None
        if running == self.doc["slot"]:
            log.info(_TAG, "running image %s on trial", running)
            return True
        keep = self.slots.path(_KEEP)
        if exists(keep):
            import os

            os.rename(keep, self.slots.path("boot_slot"))
            self._restart = True  # the slot's application comes back at the next boot
        self._fail("InstallationFailed", "rolled back: image %s not proven, the bootloader "
                   "went back to %s" % (self.doc["slot"], running))
        return False

    # -- trial ---------------------------------------------------------------------------
    async def _prove(self):
        t0 = time.ticks_ms()
        limit = self.settings.get("ota_trial_s", TRIAL_S) * 1000
        conn = self.connector
        heard = self.proof is None or self.doc["loc"] == "local"  # nothing to reach
        while True:
            await asyncio.sleep_ms(250)
            up = time.ticks_diff(time.ticks_ms(), t0)
            ran = conn.started()
            reg = self.proof() if self.proof is not None else None
            heard = heard or reg is not None
            if up >= _SETTLE_MS and ran and reg == "Accepted":
                why = "BootNotification accepted"
                break
            if up >= limit and ran:
                if heard:
                    why = "%d s without a crash" % (up // 1000)
                    break
                if conn.session is None:
                    self._give_up("never reached the CSMS in %d s" % (up // 1000))
                    return
        self.commit(why)

    def _give_up(self, why):
        # The trial version rolls itself back: main.py's give_up() (a note, no trial record), or
        # for an image a reset before it was marked valid; the old version reports why.
        log.warn(_TAG, "trial of %s given up: %s", self.trial, why)
        if self.trial != "image":
            from ota.slots import write

            write(self.slots.path("boot_note"), "slot %s: %s" % (self.trial, why))
            remove(self.slots.path("boot_trial"))
        self.board.reset(True)

    def commit(self, why):
        # The trial version proved itself: it becomes the committed one (a key rotation it
        # carries takes effect now), and the CSMS hears Installed.
        from ota import bundle, keys

        s = self.trial
        if s == "image":
            self._commit_image(why)
            return
        m = bundle.read_manifest(self.slots.manifest_path(s)) or {}
        if "keys" in m:
            try:
                ring = keys.check_rotation(keys.load(self.root), m["keys"])
                keys.apply_rotation(m["keys"], self.root)
                self.events.add("fw_keys", keys=",".join(sorted(ring)))
            except ValueError as e:
                log.warn(_TAG, "key rotation not applied: %s", e)
        self.slots.commit(s)
        self.trial = None
        log.info(_TAG, "slot %s proved itself (%s)", s, why)
        self._installed()

    def _commit_image(self, why):
        # The image proved itself: the bootloader keeps it; the application frozen in it is
        # the one that runs from now on, so the slots (older applications) go.
        from supervisor import rare

        self.board.app_partitions()[0].mark_app_valid_cancel_rollback()
        for name in ("app_a", "app_b"):
            rare("store.wipe", "rmtree", self.slots.path(name), True, True)  # (strict: raises)
        remove(self.slots.path(_KEEP))
        remove(self.slots.path("boot_slot"))
        self.trial = None
        log.info(_TAG, "image %s proved itself (%s)", self.doc["slot"], why)
        self._installed()

    def _installed(self):
        d = self.doc
        d["phase"] = _IDLE
        d["why"] = ""
        self.events.add("fw_installed", version=running_version())
        self._status("Installed")
        self._save()

    # -- reporting -----------------------------------------------------------------------
    def unsent(self):
        # A status a reboot kept from the CSMS (Installed, *Failed, InstallRebooting), to send
        # once.
        d = self.doc
        return None if d["sent"] else d["status"]

    def delivered(self, st):
        if self.doc["status"] == st and not self.doc["sent"]:
            self.doc["sent"] = True
            if self.doc["phase"] in (_IDLE, _TRIAL, _ITRIAL):
                self._save()  # final states only: a lost Downloading is not worth a write


def _size(p):
    try:
        import os

        return os.stat(p)[6]
    except OSError:
        return 0


def _final(e):
    # Failures a retry cannot mend: the bundle does not fit (net/: "... that fit"), the URL is
    # wrong, the FTP server refused the login (530) or has no such file (550), or the location
    # is bad (501).
    s = getattr(e, "status", None)
    return (("that fit" in str(e) or s in (400, 401, 403, 404, 410))
            or (type(e).__name__ == "FtpError" and e.code in (501, 530, 550)))


def _why(e):
    # A failure's reason for the log and the event: never the URL's credentials.
    name = type(e).__name__
    if name == "HttpError":
        return str(e)
    return ("FTP: %s" if name == "FtpError" else name + ": %s") % e


def _show(url):
    # The location for a log line or an event (both end up in diagnostics uploads): any
    # scheme's credentials as "***", no query or fragment (tokens ride there).
    return log.url(url.split("#")[0].split("?")[0])


def _ftp_loc(url):
    # -> ((host, port, user, password, path), None) of an ftp:// location naming a file, or
    # (None, the reason it is refused). diag/location.py's rules (percent-decoding, no "..",
    # no control characters; anonymous without a user).
    from diag import location

    try:
        _, host, port, user, password, path = location.parse(url, "")
    except location.BadLocation as e:
        return None, "bad ftp:// location: %s" % e
    if path.endswith("/"):
        return None, "ftp:// location names a folder, not a file"
    return (host, port, user, password, path), None


def fetch(url, path, settings, board, **kw):
    # One download try of `url` into the file at `path`: http(s):// by net/http.py (https://
    # checked against the configured CA), ftp:// by net/ftp.py; kw: resume, max_size, progress,
    # sync_every (both take them), validator (HTTP's: net/http.py). -> (awaited) the file's
    # size. Used by the job here and by SignedUpdateFirmware (diag/signedfw.py). The server's
    # name is asked of the board's resolver (net/dns.py), not of getaddrinfo. What the try loads
    # (net/, ocpp_client.security with its TLS context) is out of the heap after it (netdrop.py).
    from supervisor import rare

    return rare("netdrop", "run", _fetch(url, path, settings, board, kw))


async def _fetch(url, path, settings, board, kw):
    kw["resolver"] = board.dns_server()
    if url.startswith("ftp://"):
        kw.pop("validator", None)  # (HTTP's alone)
        from net import ftp

        loc, why = _ftp_loc(url)
        if loc is None:
            raise ftp.FtpError(why, 501)
        host, port, user, password, rpath = loc
        return await ftp.retr(host, port, user, password, rpath, path, **kw)
    from net import http

    if not (url.startswith("http://") or url.startswith("https://")):
        raise http.HttpError("location must be http://, https:// or ftp://", 400)  # final
    # The TLS context when an https:// URL needs it: the location's, or a redirect's from http://
    kw["tls"] = lambda: http.tls(settings, board)
    auth = None
    if "@" in url:
        # Credentials in the URL become HTTP Basic, as for uploads (diag/upload.py): net/http.py
        # takes none in URLs.
        import binascii

        from diag import location

        try:
            scheme, host, port, user, password, rpath = location.parse(url, "")
        except location.BadLocation as e:
            raise http.HttpError("bad location: %s" % e, 400)  # no retry mends it
        if user is not None:
            url = "%s://%s:%d%s" % (scheme, ("[%s]" % host) if ":" in host else host, port,
                                    rpath)
            tok = binascii.b2a_base64(("%s:%s" % (user, password or "")).encode())[:-1]
            auth = {"Authorization": "Basic " + tok.decode()}
    return await http.download(url, path, headers=auth, **kw)
