# WebSocket client (RFC 6455) on MicroPython asyncio streams, for OCPP-J.
# Text frames only for the application; ping/pong and close handled here. Client frames are
# masked in place by a native (viper) loop, so masking costs no per-byte Python work.
import asyncio
import binascii
import hashlib
import os
import struct

import micropython

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT = const(0)
OP_TEXT = const(1)
OP_BIN = const(2)
OP_CLOSE = const(8)
OP_PING = const(9)
OP_PONG = const(10)
_MAX_HEADERS = const(32)
_MAX_HEADER_LINE = const(512)


class WsError(Exception):
    pass


class WsClosed(WsError):
    pass


try:

    @micropython.viper
    def _mask(buf: ptr8, n: int, key: ptr8):
        i = 0
        while i < n:
            buf[i] ^= key[i & 3]
            i += 1

except Exception:  # a port without the native emitter: whole-buffer integer XOR, still no byte loop

    def _mask(buf, n, key):
        k = (bytes(key) * ((n >> 2) + 1))[:n]
        x = int.from_bytes(buf, "big") ^ int.from_bytes(k, "big")
        buf[:] = x.to_bytes(n, "big")


def apply_mask(buf, key):
    # Exposed for tests and benchmarks: masks (or unmasks) a bytearray in place.
    _mask(buf, len(buf), key)


_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def quote(s):
    # Percent-encoding of one path segment (RFC 3986 unreserved characters kept).
    out = []
    for c in s.encode():
        if c in _UNRESERVED:
            out.append(chr(c))
        else:
            out.append("%%%02X" % c)
    return "".join(out)


def parse_url(url):
    # -> (secure, host, port, path). Raises ValueError with the reason.
    if url.startswith("ws://"):
        secure, rest, port = False, url[5:], 80
    elif url.startswith("wss://"):
        secure, rest, port = True, url[6:], 443
    else:
        raise ValueError("URL must start with ws:// or wss://")
    hostport, sep, path = rest.partition("/")
    path = "/" + path if sep else "/"
    if "@" in hostport:
        raise ValueError("credentials in the URL are not accepted")
    if hostport.startswith("["):
        host, _, p = hostport[1:].partition("]")
        p = p[1:] if p.startswith(":") else ""
    else:
        host, _, p = hostport.partition(":")
    if not host:
        raise ValueError("URL has no host")
    if p:
        try:
            port = int(p)
        except ValueError:
            raise ValueError("bad port")
        if not 0 < port < 65536:
            raise ValueError("bad port")
    return secure, host, port, path


class WebSocket:
    # One connection. `recv()` returns the next text message (str); `send(str)` sends one.
    def __init__(self, reader, writer, max_size):
        self.r = reader
        self.w = writer
        self.max_size = max_size
        self.closed = False
        self.last_rx_ms = 0
        self._hdr = bytearray(14)
        self._key = bytearray(4)
        self._wlock = asyncio.Lock()

    async def _read_exact(self, n):
        b = await self.r.readexactly(n)
        if len(b) != n:
            raise WsClosed("connection closed mid-frame")
        return b

    async def _frame(self):
        h = await self._read_exact(2)
        fin = h[0] & 0x80
        if h[0] & 0x70:
            raise WsError("reserved bits set")
        op = h[0] & 0x0F
        if h[1] & 0x80:
            raise WsError("server frames must not be masked")
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self._read_exact(8))[0]
        if n > self.max_size:
            raise WsError("frame of %d bytes over the %d limit" % (n, self.max_size))
        data = await self._read_exact(n) if n else b""
        return fin, op, data

    async def recv(self):
        # Next complete text message; answers pings, follows fragmentation; raises WsClosed.
        parts = None
        size = 0
        while True:
            fin, op, data = await self._frame()
            self.last_rx_ms = _ticks()
            if op == OP_PING:
                await self._send_frame(OP_PONG, data)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                if not self.closed:
                    try:
                        await self._send_frame(OP_CLOSE, struct.pack("!H", 1000))
                    except Exception:
                        pass
                self.closed = True
                raise WsClosed("closed by peer (%d)" % code)
            if op in (OP_TEXT, OP_BIN):
                if parts is not None:
                    raise WsError("new message inside a fragmented one")
                if fin:
                    return data.decode() if op == OP_TEXT else data
                parts = [data]
                size = len(data)
                first = op
                continue
            if op == OP_CONT:
                if parts is None:
                    raise WsError("continuation without a start")
                size += len(data)
                if size > self.max_size:
                    raise WsError("message over the %d limit" % self.max_size)
                parts.append(data)
                if fin:
                    msg = b"".join(parts)
                    return msg.decode() if first == OP_TEXT else msg
                continue
            raise WsError("unknown opcode %d" % op)

    async def _send_frame(self, op, payload):
        n = len(payload)
        h = self._hdr
        h[0] = 0x80 | op
        if n < 126:
            h[1] = 0x80 | n
            hl = 2
        elif n < 65536:
            h[1] = 0x80 | 126
            struct.pack_into("!H", h, 2, n)
            hl = 4
        else:
            h[1] = 0x80 | 127
            struct.pack_into("!Q", h, 2, n)
            hl = 10
        key = os.urandom(4)
        h[hl : hl + 4] = key
        hl += 4
        buf = bytearray(payload)
        _mask(buf, n, key)
        async with self._wlock:
            self.w.write(h[:hl])
            self.w.write(buf)
            await self.w.drain()

    async def send(self, text):
        if self.closed:
            raise WsClosed("send on a closed socket")
        await self._send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    async def ping(self, data=b""):
        await self._send_frame(OP_PING, data)

    async def close(self, code=1000):
        if not self.closed:
            self.closed = True
            try:
                await asyncio.wait_for_ms(self._send_frame(OP_CLOSE, struct.pack("!H", code)), 500)
            except Exception:
                pass
        self.abort()

    def abort(self):
        self.closed = True
        try:
            self.w.close()
        except Exception:
            pass


