# Claim mode: the charger's own access point, captive DNS and the provisioning API, and the
# claim flow that takes the owner's name, home Wi-Fi and cloud endpoint, tries them, and closes
# the hotspot. Also keeps the station joined to the home network once claimed, and handles the
# setup button (long press: claim mode; very long press: factory reset).
#
# Claim mode opens when the charger has never been claimed (or was unclaimed), or on a long
# press; it closes after a successful claim (CLOSE_GRACE_MS later, so the app can read the
# result) and after IDLE_S without a request. See README.md "Provisioning API".
import asyncio
import json
import time

import log
from hotspot import httpd
from hotspot.guard import Guard
from hotspot import validate

_TAG = "hotspot"
LONG_PRESS_MS = const(3000)
VERY_LONG_PRESS_MS = const(10000)
IDLE_S = const(900)
CLOSE_GRACE_MS = const(10000)
JOIN_TIMEOUT_MS = const(20000)
CSMS_TIMEOUT_MS = const(10000)
SCAN_CACHE_MS = const(20000)
_RESET_DELAY_MS = const(700)
_SSID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# The claim's progress, as GET /api/claim reports it.
IDLE = "idle"
JOINING = "joining_wifi"
CHECKING = "checking_csms"
DONE = "done"
FAILED = "failed"
MESSAGES = {
    "wifi_wrong_password": "the home Wi-Fi refused the password",
    "wifi_not_found": "the home Wi-Fi network was not found",
    "wifi_failed": "could not join the home Wi-Fi",
    "csms_unreachable": "the home network works but the CSMS cannot be reached",
    "csms_refused": "the CSMS refused the charger (check the charge point id and auth_key)",
    "csms_tls": "the TLS connection to the CSMS failed (check the URL and ca_pem)",
}


def ssid_for(cp_id):
    s = "".join(c for c in cp_id if c in _SSID_CHARS)
    return ("borne-" + s)[:32]


def _json(status, d, extra=None):
    return status, "application/json", json.dumps(d).encode(), extra


