# A JSON message over the WebSocket without its text in RAM (ws.WebSocket.send_json): a short
# one is sent as json.dumps makes it; a longer one (over the send buffer) is counted in a first
# pass of json.dump (which also raises on what JSON cannot hold, before anything is sent), then
# written through the send buffer piece by piece as a second pass makes it.
import io
import json
import os
import struct

_OP_TEXT = const(1)


class _Count(io.IOBase):
    # The first pass: the UTF-8 length of the text, nothing kept.
    def __init__(self):
        self.n = 0

    def write(self, b):
        self.n += len(b)
        return len(b)


class _Pieces(io.IOBase):
    # The second pass: the text into the send buffer, each full piece (a multiple of 4 bytes:
    # the mask key stays aligned) masked and handed to the stream writer.
    def __init__(self, w, buf, key, mask):
        self.w = w
        self.mask = mask
        self.bv = memoryview(buf)
        self.step = len(buf) & ~3
        self.key = key
        self.k = 0

    def write(self, b):
        n = len(b)
        i = 0
        while i < n:
            k = min(self.step - self.k, n - i)
            self.bv[self.k : self.k + k] = b if k == n else b[i : i + k]
            self.k += k
            i += k
            if self.k == self.step:
                self.flush()
        return n

    def flush(self):
        if self.k:
            body = self.bv[: self.k]
            self.mask(body, self.k, self.key)
            self.w.write(body)
            self.k = 0


async def send(ws, obj, mask):
    # ws: the WebSocket (its send buffer, lock and stream writer); mask: its masking function.
    c = _Count()
    json.dump(obj, c)
    n = c.n
    async with ws._wlock:
        buf = ws._tx
        if buf is None or n + 14 <= len(buf):  # (closed: ws.send raises)
            text = json.dumps(obj)
        else:
            text = None
            h = bytearray(14)
            h[0] = 0x80 | _OP_TEXT
            if n < 65536:
                h[1] = 0x80 | 126
                struct.pack_into("!H", h, 2, n)
                hl = 4
            else:
                h[1] = 0x80 | 127
                struct.pack_into("!Q", h, 2, n)
                hl = 10
            key = os.urandom(4)
            h[hl : hl + 4] = key
            ws.w.write(memoryview(h)[: hl + 4])
            p = _Pieces(ws.w, buf, key, mask)
            try:
                json.dump(obj, p)
                p.flush()
                await ws.w.drain()
            except BaseException:
                ws.abort()  # a frame cut short: the link cannot go on
                raise
    if text is not None:
        await ws.send(text)
