# Uploads one file from flash to a GetDiagnostics / GetLog location: ftp:// (net/ftp.py, passive
# mode) or http(s):// (net/http.py, PUT, POST after a 405; https://, a redirect's too, trusts
# the central system roots, like the CSMS link). Runs in its own task and moves the file in 1 KiB
# chunks, awaiting the socket after each: the connector and the OCPP link go on meanwhile. A
# failure raises UploadError with a reason fit for a log line (never the credentials), and `st`:
# the LogStatus it means when not UploadFailure (PermissionDenied: FTP 530/550, HTTP 401/403;
# NotSupportedOperation: FTP 502/504, HTTP 405 after the POST, 501).
import os

from diag import location


class UploadError(Exception):
    def __init__(self, msg, st=None):
        super().__init__(msg)
        self.st = st


def _st(code, denied, unsupported):
    return "PermissionDenied" if code in denied else (
        "NotSupportedOperation" if code in unsupported else None)


def upload(url, filename, path, board=None, settings=None, timeout_ms=10000):
    # -> (awaited) bytes sent; what it loads (net/, ocpp_client.security with its TLS context)
    # is out of the heap after it (netdrop.py)
    from supervisor import rare

    return rare("netdrop", "run", _upload(url, filename, path, board, settings, timeout_ms))


async def _upload(url, filename, path, board, settings, timeout_ms):
    try:
        scheme, host, port, user, password, rpath = location.parse(url, filename)
    except location.BadLocation as e:
        raise UploadError("bad location: %s" % e)
    route = None  # straight to the server (the simulation's network gate is the CSMS link's)
    # the board's resolver: the name is asked of it (net/dns.py)
    resolver = board.dns_server() if board is not None else None
    try:
        if scheme == "ftp":
            from net import ftp

            f = open(path, "rb")
            try:
                return await ftp.stor(host, port, user, password, rpath, f, timeout_ms,
                                      route=route, resolver=resolver)
            except ftp.FtpError as e:
                raise UploadError("FTP: %s" % e, _st(e.code, (530, 550), (502, 504)))
            finally:
                f.close()
        return await _http(scheme, host, port, user, password, rpath, path, board, settings,
                           timeout_ms, route, resolver)
    except OSError as e:
        raise UploadError("%s: %s %s" % (scheme, type(e).__name__, e))


async def _http(scheme, host, port, user, password, rpath, path, board, settings, timeout_ms,
                route, resolver):
    # Credentials in the URL become HTTP Basic (net/http.py takes none in URLs).
    import binascii

    from net import http

    hosthdr = ("[%s]" % host) if ":" in host else host
    url = "%s://%s:%d%s" % (scheme, hosthdr, port, rpath)
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if user is not None:
        tok = binascii.b2a_base64(("%s:%s" % (user, password or "")).encode())[:-1].decode()
        headers["Authorization"] = "Basic " + tok
    made = []

    async def tls():
        # The TLS context of an https:// location, or of the https:// URL an http:// one is
        # redirected to (net/http.py _follow): the CSMS link's roots, made once.
        if not made:
            from ocpp_client import security

            try:
                await security.sync_clock(board)
                security.check_clock()
                roots = getattr(settings, "roots", None)
                pem = roots() if roots else settings.get("ca_pem", "")
                made.append(security.tls_context(pem))
            except security.SecurityError as e:
                raise UploadError("https: %s" % e)
        return made[0]

    try:
        try:
            await http.upload("PUT", url, path, headers=headers, route=route,
                              timeout_ms=timeout_ms, resolver=resolver, tls=tls)
        except http.HttpError as e:
            if e.status != 405:
                raise
            # A server that takes uploads by POST only says so with 405.
            await http.upload("POST", url, path, headers=headers, route=route,
                              timeout_ms=timeout_ms, resolver=resolver, tls=tls)
    except http.HttpError as e:
        raise UploadError("%s: %s" % (scheme, e), _st(e.status, (401, 403), (405, 501)))
    return os.stat(path)[6]
