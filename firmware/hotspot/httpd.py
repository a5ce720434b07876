# A small, strict HTTP/1.1 server on asyncio streams, for the hotspot only.
#
# Everything here comes from an untrusted radio, so every input is bounded:
#   request head    _HEAD_MAX bytes in a buffer of the client's own (one kept between clients,
#                   others allocated when they connect, freed when they leave); request line
#                   _LINE_MAX (414 past it), _HEADERS_MAX header lines (431), head in HEAD_TIMEOUT
#   body            Content-Length only (no chunked: 501), _BODY_MAX bytes (413), read within
#                   BODY_TIMEOUT (408) through the client's head buffer into _CHUNK-byte pieces
#                   (no large block: a JSON body goes to the parser as a stream, Body), one body
#                   being read at a time (a lock)
#   clients         _MAX_CLIENTS at once; one more gets 503 at once
#   responses       written within WRITE_TIMEOUT, then the connection closes (no keep-alive:
#                   nothing lingers, and a slow or silent client costs one slot for seconds)
# The path is percent-decoded and normalised (dot segments resolved; NUL, control characters,
# backslashes, encoded slashes and escapes above the root refused with 400).
import asyncio
import io
import time

import log
from supervisor import Turns

_TAG = "http"
_MAX_CLIENTS = const(3)
_HEAD_MAX = const(2048)
_LINE_MAX = const(1024)
_HEADERS_MAX = const(32)
_BODY_MAX = const(6144)
_CHUNK = const(512)  # the body's pieces
_HEAD_TIMEOUT_MS = const(5000)
_BODY_TIMEOUT_MS = const(5000)
_WRITE_TIMEOUT_MS = const(5000)
_DRAIN_MAX = const(65536)
_POLL_MS = const(20)
_DRAIN_MS = const(300)
_EAGAIN = const(11)  # errno of a non-blocking socket with nothing to read or no room

# The reason phrases, one text constant (it stays in the bytecode: no dict in the heap).
_REASONS = const(
    "\n100 Continue\n200 OK\n202 Accepted\n204 No Content\n302 Found\n400 Bad Request"
    "\n401 Unauthorized\n403 Forbidden\n404 Not Found\n405 Method Not Allowed"
    "\n408 Request Timeout\n409 Conflict\n411 Length Required\n413 Content Too Large"
    "\n414 URI Too Long\n415 Unsupported Media Type\n422 Unprocessable Content"
    "\n429 Too Many Requests\n431 Request Header Fields Too Large\n500 Internal Server Error"
    "\n501 Not Implemented\n503 Service Unavailable\n505 HTTP Version Not Supported\n"
)


def reason(status):
    i = _REASONS.find("\n%d " % status)
    if i < 0:
        return "Status"
    return _REASONS[i + 5 : _REASONS.find("\n", i + 5)]


