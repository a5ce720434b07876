# The firmware update job: download (or a local upload) -> check -> install into the inactive
# slot -> trial boot -> commit after proof, or rollback. One job at a time; its phase is a store
# document written at each phase change (never per chunk), so a power cut anywhere resumes it:
#   wait      until retrieveDate
#   download  the bundle streamed to flash (ota_bundle.fw beside main.py), HTTP Range resumes it
#             after a network cut or a power cut (the file is synced every SYNC_BYTES)
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
# PROOF: the trial version commits once every part was built and runs (this task is gathered
# with them), the connector task has run, and BootNotification was Accepted; or, with the CSMS
# away, after `ota_trial_s` seconds (setting, default TRIAL_S) without a crash.
TRIAL_S = const(600)
_SETTLE_MS = const(2000)

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
    "local": False,  # the bundle came from a local upload
}


def running_version():
    try:
        import version

        return version.VERSION
    except ImportError:
        return "0"


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
        self._wake = asyncio.Event()
        self._boot()

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
        d = self.doc
        if d["phase"] in (_IDLE, _WAIT):
            return "Idle"
        if d["phase"] == _DOWNLOAD:
            return "Downloading"
        if d["phase"] == _VERIFY:
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
        note = self.slots.take_note()
        self.trial = self.slots.trial()
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
        # UpdateFirmware. -> None when accepted, or the reason it is ignored. A job that is
        # still waiting or downloading is replaced (its download dropped); one that is checking
        # or installing cannot be stopped.
        d = self.doc
        if d["phase"] in (_VERIFY, _INSTALL, _TRIAL):
            return "an update is being installed (%s)" % d["phase"]
        if not (location.startswith("http://") or location.startswith("https://")):
            return "location must be http:// or https://"
        self._stop_task()
        remove(self.bundle)
        d.update(loc=location, at=retrieve_at, retries=max(0, retries), interval=max(0, interval),
                 tries=0, version="", why="", down=allow_downgrade, local=False)
        self.events.add("fw_update", loc=location[:80])
        self._phase(_WAIT)
        self._start()
        return None

    def local(self, path, allow_downgrade=False):
        # A bundle uploaded at the charger (hotspot), already on flash at `path`.
        d = self.doc
        if d["phase"] in (_VERIFY, _INSTALL, _TRIAL):
            remove(path)
            return "an update is being installed (%s)" % d["phase"]
        self._stop_task()
        if path != self.bundle:
            remove(self.bundle)
            import os

            os.rename(path, self.bundle)
        d.update(loc="local", tries=0, version="", why="", down=allow_downgrade, local=True)
        self.events.add("fw_update", loc="local")
        self._status("Downloaded")
        self._phase(_VERIFY)
        self._start()
        return None

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

    async def _job(self):
        d = self.doc
        if d["phase"] == _WAIT:
            while True:
                left = d["at"] - clock.now()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, 60))
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

    def _room(self):
        # Flash for the bundle and its unpacked copy: free space, plus the inactive slot (the
        # job replaces it) and any partial download.
        free = self.slots.free_bytes()
        if free is None:
            return None
        other = self.slots.dir(self.slots.inactive())
        return free + self.slots.tree_bytes(other) + self.slots.tree_bytes(self.bundle) - _RESERVE

    async def _download(self):
        from net import http

        d = self.doc
        url = d["loc"]
        self._status("Downloading")
        while True:
            room = self._room()
            try:
                ctx = http.tls(self.settings, self.board) if url.startswith("https:") else None
                n = await http.download(url, self.bundle, ssl_ctx=ctx, resume=True,
                                        max_size=None if room is None else room // 2,
                                        progress=self._progress, sync_every=SYNC_BYTES)
                log.info(_TAG, "downloaded %d bytes from %s", n, url.split("?")[0])
                self.progress = None
                self._status("Downloaded")
                self._phase(_VERIFY)
                return True
            except Exception as e:  # HttpError, SecurityError, OSError (flash full)
                why = str(e) if isinstance(e, http.HttpError) else "%s: %s" % (type(e).__name__, e)
                if isinstance(e, asyncio.CancelledError):
                    raise
                d["tries"] += 1
                if d["tries"] >= max(1, d["retries"]) or _final(e):
                    self.progress = None
                    self._fail("DownloadFailed", why)
                    return False
                log.warn(_TAG, "download try %d of %d failed: %s; again in %d s", d["tries"],
                         d["retries"], why, d["interval"])
                self._save()
                await asyncio.sleep(d["interval"])

    def _progress(self, done, total):
        self.progress = (done, total)

    async def _check(self):
        from ota import bundle, keys

        d = self.doc
        room = self._room()
        try:
            b = await bundle.check(self.bundle, keys.load(self.root), self.board_name,
                                   running_version(), d["down"],
                                   None if room is None else room - _size(self.bundle))
        except bundle.Refused as e:
            self._fail("InstallationFailed", str(e))
            return None
        if "keys" in b.manifest:
            try:
                keys.check_rotation(keys.load(self.root), b.manifest["keys"])
            except ValueError as e:
                self._fail("InstallationFailed", str(e))
                return None
        d["version"] = b.version
        log.info(_TAG, "bundle %s checked: %d files, %d bytes", b.version,
                 len(b.manifest["files"]), b.size())
        return b

    async def _install(self):
        conn = self.connector
        if conn.session is not None:
            log.info(_TAG, "installation waits for the transaction to end")
            while conn.session is not None:
                await asyncio.sleep(1)
        _hold(conn, True)
        self._status("Installing")
        try:
            b = await self._check()
            if b is None:
                _hold(conn, False)
                return
            s = self.slots.inactive()
            from ota import bundle

            await bundle.install(b, self.slots.dir(s))
            self.slots.start_trial(s)
        except BaseException as e:
            _hold(conn, False)
            if isinstance(e, Exception):
                self._fail("InstallationFailed", "%s: %s" % (type(e).__name__, e))
                return
            raise
        self.doc["slot"] = s
        self._phase(_TRIAL)
        remove(self.bundle)
        self.events.add("fw_trial", version=self.doc["version"], slot=s)
        log.info(_TAG, "version %s installed in slot %s: restarting to try it",
                 self.doc["version"], s)
        # Let the Installing notification go out first (bounded), then restart into the trial.
        for _ in range(50):
            if self.doc["sent"]:
                break
            await asyncio.sleep_ms(100)
        self.board.reset(True)

    # -- trial ---------------------------------------------------------------------------
    async def _prove(self):
        t0 = time.ticks_ms()
        limit = self.settings.get("ota_trial_s", TRIAL_S) * 1000
        conn = self.connector
        while True:
            await asyncio.sleep_ms(250)
            up = time.ticks_diff(time.ticks_ms(), t0)
            ran = getattr(conn, "_duty", None) is not None
            if up >= _SETTLE_MS and ran and self.proof is not None and self.proof():
                why = "BootNotification accepted"
                break
            if up >= limit and ran:
                why = "%d s without a crash" % (up // 1000)
                break
        s = self.trial
        from ota import bundle, keys

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

    def _installed(self):
        d = self.doc
        d["phase"] = _IDLE
        d["why"] = ""
        self.events.add("fw_installed", version=running_version())
        self._status("Installed")
        self._save()

    # -- reporting -----------------------------------------------------------------------
    def unsent(self):
        # A final status a reboot kept from the CSMS (Installed, *Failed), to send once.
        d = self.doc
        return None if d["sent"] else d["status"]

    def delivered(self, st):
        if self.doc["status"] == st and not self.doc["sent"]:
            self.doc["sent"] = True
            if self.doc["phase"] in (_IDLE, _TRIAL):
                self._save()  # final states only: a lost Downloading is not worth a write


def _hold(conn, on):
    # Unavailable while installing, not persisted: the restart that follows ends it (or, on a
    # failure, the stored availability comes back).
    if on:
        conn._ota_operative = conn.operative
        conn.operative = False
    else:
        conn.operative = getattr(conn, "_ota_operative", True)
    conn._apply()


def _size(p):
    try:
        import os

        return os.stat(p)[6]
    except OSError:
        return 0


def _final(e):
    # Failures a retry cannot mend: the bundle does not fit, the URL is wrong.
    s = getattr(e, "status", None)
    return "fit" in str(e) or s in (400, 401, 403, 404, 410)
