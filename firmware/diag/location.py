# Upload locations of GetDiagnostics / GetLog: "<scheme>://[user[:password]@]host[:port][/path]".
# The password never reaches a log line or a diagnostics file: show() drops the credentials.
# A path that could leave the folder the CSMS named ("..", encoded or not), or bytes an FTP
# command line cannot carry (CR, LF, NUL), are refused here.

SCHEMES = {"ftp": 21, "http": 80, "https": 443}


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
    rest = url[i + 3 :]
    j = rest.find("/")
    auth_host, path = (rest, "/") if j < 0 else (rest[:j], rest[j:])
    q = path.find("?")
    query = ""
    if q >= 0:
        path, query = path[:q], path[q:]
    if "#" in path:
        path = path[: path.find("#")]
    user = password = None
    at = auth_host.rfind("@")
    if at >= 0:
        cred, auth_host = auth_host[:at], auth_host[at + 1 :]
        c = cred.find(":")
        user, password = (cred, "") if c < 0 else (cred[:c], cred[c + 1 :])
        user, password = _unquote(user), _unquote(password)
    host, port = auth_host, SCHEMES[scheme]
    if host.startswith("["):
        k = host.find("]")
        if k < 0:
            raise BadLocation("bad host")
        if host[k + 1 : k + 2] == ":":
            port = _port(host[k + 2 :])
        host = host[1:k]
    elif ":" in host:
        host, p = host.rsplit(":", 1)
        port = _port(p)
    if not host:
        raise BadLocation("no host")
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


def _port(p):
    try:
        n = int(p)
    except ValueError:
        raise BadLocation("bad port")
    if not 0 < n < 65536:
        raise BadLocation("bad port")
    return n


def show(url):
    # The location for a log line: credentials replaced by "***".
    i = url.find("://")
    if i < 0:
        return url[:80]
    rest = url[i + 3 :]
    j = rest.find("/")
    head = rest if j < 0 else rest[:j]
    at = head.rfind("@")
    if at >= 0:
        rest = "***@" + rest[at + 1 :]
    return (url[: i + 3] + rest)[:200]
