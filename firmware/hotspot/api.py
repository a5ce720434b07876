# The provisioning API and the claim flow behind it (README "Provisioning API"). Imported only
# while the hotspot is open, so a claimed charger never compiles it into its heap.
#   GET  /api/identity   public: cp_id, vendor, model, firmware, ssid, claimed
#   POST /api/login      {"password"} -> {"token"}; growing lockout after wrong passwords
#   GET  /api/networks   Wi-Fi scan list                                   (Bearer token)
#   POST /api/claim      the claim -> 202, then GET /api/claim for progress (Bearer token)
#   POST /api/unclaim    {"confirm": true} -> 202, factory reset           (Bearer token)
import asyncio
import json
import time

import log
from hotspot import httpd
from hotspot.claim import (JOINING, CHECKING, DONE, FAILED, MESSAGES, SCAN_CACHE_MS,
                           JOIN_TIMEOUT_MS, CSMS_TIMEOUT_MS, _TAG)


def _json(status, d, extra=None):
    return status, "application/json", json.dumps(d).encode(), extra


async def claim(hs, c):
    was_claimed = hs.settings.is_claimed()
    try:
        hs._set(JOINING)
        res = await hs.radio.join(c["wifi_ssid"], c["wifi_password"], JOIN_TIMEOUT_MS)
        if res != "ok":
            code = {"wrong_password": "wifi_wrong_password",
                    "not_found": "wifi_not_found"}.get(res, "wifi_failed")
            hs.radio.leave()
            hs._set(FAILED, code)
            return
        hs._set(CHECKING)
        code = await _probe(hs, c)
        if code:
            hs.radio.leave()
            hs._set(FAILED, code)
            return
        hs.settings.update(
            name=c["name"], wifi_ssid=c["wifi_ssid"], wifi_pass=c["wifi_password"],
            csms_url=c["csms_url"], claim_cp_id=c["cp_id"], cp_id=c["cp_id"],
            security_profile=c["security_profile"], auth_key=c["auth_key"],
            ca_pem=c["ca_pem"], claimed=True,
            mqtt_url=c["mqtt_url"], mqtt_user=c["mqtt_user"], mqtt_pass=c["mqtt_pass"],
            mqtt_ca_pem=c["mqtt_ca_pem"])
        from mqtt import keys as mqtt_keys

        mqtt_keys.changed()  # the owner's broker, if the claim gave one
        hs.settings.preset = False
        if hs.events:
            hs.events.add("claimed")
        log.info(_TAG, "claimed as %s; CSMS %s", c["cp_id"], c["csms_url"])
        hs._set(DONE)
        hs._close_at = time.ticks_add(time.ticks_ms(), hs.grace_ms)
        if was_claimed:
            # A new endpoint for a charger that was online: start clean.
            hs._reset_at = time.ticks_add(time.ticks_ms(), hs.grace_ms + 500)
        elif hs.ocpp and hasattr(hs.ocpp, "wake"):
            hs.ocpp.wake()
    except Exception as e:
        log.exc(_TAG, "claim", e)
        hs._set(FAILED, "wifi_failed")
    finally:
        hs._claim_task = None


async def _probe(hs, c):
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
                                   timeout_ms=CSMS_TIMEOUT_MS, route=hs.board.route)
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


async def handle(hs, req):
    p = req.path
    m = req.method
    if p == "/api/identity":
        return _only(hs, m, ("GET", "HEAD")) or _identity(hs)
    if p == "/api/login":
        return _only(hs, m, ("POST",)) or await _login(hs, req)
    if p in ("/api/networks", "/api/claim", "/api/unclaim"):
        allowed = {"/api/networks": ("GET", "HEAD"), "/api/claim": ("GET", "HEAD", "POST"),
                   "/api/unclaim": ("POST",)}[p]
        bad = _only(hs, m, allowed)
        if bad:
            return bad
        if not hs.guard.check(req.header(b"authorization")):
            return httpd.error(401, "log in with the connection password first",
                               extra=(("WWW-Authenticate", 'Bearer realm="borne"'),))
        if p == "/api/networks":
            return _networks(hs)
        if p == "/api/unclaim":
            return await _unclaim(hs, req)
        if m == "POST":
            return await _post_claim(hs, req)
        return _claim_status(hs)
    if p in ("/", "/app.js", "/app.css"):
        from hotspot import page

        asset = page.ASSETS[p]
        bad = _only(hs, m, ("GET", "HEAD"))
        return bad or (200, asset[0], asset[1], None)
    host = req.header(b"host", "")
    if m in ("GET", "HEAD") and host.split(":")[0] != hs.ip:
        # Captive portal: a phone's connectivity check (or any page) lands on the claim page.
        return 302, None, b"", (("Location", "http://%s/" % hs.ip),)
    return httpd.error(404, "not found")


