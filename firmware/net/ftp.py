# A small FTP client (RFC 959) for uploads: passive mode, binary type, one file streamed from
# flash through one preallocated buffer. Used by diagnostics uploads (diag/upload.py); CSMSs
# such as SteVe hand out "ftp://user:password@host/path/".
# The data connection goes to the control connection's host, whatever address the server's PASV
# answer names (the usual NAT fix, and no bounce to a third host). Every reply has a deadline.
# The password is sent only in PASS and never logged.
import asyncio

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
    # "Entering Passive Mode (h1,h2,h3,h4,p1,p2)" -> port
    i = text.find("(")
    j = text.find(")", i)
    if i < 0 or j < 0:
        raise FtpError("PASV answer without an address")
    parts = text[i + 1 : j].split(",")
    if len(parts) != 6:
        raise FtpError("PASV answer not understood")
    try:
        p1, p2 = int(parts[4]), int(parts[5])
    except ValueError:
        raise FtpError("PASV answer not understood")
    return p1 * 256 + p2


async def stor(host, port, user, password, path, src, timeout_ms=10000, buf=None, route=None):
    # Uploads the open binary file `src` (read from where it stands) as `path` on the server.
    # -> bytes sent. Raises FtpError (the server refused: wrong password -> code 530), OSError
    # (unreachable, connection lost). route(host, port) may redirect the TCP connections.
    buf = buf or bytearray(_CHUNK)
    mv = memoryview(buf)
    chost, cport = route(host, port) if route else (host, port)
    r, w = await asyncio.wait_for_ms(asyncio.open_connection(chost, cport), timeout_ms)
    dw = None
    try:
        code, text = await _reply(r, timeout_ms)
        if code != 220:
            raise FtpError("greeting %d %s" % (code, text), code)
        code, _ = await _cmd(r, w, "USER " + user, timeout_ms, (230, 331))
        if code == 331:
            w.write(b"PASS " + password.encode() + b"\r\n")
            await w.drain()
            code, text = await _reply(r, timeout_ms)
            if code not in (230, 202):
                raise FtpError("login refused: %d %s" % (code, text), code)
        await _cmd(r, w, "TYPE I", timeout_ms, (200,))
        _, text = await _cmd(r, w, "PASV", timeout_ms, (227,))
        dport = _pasv_port(text)
        if route:
            chost, dport = route(host, dport)
        dr, dw = await asyncio.wait_for_ms(asyncio.open_connection(chost, dport), timeout_ms)
        await _cmd(r, w, "STOR " + path, timeout_ms, (125, 150))
        sent = 0
        while True:
            n = src.readinto(buf)
            if not n:
                break
            dw.write(mv[:n])
            await asyncio.wait_for_ms(dw.drain(), timeout_ms)
            sent += n
        dw.close()
        await dw.wait_closed()
        dw = None
        code, text = await _reply(r, timeout_ms * 3)
        if code not in (226, 250):
            raise FtpError("transfer ended %d %s" % (code, text), code)
        try:
            w.write(b"QUIT\r\n")
            await w.drain()
        except OSError:
            pass
        return sent
    finally:
        if dw is not None:
            dw.close()
        w.close()
        try:
            await w.wait_closed()
        except OSError:
            pass
