# servers: http
# net/http.py against a real HTTP(S) server (borne.sim.filesrv, started by the harness): streamed
# downloads with Range resume, uploads from a file, TLS checked against a CA, and every way a
# server can fail the charger (404, 500, redirect loops, trickling, silence, cut connections).
import gc
import hashlib
import json
import os
import time

import supervisor  # noqa: F401  (resident on the charger; net/ drops net.dns with its drop())
from net import dns  # noqa: F401  (loaded first: compiling its source with 24 KB free is not the download's peak)
from net import http
from ocpp_client import security

CFG = json.loads(os.getenv("BORNE_FILESRV") or "{}")
ROOT = CFG.get("root", "")


def _url(path, tls=False):
    if tls:
        return "https://localhost:%d/%s" % (CFG["https"], path)
    return "http://127.0.0.1:%d/%s" % (CFG["http"], path)


def _data(n, seed=7):
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = x >> 16 & 0xFF
    return bytes(out)


def _put(name, data):
    with open(ROOT + "/" + name, "wb") as f:
        f.write(data)


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def _size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return 0


def _ctx():
    with open(CFG["ca"]) as f:
        return security.tls_context(f.read())


async def _fails(coro, *words):
    try:
        await coro
    except http.HttpError as e:
        for w in words:
            assert w in str(e), "%r not in %r" % (w, str(e))
        return e
    raise AssertionError("no HttpError")


async def test_download_streams_in_bounded_ram():
    data = _data(200000)
    _put("big.bin", data)
    gc.collect()
    before = gc.mem_alloc()
    seen = []
    n = await http.download(_url("big.bin"), "out.bin", progress=lambda d, t: seen.append(t)
                            if not seen else None)
    # What stays allocated afterwards is small; the body never was in RAM.
    gc.collect()
    assert gc.mem_alloc() - before < 4096, gc.mem_alloc() - before
    assert n == len(data) and seen == [len(data)]
    assert hashlib.sha256(_read("out.bin")).digest() == hashlib.sha256(data).digest()


async def test_download_peak_heap_is_bounded():
    # The peak: a 200 kB download with the heap nearly full fails with MemoryError if any step
    # wanted the body (or a large part of it) in RAM.
    data = _data(200000, 3)
    _put("peak.bin", data)
    gc.collect()
    hog = []
    try:
        while gc.mem_free() > 24000:
            hog.append(bytearray(2000))
    except MemoryError:
        pass
    await http.download(_url("peak.bin"), "peak.out")
    del hog
    gc.collect()
    assert _size("peak.out") == len(data)


async def test_https_with_the_ca_and_host_checked():
    data = _data(30000, 5)
    _put("tls.bin", data)
    n = await http.download(_url("tls.bin", True), "tls.out", ssl_ctx=_ctx())
    assert n == len(data) and _read("tls.out") == data


async def test_https_refuses_a_server_from_another_ca():
    _put("tls2.bin", b"x" * 100)
    with open(CFG["ca"][: -len("ca.pem")] + "other-ca.pem") as f:
        ctx = security.tls_context(f.read())
    await _fails(http.download(_url("tls2.bin", True), "tls2.out", ssl_ctx=ctx), "TLS")
    assert _size("tls2.out") == 0


async def test_https_needs_a_context():
    await _fails(http.download(_url("x", True), "x.out"), "CA")


async def test_resume_after_the_connection_is_cut():
    # The server closes after 40000 bytes of each answer: every retry asks for the rest.
    data = _data(150000, 11)
    _put("cut.bin", data)
    tries = 0
    while True:
        tries += 1
        try:
            n = await http.download(_url("cut/40000/cut.bin"), "cut.out")
            break
        except http.HttpError as e:
            assert "missing" in str(e), e
            assert _size("cut.out") == 40000 * tries
    assert tries == 4 and n == len(data)
    assert _read("cut.out") == data


async def test_a_server_ignoring_range_sends_it_all_again():
    data = _data(50000, 13)
    _put("nr.bin", data)
    with open("nr.out", "wb") as f:
        f.write(b"garbage-left-over")
    n = await http.download(_url("norange/nr.bin"), "nr.out")
    assert n == len(data) and _read("nr.out") == data


async def test_complete_file_resumed_is_complete():
    data = _data(5000, 17)
    _put("done.bin", data)
    await http.download(_url("done.bin"), "done.out")
    assert await http.download(_url("done.bin"), "done.out") == len(data)
    assert _read("done.out") == data


async def test_a_partial_file_the_server_cannot_resume_starts_over():
    # 416 for a partial file longer than the server's (the file was replaced there): the next
    # try starts from byte 0, not the same refused Range again until the retries run out.
    data = _data(3000, 31)
    _put("sh.bin", data)
    with open("sh.out", "wb") as f:
        f.write(b"x" * 5000)
    e = await _fails(http.download(_url("sh.bin"), "sh.out"), "refused to resume")
    assert e.status == 416
    n = await http.download(_url("sh.bin"), "sh.out")
    assert n == len(data) and _read("sh.out") == data


async def test_chunked_body():
    data = _data(9000, 19)
    _put("ch.bin", data)
    n = await http.download(_url("chunked/ch.bin"), "ch.out")
    assert n == len(data) and _read("ch.out") == data


async def test_404_and_500():
    e = await _fails(http.download(_url("nothing.bin"), "n.out"), "HTTP 404")
    assert e.status == 404
    e = await _fails(http.download(_url("status/500/x"), "n.out"), "HTTP 500")
    assert e.status == 500


