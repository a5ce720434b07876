# Local firmware update at the charger, through the hotspot's provisioning API (loaded only
# while the hotspot is open and a request names it):
#   PUT /api/firmware   the bundle as the body (application/octet-stream, Content-Length),
#                       streamed to flash; the same check and installation as a remote update
#                       -> 202 {"status"}; 413 when it cannot fit; 409 while an install runs
#                       (or an image's trial) or while another upload is being received
#   GET /api/firmware   {"status", "phase", "version" (the bundle's, once checked),
#                        "running", "why"?}
# Both need the owner's Bearer token (the connection password's login).
import log
from hotspot import httpd
from ota import update

_TAG = "ota"
UPLOAD = "ota_upload.fw"
_INSTALLING = const(("verify", "install", "trial", "itrial"))  # update.py's phases past download
_receiving = False  # an upload is being written to UPLOAD: a second would write the same file


async def handle(hs, req, only, as_json):
    bad = only(hs, req.method, ("GET", "HEAD", "PUT"))
    if bad:
        return bad
    if not hs.guard.check(req.header(b"authorization")):
        return httpd.error(401, "log in with the connection password first",
                           extra=(("WWW-Authenticate", 'Bearer realm="borne"'),))
    u = update.CURRENT
    if u is None and hs.ocpp is not None:
        hs.ocpp.feature("firmware")  # a lazy feature: attached at the first update
        u = update.CURRENT
    if u is None:
        return httpd.error(503, "firmware updates are not available")
    if req.method != "PUT":
        return as_json(200, _state(u))
    if u.doc["phase"] in _INSTALLING:
        return httpd.error(409, "an update is being installed")
    global _receiving
    if _receiving:
        return httpd.error(409, "another upload is in progress")
    ctype = req.header(b"content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/octet-stream":
        raise httpd.HttpError(415, "send the bundle as application/octet-stream")
    room = u._room(False)
    limit = 4 * 1024 * 1024 if room is None else room  # (as a download: update.py)
    path = u.root + UPLOAD
    _receiving = True
    try:
        f = open(path, "wb")
        try:
            n = await req.body_to(f, limit)
        except BaseException:
            f.close()
            update.remove(path)
            raise
        f.close()
    finally:
        _receiving = False
    log.info(_TAG, "local upload: %d bytes", n)
    why = u.local(path, allow_downgrade=False)
    if why:
        return httpd.error(409, why)
    return as_json(202, _state(u))


def _state(u):
    d = u.doc
    out = {"status": d["status"], "phase": d["phase"], "version": d["version"],
           "running": update.running_version()}
    if d["why"]:
        out["why"] = d["why"]
    return out
