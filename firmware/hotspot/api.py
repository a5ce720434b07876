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

from hotspot import httpd



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
        return _only(hs, m, ("POST",)) or await _post("login", hs, req)
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
            return await _post("unclaim", hs, req)
        if m == "POST":
            return await _post("claim", hs, req)
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


async def _post(name, hs, req):
    # The POST routes (hotspot/apipost.py), each run once or twice a claim: loaded for the
    # request and out of the heap after (a MemoryError loading it: 503, httpd.py).
    from supervisor import rare

    return await rare("hotspot.apipost", name, hs, req)


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


def _networks(hs):
    return 200, "application/json", hs.networks(), None


def _claim_status(hs):
    return _json(200, hs.claim_status())
