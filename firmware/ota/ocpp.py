# OCPP 1.6 Firmware Management, the update half (attached by ocpp_client/firmware.py):
# UpdateFirmware starts a job (ota/update.py), every status change goes out as
# FirmwareStatusNotification (in order, once online; a final status a reboot interrupted is sent
# after the next boot), TriggerMessage answers the job's current state (Idle when there is none).
import asyncio

import board as board_mod
import clock
import log
from ocpp_client.errors import CallError
from ota.update import Updater

_TAG = "ota"
_DEFAULT_RETRIES = const(3)
_DEFAULT_INTERVAL_S = const(60)
_QUEUE = const(8)


class Firmware:
    def __init__(self, s):
        self.s = s
        self.updater = u = Updater(s.store, s.board, s.settings, s.connector, s.events,
                                   board_mod.NAME)
        u.proof = lambda: s.registration  # the BootNotification's answer (None before one)
        u.listeners.append(self._changed)
        self._queue = []
        st = u.unsent()
        if st:
            self._queue.append(_kept(s.store, u.doc, st))
        self._kick = asyncio.Event()
        # SignedUpdateFirmware's job (diag/signedfw.py): route(status) -> (action, payload) or
        # None: it takes the statuses of the install it handed over, as
        # SignedFirmwareStatusNotification.
        sec = s.features.get("security_ext")
        d = getattr(sec, "diag", None)
        self.signed = None if d is None else d.signed_job()  # (attached again: see _drop)
        self._head = None  # the first queued status as it goes out (routed at its first try)
        self._other = False  # a status said with no signed job to route it (_not_signed)

    async def update(self, p):
        try:
            at = clock.parse_iso(p["retrieveDate"])
        except ValueError:
            at = 0
        retries = p.get("retries")
        interval = p.get("retryInterval")
        if self.updater.doc["loc"] == "signed":
            # A signed job's bundle checked or waiting for the session (nothing written) is
            # replaced as an UpdateFirmware's is; it ends InstallationFailed under its requestId.
            self.updater.cancel("replaced by UpdateFirmware")
        why = self.updater.request(
            p["location"], at,
            _DEFAULT_RETRIES if retries is None else retries,
            _DEFAULT_INTERVAL_S if interval is None else interval,
            allow_downgrade=bool(self.s.config.get("BorneAllowDowngrade")))
        if why:
            # 1.6 gives UpdateFirmware.conf no status: the request is answered and logged.
            log.warn(_TAG, "UpdateFirmware ignored: %s", why)
        elif self.signed is not None:
            self.signed.cancel()  # it replaces a signed job not yet installing, too
        return {}

    async def trigger(self, cid):
        st = self.updater.current()
        if st == "Idle" and self.signed is not None:
            st = self.signed.plain() or st  # a signed job before its install
        await self.s.rpc.call("FirmwareStatusNotification", {"status": st})

    def _changed(self, st):
        if len(self._queue) >= _QUEUE:
            self._queue.pop(0)
            self._head = None
        # Routed as it happens when a signed job can be asked: the status is the job's that
        # runs now (a replaced UpdateFirmware's DownloadFailed, queued while offline, went out
        # under the signed job's requestId once the link was back, ending it). A status queued
        # before (the one a reboot kept) is routed at its first try.
        sig = self.signed
        q = self._queue
        if sig is None and not self._other:
            self._other = True
            _not_signed(self.s.store)
        if sig is not None:
            # A status a reboot kept, not tried yet (offline), is routed first: this one may end
            # the signed job (Installed at the commit, before the link took the kept
            # InstallRebooting), and the kept one went out after it, as a plain, invalid one.
            for i in range(0 if self._head is None else 1, len(q)):
                if isinstance(q[i], str):
                    q[i] = sig.route(q[i]) or _plain(q[i])
        q.append(st if sig is None else sig.route(st) or _plain(st))
        self._kick.set()

    def tasks(self):
        return [self.updater.run(), ("fwstatus", self._send)]  # (name, fn): supervised

    async def _send(self):
        s = self.s
        while True:
            if not self._queue or not s.online():
                if not self._queue and self._ended():
                    # (attached for a look only: a trigger's answer, the hotspot's page)
                    self._drop()
                    return
                self._kick.clear()
                try:
                    await asyncio.wait_for(self._kick.wait(), 2)
                except asyncio.TimeoutError:
                    pass
                continue
            item = self._queue[0]
            if isinstance(item, str):
                st = item
                if self._head is None:
                    # Routed once: a retry goes out as the same message, even when the signed
                    # job that owned the status has ended and another job runs.
                    sent = self.signed.route(st) if self.signed is not None else None
                    self._head = sent or _plain(st)
            else:
                st = item[1]["status"]
                self._head = item
            try:
                await s.rpc.call(*self._head)
            except CallError as e:
                # Answered with a CALLERROR (a CSMS without Firmware Management: a local upload's
                # statuses; a CSMS's failure): dropped, as the transaction queue drops such a
                # message (txqrare.failed). Sent again every 2 s, it was for ever, each boot
                # anew, and held up every status behind it.
                log.warn(_TAG, "%s %s refused (%s): dropped", self._head[0], st, e.code)
            except Exception as e:
                log.warn(_TAG, "FirmwareStatusNotification %s not sent: %s", st, e)
                await asyncio.sleep(2)
                continue
            if self._queue and self._queue[0] is item:
                self._queue.pop(0)
            self._head = None
            self.updater.delivered(st)
            if not self._queue and self._ended():
                self._drop()
                return  # (supervised: a return ends it)

    def _ended(self):
        # The job over and its final status answered (a CALLERROR too), no signed job that may
        # hand a file here, no hotspot upload page loaded (ota/local.py keeps this updater's
        # module): nothing left for ota/ until the next request.
        import sys

        d = self.updater.doc
        sig = self.signed
        return d["phase"] == "idle" and d["sent"] and "ota.local" not in sys.modules and (
            sig is None or sig.doc["rid"] is None)

    def _drop(self):
        # A failed job (a good one reboots; one Installed after its trial, too) left the feature
        # in the heap for good (~24 KB, 64-bit): out again, as a transient feature goes. Its
        # next UpdateFirmware, signed job, upload or trigger attaches it again (features.py).
        from ocpp_client import features

        s = self.s
        self.updater.end()
        s.triggers.pop("FirmwareStatusNotification", None)  # remote.py answers Idle again
        features.unload(s, s.rpc.handlers, "firmware")
        log.info(_TAG, "update over: out of the heap")
        sec = s.features.get("security_ext")
        if sec is not None:
            sec.settle()  # the signed job's feature may go now too


