# A small FTP client (RFC 959, REST and SIZE of RFC 3659): passive mode, binary type, one file
# streamed between flash and the server through one preallocated buffer. stor() uploads
# (diagnostics, diag/upload.py); retr() downloads (firmware updates, ota/update.py: resumed with
# REST, bounded by max_size, synced to flash as it comes). CSMSs such as SteVe hand out
# "ftp://user:password@host/path". Loaded on use only.
# The data connection goes to the control connection's host, whatever address the server's PASV
# answer names (the usual NAT fix, and no bounce to a third host). Every reply has a deadline,
# every data read too, and a download must keep a minimum rate (net/sink.py).
# The password is sent only in PASS and never logged. The server's name is resolved once a
# session, by net/dns.py (`resolver`: see there), never by a blocking getaddrinfo.
import asyncio
import os
import sys

from net import tcp
from net.sink import Sink

_CHUNK = const(1024)


class FtpError(Exception):
    def __init__(self, what, code=0):
        super().__init__(what)
        self.code = code


async def _reply(r, timeout_ms):
    # -> (code, text of the last line). Multi-line replies ("123-... / 123 ...") read whole.
    async def read():
        first = await r.readline()
        if not first:
            raise FtpError("connection closed by the server")
        if len(first) < 4 or not first[:3].isdigit():
            raise FtpError("bad reply %r" % first[:40])
        code = int(first[:3])
        line = first
        if first[3:4] == b"-":
            end = first[:3] + b" "
            n = 0
            while not line.startswith(end):
                line = await r.readline()
                n += 1
                if not line or n > 200:
                    raise FtpError("endless multi-line reply")
        return code, line[4:].strip().decode("utf-8", "replace")[:120]

    try:
        return await asyncio.wait_for_ms(read(), timeout_ms)
    except asyncio.TimeoutError:
        raise FtpError("no reply within %d ms" % timeout_ms)


async def _cmd(r, w, line, timeout_ms, ok):
    w.write(line.encode() + b"\r\n")
    await w.drain()
    code, text = await _reply(r, timeout_ms)
    if code not in ok:
        verb = line.split(" ", 1)[0]
        raise FtpError("%s answered %d %s" % (verb, code, text), code)
    return code, text


def _pasv_port(text):
    # "Entering Passive Mode (h1,h2,h3,h4,p1,p2)" -> port. Read from the first digit on: RFC
    # 1123 4.1.2.6, servers may leave out RFC 959's parentheses ("227 =h1,..." too).
    i = 0
    while i < len(text) and not text[i].isdigit():
        i += 1
    j = i
    while j < len(text) and (text[j].isdigit() or text[j] == ","):
        j += 1
    parts = text[i:j].split(",")
    if len(parts) != 6:
        raise FtpError("PASV answer not understood")
    try:
        p1, p2 = int(parts[4]), int(parts[5])
    except ValueError:
        raise FtpError("PASV answer not understood")
    return p1 * 256 + p2


async def _connect(host, port, timeout_ms, name, what):
    # name: the URL's host, which the failure names (host: the address it resolved or routed to)
    try:
        return await asyncio.wait_for_ms(tcp.connect(host, port), timeout_ms)
    except asyncio.TimeoutError:
        raise FtpError("cannot open the %s connection to %s within %d ms"
                       % (what, name, timeout_ms))


async def _shut(s):
    # MicroPython's Stream.close() does nothing: wait_closed() closes the socket.
    try:
        s.close()
        await s.wait_closed()
    except OSError:
        pass


class _Session:
    # One control connection, logged in, binary type; data() opens a passive data connection.
    # Used as `async with`: the connections are closed however the block ends.
    def __init__(self, host, port, user, password, timeout_ms, route, resolver):
        self.host = host
        self.resolver = resolver
        self.port = port
        self.user = user
        self.pw = password
        self.t = timeout_ms
        self.route = route
        self.w = self.d = None

    async def __aenter__(self):
        t = self.t
        held = "net.dns" in sys.modules
        from net import dns

        self.ip = ip = await dns.lookup(self.host, self.resolver, held, FtpError)
        dns = None  # (out of the heap with the lookup unless held)
        self.chost, cport = self.route(ip, self.port) if self.route else (ip, self.port)
        r, w = await _connect(self.chost, cport, t, "%s:%d" % (self.host, self.port), "control")
        self.r, self.w = r, w
        try:
            await self._login(r, w, t)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _login(self, r, w, t):
        code, text = await _reply(r, t)
        if code != 220:
            raise FtpError("greeting %d %s" % (code, text), code)
        code, _ = await _cmd(r, w, "USER " + self.user, t, (230, 331))
        if code == 331:
            w.write(b"PASS " + self.pw.encode() + b"\r\n")
            await w.drain()
            code, text = await _reply(r, t)
            if code not in (230, 202):
                raise FtpError("login refused: %d %s" % (code, text), code)
        await _cmd(r, w, "TYPE I", t, (200,))

    async def __aexit__(self, *exc):
        await self.close_data()
        if self.w is not None:
            await _shut(self.w)

    async def cmd(self, line, ok, timeout_ms=None):
        return await _cmd(self.r, self.w, line, timeout_ms or self.t, ok)

    async def data(self):
        _, text = await self.cmd("PASV", (227,))
        dport = _pasv_port(text)
        chost = self.chost
        if self.route:
            chost, dport = self.route(self.ip, dport)
        _, self.d = await _connect(chost, dport, self.t, "%s:%d" % (self.host, dport), "data")
        return self.d

    async def close_data(self):
        if self.d is not None:
            d, self.d = self.d, None
            await _shut(d)

    async def done(self):
        # After the data connection closed: the transfer's reply, then QUIT (best effort).
        await self.close_data()
        code, text = await _reply(self.r, self.t * 3)
        if code not in (226, 250):
            raise FtpError("transfer ended %d %s" % (code, text), code)
        try:
            self.w.write(b"QUIT\r\n")
            await self.w.drain()
        except OSError:
            pass


