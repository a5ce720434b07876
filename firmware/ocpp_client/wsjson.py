# A JSON message over the WebSocket without its text in RAM (ws.WebSocket.send_json): a short
# one is sent as json.dumps makes it; a longer one (over the send buffer) is counted in a first
# pass of json.dump (which also raises on what JSON cannot hold, before anything is sent), then
# written through the send buffer piece by piece as a second pass makes it. A payload may write
# itself (dump()).
import io
import json

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


def dump(frame, out):
    # json.dump(frame, out), its last element (the payload) written by its own json_to(out)
    # when it has one: a long answer made entry by entry as it goes out, never whole
    # (GetConfiguration's: ocpp_client/configuration.py).
    to = getattr(frame[-1], "json_to", None)
    if to is None:
        json.dump(frame, out)
        return
    out.write(json.dumps(frame[:-1])[:-1].encode())
    out.write(b", ")
    to(out)
    out.write(b"]")


def text(frame):
    # The frame's JSON text (a short message, or a transport without send_json).
    if getattr(frame[-1], "json_to", None) is None:
        return json.dumps(frame)
    b = io.BytesIO()
    dump(frame, b)
    return b.getvalue().decode()


async def send(ws, obj, mask, head):
    # ws: the WebSocket (its send buffer, writer's turn and stream writer); mask, head: its
    # masking and frame-head functions (ws.py's, passed in: this module is ws.py's on-use half).
    # Both passes in the writer's turn, with no pause between them: a payload that writes itself
    # writes the same.
    await ws.turn()
    try:
        c = _Count()
        dump(obj, c)
        n = c.n
        buf = ws._tx
        if buf is None or n + 14 <= len(buf):  # (closed: ws.send raises)
            text_ = text(obj)
        else:
            text_ = None
            h = memoryview(bytearray(14))
            hl, key = head(h, _OP_TEXT, n)
            ws.w.write(h[:hl])
            p = _Pieces(ws.w, buf, key, mask)
            try:
                dump(obj, p)
                p.flush()
                await ws.w.drain()
            except BaseException:
                ws.abort()  # a frame cut short: the link cannot go on
                raise
    finally:
        ws.writing.give()
    if text_ is not None:
        await ws.send(text_)
