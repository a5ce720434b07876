# On-target tests for what issue 11 asks of the RPC layer: every text frame sent is valid UTF-8
# and valid JSON whatever came in (MicroPython's json turns an escaped surrogate pair into bytes
# that are not UTF-8: mended on the way in), every CALL gets exactly one answer (InternalError at
# worst, also when frame handling itself runs out of memory), absurd numbers (inf, nan, 1e308,
# negatives) get a CALLERROR, a call's timeout counts from when it was asked (queueing behind an
# earlier call included), and a given message id is the one sent.
import asyncio
import json
import struct
import time

from mphelp import Logs
from ocpp_client import rpc as rpcmod
from ocpp_client import mend
from ocpp_client.rpc import Rpc, CallTimeout
from ocpp_client.ws import WebSocket, WsClosed, WsError
from test_ws import Stream, client_frames, frame


class RawWs:
    # Like test_rpc.FakeWs, but keeps the frames sent as the exact text.
    def __init__(self, *frames):
        self.q = list(frames)
        self.ev = asyncio.Event()
        self.sent = []
        self.sent_ev = asyncio.Event()
        self.eof = False

    def push(self, x):
        self.q.append(x)
        self.ev.set()

    async def recv_msg(self):
        while not self.q:
            if self.eof:
                raise WsClosed("eof")
            self.ev.clear()
            await self.ev.wait()
        x = self.q.pop(0)
        return memoryview(bytearray(x.encode() if isinstance(x, str) else x))

    async def send(self, text):
        self.sent.append(text)
        self.sent_ev.set()


def utf8_ok(text):
    # Valid UTF-8 as a strict decoder sees it: no encoded surrogates (ED A0..BF), no bad bytes.
    b = text.encode()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        k = 1 if 0xC2 <= c <= 0xDF else 2 if 0xE0 <= c <= 0xEF else 3 if 0xF0 <= c <= 0xF4 else 0
        if not k or i + k >= n + (0 if i + k < n else 1) and i + k > n:
            return False
        for j in range(1, k + 1):
            if not 0x80 <= b[i + j] <= 0xBF:
                return False
        if c == 0xED and b[i + 1] >= 0xA0:
            return False
        i += k + 1
    return True


async def serve_all(r, *frames):
    ws = RawWs(*frames)
    ws.eof = True
    await r.serve(ws)
    return ws.sent


async def echo_keys(p):
    return {"configurationKey": [], "unknownKey": p.get("key", [])}


async def test_escaped_surrogates_never_reach_the_wire_as_invalid_utf8():
    r = Rpc({"GetConfiguration": echo_keys})
    sent = await serve_all(
        r,
        '[2, "s1", "GetConfiguration", {"key": ["\\ud83d\\ude00", "a\\udc00b", "\\uD800", "ok"]}]',
        '[2, "s\\ud83d", "GetConfiguration", {}]',
    )
    assert len(sent) == 2, sent
    for t in sent:
        assert utf8_ok(t), t.encode()
        json.loads(t)
    m = json.loads(sent[0])
    assert m[2]["unknownKey"] == ["\U0001F600", "a\uFFFDb", "\uFFFD", "ok"], m


def test_unsurrogate_leaves_clean_strings_alone():
    v = {"a": ["x", "é", 1, None, {"b": "\U0001F600"}]}
    assert mend.unsurrogate(v) == {"a": ["x", "é", 1, None, {"b": "\U0001F600"}]}
    assert not rpcmod._suspect(b'[2,"a","B",{"c":"\\u0041 \xc3\xa9"}]')
    assert rpcmod._suspect(b'[2,"a","B",{"c":"\\uDE00"}]')
    for ok in (b"a\xc3\xa9", b"\xf0\x9f\x98\x80", b"\xe2\x82\xac", b"\xf4\x8f\xbf\xbf"):
        assert mend.utf8_ok(ok), ok
    for bad in (b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                b"\xf8\x88\x80\x80", b"\xe2\x82", b"\xc3"):
        assert not mend.utf8_ok(bad), bad


async def test_raw_bytes_that_are_not_utf8_fail_the_connection_with_1007():
    # RFC 6455 8.1: a text message that is not UTF-8 fails the WebSocket connection (close code
    # 1007), whether MicroPython's json refuses it (a stray byte, a cut sequence) or takes it
    # (overlong forms, encoded surrogates, past U+10FFFF); it gets no answer, later frames none
    # either, and the session reconnects.
    async def dt(p):
        return {"status": "Accepted", "data": p.get("data", "")}

    for bad in (b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80", b"\xff",
                b"\xc3(", b"\x80", b"\xe2\x82"):
        call = b'[2, "u1", "DataTransfer", {"vendorId": "v", "data": "' + bad + b'"}]'
        ok = b'[2, "u2", "DataTransfer", {"vendorId": "v"}]'
        s = Stream(frame(1, call) + frame(1, ok), chunk=4096)
        why = await Rpc({"DataTransfer": dt}).serve(WebSocket(s, s, 1024))
        assert isinstance(why, WsError) and "UTF-8" in str(why), (bad, why)
        assert client_frames(s.out) == [(0x80, 8, struct.pack("!H", 1007))], (bad, s.out)
    # Split over fragments, the same; text that is UTF-8 is answered as ever.
    s = Stream(frame(1, b'[2, "u3", "DataTransfer", {"vendorId": "v", "data": "\xc3', fin=False)
               + frame(0, b'\xa9"}]') + frame(1, b'[2, "u4", "DataTransfer", {"vendorId": "\xc3"}]'))
    why = await Rpc({"DataTransfer": dt}).serve(WebSocket(s, s, 1024))
    fr = client_frames(s.out)
    assert [json.loads(b) for _, op, b in fr if op == 1] == [
        [3, "u3", {"status": "Accepted", "data": "\u00e9"}]], fr
    assert fr[-1] == (0x80, 8, struct.pack("!H", 1007)) and "UTF-8" in str(why), (fr, why)


