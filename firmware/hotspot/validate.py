# Validation of a claim request: every field checked for type, length, charset and form, with a
# message the owner can act on. claim(d) -> (cleaned dict, None) or (None, (field, message)).
# Nothing here echoes a secret back: messages name the field, never its value.

_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_ID_CHARS = _HOST_CHARS + "._"
_PATH_CHARS = _ID_CHARS + "~/%:@!$&'()*+,;="
_B64 = const(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_NAME_FORBIDDEN = const("<>\"\\`")
_FIELDS = const(("name", "wifi_ssid", "wifi_password", "csms_url", "cp_id", "security_profile",
                 "auth_key", "ca_pem", "mqtt_url", "mqtt_user", "mqtt_password", "mqtt_ca_pem"))


class Invalid(Exception):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


def _str(d, k, required=True):
    v = d.get(k)
    if v is None:
        if required:
            raise Invalid(k, "%s is required" % k)
        return ""
    if not isinstance(v, str):
        raise Invalid(k, "%s must be a string" % k)
    return v


def _only(s, chars):
    # Every character of s is one of chars (stripped away; no one-character strings made: each
    # new one would take a qstr for good).
    return not s.strip(chars)


def name(v):
    v = v.strip()
    if not v:
        raise Invalid("name", "name must not be empty")
    if len(v) > 32:
        raise Invalid("name", "name must be at most 32 characters")
    for c in v:
        o = ord(c)
        if o < 0x20 or 0x7F <= o < 0xA0 or c in _NAME_FORBIDDEN:
            raise Invalid("name", "name must not contain control characters or any of < > \" \\ `")
    return v


def ssid(v):
    n = len(v.encode())
    if n < 1 or n > 32:
        raise Invalid("wifi_ssid", "wifi_ssid must be 1 to 32 bytes")
    for c in memoryview(v):  # UTF-8 bytes: the control characters are the same bytes
        if c < 0x20 or c == 0x7F:
            raise Invalid("wifi_ssid", "wifi_ssid must not contain control characters")
    return v


def wifi_password(v):
    # WPA2-PSK: 8-63 printable ASCII characters, or the 64-hex-digit key; "" = open network.
    if v == "":
        return v
    if len(v) == 64 and _only(v, "0123456789abcdefABCDEF"):
        return v
    if not 8 <= len(v) <= 63:
        raise Invalid("wifi_password", "wifi_password must be 8 to 63 characters (WPA2)")
    for c in memoryview(v):  # UTF-8 bytes: anything not ASCII has bytes past 0x7E
        if not 0x20 <= c <= 0x7E:
            raise Invalid("wifi_password", "wifi_password must be printable ASCII")
    return v


def _hostname(h):
    if len(h) > 253:
        return False
    parts = h.split(".")
    if all(p.isdigit() for p in parts):  # dotted IPv4
        return len(parts) == 4 and all(len(p) <= 3 and int(p) <= 255 for p in parts)
    for p in parts:
        if not 1 <= len(p) <= 63 or not _only(p, _HOST_CHARS) or p[0] == "-" or p[-1] == "-":
            return False
    return True


def csms_url(v, profile):
    f = "csms_url"
    if len(v) > 200:
        raise Invalid(f, "csms_url must be at most 200 characters")
    if not (v.startswith("ws://") or v.startswith("wss://")):
        raise Invalid(f, "csms_url must start with ws:// or wss://")
    from net.url import split

    try:
        scheme, user, host, _, path = split(v, ("ws", "wss"))
    except ValueError as e:
        if "port" in str(e):
            raise Invalid(f, "csms_url: the port must be a number from 1 to 65535")
        raise Invalid(f, "csms_url has no valid host name")
    secure = scheme == "wss"
    if user is not None:
        raise Invalid(f, "csms_url must not carry credentials (use auth_key)")
    if v[len(scheme) + 3] == "[":
        raise Invalid(f, "csms_url: IPv6 addresses are not supported; use a host name")
    if not _hostname(host):
        raise Invalid(f, "csms_url has no valid host name")
    if not _only(path, _PATH_CHARS):
        raise Invalid(f, "csms_url: the path has characters that are not allowed (? # space ...)")
    if profile >= 2 and not secure:
        raise Invalid(f, "security profile %d needs a wss:// URL" % profile)
    if profile < 2 and secure:
        raise Invalid(f, "a wss:// URL needs security profile 2 (TLS)")
    return v


def cp_id(v):
    if not 1 <= len(v) <= 48 or not _only(v, _ID_CHARS):
        raise Invalid("cp_id", "cp_id must be 1 to 48 of A-Z a-z 0-9 . _ -")
    return v


def auth_key(v):
    # OCPP 1.6 security: AuthorizationKey, 16 to 40 printable characters (HTTP Basic password).
    if not 16 <= len(v) <= 40:
        raise Invalid("auth_key", "auth_key must be 16 to 40 characters")
    for c in memoryview(v):  # UTF-8 bytes: anything not ASCII has bytes past 0x7E
        if not 0x21 <= c <= 0x7E:
            raise Invalid("auth_key", "auth_key must be printable ASCII without spaces")
    return v


def ca_pem(v, f="ca_pem"):
    if len(v) > 4096:
        raise Invalid(f, "%s must be at most 4096 characters" % f)
    given = v
    v = v.strip()
    if "\r" in v:
        v = v.replace("\r\n", "\n")
    head = "-----BEGIN CERTIFICATE-----"
    tail = "-----END CERTIFICATE-----"
    if not v.startswith(head) or not v.endswith(tail):
        raise Invalid(f, "%s must be one PEM certificate (-----BEGIN CERTIFICATE----- ...)" % f)
    # The body's base64, walked in place as bytes (no copy of a certificate that may be 4 KB
    # long, and no one-character strings: each new one would take a qstr for good).
    n = 0
    body = memoryview(v)
    for c in body[len(head) : len(body) - len(tail)]:
        if c != 0x0A:  # newline
            if c not in _B64:
                n = -1
                break
            n += 1
    if n <= 0 or n % 4:
        raise Invalid(f, "%s: the certificate body is not base64" % f)
    if len(given) == len(v) + 1 and given.endswith("\n") and given.startswith(head):
        return given  # already the text and one newline: kept, not copied (KBs)
    return v + "\n"


def profile(d):
    v = d.get("security_profile", 0)
    if isinstance(v, bool) or not isinstance(v, int):
        raise Invalid("security_profile", "security_profile must be an integer: 0, 1 or 2")
    if v == 3:
        raise Invalid("security_profile",
                      "security profile 3 (client certificates) cannot be set by a claim")
    if v not in (0, 1, 2):
        raise Invalid("security_profile", "security_profile must be 0, 1 or 2")
    return v


def _where(url):
    # A CSMS endpoint without its scheme: ws:// raised to wss:// (at profile 2-3 the charger
    # reaches ws://host/path over wss://: security.endpoint()) is the same CSMS; a scheme's
    # default port is none given, and a trailing "/" none.
    from net.url import PORTS, split

    scheme, _, host, port, path = split(url, ("ws", "wss"))
    return host.lower(), None if port == PORTS[scheme] else port, path.rstrip("/")


def against(c, st):
    # A claim checked against the settings in use: c["same"] True for the CSMS endpoint and
    # charge point id of a claimed charger (a new home Wi-Fi: nothing wiped, no restart). For
    # that CSMS the security profile is never lowered (OCPP 1.6 security whitepaper: no
    # downgrade; README "Security profiles"): profile 3 in force stays, with its client
    # certificate pair, for a claim that says 2 (a claim cannot give a certificate); a claim
    # below the profile in force (wss:// -> ws:// too) is refused: an unclaim starts over.
    c["same"] = False
    url = st.get("csms_url")
    if not st.is_claimed() or not url or st.get("cp_id") != c["cp_id"]:
        return
    try:
        if _where(url) != _where(c["csms_url"]):
            return
    except ValueError:
        return
    c["same"] = True
    had = st.get("profile_fallback", -1)  # a raised profile on trial: not in force yet
    if had < 0:
        had = st.get("security_profile", 0)
    p = c["security_profile"]
    if p == 2 and had == 3:
        c["security_profile"] = 3
    elif p < had:
        raise Invalid("security_profile", "this charger uses security profile %d with this CSMS: "
                      "a claim cannot lower it (unclaim first to start over)" % had)


def claim(d, default_cp_id):
    # -> cleaned dict with every field of _FIELDS. Raises Invalid.
    if not isinstance(d, dict):
        raise Invalid("", "the body must be a JSON object")
    for k in d:
        if k not in _FIELDS:
            raise Invalid(k, "unknown field %s" % (k if _only(k, _ID_CHARS) and len(k) < 32
                                                   else "(unprintable)"))
    out = {"security_profile": profile(d)}
    out["name"] = name(_str(d, "name"))
    out["wifi_ssid"] = ssid(_str(d, "wifi_ssid"))
    out["wifi_password"] = wifi_password(_str(d, "wifi_password", False))
    out["csms_url"] = csms_url(_str(d, "csms_url"), out["security_profile"])
    out["cp_id"] = cp_id(_str(d, "cp_id", False) or default_cp_id)
    p = out["security_profile"]
    key = _str(d, "auth_key", False)
    if p in (1, 2):
        out["auth_key"] = auth_key(key)
    elif key:
        raise Invalid("auth_key", "auth_key is only used with security profile 1 or 2")
    else:
        out["auth_key"] = ""
    pem = _str(d, "ca_pem", False)
    if p == 2:
        if not pem:
            raise Invalid("ca_pem", "security profile 2 needs the CSMS's CA certificate (ca_pem)")
        out["ca_pem"] = ca_pem(pem)
    elif pem:
        raise Invalid("ca_pem", "ca_pem is only used with security profile 2")
    else:
        out["ca_pem"] = ""
    mqtt(d, out)
    return out


def mqtt(d, out):
    # Optional: the owner's MQTT broker (mqtt/). "" or absent = none.
    url = _str(d, "mqtt_url", False)
    user = _str(d, "mqtt_user", False)
    pw = _str(d, "mqtt_password", False)
    pem = _str(d, "mqtt_ca_pem", False)
    out["mqtt_url"] = out["mqtt_user"] = out["mqtt_pass"] = out["mqtt_ca_pem"] = ""
    if not url:
        for k, v in (("mqtt_user", user), ("mqtt_password", pw), ("mqtt_ca_pem", pem)):
            if v:
                raise Invalid(k, "%s is only used with mqtt_url" % k)
        return
    from mqtt.url import parse_url

    try:
        tls, host, _ = parse_url(url)
    except ValueError as e:
        raise Invalid("mqtt_url", "mqtt_url: %s" % e)
    if not _hostname(host):
        raise Invalid("mqtt_url", "mqtt_url has no valid host name")
    for k, v in (("mqtt_user", user), ("mqtt_password", pw)):
        if len(v) > 64 or not _only(v, "".join(chr(c) for c in range(0x21, 0x7F))):
            raise Invalid(k, "%s must be up to 64 printable characters without spaces" % k)
    if pw and not user:
        raise Invalid("mqtt_password", "mqtt_password needs mqtt_user")
    if tls:
        if not pem:
            raise Invalid("mqtt_ca_pem", "an mqtts:// broker needs its CA certificate (mqtt_ca_pem)")
        out["mqtt_ca_pem"] = ca_pem(pem, "mqtt_ca_pem")
    elif pem:
        raise Invalid("mqtt_ca_pem", "mqtt_ca_pem is only used with mqtts://")
    out["mqtt_url"], out["mqtt_user"], out["mqtt_pass"] = url, user, pw
