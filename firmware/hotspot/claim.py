# Claim mode: the charger's own access point, captive DNS and the provisioning API (api.py), and
# the claim's state; the claim flow itself (claimflow.py: take the owner's name, home Wi-Fi and
# cloud endpoint, try them) is loaded only when a claim is made. Holds the home Wi-Fi's joiner
# (station.py) while a claim runs, and handles the setup button (long press: claim mode; very
# long press: factory reset).
#
# Its opening and the Wi-Fi scan: hotspot/opening.py, loaded for them.
#
# Claim mode opens when the charger has never been claimed (or was unclaimed), or on a long
# press; it closes after a successful claim (_READ_MS after the app read the result, at the
# latest _CLOSE_GRACE_MS later) and after _IDLE_S without a request (or lockout). See README.md
# "Provisioning API".
import asyncio
import time

import log

_TAG = "hotspot"
_LONG_PRESS_MS = const(3000)
_VERY_LONG_PRESS_MS = const(10000)
_IDLE_S = const(900)
_CLOSE_GRACE_MS = const(10000)
_READ_MS = const(1000)  # after the app read a claim's success: its answer is written by then
_RESET_DELAY_MS = const(700)
_ROOM_RETRY_MS = const(2000)
_UNCLAIMED = const("not claimed")  # why claim mode opens on a charger with nothing to charge for
_SSID_CHARS = const("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

# The claim's progress, as GET /api/claim reports it.
_IDLE = const("idle")
_JOINING = const("joining_wifi")
_CHECKING = const("checking_csms")
_DONE = const("done")
_FAILED = const("failed")


def ssid_for(cp_id):
    s = "".join(c for c in cp_id if c in _SSID_CHARS)
    return ("borne-" + s)[:32]


# Loaded while the hotspot is open (open_ap, the API's routes, a claim) and dropped when it
# closes (page.py after each page served, validate.py after each claim checked, claimflow.py
# when its claim ends).
_LOADED = ("hotspot.api", "hotspot.httpd", "hotspot.dns", "hotspot.guard", "hotspot.page",
           "hotspot.validate", "hotspot.claimflow", "ota.local")


class Hotspot:
    def __init__(self, board, store, settings, provisioning, ocpp=None, connector=None,
                 events=None, station=None):
        self.board = board
        self.store = store
        self.settings = settings
        self.ocpp = ocpp
        self.connector = connector
        self.events = events
        self.station = station  # station.py: the home Wi-Fi's joiner, held while a claim runs
        self.radio = board.wlan()
        opts = board.hotspot_options() if hasattr(board, "hotspot_options") else {}
        self.idle_s = opts.get("hotspot_idle_s", _IDLE_S)
        self.grace_ms = opts.get("close_grace_ms", _CLOSE_GRACE_MS)
        # Another name clients reach the hotspot by (api.py's Host check): the ESP32 emulation
        # forwards a loopback port to 192.168.4.1:80. A charger in the field has none.
        self.http_host = opts.get("http_host")
        self.ssid = ssid_for(settings.factory_id)
        self._key = provisioning.get("hotspot_key", "")
        # The login guard (hotspot/guard.py): made when the hotspot opens (its failure count
        # from the store, a lockout in force again), dropped with its tokens when it closes.
        self._pw = (provisioning.get("conn_password"), opts.get("lockout_base_ms", 2000))
        self.guard = None
        self.open = False
        self.ip = None
        self.state = _IDLE
        self.error = None
        self._message = None  # the error's, for the owner
        self._http = None
        self._dns = None
        self._last_ms = 0
        self._close_at = None
        self._wake = False  # the OCPP session waits for the hotspot to close after a claim
        self._claim_task = None
        self._scan = None  # (ticks_ms, list)
        self._want_open = False
        self._reset_at = None
        self._resetting = False  # a factory reset asked: its session's stop going out
        self._wiped = False  # a factory reset's: wiped again just before its reboot
        self._rewipe = False  # a claim for another CSMS's: its data again, the new claim kept
        from supervisor import rare

        self.need_free, self.need_charging = rare("hotspot.room", "need", opts)
        self._deferred = None  # why the hotspot should open, refused for want of memory
        self._retry_at = 0
        self.tls = []  # the claim's TLS context (security.tls_context's `keep`), while open
        # run() returns once claim mode is over (closed, nothing pending): app.py's _Setup then
        # lets this object and module go until the next press of the setup button.
        self.ends = False

    # -- the mode ---------------------------------------------------------------------
    async def open_ap(self, why):
        if self.open or self.radio is None:
            return
        # (hotspot/opening.py: loaded for it; without memory to load it, tried again later)
        from supervisor import rare

        try:
            opening = rare("hotspot.opening", "open_ap", self, why)
        except MemoryError:
            if self._deferred is None:
                log.warn(_TAG, "claim mode (%s) refused: no memory to load it; it opens once "
                         "memory frees", why)
                self._deferred = why
                self._publish()
            self._retry_at = time.ticks_add(time.ticks_ms(), _ROOM_RETRY_MS)
            return
        await opening

    def _handle(self, req):
        # A request to the servers: the API (loaded while the hotspot is open).
        from hotspot import api

        return api.handle(self, req)

    async def close_ap(self, why):
        if not self.open:
            return
        await self._teardown()
        # The servers, the page and the API go out of the heap until the hotspot opens again.
        from supervisor import drop

        drop(*_LOADED)
        self.open = False
        self._close_at = None
        self._scan = None
        log.info(_TAG, "hotspot closed (%s)", why)
        if self._wake:
            # The claim's CSMS: connected now that the servers have left the heap (the session
            # and the open hotspot are never in it at once, the heap's peak of a claim).
            self._wake = False
            self.ocpp.wake()
            if self.ocpp.connected:
                # A claimed charger's claim (its CSMS's, a new home Wi-Fi): the link is made
                # again with the claim's settings, a session charging on.
                from supervisor import rare

                await rare("ocpp_client.wsrare", "reconnect", self.ocpp, "the claim's settings")
        if self.events:
            self.events.add("hotspot_closed")
        self._publish()

    async def _teardown(self):
        if self._dns:
            self._dns.stop()
            self._dns = None
        if self._http:
            await self._http.stop()
            self._http = None
        self.tls = []
        self.guard = None  # and its tokens
        if self.radio:
            self.radio.ap_close()

    def _publish(self):
        self.board.telemetry("hotspot", {"open": self.open, "ssid": self.ssid,
                                         "claim": self.state, "error": self.error,
                                         "claimed": self.settings.is_claimed(),
                                         "refused": self._deferred is not None})

    def touch(self):
        # A request came in: the hotspot is in use.
        self._last_ms = time.ticks_ms()

    def button(self, ms):
        # From the board: one press of `ms` milliseconds on the setup button.
        if ms >= _VERY_LONG_PRESS_MS:
            log.warn(_TAG, "setup button held %d ms: factory reset", ms)
            self.factory_reset()
        elif ms >= _LONG_PRESS_MS:
            log.info(_TAG, "setup button held %d ms: claim mode", ms)
            self._want_open = True

    async def run(self):
        if self.radio is None:
            log.warn(_TAG, "this board has no Wi-Fi radio: no claim mode")
            return
        self.board.on_button = self.button
        if not self.settings.is_claimed():
            await self.open_ap(_UNCLAIMED)
        else:
            self._publish()
        while True:
            await asyncio.sleep_ms(200)
            if self._resetting and not self._wiped:
                await self._factory_reset()
            now = time.ticks_ms()
            if self._reset_at is not None and time.ticks_diff(now, self._reset_at) >= 0:
                if self._wiped:
                    self._wipe(False)  # what tasks wrote back since; no await until the reset
                    if self.events:
                        self.events.add("factory_reset")
                elif self._rewipe:
                    self._wipe(False, False)  # the new claim's settings kept
                    if self.events:
                        self.events.add("claimed")  # the new owner's log begins with it
                self.board.reset(True)
            if self._want_open:
                self._want_open = False
                await self.open_ap("setup button")
            elif (self._deferred is not None and not self.open
                  and time.ticks_diff(now, self._retry_at) >= 0):
                await self.open_ap(self._deferred)
            if self.open:
                busy = self._claim_task is not None
                if self.guard is not None and self.guard.retry_after_s():
                    # Login locked: idle counts from the lock's end. (A lock that outlasted it
                    # closed the hotspot under an owner waiting out Retry-After, and each
                    # opening arms the stored count's lock again: locked out for good.)
                    self._last_ms = now
                if self._close_at is not None and time.ticks_diff(now, self._close_at) >= 0:
                    await self.close_ap("claimed")
                    if self._over():
                        return  # at once: out of the heap before the claim's session connects
                elif not busy and time.ticks_diff(now, self._last_ms) > self.idle_s * 1000:
                    await self.close_ap("idle for %d s" % self.idle_s)
            elif self._over():
                return

    def _over(self):
        # Claim mode is over (run() returns): closed, nothing pending.
        return (self.ends and not self.open and self._deferred is None and self._reset_at is None
                and not self._resetting and self._claim_task is None and not self._want_open)

    # -- unclaim / factory reset --------------------------------------------------------
    def factory_reset(self):
        # A session is stopped now (the relay opens: the reboot ends it), then run() lets its
        # StopTransaction reach the CSMS (_settle) before the wipe.
        if self._resetting:
            return
        self._resetting = True
        self._stop_session()
        # On flash before the answer (202) is out: a power cut before the wipe (a session's stop
        # still going out: seconds) leaves it to the boot (settingsdoc.load), not a charger
        # back with the owner's credentials and cards the app has given away.
        try:
            self.settings.update(unclaim=True)
        except (OSError, MemoryError) as e:
            log.exc(_TAG, "factory reset not marked on flash", e)

    async def _factory_reset(self):
        # Wipes the owner's data (hotspot/reset.py: what the owner, their CSMS and broker gave
        # or left) and again just before the reboot into claim mode. The factory identity and
        # the per-device secrets stay: they are the label's.
        await self._settle()
        self._wipe(True)
        self._wiped = True
        if self.radio:
            self.radio.leave()
        log.warn(_TAG, "owner data wiped; restarting into claim mode")
        self._reset_at = time.ticks_add(time.ticks_ms(), _RESET_DELAY_MS)

    async def new_operator(self):
        # A claim for another CSMS endpoint or charge point id on a claimed charger (a charger
        # sold on, or moved to another operator): once claimflow.py saved the new claim, marked
        # `rewipe` (a failed save stops nothing), a session is stopped and reported to the old
        # CSMS as at a factory reset, and wipe_old() follows. The same CSMS (a new home Wi-Fi)
        # keeps it all.
        self._stop_session()
        await self._settle()

    def wipe_old(self):
        # After the marked save: what the old owner and CSMS gave or left goes (their cards
        # charged offline, their queued transactions went to the new CSMS); again before the
        # restart, the new claim kept. A power cut from the save on leaves the new claim, and
        # the boot wipes what is left (settingsdoc.load): never an unclaimed charger.
        log.warn(_TAG, "claimed for another CSMS: the previous owner's data wiped")
        self._wipe(True, False)
        self._rewipe = True

    def _stop_session(self):
        # The charger reboots: a session ends now with the 1.6 reason "Reboot", and none starts.
        if self.connector is not None:
            self.connector.stop_for("Reboot")

    async def _settle(self):
        from supervisor import rare

        await rare("hotspot.reset", "settle", self)

    def _wipe(self, first, settings=True):
        from supervisor import rare

        rare("hotspot.reset", "wipe", self, first, settings)

    # -- the claim (api.py asks, claimflow.py reports) -----------------------------------
    def claim_refused(self):
        # -> why a claim cannot start now, or None.
        if self._claim_task is not None:
            return "a claim is already in progress"
        if self._resetting:
            return "the charger is being reset"
        if self.state == _DONE:
            return "already claimed; the hotspot is closing"
        return None

    def start_claim(self, c):
        # c: a claim checked by hotspot/validate.py (and claim_refused() None).
        from hotspot import claimflow

        self._set(_JOINING)  # published now: the answer to the claim may reach the app first
        self._claim_task = asyncio.create_task(claimflow.run(self, c))
        self._hold(True)

    def claim_status(self):
        # GET /api/claim
        d = {"state": self.state}
        if self.error:
            d["error"] = self.error
            d["message"] = self._message or self.error
        if self.state == _DONE:
            now = time.ticks_ms()
            soon = time.ticks_add(now, _READ_MS)
            if self._close_at is not None and time.ticks_diff(self._close_at, soon) > 0:
                self._close_at = soon  # the app has the result: the hotspot closes
            d["cp_id"] = self.settings["cp_id"]
            d["closes_in_ms"] = max(0, time.ticks_diff(self._close_at or 0, now))
        return d

    def unclaim(self):
        # POST /api/unclaim: False while a claim runs.
        if self._claim_task is not None:
            return False
        self.factory_reset()
        return True

    def networks(self):
        # GET /api/networks (hotspot/opening.py)
        from supervisor import rare

        return rare("hotspot.opening", "networks", self)

    def joining(self):
        self._set(_JOINING)

    def checking(self):
        self._set(_CHECKING)

    def failed(self, code, message=None):
        self._message = message
        self._set(_FAILED, code)

    def claimed(self, restart):
        # The claim is stored: the hotspot closes after the grace period (the app reads the
        # result meanwhile); a charger that had another endpoint restarts clean, a new one
        # connects then, and one claimed again for its own CSMS connects again then (no
        # restart: a session charges on).
        if self.events:
            self.events.add("claimed")
        self._set(_DONE)
        now = time.ticks_ms()
        self._close_at = time.ticks_add(now, self.grace_ms)
        if restart:
            self._reset_at = time.ticks_add(now, self.grace_ms + 500)
        elif self.ocpp is not None:
            # The claim's TLS context is the client's now (the same credentials: reused, not
            # made again; other roots: given up before theirs). The session connects once the
            # hotspot has closed (close_ap()).
            if self.tls:
                self.ocpp.tls_keep[:] = self.tls
                if self.tls[0] is not None:
                    self._stamp()
            self.tls = []
            self._wake = True
            # Claim mode is over once closed: an unclaimed charger's hotspot, made at boot,
            # then leaves the heap as one opened by the setup button does (app.py's _Setup).
            self.ends = True

    def _stamp(self):
        # The claim's context was made for the credentials just saved: stamped so, the session's
        # first connection takes it as it is (security.connect_args), without reading the PEMs
        # again in the heap the hotspot leaves. Without memory for it, they are read.
        st = self.settings
        from supervisor import rare

        try:
            self.ocpp.tls_keep.append(rare("ocpp_client.security", "stamp",
                                           st.get("security_profile", 0), st.store))
        except MemoryError:
            pass

    def save(self, **kw):
        # A claim's save of the settings, in the block of the servers' kept head buffer: let go
        # for it (no await until the save is done: no client is served meanwhile) and taken
        # again after (the app's next poll needs one).
        http = self._http
        if http is not None:
            http.release()
        try:
            self.settings.update(**kw)
        finally:
            if http is not None:
                http.retake()

    def claim_ended(self):
        self._claim_task = None
        self._hold(False)
        from supervisor import drop

        drop("hotspot.claimflow")  # out of the heap (its task ends now) until the next claim

    def _hold(self, on):
        if self.station is not None:
            self.station.hold = on

    def _set(self, state, error=None):
        self.state = state
        self.error = error
        if error:
            log.warn(_TAG, "claim failed: %s", error)
        self._publish()
