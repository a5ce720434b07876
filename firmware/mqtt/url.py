# The broker URL, as the settings, the claim and the OCPP key give it (parsed by net/url.py).
from net.url import split


def parse_url(url):
    # mqtt://host[:port] or mqtts://host[:port] -> (tls, host, port). Raises ValueError.
    if len(url) > 200:
        raise ValueError("the broker URL is too long")
    try:
        scheme, user, host, port, _ = split(url, ("mqtt", "mqtts"))
    except ValueError as e:
        raise ValueError("the broker " + str(e))
    if user is not None:
        raise ValueError("the broker URL must not carry credentials")
    return scheme == "mqtts", host, port


def check_prefix(v):
    # The topic prefix (BorneMqttPrefix, or provisioned): topic levels, no wildcards, no empty
    # level; no control characters (MQTT 3.1.1 1.5.3: a broker hangs up on a NUL, mosquitto on
    # any of them, at every attempt). ValueError when refused.
    if (not 0 < len(v) <= 32 or "+" in v or "#" in v or v[0] == "/" or v[-1] == "/"
            or "//" in v or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in v)):
        raise ValueError("prefix: 1-32 characters, no + # //, control characters, nor / at"
                         " either end")