def _not_signed(store):
    # Another job's status with no signed job object to route it (both dropped once idle): what
    # diag/signedfw.py's route() does then, on its document. The signed job that ended before is
    # the firmware's state no more: ExtendedTriggerMessage answers Idle, not its last status.
    d = store.load("signedfw", {"rid": None})
    if d["rid"] is None and d.pop("lr", None) is not None:
        try:
            store.save("signedfw", d)
        except OSError as e:
            log.exc(_TAG, "saving signedfw", e)


def _kept(store, d, st):
    # The status a reboot kept unanswered. A signed job's final one was routed before the cut:
    # diag/signedfw.py ended the job then (no job for route() at this boot), its requestId kept
    # as `lr`; it goes out again as it went before, SignedFirmwareStatusNotification. Any other
    # is routed at its first try.
    if d["loc"] == "signed":
        j = store.load("signedfw", {"rid": None})
        if j["rid"] is None and j.get("lr") is not None and j.get("st") == st:
            return "SignedFirmwareStatusNotification", {"status": st, "requestId": j["lr"]}
    return st


def _plain(st):
    # (a signed job's status with no job left to route it: FirmwareStatus's nearest value)
    if st == "InstallVerificationFailed":
        st = "InstallationFailed"
    return "FirmwareStatusNotification", {"status": st}
