# On-target tests: a TCP or TLS connect that is given up (a black-holed host: its SYN dropped)
# or fails (refused, a TLS handshake failing) closes its socket, for the CSMS connection (ocpp_client/wsopen.py), the
# HTTP and FTP clients (net/) and DeleteCertificate's probe (diag/certs.py). Left to the GC, each
# retry held one until a collection (lwIP has ~10 on the ESP32; the unix port never closed a TCP
# one): after a long outage nothing could connect any more. The process's open fds show a
# socket kept.
import asyncio
import gc

from fakeboard import FakeBoard
from mphelp import CA, closed_port, hanging_listener, open_fds
from ocpp_client import wsopen


async def _leaks(attempt, tries=3):
    # -> how many fds `tries` connects given up left open; attempt(port) must raise or return.
    # Counted with no collection between: one would close a socket left to the GC (a TLS one
    # here; any on the ESP32), long after the attempt.
    held, port = hanging_listener()
    gc.collect()
    gc.disable()
    try:
        n0 = open_fds()
        for _ in range(tries):
            await attempt(port)
        return open_fds() - n0
    finally:
        gc.enable()
        for s in held:
            s.close()


async def _ws(port, scheme="ws"):
    ctx = None
    if scheme == "wss":
        from ocpp_client import security

        ctx = security.tls_context(CA)
    try:
        await wsopen.connect("%s://127.0.0.1:%d/ocpp" % (scheme, port), "CP1", ssl_ctx=ctx,
                             timeout_ms=200)
    except asyncio.TimeoutError:
        return
    raise AssertionError("a connect to a black-holed CSMS must time out")


async def test_a_csms_connect_given_up_closes_its_socket():
    # The CSMS connection is retried for ever while the CSMS cannot be reached.
    assert await _leaks(_ws) == 0, "each connect given up kept its socket"


async def test_a_csms_connect_over_tls_given_up_closes_its_socket():
    assert await _leaks(lambda p: _ws(p, "wss")) == 0, "each TLS connect given up kept its socket"


async def test_a_refused_csms_connect_closes_its_socket():
    port = closed_port()
    gc.collect()
    n0 = open_fds()
    for _ in range(3):
        try:
            await wsopen.connect("ws://127.0.0.1:%d/ocpp" % port, "CP1", timeout_ms=500)
            raise AssertionError("connected to a closed port")
        except OSError as e:
            assert e.errno == 111, repr(e)  # refused: backed off (client.dead)
    assert open_fds() == n0, "each refused connect kept its socket"


async def _failed_handshakes(attempt, tries=3):
    # -> how many fds `tries` TLS handshakes with a plain HTTP server left open (it answers the
    # ClientHello with a 400: the handshake fails at the first write); attempt(port, ctx).
    async def plain(r, w):
        try:
            await r.read(16)
            w.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await w.drain()
        finally:
            w.s.close()  # (MicroPython's Stream.close() does nothing)

    port = closed_port()
    srv = await asyncio.start_server(plain, "127.0.0.1", port)
    from ocpp_client import security

    ctx = security.tls_context(CA)
    gc.collect()
    gc.disable()
    try:
        n0 = open_fds()
        for _ in range(tries):
            await attempt(port, ctx)
            await asyncio.sleep_ms(20)  # (the server's side closed)
        return open_fds() - n0
    finally:
        gc.enable()
        srv.close()
        await srv.wait_closed()


async def test_a_failed_tls_handshake_with_the_csms_closes_its_socket():
    # A CSMS whose certificate is not trusted, retried for ever: modtls lets the TCP socket go
    # when the handshake fails, and closing the TLS one left it open.
    async def attempt(port, ctx):
        try:
            await wsopen.connect("wss://127.0.0.1:%d/ocpp" % port, "CP1", ssl_ctx=ctx)
        except wsopen.TlsError:  # (a claim says csms_tls)
            return
        raise AssertionError("a TLS handshake with a plain HTTP server passed")

    assert await _failed_handshakes(attempt) == 0, "each failed handshake kept its socket"


async def test_a_failed_https_handshake_closes_its_socket():
    from net import http

    async def attempt(port, ctx):
        try:
            await http.request("GET", "https://127.0.0.1:%d/fw.bin" % port, ssl_ctx=ctx)
        except http.HttpError as e:
            assert "TLS handshake" in str(e), repr(e)
            return
        raise AssertionError("a TLS handshake with a plain HTTP server passed")

    assert await _failed_handshakes(attempt) == 0, "each failed handshake kept its socket"