async def test_redirects_followed_then_a_loop_refused():
    data = _data(3000, 23)
    _put("r.bin", data)
    n = await http.download(_url("redirect/3/r.bin"), "r.out")
    assert n == len(data) and _read("r.out") == data
    await _fails(http.download(_url("loop/x"), "loop.out"), "more than 5 redirects")


async def test_an_update_location_redirected_to_https_is_followed():
    # http:// -> https:// (a server that forces TLS, as most do): an update's download makes
    # its TLS context for the redirect (ota/update.py fetch()), checked against the CA.
    from fakeboard import FakeBoard
    from ota import update

    data = _data(4000, 29)
    _put("up.bin", data)
    with open(CFG["ca"]) as f:
        settings = {"ca_pem": f.read()}
    n = await update.fetch(_url("tohttps/up.bin"), "up.out", settings, FakeBoard())
    assert n == len(data) and _read("up.out") == data


async def test_credentials_follow_a_redirect_on_the_same_server_only():
    auth = {"Authorization": "Basic dTpzM2NyZXQ="}
    await http.download(_url("redirect/2/echo-auth"), "same.out", headers=auth)
    assert _read("same.out") == b"Basic dTpzM2NyZXQ=", _read("same.out")
    await http.download(_url("elsewhere/echo-auth"), "other.out", headers=auth, resume=False)
    assert _read("other.out") == b"", _read("other.out")


async def test_a_trickling_server_fails():
    _put("t.bin", b"y" * 5000)
    t0 = time.ticks_ms()
    await _fails(http.download(_url("trickle/t.bin"), "t.out", rate=(512, 2000)), "too slow")
    assert time.ticks_diff(time.ticks_ms(), t0) < 5000
    t0 = time.ticks_ms()
    await _fails(http.download(_url("trickle-head/t.bin"), "t.out", timeout_ms=2000),
                 "head not complete")
    assert time.ticks_diff(time.ticks_ms(), t0) < 4000


async def test_a_silent_server_times_out():
    _put("s.bin", b"z")
    t0 = time.ticks_ms()
    await _fails(http.download(_url("silent/s.bin"), "s.out", timeout_ms=1500), "1500 ms")
    assert time.ticks_diff(time.ticks_ms(), t0) < 3000


async def test_refused_connection_is_an_http_error():
    await _fails(http.download("http://127.0.0.1:1/x", "c.out"), "connection refused")


async def test_max_size_refuses_before_writing():
    _put("m.bin", b"m" * 10000)
    await _fails(http.download(_url("m.bin"), "m.out", max_size=9999), "more than")
    assert _size("m.out") == 0


async def test_max_size_stops_a_body_without_a_length_at_the_bound():
    # Chunked (or close-delimited) bodies say no size up front: the bound is kept as they come,
    # never the whole body on flash first (an update's bound keeps the store's reserve free).
    _put("mc.bin", b"c" * 20000)
    await _fails(http.download(_url("chunked/mc.bin"), "mc.out", max_size=9999), "more than")
    assert _size("mc.out") <= 9999, _size("mc.out")


async def test_upload_streams_a_file():
    data = _data(120000, 29)
    with open("up.bin", "wb") as f:
        f.write(data)
    st, body = await http.upload("PUT", _url("upload/diag.tar"), "up.bin")
    assert st == 201
    ans = json.loads(body)
    assert ans["size"] == len(data)
    assert ans["sha256"] == "".join("%02x" % b for b in hashlib.sha256(data).digest())
    assert _read(ROOT + "/uploads/diag.tar") == data
    st, body = await http.upload("POST", _url("upload/p.bin", True), "up.bin", ssl_ctx=_ctx())
    assert st == 201 and json.loads(body)["size"] == len(data)


async def test_upload_refused_by_the_server():
    with open("u.bin", "wb") as f:
        f.write(b"abc")
    e = await _fails(http.upload("POST", _url("status/500/u"), "u.bin"), "HTTP 500")
    assert e.status == 500


def test_parse_url():
    assert http.parse_url("http://h/p") == (False, "h", 80, "/p")
    assert http.parse_url("https://h:8443") == (True, "h", 8443, "/")
    assert http.parse_url("http://h/a?b=1#f") == (False, "h", 80, "/a?b=1")
    for bad in ("ftp://h/", "http://u:p@h/", "http:///x", "http://h:0/", "http://h/a b"):
        try:
            http.parse_url(bad)
        except http.HttpError:
            continue
        raise AssertionError(bad)
    assert http._join("https://h:1/a/b", "/c") == "https://h:1/c"
    assert http._join("http://h:1/a/b", "c") == "http://h:1/a/c"


def test_socket_errors_are_named_by_the_ports_own_errno():
    # The ESP32's errno numbers are newlib's (ETIMEDOUT 116, ECONNABORTED 113, EHOSTUNREACH
    # 118), not Linux's: labels come from the port's errno names, never from the numbers.
    import errno

    for name, label in (("ETIMEDOUT", "timed out"), ("ECONNREFUSED", "connection refused"),
                        ("EHOSTUNREACH", "host unreachable"), ("ECONNRESET", "connection reset"),
                        ("ECONNABORTED", "connection aborted")):
        assert http._oserr(OSError(getattr(errno, name))) == label, name
    assert http._oserr(OSError(-2)) == "name not resolved (-2)"  # glibc's getaddrinfo
    assert http._oserr(OSError(-202)) == "name not resolved (-202)"  # lwIP's
    assert "OSError" in http._oserr(OSError(errno.EIO))
