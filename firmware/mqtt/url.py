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
