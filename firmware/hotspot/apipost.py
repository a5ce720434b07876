# The provisioning API's POST routes (hotspot/api.py: login, claim, unclaim), loaded for each
# request by supervisor.rare() and out of the heap after: not held while a claim's check runs.
import json

import log
from hotspot import httpd
from hotspot.api import _json

_TAG = "hotspot"
# A claim's validation and the URL parsers it loads (those not loaded before leave after it).
_PARSERS = const(("hotspot.validate", "net.url", "mqtt.url"))
_LOGIN_MAX = const(512)  # {"password": ...} of at most 128 characters, escaped


async def login(hs, req):
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


async def claim(hs, req):
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


async def unclaim(hs, req):
    d = await _json_body(hs, req)
    if not isinstance(d, dict) or d.get("confirm") is not True:
        return httpd.error(422, 'send {"confirm": true} to unclaim', "confirm")
    if not hs.unclaim():
        return httpd.error(409, "a claim is in progress")
    return _json(202, {"state": "unclaiming"})
