# The firmware's one HTTP/1.1 client, on asyncio streams: firmware downloads (ota/) and
# diagnostics uploads (diag/). http:// and https:// (TLS set up by ocpp_client/security.py:
# CERT_REQUIRED against the configured CA, the URL's host name, clock set first: `tls()`).
#
# Bounded RAM: the response head is read into one 2 KiB buffer, bodies move through one chunk
# buffer between the socket and a file; nothing grows with the size of what is transferred.
# Every read has a timeout, the head must arrive within it as a whole, and a body must keep a
# minimum rate (net/sink.py): a server trickling a byte a second fails.
# One request per connection (Connection: close); redirects followed up to `redirects` times,
# never from https:// down to http://.
import asyncio
import os
import sys
import time

import log
from net import tcp
from net.sink import Sink
from net.url import split as split_url

_HEAD_MAX = const(2048)
_CHUNK = const(1024)
TIMEOUT_MS = const(10000)
REDIRECTS = const(5)
_REDIRECT = (301, 302, 303, 307, 308)


class HttpError(Exception):
    # status: the HTTP status the server answered, or None (network, timeout, protocol error).
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


async def tls(settings, board=None):
    # The TLS context for https:// URLs: the same CA, checks and clock rule as the CSMS link
    # (an untrusted clock is set from the board's SNTP server first).
    from ocpp_client import security

    await security.sync_clock(board)
    security.check_clock()
    return security.tls_context(settings.get("ca_pem", ""))


