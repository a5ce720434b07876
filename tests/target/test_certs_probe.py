# On-target test of DeleteCertificate's TLS probe on a small heap: the server's answer is read
# only as far as it shows one (its first bytes), never to the end of a line however long
# (MicroPython's Stream.readline() reads on to a newline: a server's endless status line took the
# heap, the charger's other tasks with it). The TLS context is left out (a plain socket): what is
# tested is the reading after the handshake.
# heapsize: 64wK
import asyncio
import gc

from diag import certs
from ocpp_client import security, wsopen  # noqa: F401 (compiled before the heap is measured)

_LINE = 400 * 1024  # far over the heap's free room once doubled by readline's joins


async def _serve(r, w, sent, head):
    try:
        while (await r.readline()) not in (b"\r\n", b""):
            pass
        w.write(head)
        piece = b"a" * 1024
        for _ in range(_LINE // len(piece)):
            w.write(piece)
            await w.drain()
            sent[0] += len(piece)
        w.write(b"\r\n\r\n")
        await w.drain()
    except OSError:
        pass  # the charger hung up: what it should do
    finally:
        w.close()


async def _probe(head):
    sent = [0]
    srv = None
    for port in range(28200, 28400):  # (the unix port's sockets have no getsockname)
        try:
            srv = await asyncio.start_server(lambda r, w: _serve(r, w, sent, head), "127.0.0.1",
                                             port)
            break
        except OSError:
            continue
    real = security.tls_context
    security.tls_context = lambda *a: None  # a plain connection
    gc.collect()
    try:
        why = await certs._probe("wss://127.0.0.1:%d/ocpp" % port, "")
    finally:
        security.tls_context = real
        srv.close()
    return why, sent[0]


async def test_an_endless_status_line_never_takes_the_heap():
    why, sent = await _probe(b"HTTP/1.1 200 OK ")
    assert why is None, why  # an HTTP answer: the handshake passed
    assert sent < _LINE // 2, sent


async def test_an_endless_line_that_is_no_http_answer():
    why, sent = await _probe(b"SSH-2.0-")
    assert why == "no HTTP answer", why
    assert sent < _LINE // 2, sent
