# On-target test of the WebSocket handshake's answer on a small heap: a header line is read to at
# most wsopen's _MAX_HEADER_LINE, never to its end however long (MicroPython's Stream.readline()
# reads on to a newline: a server's endless line took the heap, the charger's other tasks with it).
# heapsize: 48wK
import asyncio
import gc

from ocpp_client import wsopen
from ocpp_client.ws import WsError

_LINE = 300 * 1024  # far over the heap's free room once doubled by readline's joins


async def _serve(r, w, sent):
    try:
        while (await r.readline()) not in (b"\r\n", b""):
            pass
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ")
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


async def test_an_endless_header_line_never_takes_the_heap():
    sent = [0]
    srv = None
    for port in range(28000, 28200):  # (the unix port's sockets have no getsockname)
        try:
            srv = await asyncio.start_server(lambda r, w: _serve(r, w, sent), "127.0.0.1", port)
            break
        except OSError:
            continue
    gc.collect()
    try:
        try:
            await wsopen.connect("ws://127.0.0.1:%d/ocpp" % port, "CP1", timeout_ms=10000)
            raise AssertionError("connected")
        except WsError as e:
            assert "too long" in str(e), e
    finally:
        srv.close()
