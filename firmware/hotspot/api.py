# The provisioning API (README "Provisioning API"), on the public methods of hotspot.claim.Hotspot
# (the claim flow itself: claimflow.py). Imported only
# while the hotspot is open, so a claimed charger never compiles it into its heap.
#   GET  /api/identity   public: cp_id, vendor, model, firmware, ssid, claimed
#   POST /api/login      {"password"} -> {"token"}; a client's growing lockout after wrong
#                        passwords (hotspot/guard.py)
#   GET  /api/networks   Wi-Fi scan list                                   (Bearer token)
#   POST /api/claim      the claim -> 202, then GET /api/claim for progress (Bearer token)
#   POST /api/unclaim    {"confirm": true} -> 202, factory reset           (Bearer token)
# Every /api/ route answers only a request for the hotspot's own address from its own page
# (_ours): 403 otherwise.
import json

import log
from hotspot import httpd

_TAG = "hotspot"
# A claim's validation and the URL parsers it loads (those not loaded before leave after it).
_PARSERS = const(("hotspot.validate", "net.url", "mqtt.url"))
_LOGIN_MAX = const(512)  # {"password": ...} of at most 128 characters, escaped


def _json(status, d, extra=None):
    return status, "application/json", json.dumps(d).encode(), extra


async def handle(hs, req):
    p = req.path
    m = req.method
    if p[:5] == "/api/" and not _ours(hs, req):
        return httpd.error(403, "ask the charger by its address, from its own page")
    if p == "/api/identity":
        return _only(hs, m, ("GET", "HEAD")) or _identity(hs)
    if p == "/api/login":
        return _only(hs, m, ("POST",)) or await _login(hs, req)
    if p in ("/api/networks", "/api/claim", "/api/unclaim"):
        if p == "/api/networks":
            allowed = ("GET", "HEAD")
        elif p == "/api/claim":
            allowed = ("GET", "HEAD", "POST")
        else:
            allowed = ("POST",)
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
    if p == "/api/firmware":  # local firmware update (ota/local.py)
        from ota import local

        return await local.handle(hs, req, _only, _json)
    if p in ("/", "/app.js", "/app.css"):
        from hotspot import page
        from supervisor import drop

        asset = page.ASSETS[p]
        drop("hotspot.page")  # out of the heap once this answer is written
        bad = _only(hs, m, ("GET", "HEAD"))
        return bad or (200, asset[0], asset[1], None)
    host = req.header(b"host", "")
    if m in ("GET", "HEAD") and host.split(":")[0] != hs.ip:
        # Captive portal: a phone's connectivity check (or any page) lands on the claim page.
        return 302, None, b"", (("Location", "http://%s/" % hs.ip),)
    return httpd.error(404, "not found")


def _ours(hs, req):
    # A page of another site must not reach the API: by DNS rebinding (its name resolved to the
    # charger: Host is that name) nor by a cross-site request (Origin is that site). The claim
    # page is served at http://<hs.ip>/ (the captive portal redirects there); a port is kept
    # in both (the simulation's).
    host = req.header(b"host", "")
    if host.split(":")[0] not in (hs.ip, hs.http_host):
        return False
    o = req.header(b"origin")
    return o is None or o == "http://" + host


def _only(hs, method, allowed):
    if method in allowed:
        return None
    return httpd.error(405, "method not allowed", extra=(("Allow", ", ".join(allowed)),))


def _identity(hs):
    # Public: what the label already shows, plus what the app needs to choose its screens.
    s = hs.settings
    from supervisor import fw_version

    return _json(200, {"cp_id": s.factory_id, "vendor": s["vendor"], "model": s["model"],
                       "firmware": fw_version(), "ssid": hs.ssid,
                       "claimed": s.is_claimed()})


async def _json_body(hs, req):
    req.body_length()  # 411 / 413 first
    ctype = req.header(b"content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise httpd.HttpError(415, "send Content-Type: application/json")
    body = await req.read_body()
    if _too_deep(body.chunks, 8):
        raise httpd.HttpError(400, "the JSON is nested too deeply")
    try:
        return json.load(body)  # streamed from its pieces: the body never in one block
    except (ValueError, UnicodeError, RuntimeError):
        raise httpd.HttpError(400, "the body is not valid JSON")
    except MemoryError:  # a long string needs a block of its length: the heap has none now
        raise httpd.HttpError(503, "out of memory, try again")


def _too_deep(chunks, limit):
    # A claim is a flat object: refuse deep nesting before the parser spends the heap on it.
    depth = 0
    in_str = False
    esc = False
    for b in chunks:
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
    wait = hs.guard.retry_after_s(req.peer)
    if wait:  # refused before reading anything: a locked client costs no work
        return _locked(hs, wait)
    if req.body_length() > _LOGIN_MAX:  # nor does a long body anyone may send: not read
        return httpd.error(413, "a login body is at most %d bytes" % _LOGIN_MAX)
    d = await _json_body(hs, req)
    pw = d.get("password") if isinstance(d, dict) else None
    if not isinstance(pw, str):
        return httpd.error(422, "password (a string) is required", "password")
    res, val = hs.guard.login(pw, req.peer)
    if res == "ok":
        log.info(_TAG, "owner logged in")
        return _json(200, {"token": val, "expires_idle_s": 900})
    if res == "locked":
        return _locked(hs, val)
    log.warn(_TAG, "wrong connection password (%d in a row from all clients)", hs.guard.fails)
    extra = (("Retry-After", str(val)),) if val else None
    return _json(401, {"error": "wrong connection password", "field": "password",
                       "retry_after": val}, extra)


def _locked(hs, wait):
    return _json(429, {"error": "too many wrong passwords: try again in %d s" % wait,
                       "retry_after": wait}, (("Retry-After", str(wait)),))


def _networks(hs):
    return 200, "application/json", hs.networks(), None


def _claim_status(hs):
    return _json(200, hs.claim_status())


async def _post_claim(hs, req):
    busy = hs.claim_refused()
    if busy:
        return httpd.error(409, busy)
    d = await _json_body(hs, req)
    import sys

    from supervisor import drop

    new = []
    for n in _PARSERS:
        if n not in sys.modules:
            new.append(n)
    from hotspot import validate

    try:
        # (no cp_id: the one in use, the label's unless a claim gave another: a claim for a
        # new home Wi-Fi must not make the charger another charge point, its data wiped)
        c = validate.claim(d, hs.settings["cp_id"])
        validate.against(c, hs.settings)
    except validate.Invalid as e:
        return httpd.error(422, e.message, e.field or None)
    finally:
        drop(*new)  # out of the heap until the next claim
    validate = d = None  # (this frame's references: the claim flow loads in their room)
    busy = hs.claim_refused()  # again: another claim may have started while this body came
    if busy:
        return httpd.error(409, busy)
    hs.start_claim(c)
    return _json(202, {"state": hs.state})


async def _unclaim(hs, req):
    d = await _json_body(hs, req)
    if not isinstance(d, dict) or d.get("confirm") is not True:
        return httpd.error(422, 'send {"confirm": true} to unclaim', "confirm")
    if not hs.unclaim():
        return httpd.error(409, "a claim is in progress")
    return _json(202, {"state": "unclaiming"})
