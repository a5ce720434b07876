# Credentials for the CSMS connection, by OCPP security profile (1.6 security whitepaper):
#   0  no charger authentication (development; wss:// still checks the server)
#   1  ws:// + HTTP Basic "<cp_id>:<AuthorizationKey>"
#   2  wss:// + HTTP Basic; the server certificate checked against the CA from the settings
#   3  wss:// + a client certificate (mutual TLS), no Basic
# At 2-3 a ws:// CSMS URL is reached over wss:// (endpoint()): 1.6 has no key for the URL, so an
# upgrade from 1 could never happen otherwise.
# Every wss:// connection requires the server's certificate (CERT_REQUIRED; MicroPython's own
# default is CERT_NONE) against `ca_pem`, for the URL's host name, and only once the clock is
# set: a charger that booted at 2000-01-01 would otherwise find every certificate not yet valid.
# MicroPython's mbedTLS may be built without PEM parsing, so PEM settings are decoded to DER here.
# Secrets (auth_key, key_pem) are never logged.
import binascii

import clock
import log

_TAG = "security"

_ctx_cache = None  # (ca, cert, key) -> context: parse the certificates once, not per reconnect
# The store documents the credentials come from: settings.DOC (the PEMs) and the certificate
# store's (diag/roots.py DOC, the central roots).
_DOCS = const(("settings", "certs"))


class SecurityError(Exception):
    pass


def pem_to_der(pem, label):
    # Every "-----BEGIN <label>-----" block of a PEM text, decoded: [bytes]. label may be a
    # tuple of accepted labels (private keys come as PRIVATE KEY, EC PRIVATE KEY, RSA ...).
    labels = (label,) if isinstance(label, str) else label
    out = []
    i = 0
    while True:
        i = pem.find("-----BEGIN ", i)
        if i < 0:
            return out
        j = pem.find("-----", i + 11)
        if j < 0:
            return out
        name = pem[i + 11 : j]
        end = pem.find("-----END " + name + "-----", j + 5)
        if end < 0:
            raise SecurityError("PEM block %s has no END line" % name)
        if name in labels:
            if pem.find("Proc-Type", j, end) >= 0:
                raise SecurityError("encrypted private keys are not supported")
            # Decoded where it lies (a2b_base64 skips line breaks and spaces): no copy of a text
            # of KBs, whose block a fragmented heap may lack; an ASCII text's offsets are its
            # bytes' (any other is sliced).
            mv = memoryview(pem)
            try:
                out.append(binascii.a2b_base64(mv[j + 5 : end] if len(mv) == len(pem)
                                               else pem[j + 5 : end]))
            except ValueError:
                raise SecurityError("PEM block %s is not valid base64" % name)
        i = end + 9


def basic_password(key):
    # The AuthorizationKey as HTTP Basic's password. The 1.6 security whitepaper makes the key
    # the hex form of a 16-20 byte password, which goes out decoded (OCTT TC_085_CS): 32-40 hex
    # digits are decoded. Any other key (16-20 characters, as many CSMSs set it) is the
    # password as it is.
    n = len(key)
    if 32 <= n <= 40 and not n % 2:
        try:
            return binascii.unhexlify(key)
        except ValueError:
            pass
    return key.encode()


def basic_auth(cp_id, key):
    # The Authorization header value for HTTP Basic "<cp_id>:<password>" (basic_password()).
    if ":" in cp_id:
        raise SecurityError("a charge point id with ':' cannot use HTTP Basic")
    tok = binascii.b2a_base64(cp_id.encode() + b":" + basic_password(key))[:-1]
    return "Basic " + tok.decode()


def clock_ok():
    return clock.trusted()


async def sync_clock(board):
    # Before a TLS connection: an untrusted clock is set from the board's SNTP server
    # (net/sntp.py, loaded for it), without blocking the loop. check_clock() then says.
    s = None if clock.trusted() or board is None else board.ntp_server()
    if s:
        from net import sntp

        await sntp.sync(s, board.dns_server())


def check_clock():
    # Certificates carry validity dates: the clock must be right before they are checked
    # (a caller that can wait awaits sync_clock() first).
    if not clock_ok():
        raise SecurityError("clock not set (%s): cannot check the CSMS certificate" % clock.iso())


def tls_context(ca_pem, cert_pem="", key_pem="", keep=None):
    # An SSLContext that requires the server certificate (chain to one of the CAs in ca_pem) and,
    # with cert_pem/key_pem, presents a client certificate. `keep`: a list the caller holds
    # across connections ([digest of the credentials, context]), for a caller that drops this
    # module between them: the context (one ~3 KB block with mbedTLS's state inside, which a
    # long-running heap may no longer have in one piece) is made once and reused while the
    # credentials stay the same.
    global _ctx_cache
    if keep is not None:
        import hashlib

        h = hashlib.sha256(ca_pem)
        for part in ("\0", cert_pem, "\0", key_pem):
            h.update(part)
        ident = h.digest()
        if keep and keep[0] == ident:
            return keep[1]
        ders = _decode(ca_pem, cert_pem, key_pem)
        # The old context (or the block app.py reserved) goes only now, with the certificates
        # decoded: the decoding's garbage is not left in its hole, the new context takes it.
        keep.clear()
        ctx = _make(ders)
        keep.append(ident)
        keep.append(ctx)
        _ctx_cache = None
        return ctx
    ident = (ca_pem, cert_pem, key_pem)
    if _ctx_cache is not None and _ctx_cache[0] == ident:
        return _ctx_cache[1]
    ctx = _make(_decode(ca_pem, cert_pem, key_pem))
    _ctx_cache = (ident, ctx)
    return ctx


