# On-target tests for ocpp_client.security: what each security profile demands before a
# connection is even tried, PEM -> DER (this mbedTLS build parses DER only), the TLS context
# (CERT_REQUIRED), HTTP Basic, and the refusal to check certificates with an unset clock.
# The certificate and key below are a throwaway self-signed test pair (EC P-256, 2025-2099).
import clock
from ocpp_client import security
from ocpp_client.security import SecurityError
from fakeboard import FakeBoard

CERT = """-----BEGIN CERTIFICATE-----
MIIBNDCB3KADAgECAgEHMAoGCCqGSM49BAMCMBkxFzAVBgNVBAMMDm9uLXRhcmdl
dCB0ZXN0MCAXDTI1MDEwMTAwMDAwMFoYDzIwOTkwMTAxMDAwMDAwWjAZMRcwFQYD
VQQDDA5vbi10YXJnZXQgdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABF6S
FcsxmGhPy7KQAwYlYUI3fFiJeI8VvzJdK1c3WHgsHNBSI6U6EnGU+8FblmWtBLRH
UY1aE4KNEfJCaVYHSFOjEzARMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
RwAwRAIgbR2/lzjSoR8gebuA6aZhJeQPvRMw0nHd1puhOIc43VoCIAEQtoTG34Gf
IG6qGCqzbcWC/OhJLoQhaDWla2NogSgY
-----END CERTIFICATE-----
"""
KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYWdewmr1lF1F5iZy
NtmsRBklLZCrAWsKN81Q8JwF+auhRANCAARekhXLMZhoT8uykAMGJWFCN3xYiXiP
Fb8yXStXN1h4LBzQUiOlOhJxlPvBW5ZlrQS0R1GNWhOCjRHyQmlWB0hT
-----END PRIVATE KEY-----
"""
EC_KEY = """-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIGFnXsJq9ZRdReYmcjbZrEQZJS2QqwFrCjfNUPCcBfmroAoGCCqGSM49
AwEHoUQDQgAEXpIVyzGYaE/LspADBiVhQjd8WIl4jxW/Ml0rVzdYeCwc0FIjpToS
cZT7wVuWZa0EtEdRjVoTgo0R8kJpVgdIUw==
-----END EC PRIVATE KEY-----
"""


def settings(**kw):
    d = {"cp_id": "CP1", "security_profile": 0, "auth_key": "", "ca_pem": "", "cert_pem": "",
         "key_pem": ""}
    d.update(kw)
    return d


def refused(fn, *words):
    try:
        fn()
    except SecurityError as e:
        for w in words:
            assert w in str(e), (w, str(e))
        return
    raise AssertionError("not refused: " + " ".join(words))


def reset_clock():
    clock._off = 0
    clock._source = None


def test_pem_to_der():
    ders = security.pem_to_der("junk\n" + CERT + "\r\n" + CERT.replace("\n", "\r\n"), "CERTIFICATE")
    assert len(ders) == 2 and ders[0] == ders[1]
    assert ders[0][0] == 0x30 and len(ders[0]) == 312  # a DER SEQUENCE
    assert security.pem_to_der(KEY + CERT, "CERTIFICATE") == ders[:1]
    assert len(security.pem_to_der(KEY, ("PRIVATE KEY", "EC PRIVATE KEY"))) == 1
    assert security.pem_to_der("", "CERTIFICATE") == []
    # decoded in place over the text's bytes; a text with non-ASCII (offsets not its bytes') too
    assert security.pem_to_der("Zertifikat \u00e4\u00f6\n" + CERT, "CERTIFICATE") == ders[:1]
    refused(lambda: security.pem_to_der("-----BEGIN CERTIFICATE-----\nAAAA\n", "CERTIFICATE"),
            "no END")
    enc = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END EC PRIVATE KEY-----\n"
    refused(lambda: security.pem_to_der(enc, "EC PRIVATE KEY"), "encrypted")


def test_basic_auth_header():
    assert security.basic_auth("CP1", "secret") == "Basic Q1AxOnNlY3JldA=="
    refused(lambda: security.basic_auth("a:b", "k"), "':'")


def test_a_hex_authorization_key_goes_out_decoded():
    # The 1.6 security whitepaper's example: the key is the hex form of a 20-byte password,
    # which the header carries as bytes (OCTT TC_085_CS checks the same).
    key = "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"
    assert security.basic_auth("AL1000", key) == "Basic QUwxMDAwOgABAgMEBQYH////////////////"
    assert security.basic_password(key.lower()) == bytes(range(8)) + b"\xff" * 12
    # Not hex of 16-20 bytes: the key is the password itself (CSMSs that set a plain one)
    for plain in ("0123456789abcdef0123", "Secret-Auth-Key-0123456789", "0" * 33, "g" * 32):
        assert security.basic_password(plain) == plain.encode(), plain


def test_profile_requirements():
    reset_clock()
    ca = dict(ca_pem=CERT)
    ca_args = security.connect_args(settings(**ca), "wss://h/ocpp")
    assert ca_args[0] is None and ca_args[1] is not None
    assert security.connect_args(settings(), "ws://h/ocpp") == (None, None)
    auth, tls = security.connect_args(settings(security_profile=1, auth_key="k"), "ws://h/")
    assert auth == security.basic_auth("CP1", "k") and tls is None
    auth, tls = security.connect_args(settings(security_profile=2, auth_key="k", **ca), "wss://h/")
    assert auth.startswith("Basic ") and tls is not None
    auth, tls = security.connect_args(
        settings(security_profile=3, cert_pem=CERT, key_pem=KEY, auth_key="k", **ca), "wss://h/")
    assert auth is None and tls is not None  # profile 3 authenticates by certificate only
    refused(lambda: security.connect_args(settings(security_profile=1), "ws://h/"), "AuthorizationKey")
    refused(lambda: security.connect_args(settings(security_profile=2, auth_key="k", **ca), "ws://h/"),
            "needs a wss://")
    refused(lambda: security.connect_args(settings(security_profile=3, **ca), "ws://h/"), "wss://")
    refused(lambda: security.connect_args(settings(security_profile=3, **ca), "wss://h/"),
            "client certificate")
    refused(lambda: security.connect_args(settings(security_profile=2, auth_key="k"), "wss://h/"),
            "no CA certificate")
    refused(lambda: security.connect_args(settings(security_profile=7), "ws://h/"), "unknown")
    refused(lambda: security.connect_args(settings(ca_pem="-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                   "-----END CERTIFICATE-----\n"), "wss://h/"),
            "CA certificate rejected")


def test_a_tls_profile_reaches_a_ws_url_over_wss():
    # OCTT TC_083_CS: 1.6 has no key for the URL, so after an upgrade to profile 2 the
    # provisioned ws:// endpoint is reached over TLS (same host, port and path); 0-1 take the
    # URL as given, and a wss:// URL stays wss:// whatever the profile.
    for prof, url, want in ((0, "ws://h:9000/ocpp", "ws://h:9000/ocpp"),
                            (1, "ws://h:9000/ocpp", "ws://h:9000/ocpp"),
                            (2, "ws://h:9000/ocpp", "wss://h:9000/ocpp"),
                            (3, "ws://h/o/p", "wss://h/o/p"),
                            (1, "wss://h/ocpp", "wss://h/ocpp"),
                            (2, "wss://h/ocpp", "wss://h/ocpp")):
        assert security.endpoint(settings(security_profile=prof), url) == want, (prof, url)


def test_tls_context_requires_the_server_certificate():
    import ssl

    ctx = security.tls_context(CERT)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert security.tls_context(CERT) is ctx  # parsed once, reused on reconnects
    ctx2 = security.tls_context(CERT + CERT, CERT, EC_KEY)  # two CAs, a traditional EC key
    assert ctx2 is not ctx and ctx2.verify_mode == ssl.CERT_REQUIRED
    refused(lambda: security.tls_context(CERT, CERT, ""), "missing")
    refused(lambda: security.tls_context(CERT, CERT, KEY.replace("MIGHAg", "MIGHAh")), "rejected")


class _Store:
    def __init__(self):
        self.changes = {}  # as Store.changes: name -> saves and removals since boot

    def save(self, name):
        self.changes[name] = self.changes.get(name, 0) + 1


class _Counted(dict):
    # settings over a store, their PEM reads counted (each one a document read from flash)
    def __init__(self, store, **kw):
        super().__init__(settings(**kw))
        self.store = store
        self.reads = 0

    def get(self, k, default=None):
        if k.endswith("_pem"):
            self.reads += 1
        return super().get(k, default)


def test_a_reconnect_takes_the_context_as_it_is_until_a_document_is_saved():
    reset_clock()
    st = _Store()
    s = _Counted(st, security_profile=2, auth_key="k", ca_pem=CERT)
    keep = []
    _, ctx = security.connect_args(s, "wss://h/", keep)
    assert ctx is not None and s.reads == 1
    auth, again = security.connect_args(s, "wss://h/", keep)
    assert again is ctx and s.reads == 1 and auth == security.basic_auth("CP1", "k")
    st.save("session")  # not a credentials document: nothing read again
    assert security.connect_args(s, "wss://h/", keep)[1] is ctx and s.reads == 1
    st.save("settings")  # the settings saved: the PEMs are read and compared again
    assert security.connect_args(s, "wss://h/", keep)[1] is ctx and s.reads == 2
    assert security.connect_args(s, "wss://h/", keep)[1] is ctx and s.reads == 2
    s["ca_pem"] = CERT + CERT  # a new central root in the certificate store
    st.save("certs")
    new = security.connect_args(s, "wss://h/", keep)[1]
    assert new is not ctx and s.reads == 3
    s["security_profile"] = 3  # another profile: the client certificate read, a new context
    s["cert_pem"], s["key_pem"] = CERT, KEY
    assert security.connect_args(s, "wss://h/", keep)[1] is not new and s.reads > 3


class Board(FakeBoard):
    # names an SNTP server (a loopback port nothing answers on) or none
    def __init__(self, server):
        super().__init__()
        self.server = server
        self.calls = 0

    def ntp_server(self):
        self.calls += 1
        return self.server


async def test_unset_clock_refuses_certificate_checks():
    reset_clock()
    try:
        clock._off = -clock.now() + 946684800  # the ESP32 after a cold boot: 2000-01-01
        assert not security.clock_ok()
        refused(lambda: security.connect_args(settings(ca_pem=CERT), "wss://h/"),
                "clock not set (2000-01-01T")
        assert security.connect_args(settings(), "ws://h/") == (None, None)  # no certs, no need
        refused(security.check_clock, "clock not set")  # never waits: it only says
        b = Board(None)
        await security.sync_clock(b)  # a board without a time source: nothing asked
        assert b.calls == 1 and not security.clock_ok()
        b = Board(("127.0.0.1", 9))  # no resolver (dns_server() None): not asked either
        await security.sync_clock(b)
        assert b.calls == 1 and not security.clock_ok()
        clock.set_utc(1767225600, "sntp")  # 2026-01-01
        security.check_clock()  # fine now
        await security.sync_clock(b)
        assert b.calls == 1, "a trusted clock asks no server"
        clock._off = -clock.now() + 946684800
        assert security.clock_ok()  # once set from the network, trusted whatever it says
    finally:
        reset_clock()