async def test_a_failed_certificate_probe_closes_its_socket():
    from diag import certs

    async def attempt(port, ctx):
        why = await certs._probe("wss://127.0.0.1:%d/ocpp" % port, CA)
        assert why and "MBEDTLS" in why, why

    assert await _failed_handshakes(attempt) == 0, "each failed probe kept its socket"


async def _http(port):
    from net import http

    try:
        await http.request("GET", "http://127.0.0.1:%d/fw.bin" % port, timeout_ms=200)
    except http.HttpError as e:
        assert "within 200 ms" in str(e), repr(e)
        return
    raise AssertionError("a download from a black-holed server must time out")


async def test_an_http_connect_given_up_closes_its_socket():
    assert await _leaks(_http) == 0, "each connect given up kept its socket"


async def test_a_refused_http_connect_closes_its_socket():
    from net import http

    port = closed_port()
    gc.collect()
    n0 = open_fds()
    for _ in range(3):
        try:
            await http.request("GET", "http://127.0.0.1:%d/fw.bin" % port, timeout_ms=500)
            raise AssertionError("connected to a closed port")
        except http.HttpError as e:
            assert "cannot connect" in str(e) or "failed" in str(e), repr(e)
    assert open_fds() == n0, "each refused connect kept its socket"


async def _ftp(port):
    from net import ftp

    try:
        await ftp.retr("127.0.0.1", port, "u", "p", "/fw.bin", "/tmp/borne-ftp-never", timeout_ms=200)
    except ftp.FtpError as e:
        assert "control connection" in str(e), repr(e)
        return
    raise AssertionError("a download from a black-holed server must time out")


async def test_an_ftp_connect_given_up_closes_its_socket():
    assert await _leaks(_ftp) == 0, "each connect given up kept its socket"


async def _probe(port):
    from diag import certs

    why = await certs._probe("wss://127.0.0.1:%d/ocpp" % port, CA, timeout_ms=200)
    assert why and "TimeoutError" in why, why


async def test_a_certificate_probe_given_up_closes_its_socket():
    assert await _leaks(_probe) == 0, "each probe given up kept its socket"


class _Cl:
    # What one attempt of the session (ocpp_client/connect.py) reads of its client, at profile 0.
    def __init__(self):
        class Rpc:
            def spool_wanted(self, head):
                return False

        self.settings = {"cp_id": "CP1", "security_profile": 0}
        self.board = FakeBoard()
        self.rpc = Rpc()
        self.spool = None
        self.tls_keep = []
        self.dns_memo = [None, None, 0]

    def check_cert(self):
        pass


async def test_the_sessions_attempts_at_a_black_holed_csms_keep_no_socket_nor_module():
    # The session's own attempt (given up after 10 s, retried for ever): the socket is closed,
    # and net/tcp.py leaves the heap with wsopen.py (both loaded by the attempt, as in a session).
    import sys

    from supervisor import drop

    # (netdrop: connect.py's unheld(), taken as connect.py loads, as in a session)
    mine = ("ocpp_client.wsopen", "net.tcp", "netdrop")
    drop("ocpp_client.connect", *mine)  # (loaded by the tests above)
    from ocpp_client import connect

    held, port = hanging_listener()
    try:
        gc.collect()
        n0 = open_fds()
        e = await connect.attempt(_Cl(), "ws://127.0.0.1:%d/ocpp" % port)
        assert isinstance(e, asyncio.TimeoutError), repr(e)
        assert open_fds() == n0, "the attempt kept its socket"
        assert [n for n in mine if n in sys.modules] == [], "loaded for good"
    finally:
        for s in held:
            s.close()


async def test_an_attempt_connects_with_its_credentials_and_resolver_out_of_the_heap():
    # The TCP/TLS connect (and the handshake after it) is an attempt's peak: a reconnect in a
    # heap a session has filled ran out of memory there with the credentials' module and the
    # resolver still loaded though done with. Both are out once the board routes the address.
    import sys

    from ocpp_client import connect
    from supervisor import drop

    gone = ("ocpp_client.security", "net.dns")
    drop(*gone)
    seen = []
    cl = _Cl()

    def route(host, port):
        seen.append([n for n in gone if n in sys.modules])
        return host, port

    cl.board.route = route
    e = await connect.attempt(cl, "ws://127.0.0.1:%d/ocpp" % closed_port())
    assert isinstance(e, OSError), repr(e)
    assert seen == [[]], seen
    assert [n for n in gone if n in sys.modules] == []