async def stor(host, port, user, password, path, src, timeout_ms=10000, buf=None, route=None,
               resolver=None):
    # Uploads the open binary file `src` (read from where it stands) as `path` on the server.
    # -> bytes sent. Raises FtpError (the server refused: wrong password -> code 530), OSError
    # (unreachable, connection lost). route(ip, port) may redirect the TCP connections.
    buf = buf or bytearray(_CHUNK)
    mv = memoryview(buf)
    async with _Session(host, port, user, password, timeout_ms, route, resolver) as s:
        d = await s.data()
        await s.cmd("STOR " + path, (125, 150))
        sent = 0
        while True:
            n = src.readinto(buf)
            if not n:
                break
            d.write(mv[:n])
            try:
                await asyncio.wait_for_ms(d.drain(), timeout_ms)
            except asyncio.TimeoutError:
                raise FtpError("server took no data for %d ms" % timeout_ms)
            sent += n
        await s.done()
        return sent


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def _too_big(size, max_size):
    return FtpError("%d bytes: more than the %d that fit" % (size, max_size))


async def retr(host, port, user, password, path, dest, resume=True, max_size=None,
               progress=None, timeout_ms=10000, sync_every=0, buf=None, route=None, rate=None,
               resolver=None):
    # Downloads `path` from the server into the file at `dest` (flash), as net/http.py's
    # download() does over HTTP: with `resume` and a partial file there, REST asks for the rest
    # and it is appended (a server without REST sends it all: the file is rewritten). -> the
    # file's complete size. The size the server tells (SIZE) is checked against `max_size`
    # before a byte is written, and every chunk is (a server without SIZE); progress(done,
    # total or None) after each chunk; the file is flushed every `sync_every` bytes. Raises
    # FtpError (code: the server's reply, 530 login refused, 550 no such file) or OSError; the
    # file keeps what arrived, for the next try.
    have = _size(dest) if resume else 0
    buf = buf or bytearray(_CHUNK)
    mv = memoryview(buf)
    async with _Session(host, port, user, password, timeout_ms, route, resolver) as s:
        total = None
        try:
            _, text = await s.cmd("SIZE " + path, (213,))
            total = int(text.split()[-1])
        except (FtpError, ValueError, IndexError) as e:
            if getattr(e, "code", 1) == 0:
                raise  # no reply: the session is lost
        if total is not None:
            if max_size is not None and total > max_size:
                raise _too_big(total, max_size)
            if have == total:
                return have  # complete already
            if have > total:
                have = 0  # the file changed on the server
        d = await s.data()
        if have:
            try:
                await s.cmd("REST %d" % have, (350,))
            except FtpError as e:
                if e.code in (0, 421):
                    raise
                have = 0  # no REST here: from the start
        try:
            await s.cmd("RETR " + path, (125, 150))
        except FtpError as e:
            if have and e.code == 554:  # REST position refused: the next try starts over
                open(dest, "wb").close()
            raise
        f = open(dest, "ab" if have else "wb")
        sink = Sink(f, sync_every, rate)
        try:
            size = have
            while True:
                try:
                    k = await asyncio.wait_for_ms(d.readinto(mv), timeout_ms)
                except asyncio.TimeoutError:
                    raise FtpError("no data from the server for %d ms" % timeout_ms)
                if k is None:
                    continue
                if not k:
                    break
                if max_size is not None and size + k > max_size:
                    raise _too_big(size + k, max_size)
                slow = sink.put(mv, k)
                if slow:
                    raise FtpError(slow)
                size += k
                if progress is not None:
                    progress(size, total)
        finally:
            f.close()
        await s.done()
        if total is not None and size != total:
            raise FtpError("got %d of %d bytes" % (size, total))
        return size
