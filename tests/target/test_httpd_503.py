# On-target tests for the hotspot's server (hotspot/httpd.py) when a request finds no memory: the
# owner's phone gets 503 "try again", and the log says which request and why, since a retry may
# fail the same way (a claim answered 503 at every try left nothing to read on the charger).
import asyncio

from hotspot import httpd
from mphelp import Logs

_PORT = 18673


async def _handler(req):
    if req.path == "/api/claim":
        raise MemoryError
    if req.path == "/api/login":
        raise httpd.HttpError(503, "out of memory, try again")
    raise httpd.HttpError(503, "busy: try again")


async def _get(path):
    r, w = await asyncio.open_connection("127.0.0.1", _PORT)
    w.write(b"GET " + path + b" HTTP/1.1\r\nHost: borne\r\n\r\n")
    await w.drain()
    got = b""
    while True:
        b = await asyncio.wait_for_ms(r.read(512), 3000)
        if not b:
            break
        got += b
    w.close()
    return got


async def test_a_request_answered_503_for_memory_is_logged_and_a_busy_one_is_not():
    srv = httpd.Server(_handler)
    await srv.start("127.0.0.1", _PORT)
    try:
        with Logs() as logs:
            for path in (b"/api/claim", b"/api/login", b"/api/status"):
                got = await _get(path)
                assert got.startswith(b"HTTP/1.1 503"), got[:40]
        assert logs.warned("GET /api/claim: 503, out of memory")
        assert logs.warned("GET /api/login: 503, out of memory, try again")
        assert not logs.warned("/api/status"), logs.warnings()  # (a page polls while busy)
    finally:
        await srv.stop()