class Hotspot:
    def __init__(self, board, store, settings, provisioning, ocpp=None, connector=None,
                 events=None):
        self.board = board
        self.store = store
        self.settings = settings
        self.ocpp = ocpp
        self.connector = connector
        self.events = events
        self.radio = board.wlan()
        opts = board.hotspot_options() if hasattr(board, "hotspot_options") else {}
        self.idle_s = opts.get("hotspot_idle_s", IDLE_S)
        self.grace_ms = opts.get("close_grace_ms", CLOSE_GRACE_MS)
        self.ssid = ssid_for(settings.factory_id)
        self._key = provisioning.get("hotspot_key", "")
        self.guard = Guard(store, provisioning.get("conn_password"),
                           opts.get("lockout_base_ms", 2000))
        self.open = False
        self.ip = None
        self.state = IDLE
        self.error = None
        self._http = None
        self._dns = None
        self._last_ms = 0
        self._close_at = None
        self._claim_task = None
        self._scan = None  # (ticks_ms, list)
        self._want_open = False
        self._reset_at = None
        self._sta_next = 0
        self._sta_backoff = 5000

    # -- the mode ---------------------------------------------------------------------
    async def open_ap(self, why):
        if self.open or self.radio is None:
            return
        if len(self._key) < 8:
            log.error(_TAG, "no per-device hotspot key provisioned: claim mode unavailable")
            return
        self.ip = self.radio.ap_open(self.ssid, self._key)
        from hotspot.dns import CaptiveDns

        self._http = httpd.Server(self._handle, self._touch)
        try:
            host, port = self.radio.listen_addr("http")
            await self._http.start(host, port or 80)
            self._dns = CaptiveDns(self.ip)
            host, port = self.radio.listen_addr("dns")
            self._dns.start(host, port or 53)
        except OSError as e:
            log.exc(_TAG, "cannot start the hotspot servers", e)
            await self._teardown()
            return
        self.open = True
        self.state = IDLE
        self.error = None
        self._touch()
        log.info(_TAG, "claim mode (%s): access point %s at %s", why, self.ssid, self.ip)
        if self.events:
            self.events.add("hotspot_open")
        self._publish()

    async def close_ap(self, why):
        if not self.open:
            return
        await self._teardown()
        self.open = False
        self._close_at = None
        self.guard.drop_tokens()
        log.info(_TAG, "hotspot closed (%s)", why)
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
        if self.radio:
            self.radio.ap_close()

    def _publish(self):
        self.board.telemetry("hotspot", {"open": self.open, "ssid": self.ssid,
                                         "claim": self.state, "error": self.error,
                                         "claimed": self.settings.is_claimed()})

    def _touch(self):
        self._last_ms = time.ticks_ms()

    def button(self, ms):
        # From the board: one press of `ms` milliseconds on the setup button.
        if ms >= VERY_LONG_PRESS_MS:
            log.warn(_TAG, "setup button held %d ms: factory reset", ms)
            self._factory_reset()
        elif ms >= LONG_PRESS_MS:
            log.info(_TAG, "setup button held %d ms: claim mode", ms)
            self._want_open = True

    async def run(self):
        if self.radio is None:
            log.warn(_TAG, "this board has no Wi-Fi radio: no claim mode")
            return
        self.board.on_button = self.button
        if not self.settings.is_claimed():
            await self.open_ap("not claimed")
        else:
            self._publish()
        while True:
            await asyncio.sleep_ms(200)
            now = time.ticks_ms()
            if self._reset_at is not None and time.ticks_diff(now, self._reset_at) >= 0:
                self.board.reset(True)
            if self._want_open:
                self._want_open = False
                await self.open_ap("setup button")
            if self.open:
                busy = self._claim_task is not None
                if self._close_at is not None and time.ticks_diff(now, self._close_at) >= 0:
                    await self.close_ap("claimed")
                elif not busy and time.ticks_diff(now, self._last_ms) > self.idle_s * 1000:
                    await self.close_ap("idle for %d s" % self.idle_s)
            self._keep_station(now)

    def _keep_station(self, now):
        # Once claimed, stay joined to the home network (retrying with backoff).
        s = self.settings
        if (self._claim_task is not None or not s.get("wifi_ssid") or self.radio.sta_up()
                or time.ticks_diff(now, self._sta_next) < 0):
            return
        self._sta_next = time.ticks_add(now, 1 << 30)  # until this join ends
        asyncio.create_task(self._join_home())

    async def _join_home(self):
        s = self.settings
        res = await self.radio.join(s["wifi_ssid"], s["wifi_pass"], JOIN_TIMEOUT_MS)
        if res == "ok":
            log.info(_TAG, "joined the home Wi-Fi")
            self._sta_backoff = 5000
            if self.ocpp and hasattr(self.ocpp, "wake"):
                self.ocpp.wake()
        else:
            log.warn(_TAG, "home Wi-Fi: %s; retry in %d s", res, self._sta_backoff // 1000)
            self._sta_backoff = min(self._sta_backoff * 2, 300000)
        self._sta_next = time.ticks_add(time.ticks_ms(),
                                        0 if res == "ok" else self._sta_backoff)

    # -- unclaim / factory reset --------------------------------------------------------
    def _factory_reset(self):
        # Wipes what the owner gave (name, home Wi-Fi, cloud endpoint and credentials, OCPP
        # configuration) and reboots into claim mode. The factory identity and the per-device
        # secrets stay: they are the label's.
        self.settings.wipe_owner()
        self.store.remove("ocpp_config")
        if self.radio:
            self.radio.leave()
        if self.events:
            self.events.add("factory_reset")
        log.warn(_TAG, "owner data wiped; restarting into claim mode")
        self._reset_at = time.ticks_add(time.ticks_ms(), _RESET_DELAY_MS)

    # -- the claim flow -----------------------------------------------------------------
    async def _claim(self, c):
        was_claimed = self.settings.is_claimed()
        try:
            self._set(JOINING)
            res = await self.radio.join(c["wifi_ssid"], c["wifi_password"], JOIN_TIMEOUT_MS)
            if res != "ok":
                code = {"wrong_password": "wifi_wrong_password",
                        "not_found": "wifi_not_found"}.get(res, "wifi_failed")
                self.radio.leave()
                self._set(FAILED, code)
                return
            self._set(CHECKING)
            code = await self._probe(c)
            if code:
                self.radio.leave()
                self._set(FAILED, code)
                return
            self.settings.update(
                name=c["name"], wifi_ssid=c["wifi_ssid"], wifi_pass=c["wifi_password"],
                csms_url=c["csms_url"], claim_cp_id=c["cp_id"], cp_id=c["cp_id"],
                security_profile=c["security_profile"], auth_key=c["auth_key"],
                ca_pem=c["ca_pem"], claimed=True)
            self.settings.preset = False
            if self.events:
                self.events.add("claimed")
            log.info(_TAG, "claimed as %s; CSMS %s", c["cp_id"], c["csms_url"])
            self._set(DONE)
            self._close_at = time.ticks_add(time.ticks_ms(), self.grace_ms)
            if was_claimed:
                # A new endpoint for a charger that was online: start clean.
                self._reset_at = time.ticks_add(time.ticks_ms(), self.grace_ms + 500)
            elif self.ocpp and hasattr(self.ocpp, "wake"):
                self.ocpp.wake()
        except Exception as e:
            log.exc(_TAG, "claim", e)
            self._set(FAILED, "wifi_failed")
        finally:
            self._claim_task = None

    def _set(self, state, error=None):
        self.state = state
        self.error = error
        if error:
            log.warn(_TAG, "claim failed: %s", error)
        self._publish()

    async def _probe(self, c):
        # One WebSocket handshake with the new endpoint and credentials, closed at once.
        # -> None when the CSMS answered, or an error code.
        from ocpp_client import ws as wsmod

        auth = None
        if c["security_profile"] in (1, 2):
            import binascii

            tok = binascii.b2a_base64(("%s:%s" % (c["cp_id"], c["auth_key"])).encode())[:-1]
            auth = "Basic " + tok.decode()
        ctx = None
        try:
            if c["security_profile"] == 2:
                ctx = _tls_context(c["ca_pem"])
            conn = await wsmod.connect(c["csms_url"], c["cp_id"], auth=auth, ssl_ctx=ctx,
                                       timeout_ms=CSMS_TIMEOUT_MS, route=self.board.route)
        except wsmod.WsError as e:
            log.warn(_TAG, "CSMS check: %s", e)
            return "csms_refused" if "refused" in str(e) else "csms_unreachable"
        except (OSError, asyncio.TimeoutError) as e:
            log.warn(_TAG, "CSMS check: %s %s", type(e).__name__, e)
            return "csms_unreachable"
        except Exception as e:  # TLS and certificate errors (ValueError/ssl errors)
            log.warn(_TAG, "CSMS check: %s %s", type(e).__name__, e)
            return "csms_tls"
        await conn.close()
        return None

    # -- the API ------------------------------------------------------------------------
    async def _handle(self, req):
        p = req.path
        m = req.method
        if p == "/api/identity":
            return self._only(m, ("GET", "HEAD")) or self._identity()
        if p == "/api/login":
            return self._only(m, ("POST",)) or await self._login(req)
        if p in ("/api/networks", "/api/claim", "/api/unclaim"):
            allowed = {"/api/networks": ("GET", "HEAD"), "/api/claim": ("GET", "HEAD", "POST"),
                       "/api/unclaim": ("POST",)}[p]
            bad = self._only(m, allowed)
            if bad:
                return bad
            if not self.guard.check(req.header(b"authorization")):
                return httpd.error(401, "log in with the connection password first",
                                   extra=(("WWW-Authenticate", 'Bearer realm="borne"'),))
            if p == "/api/networks":
                return self._networks()
            if p == "/api/unclaim":
                return await self._unclaim(req)
            if m == "POST":
                return await self._post_claim(req)
            return self._claim_status()
        from hotspot import page

        asset = page.ASSETS.get(p)
        if asset is not None:
            bad = self._only(m, ("GET", "HEAD"))
            return bad or (200, asset[0], asset[1], None)
        host = req.header(b"host", "")
        if m in ("GET", "HEAD") and host.split(":")[0] != self.ip:
            # Captive portal: a phone's connectivity check (or any page) lands on the claim page.
            return 302, None, b"", (("Location", "http://%s/" % self.ip),)
        return httpd.error(404, "not found")

    def _only(self, method, allowed):
        if method in allowed:
            return None
        return httpd.error(405, "method not allowed", extra=(("Allow", ", ".join(allowed)),))

    def _identity(self):
        # Public: what the label already shows, plus what the app needs to choose its screens.
        s = self.settings
        from ocpp_client.client import _fw_version

        return _json(200, {"cp_id": s.factory_id, "vendor": s["vendor"], "model": s["model"],
                           "firmware": _fw_version(), "ssid": self.ssid,
                           "claimed": s.is_claimed()})

    async def _json_body(self, req):
        ctype = req.header(b"content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise httpd.HttpError(415, "send Content-Type: application/json")
        body = await req.read_body()
        try:
            return json.loads(body)
        except (ValueError, UnicodeError, MemoryError, RuntimeError):
            raise httpd.HttpError(400, "the body is not valid JSON")

    async def _login(self, req):
        wait = self.guard.retry_after_s()
        if wait:  # refused before reading anything: a locked charger does no work
            return self._locked(wait)
        d = await self._json_body(req)
        pw = d.get("password") if isinstance(d, dict) else None
        if not isinstance(pw, str):
            return httpd.error(422, "password (a string) is required", "password")
        res, val = self.guard.login(pw)
        if res == "ok":
            log.info(_TAG, "owner logged in")
            return _json(200, {"token": val, "expires_idle_s": 900})
        if res == "locked":
            return self._locked(val)
        log.warn(_TAG, "wrong connection password (%d in a row)", self.guard.fails)
        extra = (("Retry-After", str(val)),) if val else None
        return _json(401, {"error": "wrong connection password", "field": "password",
                           "retry_after": val}, extra)

    def _locked(self, wait):
        return _json(429, {"error": "too many wrong passwords: try again in %d s" % wait,
                           "retry_after": wait}, (("Retry-After", str(wait)),))

    def _networks(self):
        now = time.ticks_ms()
        fresh = self._scan and time.ticks_diff(now, self._scan[0]) < SCAN_CACHE_MS
        relay = self.connector is not None and getattr(self.connector, "relay", False)
        if not fresh and not (relay and self._scan):
            # A scan blocks the radio (and on the ESP32 the loop) for a moment: cached, and
            # never repeated while the relay is closed.
            seen = {}
            for ssid, rssi, secure in self.radio.scan():
                if ssid and (ssid not in seen or seen[ssid][0] < rssi):
                    seen[ssid] = (rssi, secure)
            nets = [{"ssid": k, "rssi": v[0], "secure": v[1]} for k, v in seen.items()]
            nets.sort(key=lambda n: -n["rssi"])
            self._scan = (now, nets[:30])
        return _json(200, {"networks": self._scan[1]})

    def _claim_status(self):
        d = {"state": self.state}
        if self.error:
            d["error"] = self.error
            d["message"] = MESSAGES.get(self.error, self.error)
        if self.state == DONE:
            d["cp_id"] = self.settings["cp_id"]
            d["closes_in_ms"] = max(0, time.ticks_diff(self._close_at or 0, time.ticks_ms()))
        return _json(200, d)

    async def _post_claim(self, req):
        if self._claim_task is not None:
            return httpd.error(409, "a claim is already in progress")
        if self.state == DONE:
            return httpd.error(409, "already claimed; the hotspot is closing")
        d = await self._json_body(req)
        try:
            c = validate.claim(d, self.settings.factory_id)
        except validate.Invalid as e:
            return httpd.error(422, e.message, e.field or None)
        self.state = JOINING
        self.error = None
        self._claim_task = asyncio.create_task(self._claim(c))
        return _json(202, {"state": JOINING})

    async def _unclaim(self, req):
        d = await self._json_body(req)
        if not isinstance(d, dict) or d.get("confirm") is not True:
            return httpd.error(422, 'send {"confirm": true} to unclaim', "confirm")
        if self._claim_task is not None:
            return httpd.error(409, "a claim is in progress")
        self._factory_reset()
        return _json(202, {"state": "unclaiming"})


def _tls_context(pem):
    import ssl
    import binascii

    body = pem.strip().split("\n")[1:-1]
    der = binascii.a2b_base64("".join(body))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=der)
    return ctx
