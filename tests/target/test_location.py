# On-target tests for diag/location.py: upload locations parsed, escaping paths and unknown
# schemes refused; and log.url(), which shows them (and any URL) without credentials or query.
import log
from diag import location
from diag.location import BadLocation


def test_ftp_with_credentials_and_a_folder():
    got = location.parse("ftp://steve:p%40ss:w0rd@10.0.0.5:2121/logs/cp1/", "f.txt")
    assert got == ("ftp", "10.0.0.5", 2121, "steve", "p@ss:w0rd", "/logs/cp1/f.txt")
    assert location.parse("ftp://h", "f.txt") == ("ftp", "h", 21, "anonymous", "", "/f.txt")
    assert location.parse("ftp://u@h/x/name.log", "f.txt")[5] == "/x/name.log"


def test_http_keeps_the_raw_path_and_query():
    got = location.parse("https://[::1]:8443/up%20load/?t=1", "f.txt")
    assert got == ("https", "::1", 8443, None, None, "/up%20load/f.txt?t=1")
    assert location.parse("HTTP://h/put", "f")[:3] == ("http", "h", 80)


def test_refused():
    for url, why in (("gopher://h/x", "scheme"), ("h/x", "no scheme"), ("ftp:///x", "no host"),
                     ("ftp://h/../x", "escapes"), ("ftp://h/a/%2E%2E/b", "escapes"),
                     ("ftp://h/a/..", "escapes"), ("ftp://h:99999/", "port"),
                     ("ftp://h:x/", "port"), ("ftp://u:p@h/a%0d%0aDELE%20x/", "control"),
                     ("ftp://h/%zz", "escape")):
        try:
            location.parse(url, "f")
        except BadLocation as e:
            assert why in str(e), (url, str(e))
        else:
            raise AssertionError("accepted %s" % url)


def test_log_url_hides_credentials_and_query():
    assert log.url("ftp://user:secret@h:21/a/") == "ftp://***@h:21/a/"
    assert "secret" not in log.url("ftp://secret@h")
    # A pre-signed upload's signature (the query), a password holding a "/": neither reaches a
    # log line, which the agent log keeps and the next diagnostics upload carries.
    assert log.url("https://h/x?X-Amz-Signature=SIG") == "https://h/x?..."
    assert log.url("ftp://diag:Pa55/word@h:21/up/") == "ftp://***@h:21/up/"
    assert log.url("wss://csms.example/ocpp#frag") == "wss://csms.example/ocpp?..."
    assert log.url("wss://csms.example/ocpp?token=abc") == "wss://csms.example/ocpp?..."
    assert log.url("ws://csms.example:9000/ocpp") == "ws://csms.example:9000/ocpp"
