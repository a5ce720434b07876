# On-target tests for ocpp_client.ws: RFC 6455 framing fed through a fake stream (fragments,
# pings inside fragments, close, oversize, truncation, masked server frames), messages over the
# RAM limit spooled to flash (and dropped over the flash limit or when the flash fails), the
# masks the client puts on its own frames, and the charge point id's percent-encoding.
import asyncio
import gc
import json
import struct
import time

from mphelp import exists, read, write
from net import tcp
from ocpp_client import ws as wsmod
from ocpp_client import wsopen
from ocpp_client.ws import Spooled, WebSocket, WsClosed, WsError, WsTooBig
from store import Spool, Store


class Stream:
    # Reader and writer in one: serves `data` in slices of at most `chunk` bytes (a slow network
    # splits frames anywhere), records what is written.
    def __init__(self, data=b"", chunk=7, none_every=0):
        self.data = bytes(data)
        self.pos = 0
        self.chunk = chunk
        self.none_every = none_every  # every k-th read returns None (TLS: no app data yet)
        self.reads = 0
        self.out = bytearray()
        self.closed = False

    async def readinto(self, buf):
        self.reads += 1
        if self.none_every and self.reads % self.none_every == 0:
            return None
        n = min(len(buf), self.chunk, len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def write(self, b):
        self.out += bytes(b)

    async def drain(self):
        pass

    def close(self):
        self.closed = True


def frame(op, payload=b"", fin=True, mask=None, rsv=0):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | op
    if n < 126:
        h = bytes([b0, (0x80 if mask else 0) | n])
    elif n < 65536:
        h = bytes([b0, (0x80 if mask else 0) | 126]) + struct.pack("!H", n)
    else:
        h = bytes([b0, (0x80 if mask else 0) | 127]) + struct.pack("!Q", n)
    if mask:
        body = bytearray(payload)
        wsmod.apply_mask(body, mask)
        return h + mask + bytes(body)
    return h + payload


def client_frames(out):
    # Parse what the client wrote: [(fin, op, unmasked payload)]; every frame must be masked.
    res = []
    i = 0
    out = bytes(out)
    while i < len(out):
        b0, b1 = out[i], out[i + 1]
        assert b1 & 0x80, "client frame not masked"
        n = b1 & 0x7F
        i += 2
        if n == 126:
            n = struct.unpack("!H", out[i : i + 2])[0]
            i += 2
        elif n == 127:
            n = struct.unpack("!Q", out[i : i + 8])[0]
            i += 8
        key = out[i : i + 4]
        i += 4
        body = bytearray(out[i : i + n])
        wsmod.apply_mask(body, key)
        res.append((b0 & 0x80, b0 & 0x0F, bytes(body)))
        i += n
    return res


def sock(data, max_size=1024, chunk=7, none_every=0):
    s = Stream(data, chunk, none_every)
    return WebSocket(s, s, max_size), s


async def raises(coro, exc):
    try:
        await coro
    except exc as e:
        return e
    raise AssertionError("no %s raised" % exc.__name__)


async def test_single_text_frame_in_small_reads():
    ws, _ = sock(frame(1, '[2,"1","Reset",{"type":"Soft"}]'), chunk=3)
    assert await ws.recv() == '[2,"1","Reset",{"type":"Soft"}]'


async def test_reads_that_return_none_are_retried():
    ws, _ = sock(frame(1, "x" * 300), chunk=50, none_every=2)
    assert await ws.recv() == "x" * 300


async def test_16_and_64_bit_lengths():
    ws, _ = sock(frame(1, "a" * 200) + frame(1, "b" * 70000), max_size=80000, chunk=4096)
    assert await ws.recv() == "a" * 200
    assert await ws.recv() == "b" * 70000


async def test_fragmented_message_with_pings_between_fragments():
    data = (frame(1, "[2,", fin=False) + frame(9, "p1") + frame(0, '"7","Heart', fin=False)
            + frame(9, "") + frame(0, 'beat",{}]') + frame(1, "next"))
    ws, s = sock(data)
    assert await ws.recv() == '[2,"7","Heartbeat",{}]'
    assert client_frames(s.out) == [(0x80, 10, b"p1"), (0x80, 10, b"")]  # pongs echo the data
    assert await ws.recv() == "next"


async def test_recv_msg_is_a_view_of_the_preallocated_buffer():
    ws, _ = sock(frame(1, "abc") + frame(1, "defg"))
    m1 = await ws.recv_msg()
    assert isinstance(m1, memoryview) and bytes(m1) == b"abc"
    m2 = await ws.recv_msg()
    assert bytes(m2) == b"defg"
    assert bytes(m1) == b"def"  # same buffer: a message is valid until the next recv


async def test_pong_is_ignored_and_last_rx_moves():
    ws, _ = sock(frame(10, "x") + frame(1, "hi"))
    ws.last_rx_ms = 0
    assert await ws.recv() == "hi"
    assert ws.last_rx_ms != 0


async def test_close_frame_is_answered_and_raises():
    ws, s = sock(frame(8, struct.pack("!H", 1001) + b"bye"))
    e = await raises(ws.recv(), WsClosed)
    assert "1001" in str(e) and "bye" in str(e)
    assert client_frames(s.out) == [(0x80, 8, struct.pack("!H", 1001))]
    assert ws.closed
    await raises(ws.send("x"), WsClosed)


async def test_a_close_code_no_endpoint_may_send_or_a_reason_not_utf8_is_not_echoed():
    # RFC 6455 7.4: 1005, 1006, 1015 and codes under 1000 or unassigned are never sent in a close
    # frame (answered 1002); 8.1: a reason that is not UTF-8 is answered 1007. Either way the
    # server closed: WsClosed "by peer" (the session backs off), never another exception.
    cases = [(1005, b"", 1002), (1006, b"", 1002), (1015, b"", 1002), (999, b"", 1002),
             (2000, b"", 1002), (5000, b"", 1002), (1004, b"", 1002), (1012, b"", 1012),
             (4001, b"", 4001), (1008, "Gerät".encode(), 1008), (1008, b"Ger\xe4t", 1007),
             (1000, b"\xff", 1007)]
    for code, reason, ans in cases:
        ws, s = sock(frame(8, struct.pack("!H", code) + reason))
        e = await raises(ws.recv(), WsClosed)
        assert "by peer (%d" % code in str(e), (code, e)
        assert client_frames(s.out) == [(0x80, 8, struct.pack("!H", ans))], (code, reason, s.out)


async def test_the_answer_to_our_own_close_is_no_close_by_the_peer():
    # hang_up (a reconnection with new credentials, a repeat that needs a new connection): the
    # server's close answers ours; the session must not take it for a refusal and back off.
    from ocpp_client import wsrare

    ws, s = sock(frame(8, struct.pack("!H", 1000)))
    await wsrare._close(ws, struct.pack("!H", 1000))
    e = await raises(ws.recv(), WsClosed)
    assert "by peer" not in str(e) and "1000" in str(e), e
    assert client_frames(s.out) == [(0x80, 8, struct.pack("!H", 1000))]  # ours, sent once


async def test_masked_server_frame_fails_the_connection():
    ws, s = sock(frame(1, "hello", mask=b"\x01\x02\x03\x04"))
    e = await raises(ws.recv(), WsError)
    assert "masked" in str(e)
    assert client_frames(s.out) == [(0x80, 8, struct.pack("!H", 1002))]


async def test_protocol_violations_fail_the_connection():
    cases = [
        (frame(1, "x", rsv=0x40), "reserved"),
        (frame(0, "x"), "continuation"),
        (frame(1, "a", fin=False) + frame(1, "b"), "inside a fragmented"),
        (frame(3, "x"), "opcode 3"),
        (frame(9, "x" * 126), "control frame"),
        (frame(9, "x", fin=False), "control frame"),
        (frame(8, b"\x03"), "1-byte"),
        (frame(11, ""), "control opcode 11"),
    ]
    for data, words in cases:
        ws, _ = sock(data)
        e = await raises(ws.recv(), WsError)
        assert not isinstance(e, WsTooBig)
        assert words in str(e), (words, str(e))


async def test_truncated_frame_raises_closed():
    data = frame(1, "0123456789" * 5)
    for cut in (1, 2, 10, len(data) - 1):
        ws, _ = sock(data[:cut])
        e = await raises(ws.recv(), WsClosed)
        assert "closed mid-frame" in str(e)
    ws, _ = sock(frame(1, "a" * 200)[:3])  # inside the 16-bit length
    await raises(ws.recv(), WsClosed)


async def test_oversize_message_is_dropped_and_the_next_one_read():
    big = '[2,"big-1","DataTransfer",{"vendorId":"x","data":"' + "z" * 3000 + '"}]'
    ws, _ = sock(frame(1, big) + frame(1, '[2,"ok",0]'), max_size=1024, chunk=500)
    e = await raises(ws.recv_msg(), WsTooBig)
    assert e.size == len(big) and e.limit == 1024
    assert e.head.startswith(b'[2,"big-1","DataTransfer"')
    assert await ws.recv() == '[2,"ok",0]'
    assert not ws.closed


async def test_oversize_fragmented_message_with_ping_is_dropped():
    parts = ['[2,"f-9","X",{"d":"', "y" * 700, "y" * 700, '"}]']
    data = frame(1, parts[0], fin=False) + frame(0, parts[1], fin=False) + frame(9, "pp")
    data += frame(0, parts[2], fin=False) + frame(0, parts[3]) + frame(1, "after")
    ws, s = sock(data, max_size=1024)
    e = await raises(ws.recv_msg(), WsTooBig)
    assert e.size == sum(len(p) for p in parts)
    assert e.head.startswith(b'[2,"f-9"')
    assert client_frames(s.out) == [(0x80, 10, b"pp")]
    assert await ws.recv() == "after"


async def test_endless_message_fails_the_connection():
    ws, s = sock(frame(1, "", fin=False) + struct.pack("!BBQ", 0x00, 127, 2 << 20), max_size=1024)
    e = await raises(ws.recv(), WsError)
    assert not isinstance(e, WsTooBig) and "over" in str(e)
    assert client_frames(s.out) == [(0x80, 8, struct.pack("!H", 1009))]


async def test_sent_frames_are_masked_with_fresh_keys():
    ws, s = sock(b"")
    await ws.send("é" * 10)
    await ws.send("x" * 200)
    await ws.send("y" * 5000)  # over the preallocated send buffer
    await ws.ping(b"\x00\x01")
    fr = client_frames(s.out)
    assert fr == [(0x80, 1, ("é" * 10).encode()), (0x80, 1, b"x" * 200), (0x80, 1, b"y" * 5000),
                  (0x80, 9, b"\x00\x01")]
    out = bytes(s.out)
    k1 = out[2:6]  # the first frame's key (7-bit length)
    k2 = out[6 + 20 + 4 : 6 + 20 + 8]  # the second's (16-bit length)
    assert k1 != k2


class Sink:
    # A writer into a preallocated buffer that samples the live heap at every write.
    def __init__(self, n):
        self.buf = bytearray(n)
        self.n = 0
        self.peak = 0

    def write(self, b):
        self.buf[self.n : self.n + len(b)] = b
        self.n += len(b)
        gc.collect()
        self.peak = max(self.peak, gc.mem_alloc())

    async def drain(self):
        pass


async def test_send_json_writes_a_long_message_without_building_it():
    # An answer longer than the send buffer (a GetConfiguration) goes out as json.dump makes
    # it: one frame, the same JSON; the heap never holds its text or the frame.
    big = [3, "b", {"configurationKey": [{"key": "Key%d" % i, "readonly": i % 2 == 0,
                                          "value": "v\u00e9\"%d" % i} for i in range(200)]}]
    text = json.dumps(big)
    n = len(text.encode())
    ws, _ = sock(b"")
    await ws.send_json([3, "a", {}])  # loads wsjson.py
    sink = ws.w = Sink(n + 64)
    gc.collect()
    before = gc.mem_alloc()
    await ws.send_json(big)
    fr = client_frames(sink.buf[: sink.n])
    assert len(fr) == 1 and fr[0][2] == text.encode(), fr[0][2][:80]
    assert n > 8000 and sink.peak - before < n // 8, (sink.peak - before, n)


class Entries:
    # A payload that writes itself (wsjson.dump: GetConfiguration's), one entry at a time.
    def __init__(self, n):
        self.n = n

    def json_to(self, out):
        out.write(b'{"configurationKey": [')
        for i in range(self.n):
            if i:
                out.write(b", ")
            json.dump({"key": "Key%d" % i, "value": "v\u00e9%d" % i}, out)
        out.write(b"]}")


async def test_send_json_lets_a_payload_write_itself_entry_by_entry():
    # Long (pieces through the send buffer) or short (one text), the frame is the JSON of the
    # same entries built whole; a long one never has them all in the heap at once.
    for n in (200, 2):
        whole = [3, "c", {"configurationKey": [{"key": "Key%d" % i, "value": "v\u00e9%d" % i}
                                               for i in range(n)]}]
        text = json.dumps(whole).encode()
        whole = None
        ws, _ = sock(b"")
        sink = ws.w = Sink(len(text) + 64)
        gc.collect()
        before = gc.mem_alloc()
        await ws.send_json([3, "c", Entries(n)])
        fr = client_frames(sink.buf[: sink.n])
        assert len(fr) == 1 and fr[0][2] == text, (n, fr[0][2][:80])
        if n > 100:
            assert sink.peak - before < len(text) // 8, (sink.peak - before, len(text))


async def test_abort_closes_the_socket_and_keeps_buffers_for_the_next():
    ws, s = sock(b"")
    rx, tx = ws._rx, ws._tx
    ws.abort()
    assert s.closed and ws.closed
    assert wsmod.spare_rx is rx and wsmod._spare_tx is tx
    ws2, _ = sock(b"")  # takes them again
    assert ws2._rx is rx and ws2._tx is tx and wsmod.spare_rx is None
    ws3, _ = sock(b"")  # a second live connection gets its own
    assert ws3._rx is not rx
    ws2.abort()
    ws.abort()  # twice is harmless
    await raises(ws.send("x"), WsClosed)
    await raises(ws.ping(), WsClosed)
    # The aborted object lets its stream go (a finished task may keep it a while: then only the
    # shell stays, not the socket) and a read on it says it is closed.
    assert ws.r is None and ws.w is None
    await raises(ws.recv(), WsClosed)


async def test_receive_buffer_grows_for_long_messages_only():
    ws, _ = sock(frame(1, "s" * 100) + frame(1, "L" * 5000) + frame(1, "t" * 10), max_size=8192,
                 chunk=1000)
    assert len(ws._rx) == wsmod.RX_SIZE
    assert await ws.recv() == "s" * 100
    assert len(ws._rx) == wsmod.RX_SIZE
    assert await ws.recv() == "L" * 5000
    assert wsmod.RX_SIZE < len(ws._rx) <= 8192
    assert await ws.recv() == "t" * 10
    ws2, _ = sock(frame(1, "a", fin=False) + frame(0, "b" * 3000) , max_size=4000, chunk=999)
    assert await ws2.recv() == "a" + "b" * 3000  # grown mid-message, the start kept


# -- messages over the RAM limit: spooled to flash --------------------------------------------

def spool_sock(data, max_size=1024, spool_max=8192, chunk=333, spool=None):
    s = Stream(data, chunk)
    sp = spool or Store("flash").spool("rx")
    return WebSocket(s, s, max_size, sp, spool_max), s, sp


async def test_a_message_over_the_ram_limit_is_spooled_to_flash():
    big = '[2,"big-1","SendLocalList",{"x":"' + "z" * 5000 + '"}]'
    small = '[2,"ok",0]'
    ws, _, sp = spool_sock(frame(1, small) + frame(1, big) + frame(1, small))
    assert await ws.recv() == small
    m = await ws.recv_msg()
    assert isinstance(m, Spooled) and len(m) == m.size == len(big) and m.limit == 1024
    assert m.head == big[:128].encode()
    assert read(sp.path) == big.encode()
    with m.open() as f:
        assert f.read(12) == b'[2,"big-1","'
    assert len(ws._rx) == wsmod.RX_SIZE, "the receive buffer must not grow for it"
    assert m.scratch is ws._rx  # lent to the reader of the file
    m.remove()
    assert not exists(sp.path)
    assert await ws.recv() == small
    assert not ws.closed


async def test_a_fragmented_message_starts_in_ram_and_moves_to_flash():
    parts = ['[2,"f-1","SendLocalList",{"d":"', "a" * 600, "b" * 300, "c" * 3000, '"}]']
    data = (frame(1, parts[0], fin=False) + frame(0, parts[1], fin=False) + frame(9, "pp")
            + frame(0, parts[2], fin=False) + frame(0, parts[3], fin=False) + frame(0, parts[4])
            + frame(1, "after"))
    for chunk in (7, 100, 4096):
        ws, s, sp = spool_sock(data, chunk=chunk)
        m = await ws.recv_msg()
        assert isinstance(m, Spooled) and m.size == sum(len(p) for p in parts)
        assert read(sp.path) == "".join(parts).encode()
        assert m.head == "".join(parts).encode()[:128]
        assert client_frames(s.out) == [(0x80, 10, b"pp")]
        assert await ws.recv() == "after"


async def test_over_the_flash_limit_the_message_is_dropped_and_its_file_removed():
    big = '[2,"huge","SendLocalList",{"x":"' + "z" * 9000 + '"}]'
    ws, _, sp = spool_sock(frame(1, big) + frame(1, "next"), spool_max=8192)
    e = await raises(ws.recv_msg(), WsTooBig)
    assert e.size == len(big) and e.limit == 8192 and e.head == big[:128].encode()
    assert not exists(sp.path)
    assert await ws.recv() == "next"
    # fragmented: spooling starts, then the message outgrows the flash limit
    parts = ['[2,"g","SendLocalList",{"x":"', "y" * 5000, "y" * 5000, '"}]']
    data = (frame(1, parts[0], fin=False) + frame(0, parts[1], fin=False)
            + frame(0, parts[2], fin=False) + frame(0, parts[3]) + frame(1, "next"))
    ws, _, sp = spool_sock(data, spool_max=8192)
    e = await raises(ws.recv_msg(), WsTooBig)
    assert e.size == sum(len(p) for p in parts) and e.head == "".join(parts).encode()[:128]
    assert not exists(sp.path)
    assert await ws.recv() == "next"


async def test_a_connection_lost_mid_message_leaves_no_spool_file():
    big = '[2,"cut","SendLocalList",{"x":"' + "z" * 5000 + '"}]'
    ws, _, sp = spool_sock(frame(1, big)[:3000])
    await raises(ws.recv_msg(), WsClosed)
    assert not exists(sp.path)


class FailingFile:
    # A file on a flash that fills up after `room` bytes.
    def __init__(self, f, room):
        self.f = f
        self.room = room

    def write(self, b):
        if len(b) > self.room:
            raise OSError(28)  # ENOSPC
        self.room -= len(b)
        return self.f.write(b)

    def close(self):
        self.f.close()


class FailingSpool(Spool):
    def __init__(self, path, room):
        super().__init__(path)
        self.room = room

    def create(self):
        if self.room < 0:
            raise OSError(5)
        return FailingFile(open(self.path, "wb"), self.room)


async def test_a_flash_failure_while_spooling_drops_the_message():
    big = '[2,"full","SendLocalList",{"x":"' + "z" * 5000 + '"}]'
    for room in (-1, 0, 100, 2000):
        sp = FailingSpool("flash/rx.spool", room)
        ws, _, _ = spool_sock(frame(1, big) + frame(1, "next"), spool=sp)
        e = await raises(ws.recv_msg(), WsTooBig)
        assert e.size == len(big) and e.limit == 1024, room  # what fits in RAM
        assert e.head == big[:128].encode(), room
        assert not exists(sp.path)
        assert await ws.recv() == "next"


class NoFlash(Spool):
    # A spool that must never be written.
    def create(self):
        raise AssertionError("a message that is not wanted was spooled")


async def test_only_messages_the_receiver_can_read_from_flash_are_spooled():
    # spool_if sees the head (always complete when the decision is made, even when the message
    # starts with a tiny fragment) and decides; the others never touch the flash.
    heads = []

    def wanted(head):
        heads.append(bytes(head))
        return b'"SendLocalList"' in heads[-1]

    dt = '[2,"dt-1","DataTransfer",{"vendorId":"x","data":"' + "z" * 5000 + '"}]'
    sll = '[2,"s-1","SendLocalList",{"listVersion":1,"pad":"' + "z" * 5000 + '"}]'
    data = (frame(1, dt[:3], fin=False) + frame(0, dt[3:]) + frame(1, sll[:10], fin=False)
            + frame(0, sll[10:]) + frame(1, "next"))
    s = Stream(data, 333)
    ws = WebSocket(s, s, 1024, NoFlash("flash/rx.spool"), 8192, wanted)
    e = await raises(ws.recv_msg(), WsTooBig)
    assert e.size == len(dt) and e.limit == 1024 and e.head == dt[:128].encode()
    assert heads == [dt[:128].encode()]
    ws.spool = Store("flash").spool("rx")
    m = await ws.recv_msg()
    assert isinstance(m, Spooled) and read(m.spool.path) == sll.encode()
    assert heads[1] == sll[:128].encode()
    assert await ws.recv() == "next"


def test_a_spool_file_left_by_a_reboot_is_removed():
    Store("flash")
    write("flash/rx.spool", b'[2,"old","SendLocalList",{')
    Store("flash").spool("rx")
    assert not exists("flash/rx.spool")


def test_mask_is_an_involution_at_every_length():
    for n in (0, 1, 3, 4, 5, 127, 1000):
        b = bytearray(bytes(range(256)) * 4)[:n]
        orig = bytes(b)
        wsmod.apply_mask(b, b"\xa1\xb2\xc3\xd4")
        if n:
            assert bytes(b) != orig
            assert b[0] == orig[0] ^ 0xA1
        wsmod.apply_mask(b, b"\xa1\xb2\xc3\xd4")
        assert bytes(b) == orig


def test_percent_encoding_of_the_charge_point_id():
    q = wsopen.quote
    assert q("CP-01_a.b~c") == "CP-01_a.b~c"
    assert q("a b") == "a%20b"
    assert q("a/b") == "a%2Fb"
    assert q("100%") == "100%25"
    assert q("a?b#c") == "a%3Fb%23c"
    assert q("é") == "%C3%A9"
    assert q("x:y@z") == "x%3Ay%40z"
    assert q("") == ""


def test_parse_url():
    p = wsopen.parse_url
    assert p("ws://h/ocpp") == (False, "h", 80, "/ocpp")
    assert p("wss://h:8443/a/b") == (True, "h", 8443, "/a/b")
    assert p("wss://[::1]:9/x") == (True, "::1", 9, "/x")
    assert p("ws://h") == (False, "h", 80, "/")
    assert p("wss://h/ocpp?token=x") == (True, "h", 443, "/ocpp?token=x")
    assert p("ws://h?t=1") == (False, "h", 80, "/?t=1")
    try:
        p("ws://h/ocpp#frag")
        raise AssertionError("a fragment accepted")
    except ValueError as e:
        assert "fragment" in str(e)
    for bad in ("http://h/", "ws://", "ws://u:p@h/", "ws://h:0/", "ws://h:99999/", "ws://h:x/"):
        try:
            p(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


class HsStream(Stream):
    # A server that answers the handshake with `reply` (computing the accept key if asked).
    def __init__(self, reply_fn):
        super().__init__(b"")
        self.reply_fn = reply_fn

    def write(self, b):
        super().write(b)
        req = bytes(self.out)
        if b"\r\n\r\n" in req and not self.data:
            self.data = self.reply_fn(req)

    async def readline(self):
        i = self.data.find(b"\n", self.pos)
        end = len(self.data) if i < 0 else i + 1
        line = self.data[self.pos : end]
        self.pos = end
        return line


def _accept(req):
    import binascii
    import hashlib

    key = [ln for ln in req.split(b"\r\n") if ln.lower().startswith(b"sec-websocket-key:")]
    k = key[0].split(b":", 1)[1].strip()
    return binascii.b2a_base64(hashlib.sha1(k + wsopen._GUID).digest())[:-1]


async def _handshake(reply_fn, **kw):
    s = HsStream(reply_fn)
    real = tcp.connect

    async def fake_open(host, port, ssl=None, server_hostname=None):
        s.target = (host, port, ssl, server_hostname)
        return s, s

    tcp.connect = fake_open
    try:
        ws = await wsopen.connect(kw.pop("url", "ws://csms.example:9000/ocpp"), "CP 1/é", **kw)
    finally:
        tcp.connect = real
    return ws, s


def _ok(proto=b"ocpp1.6"):
    def fn(req):
        return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + _accept(req) + b"\r\nSec-WebSocket-Protocol: " + proto
                + b"\r\n\r\n")

    return fn


async def test_handshake_request_and_checks():
    ws, s = await _handshake(_ok(), auth="Basic Q1A6a2V5")
    req = bytes(s.out).split(b"\r\n")
    assert req[0] == b"GET /ocpp/CP%201%2F%C3%A9 HTTP/1.1"
    assert b"Host: csms.example:9000" in req
    assert b"Sec-WebSocket-Protocol: ocpp1.6" in req
    assert b"Authorization: Basic Q1A6a2V5" in req
    assert s.target == ("csms.example", 9000, None, "csms.example")
    ws.abort()


async def test_handshake_routes_and_passes_tls_host():
    ctx = object()
    ws, s = await _handshake(_ok(), url="wss://csms.example/ocpp/", ssl_ctx=ctx,
                             route=lambda h, p: ("127.0.0.1", 7000))
    assert s.target == ("127.0.0.1", 7000, ctx, "csms.example")
    assert b"Host: csms.example:443" in bytes(s.out)
    assert b"GET /ocpp/CP%201%2F%C3%A9 " in bytes(s.out)
    ws.abort()


async def test_the_id_ends_the_path_and_the_query_follows_it():
    # wss://h/ocpp?token=x once became "/ocpp?token=x/CP1": the query swallowed the id.
    for url, line in (("ws://csms.example/ocpp?token=x", b"GET /ocpp/CP%201%2F%C3%A9?token=x "),
                      ("ws://csms.example/ocpp/?a=1&b=2", b"GET /ocpp/CP%201%2F%C3%A9?a=1&b=2 "),
                      ("ws://csms.example?t", b"GET /CP%201%2F%C3%A9?t ")):
        ws, s = await _handshake(_ok(), url=url)
        assert bytes(s.out).startswith(line), (url, bytes(s.out)[:60])
        ws.abort()
    try:
        await _handshake(_ok(), url="ws://csms.example/ocpp#x")
        raise AssertionError("a fragment accepted")
    except ValueError as e:
        assert "fragment" in str(e)


async def test_the_name_is_resolved_by_the_hook_and_tls_keeps_it():
    # The board's resolver (net/dns.py) gives the address; tcp.connect gets the IP (no
    # getaddrinfo of a name, which blocks), TLS and Host keep the URL's host.
    asked = []

    async def resolve(host):
        asked.append(host)
        return "10.1.2.3"

    ctx = object()
    ws, s = await _handshake(_ok(), url="wss://csms.example/ocpp", ssl_ctx=ctx, resolve=resolve)
    assert asked == ["csms.example"]
    assert s.target == ("10.1.2.3", 443, ctx, "csms.example")
    assert b"Host: csms.example:443" in bytes(s.out)
    ws.abort()
    ws, s = await _handshake(_ok(), resolve=resolve, route=lambda h, p: (h, p + 1))
    assert s.target == ("10.1.2.3", 9001, None, "csms.example"), "routed after it is resolved"
    ws.abort()


class Dribble(HsStream):
    # A server that sends its answer one line every `gap_ms`: each line in time for a per-line
    # limit, the whole far past it.
    gap_ms = 40

    async def readinto(self, buf):
        if self.pos == 0 or self.data[self.pos - 1] == 10:  # a line begins
            await asyncio.sleep_ms(self.gap_ms)
        return await super().readinto(buf)


async def test_one_deadline_for_the_whole_handshake_answer():
    def slow(req):
        return (b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Pad: 1\r\n" * 20
                + _ok()(req).split(b"\r\n", 1)[1])

    s = Dribble(slow)
    real = tcp.connect

    async def fake_open(host, port, ssl=None, server_hostname=None):
        return s, s

    tcp.connect = fake_open
    t0 = time.ticks_ms()
    try:
        await wsopen.connect("ws://csms.example/ocpp", "CP1", timeout_ms=300)
        raise AssertionError("a dribbled answer of ~1 s passed a 300 ms limit")
    except asyncio.TimeoutError:
        pass
    finally:
        tcp.connect = real
    assert time.ticks_diff(time.ticks_ms(), t0) < 600
    assert s.closed


async def test_a_proxys_long_and_many_headers_do_not_stop_the_handshake():
    # A CSMS behind a load balancer: its cookie (~1.5 KB) and 60 more headers once failed the
    # handshake ("header line too long", "too many headers"), and the charger never connected.
    def proxied(req):
        head, rest = _ok()(req).split(b"\r\n", 1)
        return (head + b"\r\nSet-Cookie: LB=" + b"a" * 1500 + b"; Path=/; Secure; HttpOnly\r\n"
                + b"".join(b"X-Proxy-%d: on\r\n" % i for i in range(60)) + rest)

    ws, s = await _handshake(proxied)
    ws.abort()
    try:
        await _handshake(lambda req: b"HTTP/1.1 101 OK\r\nX-Huge: " + b"b" * 5000 + b"\r\n\r\n")
        raise AssertionError("a 5 KB header line accepted")
    except WsError as e:
        assert "too long" in str(e)


async def test_handshake_failures():
    def status(code):
        return lambda req: b"HTTP/1.1 " + code + b" Nope\r\n\r\n"

    cases = [
        (_ok(b"ocpp2.0.1"), "did not agree"),
        (_ok(b""), "did not agree"),
        (status(b"401"), "401"),
        (status(b"404"), "HTTP 404"),
        (lambda req: b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         b"Sec-WebSocket-Accept: AAAA\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n", "Accept"),
        (lambda req: b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: " + _accept(req)
         + b"\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n", "upgrade"),
        (lambda req: b"", "closed during the handshake"),
    ]
    for fn, words in cases:
        try:
            await _handshake(fn)
        except WsError as e:
            assert words in str(e), (words, str(e))
            continue
        raise AssertionError(words)
    try:
        await _handshake(_ok(), url="wss://h/")
    except WsError as e:
        assert "TLS context" in str(e)


async def test_an_extension_the_charger_did_not_ask_for_fails_the_handshake():
    # RFC 6455 4.1: a Sec-WebSocket-Extensions naming an extension the client did not ask for
    # (this one asks for none) MUST fail the connection: its frames (permessage-deflate's RSV1,
    # compressed text) could not be read.
    def ext(value):
        def fn(req):
            return _ok()(req)[:-2] + b"Sec-WebSocket-Extensions: " + value + b"\r\n\r\n"

        return fn

    for value in (b"permessage-deflate", b"x-webkit-deflate-frame; no_context_takeover"):
        try:
            ws, _ = await _handshake(ext(value))
            ws.abort()
        except WsError as e:
            assert "extension" in str(e), str(e)
            continue
        raise AssertionError(value)
    ws, _ = await _handshake(ext(b""))  # an empty one names none
    ws.abort()


class ResetAtWrite(Stream):
    # lwIP's answer to a connect refused by the host (a RST to the SYN): the non-blocking
    # connect "succeeds" and the first write raises ECONNRESET (micropython issue 8326, the
    # ESP32); or an mbedTLS alert / the ESP32 getaddrinfo's code raised from inside the handshake.
    def __init__(self, err):
        super().__init__(b"")
        self.err = err

    def write(self, b):
        raise self.err


async def _open_failing(err, url="ws://csms.example/ocpp", ssl_ctx=None):
    s = ResetAtWrite(err)
    real = tcp.connect

    async def fake_open(host, port, ssl=None, server_hostname=None):
        return s, s

    tcp.connect = fake_open
    try:
        await wsopen.connect(url, "CP1", ssl_ctx=ssl_ctx)
    except Exception as e:
        assert s.closed, "the socket is closed on failure"
        return e
    finally:
        tcp.connect = real
    raise AssertionError("connected through a failing stream")


async def test_a_connect_refused_as_lwip_reports_it_is_backed_off_as_a_refusal():
    from ocpp_client import client

    e = await _open_failing(OSError(104))
    assert isinstance(e, OSError) and e.errno == 111, repr(e)
    assert not client.dead(e), "a host refusing the connection is backed off, not hammered"
    for url, ctx in (("ws://csms.example/ocpp", None), ("wss://csms.example/ocpp", object())):
        e = await _open_failing(OSError(104), url, ctx)
        assert e.errno == 111, (url, repr(e))
    # Any other error of the request's write is what it was: a dead path stays dead.
    e = await _open_failing(OSError(113))
    assert e.errno == 113 and client.dead(e)


async def test_only_mbedtls_codes_are_taken_for_a_tls_failure():
    ctx = object()
    e = await _open_failing(OSError(-0x7780, "SSL - A fatal alert message was received"),
                            "wss://csms.example/ocpp", ctx)
    assert isinstance(e, wsopen.TlsError) and "fatal alert" in str(e), repr(e)
    e = await _open_failing(OSError(-202), "wss://csms.example/ocpp", ctx)  # lwIP: no name
    assert not isinstance(e, wsopen.TlsError) and e.args[0] == -202, repr(e)