def _decode(ca_pem, cert_pem, key_pem):
    # The credentials as DER: -> (CA certificates, the client certificate and the rest of its
    # chain or None, its key or None)
    cas = pem_to_der(ca_pem, "CERTIFICATE")
    if not cas:
        raise SecurityError("no CA certificate configured (ca_pem): wss:// cannot be checked")
    if not (cert_pem or key_pem):
        return cas, None, None
    certs = pem_to_der(cert_pem, "CERTIFICATE")
    keys = pem_to_der(key_pem, ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"))
    if not certs or not keys:
        raise SecurityError("client certificate or key missing")
    return cas, certs, keys[0]


def _make(ders):
    # tls: the C module under MicroPython's ssl.py, whose wrapper (file paths, a CERT_NONE
    # default) adds nothing used here and would load ~1 KB of module into the heap per connection
    import tls

    cas, cert, key = ders
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    for der in cas:
        try:
            ctx.load_verify_locations(der)
        except (ValueError, OSError) as e:
            raise SecurityError("CA certificate rejected: %s" % e)
    if cert is not None:
        try:
            # One call per certificate, the leaf first: each appends to the chain presented (a DER
            # text holds one). A leaf issued by a sub-CA (CertificateSigned "can also contain the
            # necessary sub CA certificates") goes with it, or a CSMS that trusts only its root
            # refuses it.
            for c in cert:
                ctx.load_cert_chain(c, key)
        except (ValueError, OSError) as e:
            raise SecurityError("client certificate or key rejected: %s" % type(e).__name__)
    return ctx


def endpoint(settings, url):
    # The URL a connection goes to. At profile 2-3 a ws:// URL is the same endpoint over TLS
    # (ws://host:port/path -> wss://host:port/path; no port: 443): an upgrade from 1 by
    # ChangeConfiguration (OCTT TC_083_CS) then connects, as EVerest's libocpp does (the URI
    # kept without its scheme, the scheme picked by profile). 0-1 take the URL as given; the
    # profile is never lowered, so a TLS profile that connected never goes back to ws://: only a
    # raised one that never connected falls back (proftrial.py), and the scheme with it.
    if url.startswith("ws://") and settings.get("security_profile", 0) >= 2:
        return "wss://" + url[5:]
    return url


def connect_args(settings, url, keep=None):
    # -> (authorization header or None, TLS context or None) for connecting to `url`, checked
    # against the configured security profile (`keep`: tls_context's). Raises SecurityError
    # with the reason. Does not wait: a wss:// URL needs a trusted clock already (sync_clock).
    prof = settings.get("security_profile", 0)
    if prof not in (0, 1, 2, 3):
        raise SecurityError("unknown security profile %r" % (prof,))
    secure = url.startswith("wss://")
    if prof >= 2 and not secure:
        raise SecurityError("security profile %d needs a wss:// CSMS URL" % prof)
    auth = None
    if prof in (1, 2):
        key = settings.get("auth_key", "")
        if not key:
            raise SecurityError("security profile %d needs an AuthorizationKey" % prof)
        auth = basic_auth(settings["cp_id"], key)
    ctx = None
    if secure:
        check_clock()
        # A reconnect with neither credentials document saved since the context was made (their
        # counts in Store.changes, kept after it in `keep`) takes it as it is: the PEMs are not
        # read and hashed again, nor their modules loaded, in what may be a fragmented heap by
        # then. After a save of either, tls_context() compares them.
        st = getattr(settings, "store", None)
        if keep and st is not None and keep[2:] == [stamp(prof, st)]:
            return auth, keep[1]
        cert = key = ""
        if prof == 3:
            cert = settings.get("cert_pem", "")
            key = settings.get("key_pem", "")
            if not cert or not key:
                raise SecurityError("security profile 3 needs a client certificate and key")
        # The central system roots: the certificate store's when one runs (diag/certs.py).
        roots = getattr(settings, "roots", None)
        ctx = tls_context(roots() if roots else settings.get("ca_pem", ""), cert, key, keep)
        if keep and st is not None:
            # taken after the reads: the roots' first read may save the certificate store
            del keep[2:]
            keep.append(stamp(prof, st))
    return auth, ctx


def stamp(prof, store):
    # What a kept context was made under: the profile and the credentials documents' saves
    # (also hotspot/claim.py's, handing the claim's context to the session).
    ch = store.changes
    return (prof, ch.get(_DOCS[0], 0), ch.get(_DOCS[1], 0))
