# Upload locations of GetDiagnostics / GetLog: "<scheme>://[user[:password]@]host[:port][/path]".
# The password never reaches a log line or a diagnostics file: log.url() drops the credentials.
# A path that could leave the folder the CSMS named ("..", encoded or not), or bytes an FTP
# command line cannot carry (CR, LF, NUL), are refused here.

from net.url import split as split_url

SCHEMES = ("ftp", "http", "https")  # default ports: net/url.py


class BadLocation(ValueError):
    pass


def _unquote(s):
    if "%" not in s:
        return s
    out = bytearray()
    b = s.encode()
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x25:  # %
            try:
                out.append(int(b[i + 1 : i + 3], 16))
            except ValueError:
                raise BadLocation("bad percent escape")
            i += 3
        else:
            out.append(c)
            i += 1
    try:
        return out.decode()
    except UnicodeError:
        raise BadLocation("not UTF-8")


def parse(url, filename):
    # -> (scheme, host, port, user, password, path of the file). The location names a folder
    # when its path ends with "/" (or is empty): the file goes there under `filename`; otherwise
    # it is the file's own path. Raises BadLocation with the reason.
    i = url.find("://")
    if i <= 0:
        raise BadLocation("no scheme")
    scheme = url[:i].lower()
    if scheme not in SCHEMES:
        raise BadLocation("scheme %s is not supported" % scheme[:10])
    try:
        _, cred, host, port, rest = split_url(url, SCHEMES)
    except ValueError as e:
        raise BadLocation(str(e))
    path, q, query = rest.split("#")[0].partition("?")
    query = q + query
    path = path or "/"
    user = password = None
    if cred is not None:
        c = cred.find(":")
        user, password = (cred, "") if c < 0 else (cred[:c], cred[c + 1 :])
        user, password = _unquote(user), _unquote(password)
    raw = path
    path = _unquote(path)
    for seg in path.split("/"):
        if seg == "..":
            raise BadLocation("path escapes its folder")
    for s in (path, user or "", password or "", host):
        for ch in "\r\n\x00":
            if ch in s:
                raise BadLocation("control character in the location")
    if path.endswith("/"):
        path += filename
        raw += filename
    if scheme == "ftp":
        return scheme, host, port, user or "anonymous", password or "", path
    return scheme, host, port, user, password, raw + query