async def test_absurd_numbers_get_a_callerror_never_a_result():
    async def set_profile(p):
        return {"status": "Accepted"}

    def frame(mid, limit):
        return ('[2, "%s", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": '
                '{"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": '
                '"TxDefaultProfile", "chargingProfileKind": "Absolute", "chargingSchedule": '
                '{"chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z", '
                '"chargingSchedulePeriod": [{"startPeriod": 0, "limit": %s}]}}}]' % (mid, limit))

    r = Rpc({"SetChargingProfile": set_profile})
    cases = (("inf", "1e400"), ("big", "1e308"), ("neg", "-1e-300"), ("minus", "-6"),
             ("ninf", "-1e999"), ("ok", "16.1"))
    sent = await serve_all(r, *[frame(m, v) for m, v in cases])
    got = {json.loads(t)[1]: json.loads(t) for t in sent}
    assert len(sent) == len(cases), sent
    for mid, _ in cases[:-1]:
        assert got[mid][0] == 4 and got[mid][2] == "PropertyConstraintViolation", got[mid]
    assert got["ok"][0] == 3


async def test_every_call_gets_one_answer_when_handling_runs_out_of_memory():
    r = Rpc({"ClearCache": echo_keys})
    orig = rpcmod.Rpc._incoming

    async def no_memory(self, msg, raw):
        raise MemoryError("memory allocation failed")

    rpcmod.Rpc._incoming = no_memory
    try:
        with Logs() as logs:
            sent = await serve_all(r, '[2, "m1", "ClearCache", {}]', '[2, "m2", "ClearCache", {}]')
    finally:
        rpcmod.Rpc._incoming = orig
    assert [json.loads(t)[:3] for t in sent] == [[4, "m1", "InternalError"],
                                                 [4, "m2", "InternalError"]]
    assert logs.warned("frame handling failed", "m1", "MemoryError")


async def test_an_answer_that_cannot_be_sent_for_memory_is_still_one_internal_error():
    async def ok(p):
        return {"status": "Accepted"}

    class TightWs(RawWs):
        fails = 1

        async def send(self, text):
            if self.fails:
                self.fails -= 1
                raise MemoryError("memory allocation failed")
            await RawWs.send(self, text)

    r = Rpc({"ClearCache": ok})
    ws = TightWs('[2, "h1", "ClearCache", {}]', '[2, "h2", "ClearCache", {}]')
    ws.eof = True
    await r.serve(ws)
    assert [json.loads(t)[:3] for t in ws.sent] == [[4, "h1", "InternalError"],
                                                    [3, "h2", {"status": "Accepted"}]]


async def test_timeout_counts_from_the_ask_not_from_the_link():
    r = Rpc({})
    r.timeout_ms = 30000
    ws = RawWs()
    task = asyncio.create_task(r.serve(ws))
    await asyncio.sleep_ms(0)
    first = asyncio.create_task(r.call("MeterValues", {}))  # on a dead link: never answered
    await asyncio.sleep_ms(10)
    t0 = time.ticks_ms()
    try:
        await r.call("Authorize", {"idTag": "T"}, 300)
        raise AssertionError("no timeout")
    except CallTimeout:
        pass
    waited = time.ticks_diff(time.ticks_ms(), t0)
    assert 250 <= waited <= 600, waited
    assert len(ws.sent) == 1, "the queued call must not have been sent"
    first.cancel()
    ws.eof = True
    ws.ev.set()
    await task


async def test_the_given_message_id_is_sent():
    r = Rpc({})
    ws = RawWs()
    task = asyncio.create_task(r.serve(ws))
    await asyncio.sleep_ms(0)
    c = asyncio.create_task(r.call("StartTransaction", {"a": 1}, mid="abcd-q7"))
    while not ws.sent:
        await asyncio.sleep_ms(1)
    assert ws.sent[0] == json.dumps([2, "abcd-q7", "StartTransaction", {"a": 1}])
    ws.push('[3, "abcd-q7", {"ok": 1}]')
    assert await c == {"ok": 1}
    ws.eof = True
    ws.ev.set()
    await task


async def test_while_rejected_no_call_is_answered_even_out_of_memory():
    # OCPP 1.6 4.2: while the registration is Rejected the charge point SHALL NOT respond to
    # any Central System initiated message: not even the InternalError of a frame that found no
    # memory to parse (_no_memory) or whose handling failed (_last_resort).
    class NoJson:
        @staticmethod
        def loads(raw):
            raise MemoryError("memory allocation failed")

    def no_rare(name, *args):
        raise MemoryError("memory allocation failed")

    r = Rpc({"ClearCache": echo_keys})
    r.deaf = True
    orig_json, orig_rare = rpcmod.json, rpcmod._rare
    try:
        with Logs():
            rpcmod.json = NoJson
            sent = await serve_all(r, '[2, "m1", "ClearCache", {}]')
            rpcmod.json = orig_json
            rpcmod._rare = no_rare
            sent += await serve_all(r, '[2, "g1", "ClearCache", {"a": ')
    finally:
        rpcmod.json, rpcmod._rare = orig_json, orig_rare
    assert sent == [], sent
    # Accepted again: the same frames are answered.
    r.deaf = False
    try:
        with Logs():
            rpcmod._rare = no_rare
            sent = await serve_all(r, '[2, "g2", "ClearCache", {"a": ')
    finally:
        rpcmod._rare = orig_rare
    assert [json.loads(t)[:3] for t in sent] == [[4, "g2", "InternalError"]]