# Word lists as text constants, each word between spaces (tokens never hold one).
_METHODS = const(b" GET HEAD POST PUT DELETE OPTIONS PATCH TRACE CONNECT ")
# Headers kept from a request; the rest are checked for form and dropped.
_KEEP = const(b" host content-length content-type authorization transfer-encoding expect origin ")
_TCHAR = const(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SECURITY = const(
    b"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
    b"X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
    b"Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n"
)

# The answer of a request the heap has no room for (not even for its answer's head): written as
# it is, so the client reads why instead of a closed connection.
_NO_MEMORY = const(
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: 37\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
    b'{"error": "out of memory, try again"}'
)


class HttpError(Exception):
    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class Request:
    __slots__ = ("method", "path", "query", "version", "headers", "body", "_srv", "_r", "_w",
                 "_buf", "peer")

    def __init__(self):
        self.body = b""
        self.headers = {}
        self.peer = None  # the client's address, as accept() gave it (the login's lockouts)

    def header(self, name, default=None):
        v = self.headers.get(name)
        return v.decode() if v is not None else default

    def body_length(self):
        # Content-Length checked against the limits (411, 413) before anything is read.
        cl = self.headers.get(b"content-length")
        if cl is None:
            if self.method in ("POST", "PUT", "PATCH"):
                raise HttpError(411, "Content-Length required")
            return 0
        n = int(cl)
        if n > _BODY_MAX:
            raise HttpError(413, "body over %d bytes" % _BODY_MAX)
        return n

    async def read_body(self):
        # The body (empty without Content-Length), as a Body: a stream (json.load(body)) over
        # pieces of at most _CHUNK bytes. Raises HttpError.
        n = self.body_length()
        if not n and self.headers.get(b"content-length") is None:
            return Body([], 0)
        chunks = [self.body] if self.body else []
        await self._srv._recv(self, n, lambda mv: chunks.append(bytes(mv)), _CHUNK, False)
        self.body = b""  # the Body holds it now: its reader lets go of it
        return Body(chunks, n)

    async def body_to(self, f, limit):
        # A long body (a firmware bundle) streamed into the open file f through the client's
        # buffer: Content-Length required (411), at most `limit` bytes (413), every read within
        # BODY_TIMEOUT (408). -> bytes written. Raises HttpError.
        cl = self.headers.get(b"content-length")
        if cl is None:
            raise HttpError(411, "Content-Length required")
        n = int(cl)
        if n > limit:
            raise HttpError(413, "body over %d bytes" % limit)
        if len(self.body) <= n:
            f.write(self.body)
        n = await self._srv._recv(self, n, f.write, _HEAD_MAX, True)
        self.body = b""
        return n


class Body(io.IOBase):
    # A request body held as pieces (no block of its length), read once as a stream: json.load()
    # takes it, each piece let go once read (what it parses into takes their room). `chunks`
    # (the pieces) and len() for callers that walk it themselves before.
    def __init__(self, chunks, n):
        self.chunks = chunks
        self._n = n
        self._i = 0
        self._o = 0

    def __len__(self):
        return self._n

    def readinto(self, buf):
        c = self.chunks
        while self._i < len(c):
            ch = c[self._i]
            o = self._o
            if o < len(ch):
                if len(buf) == 1:  # how the JSON parser reads: no allocation
                    buf[0] = ch[o]
                    self._o = o + 1
                    return 1
                k = min(len(buf), len(ch) - o)
                buf[:k] = memoryview(ch)[o : o + k]
                self._o = o + k
                return k
            c[self._i] = None
            self._i += 1
            self._o = 0
        return 0


def _is_token(b):
    if not b:
        return False
    for c in b:
        if c not in _TCHAR:
            return False
    return True


def _unhex(c):
    if 48 <= c <= 57:
        return c - 48
    c |= 0x20
    if 97 <= c <= 102:
        return c - 87
    return -1


def normalize_path(raw):
    # bytes target (origin-form, query removed) -> str path, or HttpError(400).
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 37:  # %
            if i + 2 >= n:
                raise HttpError(400, "bad percent-escape in the path")
            hi = _unhex(raw[i + 1])
            lo = _unhex(raw[i + 2])
            if hi < 0 or lo < 0:
                raise HttpError(400, "bad percent-escape in the path")
            c = hi << 4 | lo
            if c == 47:
                raise HttpError(400, "encoded '/' in the path")
            i += 3
        else:
            i += 1
        if c < 0x21 or c > 0x7E or c == 92:
            raise HttpError(400, "control, non-ASCII or backslash character in the path")
        out.append(c)
    segs = []
    for s in bytes(out).split(b"/"):
        if s in (b"", b"."):
            continue
        if s == b"..":
            if not segs:
                raise HttpError(400, "path goes above the root")
            segs.pop()
            continue
        segs.append(s)
    return "/" + "/".join(x.decode() for x in segs)


def parse_head(buf, n):
    # Parses buf[:n] (ending with the blank line) into a Request. Raises HttpError.
    end = buf.find(b"\r\n", 0, n)
    line = bytes(buf[:end])
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not _is_token(method) or len(method) > 16:
        raise HttpError(400, "malformed method")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if (len(version) == 8 and version[:5] == b"HTTP/" and 48 <= version[5] <= 57
                and version[6] == 46 and 48 <= version[7] <= 57):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise HttpError(400, "malformed HTTP version")
    if b" " + method + b" " not in _METHODS:
        raise HttpError(501, "method not implemented")
    if target[:1] != b"/":
        raise HttpError(400, "the request target must be a path starting with /")
    if b"#" in target:
        raise HttpError(400, "fragment in the request target")
    path, _, query = target.partition(b"?")
    req = Request()
    req.method = method.decode()
    req.version = version
    req.path = normalize_path(path)
    for c in query:
        if c < 0x21 or c > 0x7E:
            raise HttpError(400, "control or non-ASCII character in the query")
    req.query = query.decode()
    count = 0
    pos = end + 2
    headers = req.headers
    while pos < n - 2:
        e = buf.find(b"\r\n", pos, n)
        hl = bytes(buf[pos:e])
        pos = e + 2
        count += 1
        if count > _HEADERS_MAX:
            raise HttpError(431, "too many header fields")
        if hl[:1] in (b" ", b"\t"):
            raise HttpError(400, "obsolete line folding in the header")
        name, sep, value = hl.partition(b":")
        if not sep or not _is_token(name):
            raise HttpError(400, "malformed header field")
        for c in value:
            if (c < 0x20 and c != 9) or c == 0x7F:
                raise HttpError(400, "control character in a header value")
        name = name.lower()
        if b" " + name + b" " in _KEEP:
            value = value.strip()
            for c in value:
                if c > 0x7E:
                    raise HttpError(400, "non-ASCII byte in the %s header" % name.decode())
            old = headers.get(name)
            if old is not None and old != value:
                raise HttpError(400, "conflicting repeated header %s" % name.decode())
            headers[name] = value
    if version == b"HTTP/1.1" and b"host" not in headers:
        raise HttpError(400, "Host header missing")
    if b"transfer-encoding" in headers:
        raise HttpError(501, "Transfer-Encoding is not supported; send Content-Length")
    cl = headers.get(b"content-length")
    if cl is not None:
        if not cl or len(cl) > 9 or not cl.isdigit():
            raise HttpError(400, "bad Content-Length")
    return req


def response_head(status, ctype=None, length=0, extra=None):
    h = b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode())
    if ctype:
        h += b"Content-Type: " + ctype.encode() + b"\r\n"
    h += b"Content-Length: %d\r\nConnection: close\r\n" % length
    h += _SECURITY
    if extra:
        for k, v in extra:
            h += k.encode() + b": " + v.encode() + b"\r\n"
    return h + b"\r\n"


