# The broker URL, as the settings, the claim and the OCPP key give it.


def parse_url(url):
    # mqtt://host[:port] or mqtts://host[:port] -> (tls, host, port). Raises ValueError.
    if url.startswith("mqtts://"):
        tls, rest = True, url[8:]
    elif url.startswith("mqtt://"):
        tls, rest = False, url[7:]
    else:
        raise ValueError("the broker URL must start with mqtt:// or mqtts://")
    if len(url) > 200:
        raise ValueError("the broker URL is too long")
    rest = rest.split("/", 1)[0]
    if "@" in rest:
        raise ValueError("the broker URL must not carry credentials")
    host, _, port = rest.partition(":")
    if not host:
        raise ValueError("the broker URL has no host")
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("the broker URL's port must be 1 to 65535")
        return tls, host, int(port)
    return tls, host, 8883 if tls else 1883