def parse_url(url):
    # -> (secure, host, port, path) of an http:// or https:// URL (net/url.py), the fragment
    # dropped. Raises HttpError.
    try:
        scheme, user, host, port, rest = split_url(url, ("http", "https"))
    except ValueError as e:
        raise HttpError(str(e))
    if user is not None:
        raise HttpError("credentials in the URL are not accepted")
    path = rest.split("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    for c in path:
        if ord(c) <= 32 or ord(c) >= 127:
            raise HttpError("URL path must be ASCII without spaces (percent-encode it)")
    return scheme == "https", host, port, path


def _join(base, loc):
    # The absolute URL a Location header points to.
    if loc.startswith("http://") or loc.startswith("https://"):
        return loc
    secure, host, port, path = parse_url(base)
    origin = "%s://%s:%d" % ("https" if secure else "http", host, port)
    if loc.startswith("//"):
        return ("https:" if secure else "http:") + loc
    if loc.startswith("/"):
        return origin + loc
    return origin + path[: path.rfind("/") + 1] + loc


class Response:
    # One answered request: status, headers (lower-case str -> str), and the body, read with
    # readinto() / into_file() / text(). Always close().
    def __init__(self, r, w, timeout_ms, buf):
        self.r = r
        self.w = w
        self.t = timeout_ms
        self.buf = buf
        self.mv = memoryview(buf)
        self.pos = 0
        self.end = 0
        self.status = 0
        self.headers = {}
        self.left = -1  # body bytes still to come (Content-Length); -1: until close / chunked
        self.chunked = False
        self._chunk_left = 0
        self._eof = False

    def close(self):
        tcp.close(self.w)

    async def _read(self, mv):
        while True:
            try:
                k = await asyncio.wait_for_ms(self.r.readinto(mv), self.t)
            except asyncio.TimeoutError:
                raise HttpError("no data from the server for %d ms" % self.t)
            if k is not None:  # None: a TLS record without application data yet
                return k

    async def _head(self):
        deadline = time.ticks_add(time.ticks_ms(), self.t)
        buf = self.buf
        while True:
            i = buf.find(b"\r\n\r\n", 0, self.end)
            if i >= 0:
                break
            if self.end >= len(buf):
                raise HttpError("response head over %d bytes" % len(buf))
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                raise HttpError("response head not complete within %d ms" % self.t)
            try:
                k = await asyncio.wait_for_ms(self.r.readinto(self.mv[self.end :]), left)
            except asyncio.TimeoutError:
                raise HttpError("response head not complete within %d ms" % self.t)
            if k is None:
                continue
            if not k:
                raise HttpError("connection closed before the response head")
            self.end += k
        lines = bytes(self.mv[:i]).split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError("not an HTTP/1.x response")
        try:
            self.status = int(parts[1])
        except ValueError:
            raise HttpError("bad status line")
        for ln in lines[1:]:
            k, sep, v = ln.partition(b":")
            if not sep:
                raise HttpError("bad header line")
            self.headers[k.strip().lower().decode()] = v.strip().decode()
        self.pos = i + 4
        te = self.headers.get("transfer-encoding", "").lower()
        if te and te != "identity":
            if te != "chunked":
                raise HttpError("transfer encoding %s not supported" % te)
            self.chunked = True
        elif "content-length" in self.headers:
            try:
                self.left = int(self.headers["content-length"])
            except ValueError:
                raise HttpError("bad Content-Length")
            if self.left < 0:
                raise HttpError("bad Content-Length")

    async def _raw(self, mv):
        # Up to len(mv) bytes of the connection (buffered head leftovers first); 0 at its end.
        if self.pos < self.end:
            n = min(len(mv), self.end - self.pos)
            mv[:n] = self.mv[self.pos : self.pos + n]
            self.pos += n
            return n
        return await self._read(mv)

    async def _line(self):
        # One short CRLF line (chunk sizes), through the head buffer (free once the head is read).
        out = b""
        while not out.endswith(b"\r\n"):
            if len(out) > 64:
                raise HttpError("bad chunk header")
            if self.pos >= self.end:
                self.pos = 0
                self.end = await self._read(self.mv)
                if not self.end:
                    raise HttpError("connection closed in a chunk header")
            out += bytes(self.mv[self.pos : self.pos + 1])
            self.pos += 1
        return out[:-2]

    async def readinto(self, mv):
        # Body bytes into mv; 0 at the body's end. Raises HttpError on a cut short body.
        if self._eof:
            return 0
        if self.chunked:
            if self._chunk_left == 0:
                ln = await self._line()
                try:
                    n = int(ln.split(b";")[0].strip(), 16)
                except ValueError:
                    raise HttpError("bad chunk size")
                if n == 0:
                    self._eof = True
                    return 0
                self._chunk_left = n
            want = min(len(mv), self._chunk_left)
            k = await self._raw(mv[:want] if want < len(mv) else mv)
            if not k:
                raise HttpError("connection closed inside a chunk")
            self._chunk_left -= k
            if self._chunk_left == 0:
                if await self._line() != b"":
                    raise HttpError("bad chunk end")
            return k
        if self.left == 0:
            self._eof = True
            return 0
        if 0 < self.left < len(mv):
            mv = mv[: self.left]
        k = await self._raw(mv)
        if not k:
            if self.left > 0:
                raise HttpError("connection closed with %d bytes of the body missing" % self.left)
            self._eof = True
            return 0
        if self.left > 0:
            self.left -= k
        return k

    async def into_file(self, f, chunk, progress=None, done=0, total=None, rate=None,
                        sync_every=0, max_size=None):
        # Stream the whole body into the open file f through `chunk` (a bytearray), keeping a
        # minimum rate (bytes, per ms); -> bytes written. progress(done, total) after each chunk.
        # sync_every: flush the file to flash every that many bytes (LittleFS keeps nothing of
        # an open file's new data through a power cut until it is flushed or closed).
        # max_size: the file's bound (done included), kept chunk by chunk: a chunked or
        # close-delimited body says no size up front, and must not fill the flash first.
        sink = Sink(f, sync_every, rate)
        mv = memoryview(chunk)
        n = 0
        while True:
            k = await self.readinto(mv)
            if not k:
                return n
            if max_size is not None and done + n + k > max_size:
                raise HttpError("%d bytes: more than the %d that fit" % (done + n + k, max_size))
            slow = sink.put(mv, k)
            if slow:
                raise HttpError(slow)
            n += k
            if progress is not None:
                progress(done + n, total)

    async def text(self, limit=1024):
        # The body as bytes, at most `limit` of them (the rest is not read).
        out = bytearray(limit)
        mv = memoryview(out)
        n = 0
        while n < limit:
            k = await self.readinto(mv[n:])
            if not k:
                break
            n += k
        return bytes(mv[:n])


async def request(method, url, headers=None, body=None, ssl_ctx=None, route=None,
                  timeout_ms=TIMEOUT_MS, chunk=None, resolver=None):
    # One request, no redirects followed -> an open Response (head read). body: None, bytes, or
    # an open binary file with its size: (file, size), sent from `chunk`. The host's name is
    # resolved by net/dns.py (`resolver`: see there), then `route` may redirect the connection;
    # TLS checks the URL's host. Raises HttpError.
    secure, host, port, path = parse_url(url)
    if secure and ssl_ctx is None:
        raise HttpError("https:// needs a CA (no TLS context)")
    held = "net.dns" in sys.modules
    from net import dns

    ip = await dns.lookup(host, resolver, held, HttpError)
    dns = None  # (out of the heap with the lookup unless held: a download may take minutes)
    try:
        chost, cport = route(ip, port) if route else (ip, port)
    except OSError as e:
        raise HttpError("cannot connect to %s:%d: %s" % (host, port, _oserr(e)))
    try:
        coro = tcp.connect(chost, cport, ssl_ctx if secure else None, host)
        r, w = await asyncio.wait_for_ms(coro, timeout_ms)
    except asyncio.TimeoutError:
        raise HttpError("cannot connect to %s:%d within %d ms" % (host, port, timeout_ms))
    except OSError as e:
        raise HttpError("cannot connect to %s:%d: %s" % (host, port, _oserr(e)))
    resp = Response(r, w, timeout_ms, bytearray(_HEAD_MAX))
    try:
        hosthdr = ("[%s]" % host) if ":" in host else host
        if port != (443 if secure else 80):
            hosthdr += ":%d" % port
        head = ["%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: borne\r\n"
                % (method, path, hosthdr)]
        for k in headers or ():
            head.append("%s: %s\r\n" % (k, headers[k]))
        if isinstance(body, tuple):
            head.append("Content-Length: %d\r\n" % body[1])
        elif body is not None or method in ("POST", "PUT"):
            head.append("Content-Length: %d\r\n" % len(body or b""))
        head.append("\r\n")
        w.write("".join(head).encode())
        await _drain(w, timeout_ms)
        if isinstance(body, tuple):
            await _send_file(w, body[0], body[1], chunk or bytearray(_CHUNK), timeout_ms)
        elif body:
            w.write(body)
            await _drain(w, timeout_ms)
        await resp._head()
    except BaseException as e:
        resp.close()
        if isinstance(e, HttpError) or not isinstance(e, Exception):
            raise
        if secure and (isinstance(e, ValueError) or (isinstance(e, OSError) and _tlserr(e))):
            raise HttpError("TLS handshake with %s failed: %s" % (host, " ".join(str(e).split())))
        if isinstance(e, OSError):
            raise HttpError("connection to %s failed: %s" % (host, _oserr(e)))
        raise HttpError("request to %s failed: %s %s" % (host, type(e).__name__, e))
    return resp


async def _drain(w, timeout_ms):
    try:
        await asyncio.wait_for_ms(w.drain(), timeout_ms)
    except asyncio.TimeoutError:
        raise HttpError("server took no data for %d ms" % timeout_ms)


async def _send_file(w, f, size, chunk, timeout_ms):
    mv = memoryview(chunk)
    left = size
    while left > 0:
        k = f.readinto(mv if left >= len(mv) else mv[:left])
        if not k:
            raise HttpError("file shorter than its size (%d bytes missing)" % left)
        w.write(mv[:k] if k < len(mv) else mv)
        await _drain(w, timeout_ms)
        left -= k


def _tlserr(e):
    a = e.args[0] if e.args else 0
    return isinstance(a, int) and a <= -256  # mbedTLS's codes (ocpp_client/wsopen.py _mbedtls)


_LABELS = {"ECONNABORTED": "connection aborted", "ECONNRESET": "connection reset",
           "ETIMEDOUT": "timed out", "ECONNREFUSED": "connection refused",
           "EHOSTUNREACH": "host unreachable"}


def _oserr(e):
    # By the port's own errno names: the numbers differ (newlib's ETIMEDOUT, the ESP32's, is
    # 116; Linux's 110). getaddrinfo fails with a small negative code (-2, -3 Linux; -200,
    # -202 lwIP).
    from errno import errorcode

    a = e.args[0] if e.args else None
    if isinstance(a, int) and -256 < a < 0:
        return "name not resolved (%d)" % a
    label = _LABELS.get(errorcode.get(a)) if isinstance(a, int) else None
    return label or "%s %s" % (type(e).__name__, e)


async def _follow(method, url, headers, body, ssl_ctx, route, timeout_ms, redirects, chunk,
                  rewind=None, resolver=None, tls=None):
    # request() following redirects (bounded, never https -> http) -> (Response, final URL).
    # tls: async fn() -> the TLS context, made when an https:// URL (a redirect's) needs one.
    seen = 0
    while True:
        if ssl_ctx is None and tls is not None and url.startswith("https:"):
            ssl_ctx = await tls()
        resp = await request(method, url, headers, body, ssl_ctx, route, timeout_ms, chunk,
                             resolver)
        if resp.status not in _REDIRECT:
            return resp, url
        loc = resp.headers.get("location")
        resp.close()
        if not loc:
            raise HttpError("HTTP %d redirect without a Location" % resp.status, resp.status)
        seen += 1
        if seen > redirects:
            raise HttpError("more than %d redirects (last to %s)" % (redirects, log.url(loc)),
                            resp.status)
        nxt = _join(url, loc)
        if url.startswith("https:") and not nxt.startswith("https:"):
            raise HttpError("redirect from https:// to %s refused" % nxt.split(":")[0],
                            resp.status)
        if headers and "Authorization" in headers and _origin(nxt) != _origin(url):
            # Credentials are for the server they were given for, not where it sends us
            headers = {k: v for k, v in headers.items() if k != "Authorization"}
        url = nxt
        if body is not None and resp.status in (301, 302, 303):
            raise HttpError("HTTP %d redirect of a %s: not re-sent" % (resp.status, method),
                            resp.status)
        if rewind is not None:
            rewind()


def _origin(url):
    # scheme://host[:port], as compared for a redirect
    return "/".join(url.split("/", 3)[:3]).lower()


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


async def download(url, path, ssl_ctx=None, resume=True, max_size=None, progress=None,
                   route=None, timeout_ms=TIMEOUT_MS, redirects=REDIRECTS, chunk=None, rate=None,
                   sync_every=0, headers=None, resolver=None, tls=None, validator=None):
    # GET url into the file at `path`, streamed. With `resume` and a partial file there, asks
    # for the rest (Range) and appends; a server that ignores Range sends it all again (file
    # rewritten). -> the file's complete size. `max_size` refuses a longer body before a byte of
    # it is written (one without a length: stopped at the bound); `headers`: more request
    # headers (Authorization); `tls`: see _follow() (an http:// URL redirected to https://);
    # `validator`: [the partial file's ETag or Last-Modified, or None], set from the response: a
    # resume sends it as If-Range (RFC 9110 13.1.5), and a 206 of another version of the file (a
    # server without If-Range) empties the file, never spliced onto what is there.
    # Raises HttpError (the file keeps what arrived, for the next resume).
    have = _size(path) if resume else 0
    val = validator[0] if validator else None
    if have:
        headers = dict(headers or ())
        headers["Range"] = "bytes=%d-" % have
        if val:
            headers["If-Range"] = val
    resp, url = await _follow("GET", url, headers, None, ssl_ctx, route, timeout_ms, redirects,
                              None, resolver=resolver, tls=tls)
    try:
        st = resp.status
        got = resp.headers.get("etag", "")
        got = "" if got.startswith("W/") else got  # a weak one is no If-Range (RFC 9110)
        got = got or resp.headers.get("last-modified")
        if validator is not None and st in (200, 206):
            validator[0] = got
        if st == 416 and have:
            # Nothing after `have`: complete if the server's length says so, else start over.
            cr = resp.headers.get("content-range", "")
            if cr.startswith("bytes */") and cr[8:].strip() == str(have):
                return have
            open(path, "wb").close()  # the next try asks for all of it
            raise HttpError("server refused to resume at %d (%s)" % (have, cr or "416"), st)
        if st == 206 and have:
            start, total = _content_range(resp.headers.get("content-range", ""))
            if start != have:
                raise HttpError("server resumed at %d, not at %d" % (start, have), st)
            if val and got and got != val:
                open(path, "wb").close()  # the next try asks for all of it
                raise HttpError("the file changed on the server: starting over", st)
            mode = "ab"
        elif st == 200:
            have = 0
            total = resp.left if resp.left >= 0 else None
            mode = "wb"
        else:
            raise HttpError("HTTP %d from %s" % (st, url.split("?")[0]), st)
        if total is not None and max_size is not None and total > max_size:
            raise HttpError("%d bytes: more than the %d that fit" % (total, max_size), st)
        f = open(path, mode)
        try:
            n = await resp.into_file(f, chunk or bytearray(_CHUNK), progress, have, total, rate,
                                     sync_every, max_size)
        finally:
            f.close()
        size = have + n
        if total is not None and size != total:
            raise HttpError("got %d of %d bytes" % (size, total), st)
        return size
    finally:
        resp.close()


def _content_range(v):
    # "bytes START-END/TOTAL" -> (start, total or None)
    try:
        unit, _, rest = v.partition(" ")
        rng, _, total = rest.partition("/")
        if unit != "bytes":
            raise ValueError
        start = int(rng.split("-")[0])
        return start, (None if total.strip() == "*" else int(total))
    except (ValueError, IndexError):
        raise HttpError("bad Content-Range %r" % v[:40], 206)


async def upload(method, url, path, content_type="application/octet-stream", headers=None,
                 ssl_ctx=None, route=None, timeout_ms=TIMEOUT_MS, redirects=REDIRECTS,
                 chunk=None, resolver=None, tls=None):
    # PUT or POST the file at `path` as the body, streamed (Content-Length); follows 307/308
    # (`tls`: see _follow()).
    # -> (status, first KiB of the answer's body). Raises HttpError (status >= 400 included).
    size = _size(path)
    hdrs = {"Content-Type": content_type}
    if headers:
        hdrs.update(headers)
    f = open(path, "rb")
    try:
        resp, url = await _follow(method, url, hdrs, (f, size), ssl_ctx, route, timeout_ms,
                                  redirects, chunk, rewind=lambda: f.seek(0), resolver=resolver,
                                  tls=tls)
    finally:
        f.close()
    try:
        body = await resp.text()
    finally:
        resp.close()
    if resp.status >= 400:
        raise HttpError("HTTP %d from %s" % (resp.status, url.split("?")[0]), resp.status)
    return resp.status, body