def error(status, message, field=None, extra=None):
    # -> a JSON error answer (the handler's tuple): {"error": message, "field"?}.
    import json

    d = {"error": message}
    if field:
        d["field"] = field
    return status, "application/json", json.dumps(d).encode(), extra


def _deadline(ms):
    return time.ticks_add(time.ticks_ms(), ms)


def _in_time(deadline):
    # Raises asyncio.TimeoutError once ticks_ms() has reached the deadline.
    if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
        raise asyncio.TimeoutError


class _Conn:
    # A client socket, polled: the hotspot's sockets stay out of the loop's select.poll set.
    # (The unix port of MicroPython 1.28 crashed in poll_iternext now and then with them in
    # it.) A read waits at most _POLL_MS longer than it would otherwise; the hotspot is idle
    # or serves one phone, so the wake-ups cost nothing that matters. Each wait ends at its
    # caller's deadline (ticks_ms) with asyncio.TimeoutError: polled anyway, a request's limits
    # need no asyncio.wait_for_ms (its module, a task and a runner per wait in the heap).
    def __init__(self, s, peer=None):
        s.setblocking(False)
        self.s = s
        self.peer = peer
        self._out = []

    async def readinto(self, mv, deadline):
        while True:
            try:
                n = self.s.readinto(mv)
            except OSError as e:
                if e.errno != _EAGAIN:
                    raise
                n = None
            if n is not None:
                return n
            _in_time(deadline)
            await asyncio.sleep_ms(_POLL_MS)

    def write(self, b):
        self._out.append(b)

    async def drain(self, deadline):
        for b in self._out:
            mv = memoryview(b)
            while mv:
                try:
                    n = self.s.write(mv)
                except OSError as e:
                    if e.errno != _EAGAIN:
                        raise
                    n = None
                if n:
                    mv = mv[n:]
                else:
                    _in_time(deadline)
                    await asyncio.sleep_ms(_POLL_MS)
        self._out = []

    def close(self):
        self._out = []
        self.s.close()


