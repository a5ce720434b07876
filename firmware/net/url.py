# The firmware's one URL parser: "scheme://[userinfo@]host[:port][/path][?query][#fragment]"
# (RFC 3986: the scheme in any case, the authority ending at the first "/", "?" or "#", an IPv6
# host in brackets, an empty port meaning the scheme's default). Every URL the charger is given
# goes through it: the CSMS (ocpp_client/ws.py), downloads and uploads (net/http.py), upload
# locations (diag/location.py), the MQTT broker (mqtt/url.py); each caller checks what its
# scheme allows (credentials, the path's characters) and keeps its own error type.

PORTS = {"ws": 80, "wss": 443, "http": 80, "https": 443, "ftp": 21, "mqtt": 1883, "mqtts": 8883}


def split(url, schemes):
    # -> (scheme in lower case, userinfo or None, host, port, rest): `rest` is what follows the
    # authority, "" or starting with "/", "?" or "#". `schemes`: the ones accepted (keys of
    # PORTS). Raises ValueError with the reason.
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme not in schemes:
        raise ValueError("URL must start with " + " or ".join(s + "://" for s in schemes))
    rest = url[i + 3 :]
    j = 0
    while j < len(rest) and rest[j] not in "/?#":
        j += 1
    auth, rest = rest[:j], rest[j:]
    user = None
    at = auth.rfind("@")
    if at >= 0:
        user, auth = auth[:at], auth[at + 1 :]
    if auth.startswith("["):
        k = auth.find("]")
        if k < 0 or auth[k + 1 : k + 2] not in ("", ":"):
            raise ValueError("URL has a bad host")
        host, p = auth[1:k], auth[k + 2 :]
    else:
        host, _, p = auth.partition(":")
    if not host:
        raise ValueError("URL has no host")
    port = PORTS[scheme]
    if p:
        if not p.isdigit() or len(p) > 5 or not 0 < int(p) < 65536:
            raise ValueError("URL has a bad port")
        port = int(p)
    return scheme, user, host, port, rest
