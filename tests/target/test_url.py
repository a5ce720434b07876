# On-target tests for net/url.py, the firmware's one URL parser (ws.py, http.py, location.py and
# mqtt/url.py check their schemes' own rules on top of it).
from net.url import split


def test_parts_and_default_ports():
    assert split("ws://h/ocpp/CP1", ("ws", "wss")) == ("ws", None, "h", 80, "/ocpp/CP1")
    assert split("WSS://h:8443", ("ws", "wss")) == ("wss", None, "h", 8443, "")
    assert split("ftp://u:p@w@[::1]:2121/a", ("ftp",)) == ("ftp", "u:p@w", "::1", 2121, "/a")
    assert split("http://h?q=1#f", ("http",)) == ("http", None, "h", 80, "?q=1#f")
    assert split("mqtts://b.lan:/", ("mqtts",)) == ("mqtts", None, "b.lan", 8883, "/")


def test_refused_with_the_reason():
    for url, why in (("http://h/", "ws://"), ("h/x", "ws://"), ("://h", "ws://"),
                     ("ws://", "no host"), ("ws:///x", "no host"), ("ws://u@/x", "no host"),
                     ("ws://h:0/", "port"), ("ws://h:65536/", "port"), ("ws://h:x/", "port"),
                     ("ws://h:+80/", "port"), ("ws://h:1:2/", "port"), ("ws://[::1/", "host"),
                     ("ws://[::1]x/", "host")):
        try:
            split(url, ("ws", "wss"))
        except ValueError as e:
            assert why in str(e), (url, str(e))
        else:
            raise AssertionError("accepted %s" % url)


def test_the_claims_csms_url_check_keeps_its_own_rules():
    from hotspot.validate import Invalid, csms_url

    assert csms_url("ws://csms.lan:9000/ocpp", 0) == "ws://csms.lan:9000/ocpp"
    assert csms_url("wss://csms.example.com/ocpp/", 2) == "wss://csms.example.com/ocpp/"
    for url, why in (("http://h/", "must start with ws://"), ("ws://u:p@h/", "credentials"),
                     ("ws://[::1]:9/", "IPv6"), ("ws://h:0/", "port"), ("ws://h:x/", "port"),
                     ("ws:///x", "host name"), ("ws://bad host/", "host name"),
                     ("ws://h/a?b", "path"), ("ws://h/a#b", "path"), ("wss://h/", "profile 2")):
        try:
            csms_url(url, 0)
        except Invalid as e:
            assert why in str(e), (url, str(e))
        else:
            raise AssertionError("accepted %s" % url)