class Server:
    # handler(req) -> (status, content_type, body_bytes, extra_headers_list_or_None);
    # it may raise HttpError. on_request() is called for every request (the idle timer).
    def __init__(self, handler, on_request=None):
        self.handler = handler
        self.on_request = on_request
        self._clients = 0
        # One head buffer kept between clients (an app's requests come one after another): a
        # request then needs no new block; a second and third client at once allocate their own.
        self._spare = bytearray(_HEAD_MAX)
        self._body_turn = Turns()  # one body being read at a time
        self._srv = None
        self.served = 0

    def release(self):
        # The kept head buffer let go, its block for the caller's next step (claim.py save());
        # retake() after it. A client's buffer (one is being served) stays its own, kept after.
        self._spare = None

    def retake(self):
        if self._spare is None and not self._clients:
            try:
                self._spare = bytearray(_HEAD_MAX)
            except MemoryError:
                pass  # the next client allocates its own (503 without it), kept after it

    async def start(self, host, port):
        import socket

        ls = socket.socket()
        try:
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except (OSError, AttributeError):
            pass
        ls.bind(socket.getaddrinfo(host, port)[0][-1])
        ls.listen(4)
        ls.setblocking(False)
        self._srv = ls
        self._task = asyncio.create_task(self._accept(ls))
        log.info(_TAG, "serving on %s:%d", host, port)

    async def stop(self):
        if self._srv:
            self._task.cancel()
            self._srv.close()
            self._srv = None

    async def _accept(self, ls):
        while True:
            try:
                s, a = ls.accept()
            except OSError:  # EAGAIN: nobody waiting
                await asyncio.sleep_ms(_POLL_MS)
                continue
            try:
                c = _Conn(s, a)
                asyncio.create_task(self._client(c, c))
            except MemoryError:
                # No memory for this client: it is turned away (503, closed), the server goes on.
                try:
                    s.send(_NO_MEMORY)
                except OSError:
                    pass
                s.close()
                import gc

                gc.collect()
                await asyncio.sleep_ms(_POLL_MS)

    async def _client(self, r, w):
        busy = self._clients >= _MAX_CLIENTS
        buf = None
        if not busy:
            buf = self._spare
            self._spare = None
            if buf is None:
                try:
                    buf = bytearray(_HEAD_MAX)  # this client's, dropped when it leaves
                except MemoryError:
                    pass
        if buf is None:
            await self._send(w, error(503, "busy: too many clients" if busy else
                                            "out of memory, try again"), False)
            await self._drain(r, bytearray(128))
            await self._close(w)
            return
        self._clients += 1
        try:
            await self._serve_one(r, w, buf)
        except Exception as e:  # never let one client take the server down
            log.exc(_TAG, "client", e)
        finally:
            self._clients -= 1
            if self._spare is None:
                self._spare = buf
            await self._close(w)

    async def _close(self, w):
        try:
            w.close()
        except Exception:
            pass

    async def _serve_one(self, r, w, buf):
        head = False
        path = ("request", "head")  # (what the log names: a head not parsed yet)
        why = None
        try:
            n, extra = await self._read_head(r, buf, _deadline(_HEAD_TIMEOUT_MS))
            req = parse_head(buf, n)
            path = (req.method, req.path)
            head = req.method == "HEAD"
            req._srv, req._r, req._w, req._buf = self, r, w, buf
            req.peer = getattr(r, "peer", None)
            req.body = extra  # bytes that came with the head, belong to the body
            if self.on_request:
                self.on_request()
            res = await self.handler(req)
        except asyncio.TimeoutError:
            res = error(408, "request head not received in time")
        except HttpError as e:
            if e.status == 503 and "memory" in e.message:  # (not "busy": the page polls)
                why = e.message
            res = error(e.status, e.message, extra=e.headers)
        except (OSError, EOFError):
            return  # the client went away
        except MemoryError:
            import gc

            gc.collect()
            why = "out of memory"
            res = error(503, "out of memory, try again")
        except Exception as e:
            log.exc(_TAG, "handler", e)
            res = error(500, "internal error")
        if why:  # (a retry may fail again: the log says why, the owner's phone only "try again")
            log.warn(_TAG, "%s %s: 503, %s", path[0], path[1], why)
        self.served += 1
        await self._send(w, res, head)
        if res[0] >= 400:
            await self._drain(r, buf)

    async def _drain(self, r, buf):
        # Read (and drop) what the client is still sending, for a moment, before closing: a
        # close with unread input makes the kernel send a reset, which can destroy the answer
        # before the client reads it. Bounded in bytes and time.
        left = _DRAIN_MAX
        mv = memoryview(buf)
        until = _deadline(_DRAIN_MS)
        try:
            while left > 0:
                k = await r.readinto(mv, until)
                if not k:
                    return
                left -= k
        except Exception:
            pass

    async def _read_head(self, r, buf, deadline):
        # Reads until the blank line. -> (head length, bytes read past it). Raises HttpError.
        mv = memoryview(buf)
        got = 0
        while True:
            if got >= _HEAD_MAX:
                if buf.find(b"\r\n", 0, _LINE_MAX) < 0:
                    raise HttpError(414, "request line too long")
                raise HttpError(431, "request head too large")
            k = await r.readinto(mv[got:], deadline)
            if not k:
                raise EOFError()
            start = got - 3 if got > 3 else 0
            got += k
            end = buf.find(b"\r\n\r\n", start, got)
            if end >= 0:
                end += 4
                if buf.find(b"\r\n", 0, min(end, _LINE_MAX + 2)) < 0:
                    raise HttpError(414, "request line too long")
                return end, bytes(buf[end:got])
            if got > _LINE_MAX + 2 and buf.find(b"\r\n", 0, _LINE_MAX + 2) < 0:
                raise HttpError(414, "request line too long")

    async def _recv(self, req, n, put, piece, stream):
        # The rest of a body of n bytes (req.body came with the head), read through the client's
        # buffer (the head is parsed: it is free) and given to put() in pieces of at most
        # `piece` bytes. A stream (a file upload) may take as long as it keeps coming (each read
        # within BODY_TIMEOUT); any other body arrives whole within BODY_TIMEOUT. -> n.
        got = len(req.body)
        if got > n:
            raise HttpError(400, "more bytes than Content-Length")
        if got == n:
            return n
        if not await self._body_turn.take(_BODY_TIMEOUT_MS):
            raise HttpError(503, "busy: try again")
        try:
            if req.headers.get(b"expect", b"").lower() == b"100-continue":
                req._w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await req._w.drain(_deadline(_WRITE_TIMEOUT_MS))
            mv = memoryview(req._buf)
            until = _deadline(_BODY_TIMEOUT_MS)  # the whole body; a stream's each read
            while got < n:
                if stream:
                    until = _deadline(_BODY_TIMEOUT_MS)
                try:
                    k = await req._r.readinto(mv[: min(piece, n - got)], until)
                except asyncio.TimeoutError:
                    raise HttpError(408, "request body stalled" if stream else
                                         "request body not received in time")
                if not k:
                    raise HttpError(400, "body shorter than Content-Length")
                put(mv[:k])
                got += k
            return n
        finally:
            self._body_turn.give()

    async def _send(self, w, res, head_only):
        status, ctype, body, extra = res
        if body is None:
            body = b""
        try:
            try:
                h = response_head(status, ctype, len(body), extra)
            except MemoryError:
                h, body = _NO_MEMORY, None
            w.write(h)
            if body and not head_only:
                w.write(body)
            await w.drain(_deadline(_WRITE_TIMEOUT_MS))
        except Exception:
            pass  # a client that does not read its answer loses it