def _only(hs, method, allowed):
    if method in allowed:
        return None
    return httpd.error(405, "method not allowed", extra=(("Allow", ", ".join(allowed)),))


def _identity(hs):
    # Public: what the label already shows, plus what the app needs to choose its screens.
    s = hs.settings
    from ocpp_client.client import _fw_version

    return _json(200, {"cp_id": s.factory_id, "vendor": s["vendor"], "model": s["model"],
                       "firmware": _fw_version(), "ssid": hs.ssid,
                       "claimed": s.is_claimed()})


async def _json_body(hs, req):
    req.body_length()  # 411 / 413 first
    ctype = req.header(b"content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise httpd.HttpError(415, "send Content-Type: application/json")
    body = await req.read_body()
    if _too_deep(body, 8):
        raise httpd.HttpError(400, "the JSON is nested too deeply")
    try:
        return json.loads(bytes(body))  # no await before this: body is the shared buffer
    except (ValueError, UnicodeError, MemoryError, RuntimeError):
        raise httpd.HttpError(400, "the body is not valid JSON")


def _too_deep(b, limit):
    # A claim is a flat object: refuse deep nesting before the parser spends the heap on it.
    depth = 0
    in_str = False
    esc = False
    for c in b:
        if in_str:
            if esc:
                esc = False
            elif c == 92:  # backslash
                esc = True
            elif c == 34:
                in_str = False
        elif c == 34:
            in_str = True
        elif c in (91, 123):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif c in (93, 125):
            depth -= 1
    return False


async def _login(hs, req):
    wait = hs.guard.retry_after_s()
    if wait:  # refused before reading anything: a locked charger does no work
        return _locked(hs, wait)
    d = await _json_body(hs, req)
    pw = d.get("password") if isinstance(d, dict) else None
    if not isinstance(pw, str):
        return httpd.error(422, "password (a string) is required", "password")
    res, val = hs.guard.login(pw)
    if res == "ok":
        log.info(_TAG, "owner logged in")
        return _json(200, {"token": val, "expires_idle_s": 900})
    if res == "locked":
        return _locked(hs, val)
    log.warn(_TAG, "wrong connection password (%d in a row)", hs.guard.fails)
    extra = (("Retry-After", str(val)),) if val else None
    return _json(401, {"error": "wrong connection password", "field": "password",
                       "retry_after": val}, extra)


def _locked(hs, wait):
    return _json(429, {"error": "too many wrong passwords: try again in %d s" % wait,
                       "retry_after": wait}, (("Retry-After", str(wait)),))


def _networks(hs):
    now = time.ticks_ms()
    fresh = hs._scan and time.ticks_diff(now, hs._scan[0]) < SCAN_CACHE_MS
    relay = hs.connector is not None and getattr(hs.connector, "relay", False)
    if not fresh and not (relay and hs._scan):
        # A scan blocks the radio (and on the ESP32 the loop) for a moment: cached, and
        # never repeated while the relay is closed.
        seen = {}
        for ssid, rssi, secure in hs.radio.scan():
            if ssid and (ssid not in seen or seen[ssid][0] < rssi):
                seen[ssid] = (rssi, secure)
        nets = [{"ssid": k, "rssi": v[0], "secure": v[1]} for k, v in seen.items()]
        nets.sort(key=lambda n: -n["rssi"])
        hs._scan = (now, nets[:30])
    return _json(200, {"networks": hs._scan[1]})


def _claim_status(hs):
    d = {"state": hs.state}
    if hs.error:
        d["error"] = hs.error
        d["message"] = MESSAGES.get(hs.error, hs.error)
    if hs.state == DONE:
        d["cp_id"] = hs.settings["cp_id"]
        d["closes_in_ms"] = max(0, time.ticks_diff(hs._close_at or 0, time.ticks_ms()))
    return _json(200, d)


async def _post_claim(hs, req):
    if hs._claim_task is not None:
        return httpd.error(409, "a claim is already in progress")
    if hs.state == DONE:
        return httpd.error(409, "already claimed; the hotspot is closing")
    d = await _json_body(hs, req)
    from hotspot import validate

    try:
        c = validate.claim(d, hs.settings.factory_id)
    except validate.Invalid as e:
        return httpd.error(422, e.message, e.field or None)
    hs.state = JOINING
    hs.error = None
    hs._claim_task = asyncio.create_task(claim(hs, c))
    return _json(202, {"state": JOINING})


async def _unclaim(hs, req):
    d = await _json_body(hs, req)
    if not isinstance(d, dict) or d.get("confirm") is not True:
        return httpd.error(422, 'send {"confirm": true} to unclaim', "confirm")
    if hs._claim_task is not None:
        return httpd.error(409, "a claim is in progress")
    hs._factory_reset()
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