def _ticks():
    import time

    return time.ticks_ms()


async def _readline(r):
    line = await r.readline()
    if not line:
        raise WsClosed("connection closed during the handshake")
    if len(line) > _MAX_HEADER_LINE:
        raise WsError("handshake header line too long")
    return line


async def connect(url, cp_id, subprotocol="ocpp1.6", auth=None, ssl_ctx=None, timeout_ms=10000,
                  max_size=16384, route=None):
    # Opens the socket, performs the handshake, checks the accept key and the subprotocol.
    # `auth` is the ready "Basic ..." header value or None; `route(host, port)` may redirect the
    # TCP connection (the board's network) while TLS and Host keep the URL's host.
    # Raises WsError/OSError on failure.
    secure, host, port, path = parse_url(url)
    if secure and ssl_ctx is None:
        raise WsError("wss:// needs a TLS context")
    if not path.endswith("/"):
        path += "/"
    path += quote(cp_id)
    chost, cport = route(host, port) if route else (host, port)
    if secure:
        coro = asyncio.open_connection(chost, cport, ssl=ssl_ctx, server_hostname=host)
    else:
        coro = asyncio.open_connection(chost, cport)
    r, w = await asyncio.wait_for_ms(coro, timeout_ms)
    try:
        key = binascii.b2a_base64(os.urandom(16))[:-1]
        req = [
            b"GET ", path.encode(), b" HTTP/1.1\r\nHost: ", host.encode(),
            b":%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " % port, key,
            b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ", subprotocol.encode(),
            b"\r\n",
        ]
        if auth:
            req.append(b"Authorization: " + auth.encode() + b"\r\n")
        req.append(b"\r\n")
        w.write(b"".join(req))
        await asyncio.wait_for_ms(w.drain(), timeout_ms)
        status = await asyncio.wait_for_ms(_readline(r), timeout_ms)
        parts = status.split(None, 2)
        if len(parts) < 2 or parts[1] != b"101":
            code = parts[1].decode() if len(parts) > 1 else "?"
            raise WsError("handshake refused: HTTP %s" % code)
        headers = {}
        for _ in range(_MAX_HEADERS):
            line = await asyncio.wait_for_ms(_readline(r), timeout_ms)
            if line in (b"\r\n", b"\n"):
                break
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        else:
            raise WsError("too many handshake headers")
        want = binascii.b2a_base64(hashlib.sha1(key + _GUID).digest())[:-1]
        if headers.get(b"sec-websocket-accept") != want:
            raise WsError("bad Sec-WebSocket-Accept")
        proto = headers.get(b"sec-websocket-protocol", b"").decode()
        if proto != subprotocol:
            raise WsError("server did not agree to %s (got %r)" % (subprotocol, proto))
    except BaseException:
        w.close()
        raise
    ws = WebSocket(r, w, max_size)
    ws.last_rx_ms = _ticks()
    return ws
