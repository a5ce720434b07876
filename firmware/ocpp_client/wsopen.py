# The WebSocket opening handshake (RFC 6455 section 4) of the OCPP connection: the URL, the TCP
# or TLS connection, the HTTP Upgrade with the subprotocol and credentials, the accept key. Used
# only while connecting: the session drops it from the heap once connected (client.py); the
# connection itself is ws.WebSocket.
import binascii
import hashlib
import os

from net.url import split as split_url
from ocpp_client.ws import SPOOL_MAX, WebSocket, WsClosed, WsError
from supervisor import within

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADERS = const(100)
_MAX_HEADER_LINE = const(4096)  # a proxy's long cookie or policy header, read and dropped
_KEEP = const(256)  # of a header line: the status and the headers checked are far shorter
_WANTED = (b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol",
           b"sec-websocket-extensions")
_UNRESERVED = const(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ECONNRESET = const(104)  # the same number in Linux's and newlib's (ESP32) errno
_ECONNREFUSED = const(111)
_EPIPE = const(32)  # the same in Linux's and newlib's errno


class TlsError(WsError):
    # The TLS handshake failed (certificate, CA, host name, alert): a claim says csms_tls.
    pass


def quote(s):
    # Percent-encoding of one path segment: RFC 3986 unreserved characters kept, every other
    # UTF-8 byte as %XX (so "/", "%", "?", "#", spaces and non-ASCII cannot change the URL).
    out = []
    for c in s.encode():
        if c in _UNRESERVED:
            out.append(chr(c))
        else:
            out.append("%%%02X" % c)
    return "".join(out)


def parse_url(url):
    # -> (secure, host, port, path) of a ws:// or wss:// URL (net/url.py); the path keeps its
    # query. Raises ValueError; a fragment too (RFC 6455 3: a ws URI has none).
    scheme, user, host, port, rest = split_url(url, ("ws", "wss"))
    if user is not None:
        raise ValueError("credentials in the URL are not accepted")
    if "#" in rest:
        raise ValueError("a fragment (#) in the CSMS URL is not accepted")
    return scheme == "wss", host, port, rest if rest.startswith("/") else "/" + rest


async def _readline(r, buf, one):
    # One line of the answer, its first len(buf) bytes kept (all a checked header needs), read
    # byte by byte (into `one`, no allocation each) and failed past _MAX_HEADER_LINE: the
    # stream's readline() reads on to a newline however long the line, and a server's endless
    # one took the whole heap, the charger's other tasks with it. (A few hundred bytes of
    # answer: as many small reads, once per connection.) The bytes after the answer stay in the
    # stream for the WebSocket.
    n = 0
    keep = len(buf)
    while True:
        k = await r.readinto(one)
        if k is None:
            continue  # TLS: a record with no application data yet
        if not k:
            raise WsClosed("connection closed during the handshake")
        c = one[0]
        if n < keep:
            buf[n] = c
        n += 1
        if c == 10:  # \n
            return bytes(buf[: min(n, keep)])
        if n > _MAX_HEADER_LINE:
            raise WsError("handshake header line too long")


async def _response(r):
    # -> the headers of a 101 answer that the handshake checks (lower-case names); raises
    # WsError for any other status. Read under one deadline (connect()): a server dribbling
    # lines cannot stretch it. The others (cookies, policies a load balancer adds) are dropped
    # as they are read: none of them may keep a charger from connecting.
    buf, one = bytearray(_KEEP), bytearray(1)
    parts = (await _readline(r, buf, one)).split(None, 2)
    if len(parts) < 2 or parts[1] != b"101":
        code = parts[1].decode() if len(parts) > 1 else "?"
        if code == "401":
            raise WsError("handshake refused: HTTP 401 (the CSMS did not accept our credentials)")
        raise WsError("handshake refused: HTTP %s" % code)
    headers = {}
    for _ in range(_MAX_HEADERS):
        line = await _readline(r, buf, one)
        if line in (b"\r\n", b"\n"):
            return headers
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k in _WANTED:
            headers[k] = v.strip()
    raise WsError("too many handshake headers")


async def connect(url, cp_id, subprotocol="ocpp1.6", auth=None, ssl_ctx=None, timeout_ms=10000,
                  max_size=16384, route=None, spool=None, spool_max=SPOOL_MAX, spool_if=None,
                  resolve=None):
    # Opens the socket, performs the handshake, checks the accept key and the subprotocol.
    # `auth` is the ready "Basic ..." header value or None; `ssl_ctx` the TLS context for wss://
    # (security.tls_context); `resolve(host)` (async) -> the IP to connect to (net/dns.py:
    # MicroPython's open_connection would call getaddrinfo, which blocks the loop);
    # `route(host, port)` may redirect the TCP connection (the board's network) while TLS and
    # Host keep the URL's host; `spool` (a store.Spool) takes messages over max_size, up to
    # spool_max, whose head `spool_if` accepts. Raises WsError/OSError/ValueError.
    secure, host, port, path = parse_url(url)
    if secure and ssl_ctx is None:
        raise WsError("wss:// needs a TLS context")
    path, q, query = path.partition("?")
    if not path.endswith("/"):
        path += "/"
    path += quote(cp_id) + q + query  # the id ends the path; a query stays after it
    chost = await resolve(host) if resolve else host
    chost, cport = route(chost, port) if route else (chost, port)
    from net import tcp  # (its socket closed if the connect is given up: connect._OPEN drops it)

    r, w = await within(tcp.connect(chost, cport, ssl_ctx if secure else None, host), timeout_ms)
    try:
        key = binascii.b2a_base64(os.urandom(16))[:-1]
        hosthdr = ("[%s]" % host) if ":" in host else host
        req = [
            b"GET ", path.encode(), b" HTTP/1.1\r\nHost: ", hosthdr.encode(),
            b":%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " % port, key,
            b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ", subprotocol.encode(),
            b"\r\n",
        ]
        if auth:
            req.append(b"Authorization: " + auth.encode() + b"\r\n")
        req.append(b"\r\n")
        try:
            w.write(b"".join(req))  # over TLS, the handshake (and the certificate check) runs here
            await within(w.drain(), timeout_ms)
        except OSError as e:
            if secure and e.errno == _EPIPE:
                # A TLS 1.3 server refusing our client credentials closes once the handshake is
                # done: a refusal (backed off, counted by a profile's trial), not a dead path.
                raise OSError(_ECONNREFUSED, "connection refused: the server closed it in the "
                              "TLS handshake (client credentials refused)")
            if e.errno != _ECONNRESET:
                raise
            # lwIP (the ESP32) reports a refused connect (a RST to our SYN) as a reset at the
            # first write (micropython issue 8326), where Linux says refused; a reset before
            # the request is out is a refusal either way, backed off (client.dead), not a
            # dead path retried every 1-2 s.
            raise OSError(_ECONNREFUSED, "connection refused (reset before the request was sent)")
        headers = await within(_response(r), timeout_ms)
        if headers.get(b"upgrade", b"").lower() != b"websocket" or b"upgrade" not in (
            headers.get(b"connection", b"").lower()
        ):
            raise WsError("server did not upgrade to websocket")
        want = binascii.b2a_base64(hashlib.sha1(key + _GUID).digest())[:-1]
        if headers.get(b"sec-websocket-accept") != want:
            raise WsError("bad Sec-WebSocket-Accept")
        ext = headers.get(b"sec-websocket-extensions")
        if ext:  # RFC 6455 4.1: we ask for none, so any named one MUST fail the connection
            raise WsError("server chose an extension not asked for: %r" % ext[:60])
        proto = headers.get(b"sec-websocket-protocol", b"").decode()
        if proto != subprotocol:
            raise WsError("server did not agree to %s (got %r)" % (subprotocol, proto))
    except BaseException as e:
        tcp.close(w)  # (the TCP socket too: a failed TLS handshake lets it go)
        if secure and (isinstance(e, ValueError) or (isinstance(e, OSError) and _mbedtls(e))):
            # mbedTLS: a failed certificate check (ValueError with the reasons, one per line) or
            # a TLS alert (OSError with a negative code)
            raise TlsError("TLS handshake with %s failed: %s" % (host, " ".join(str(e).split())))
        raise
    return WebSocket(r, w, max_size, spool, spool_max, spool_if)


def _mbedtls(e):
    # An mbedTLS error code is -256 or below: modtls turns the socket's errno, which it passes
    # through mbedTLS negated, positive again above that. A small negative code is the ESP32
    # getaddrinfo's (-202: no name), not TLS.
    a = e.args[0] if e.args else 0
    return isinstance(a, int) and a <= -256
