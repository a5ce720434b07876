# On-target tests for ocpp_client.rpc: the spec's reaction (and a log line) for every kind of bad
# frame, validation before handlers, unique ids, the call timeout, one outstanding CALL while the
# CSMS's calls are still answered, answers with unknown ids, oversize messages.
import asyncio
import json
import time

from mphelp import Logs, exists, write
from ocpp_client.rpc import Rpc, Reject, CallError, CallTimeout, Disconnected, sniff, sniff_call
from ocpp_client.ws import Spooled, WsClosed, WsTooBig
from store import Store


class FakeWs:
    # Frames pushed by the test come out of recv_msg (as memoryviews, like the real one); what
    # the RPC layer sends is kept, parsed.
    def __init__(self, *frames):
        self.q = list(frames)
        self.ev = asyncio.Event()
        self.sent = []
        self.sent_ev = asyncio.Event()
        self.eof = False
        self.fail_send = None

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
        if isinstance(x, Exception):
            raise x
        if isinstance(x, Spooled):
            return x
        if isinstance(x, str):
            x = x.encode()
        return memoryview(bytearray(x))

    async def send(self, text):
        if self.fail_send:
            raise self.fail_send
        self.sent.append(json.loads(text))
        self.sent_ev.set()

    def end(self):
        self.eof = True
        self.ev.set()


async def serve_all(rpc, *frames):
    # Feed frames, let the RPC layer answer them all, return (what it sent, why serve ended).
    ws = FakeWs(*frames)
    ws.eof = True
    why = await rpc.serve(ws)
    return ws.sent, why


def errors(sent):
    return [(m[1], m[2]) for m in sent if m[0] == 4]


async def echo(p):
    return {"echo": p}


async def test_bad_frames_get_the_spec_codes_and_serve_goes_on():
    rpc = Rpc({"Reset": echo})
    with Logs() as logs:
        sent, why = await serve_all(
            rpc,
            "this is not json",
            '[2, "trunc-1", "Reset", {"type": ',  # truncated mid-frame: the id is still readable
            '{"a": 1}',
            "[]",
            '[2, 17, "Reset", {"type": "Soft"}]',
            '[2, "' + "x" * 37 + '", "Reset", {"type": "Soft"}]',
            '[2, "short", "Reset"]',
            '[2, "list", "Reset", ["Soft"]]',
            '[2, "five", "Reset", {"type": "Soft"}, 1]',
            '[2, "num", 5, {}]',
            '[2, "ok", "Reset", {"type": "Soft"}]',
        )
    assert isinstance(why, WsClosed)
    assert errors(sent) == [
        ("-1", "FormationViolation"),
        ("trunc-1", "FormationViolation"),
        ("-1", "FormationViolation"),
        ("-1", "FormationViolation"),
        ("17", "FormationViolation"),  # (a number: under its text, which the CSMS can match)
        ("x" * 37, "FormationViolation"),  # (readable, too long: answered under it)
        ("short", "ProtocolError"),
        ("list", "FormationViolation"),
        ("five", "FormationViolation"),
        ("num", "FormationViolation"),
    ]
    assert sent[-1] == [3, "ok", {"echo": {"type": "Soft"}}]
    assert all(len(m) == 5 and isinstance(m[3], str) and m[4] == {} for m in sent if m[0] == 4)
    assert len(logs.warnings()) == 10, logs.warnings()


async def test_unknown_message_types_are_ignored_with_a_log_line():
    rpc = Rpc({})
    with Logs() as logs:
        sent, _ = await serve_all(rpc, '[7, "x", "Reset", {}]', '["2", "y", "Reset", {}]',
                                  '[2.0, "z", "Reset", {}]', '[true, "t"]', '[5, "a"]')
    assert sent == []
    assert len([w for w in logs.warnings() if "unknown message type" in w]) == 5


async def test_unknown_action_not_implemented_known_not_supported():
    rpc = Rpc({})
    rpc.known_actions = ("VendorKnown",)
    with Logs() as logs:
        sent, _ = await serve_all(
            rpc,
            '[2, "a", "FooBar", {}]',
            '[2, "b", "GetLog", {"logType": "DiagnosticsLog", "requestId": 1, "log": {"remoteLocation": "x"}}]',
            '[2, "c", "Heartbeat", {}]',  # a charge point -> CSMS action sent the wrong way
            '[2, "d", "VendorKnown", {}]',
            '[2, "e", "Reset", {"type": "Soft"}]',  # valid, but this build has no handler
        )
    assert errors(sent) == [("a", "NotImplemented"), ("b", "NotSupported"), ("c", "NotSupported"),
                            ("d", "NotSupported"), ("e", "NotSupported")]
    assert logs.warned("FooBar", "NotImplemented")


async def test_payload_is_validated_before_the_handler():
    seen = []

    async def h(p):
        seen.append(p)
        return {"status": "Accepted"}

    rpc = Rpc({"Reset": h, "ChangeAvailability": h})
    with Logs() as logs:
        sent, _ = await serve_all(
            rpc,
            '[2, "1", "Reset", {}]',
            '[2, "2", "Reset", {"type": 1}]',
            '[2, "3", "Reset", {"type": "Later"}]',
            '[2, "4", "Reset", {"type": "Soft", "why": "x"}]',
            '[2, "5", "ChangeAvailability", {"connectorId": -1, "type": "Operative"}]',
            '[2, "6", "Reset", {"type": "Hard"}]',
        )
    assert errors(sent) == [("1", "OccurenceConstraintViolation"), ("2", "TypeConstraintViolation"),
                            ("3", "PropertyConstraintViolation"), ("4", "FormationViolation"),
                            ("5", "PropertyConstraintViolation")]
    assert sent[-1] == [3, "6", {"status": "Accepted"}]
    assert seen == [{"type": "Hard"}]
    assert logs.warned("Reset", "TypeConstraintViolation", "type: must be a string")


async def test_json_that_only_micropython_reads_is_a_formation_violation_never_run():
    # MicroPython's json.loads takes commas and colons as blanks and any escape: each of these
    # parses there (c1 to c3 as a Hard reset), none is JSON (RFC 8259 2, 4, 5, 7), so
    # none is run: FormationViolation under its id (OCPP-J 4.2.3), and the next call is answered.
    seen = []

    async def h(p):
        seen.append(p)
        return {"status": "Accepted"}

    rpc = Rpc({"Reset": h, "ChangeAvailability": h, "DataTransfer": h})
    with Logs() as logs:
        sent, _ = await serve_all(
            rpc,
            '[2, "c1", "Reset", {"type": "Hard",}]',
            '[2, "c2", "Reset", {"type": "Hard"},]',
            '[2 "c3" "Reset" {"type" "Hard"}]',
            '[2, "c4", "ChangeAvailability", {"connectorId": 1, "type": "Operative", "x":}]',
            '[2, "c5", "DataTransfer", {"vendorId": "v", "data": "\\x41"}]',
            '[2, "c6", "Reset", {"type"::"Hard"}]',
            '[2, "c7", "FooBar", {,}]',
            '[2, "c8", "DataTransfer", {"vendorId": "v", "data": "a\tb"}]',  # a raw tab
            '[\n  2,\n  "ok",\r\n\t"Reset",\n  {"type": "Soft"}\n]',  # blanks: JSON
            '[2, "ok2", "DataTransfer", {"vendorId": "v", "data": "a\\"b\\\\\\u00e9/"}]',
        )
    # (c3's id cannot be read without its comma: "-1", as for any frame whose id cannot be)
    assert errors(sent) == [(m, "FormationViolation")
                            for m in ("c1", "c2", "-1", "c4", "c5", "c6", "c7", "c8")], sent
    assert sent[1][3].startswith("frame is not valid JSON (")
    assert sent[-1] == [3, "ok2", {"status": "Accepted"}]
    assert seen == [{"type": "Soft"}, {"vendorId": "v", "data": 'a"b\\\u00e9/'}]
    assert logs.warned("c1", "not valid JSON")


async def test_a_spooled_list_that_only_micropython_reads_is_never_applied():
    seen = []

    async def h(p):
        seen.append(list(p["localAuthorizationList"]))
        return {"status": "Accepted"}

    text = json.dumps([2, "s-1", "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                                   "localAuthorizationList": entries(40)}])
    bad_item = text.replace('"Accepted"}}, {"idTag": "T0033"', '"Accepted",}}, {"idTag": "T0033"')
    bad_value = text.replace('"updateType": "Full"', '"updateType": "\\Full"')  # read "Full"
    assert bad_item != text and bad_value != text
    rpc = Rpc({"SendLocalList": h})
    sent = []
    for mid, t in (("s-1", bad_item), ("s-2", bad_value.replace("s-1", "s-2"))):
        sent += (await serve_all(rpc, spooled(t)))[0]
    assert errors(sent) == [("s-1", "FormationViolation"), ("s-2", "FormationViolation")], sent
    assert seen == []


async def test_out_of_the_heap_the_checker_is_loaded_for_each_call_and_dropped():
    # Frozen or in a ROMFS image (supervisor.code_in_heap() False) the checker and its rules are
    # not kept between CALLs: each is checked as before, and they are out of sys.modules after.
    import sys

    from ocpp_client import rpc as rpcmod

    saved = rpcmod.validate
    rpcmod.validate = None
    try:
        rpcmod.drop(*rpcmod._CHECKER)
        sent, _ = await serve_all(Rpc({"Reset": _ok_reset}), '[2, "1", "Reset", {"type": 1}]',
                                  '[2, "2", "Reset", {"type": "Soft"}]')
        assert errors(sent) == [("1", "TypeConstraintViolation")]
        assert sent[-1] == [3, "2", {"status": "Accepted"}]
        for m in rpcmod._CHECKER:
            assert m not in sys.modules, m
    finally:
        rpcmod.validate = saved


async def _ok_reset(p):
    return {"status": "Accepted"}


async def test_an_unsupported_action_with_a_bad_payload_names_the_violation():
    sent, _ = await serve_all(Rpc({}), '[2, "u", "UnlockConnector", {"connectorId": "one"}]')
    assert errors(sent) == [("u", "TypeConstraintViolation")]


async def test_handler_failures_never_end_the_session():
    async def boom(p):
        raise RuntimeError("kaput")

    async def rej(p):
        raise Reject("NotSupported", "no such connector")

    async def notdict(p):
        return ["x"]

    rpc = Rpc({"Reset": boom, "UnlockConnector": rej, "ClearCache": notdict})
    with Logs() as logs:
        sent, why = await serve_all(
            rpc,
            '[2, "1", "Reset", {"type": "Soft"}]',
            '[2, "2", "UnlockConnector", {"connectorId": 3}]',
            '[2, "3", "ClearCache", {}]',
        )
    assert errors(sent) == [("1", "InternalError"), ("2", "NotSupported"), ("3", "InternalError")]
    assert sent[1][3] == "no such connector"
    assert isinstance(why, WsClosed)
    assert logs.warned("handler for Reset failed", "kaput")


class _Writes:
    # An answer that writes itself (GetConfiguration's, ocpp_client/configuration.py).
    def json_to(self, out):
        out.write(b'{"configurationKey": [')
        json.dump({"key": "A", "readonly": True, "value": "1"}, out)
        out.write(b"]}")


async def test_an_answer_that_writes_itself_is_sent_as_its_json():
    async def h(p):
        return _Writes()

    sent, _ = await serve_all(Rpc({"GetConfiguration": h}), '[2, "g1", "GetConfiguration", {}]')
    assert sent == [[3, "g1", {"configurationKey": [{"key": "A", "readonly": True,
                                                      "value": "1"}]}]], sent


async def test_a_call_with_a_number_or_an_over_long_id_is_answered_under_that_id():
    # OCPP-J 4.1.3/4.2.3: the id is a string of 36 at most (else FormationViolation), but the
    # answer carries the id the CSMS sent, so it can match it: under "-1" it waited out its own
    # timeout. So too for a frame that does not parse and a message over the size limit.
    rpc = Rpc({"Heartbeat": echo})
    long_id = "L" * 50
    with Logs():
        sent, why = await serve_all(
            rpc,
            '[2, 17, "Heartbeat", {}]',
            '[2,-3.5 , "Heartbeat", {}]',
            '[2, 18, "Heartbeat", {"x": ',  # truncated
            '[2, "%s", "Heartbeat", {"x": ' % long_id,  # truncated, the id over 36
            WsTooBig(40000, 16384, ('[2,"%s","DataTransfer",{"vendorId":"x","data":"zz' % long_id)
                     .encode()),
            WsTooBig(40000, 16384, b'[2, 19, "DataTransfer",{"vendorId":"x","data":"zzzz'),
            '[2, null, "Heartbeat", {}]',
            '[2, "a\\"b' + "y" * 40 + '", "Heartbeat", {"x": ',  # (an escape: not read raw)
        )
    assert errors(sent) == [
        ("17", "FormationViolation"),
        ("-3.5", "FormationViolation"),
        ("18", "FormationViolation"),
        (long_id, "FormationViolation"),
        (long_id, "FormationViolation"),
        ("19", "FormationViolation"),
        ("-1", "FormationViolation"),
        ("-1", "FormationViolation"),
    ], sent
    assert isinstance(why, WsClosed)


async def test_oversize_messages_are_answered_by_the_id_in_their_head():
    rpc = Rpc({})
    with Logs() as logs:
        sent, why = await serve_all(
            rpc,
            WsTooBig(40000, 16384, b'[2,"big-7","DataTransfer",{"vendorId":"x","data":"zzzz'),
            WsTooBig(40000, 16384, b'[3,"ans-1",{"x":"yyyy'),
            WsTooBig(40000, 16384, b"garbage"),
            '[2, "after", "FooBar", {}]',
        )
    assert errors(sent) == [("big-7", "FormationViolation"), ("after", "NotImplemented")]
    assert "40000" in sent[0][3] and "16384" in sent[0][3]
    assert isinstance(why, WsClosed)
    assert logs.warned("40000 bytes over the 16384-byte limit")


async def test_while_rejected_not_even_a_broken_call_is_answered():
    # OCPP 1.6 4.2: "While Rejected, the Charge Point SHALL NOT respond to any Central System
    # initiated message": a frame that does not parse, a CALL with a bad id, one over the limit
    # included. Each is logged.
    rpc = Rpc({"Reset": echo})
    rpc.deaf = True
    with Logs() as logs:
        sent, why = await serve_all(
            rpc,
            "this is not json",
            '[2, "trunc-1", "Reset", {"type": ',
            '[2, 17, "Reset", {"type": "Soft"}]',
            WsTooBig(40000, 16384, b'[2,"big-7","DataTransfer",{"vendorId":"x","data":"zzzz'),
            '[2, "short", "Reset"]',
            '[2, "ok", "Reset", {"type": "Soft"}]',
        )
    assert sent == [] and isinstance(why, WsClosed), sent
    quiet = [w for w in logs.warnings() if "not answered while Rejected" in w]
    assert len(quiet) == 6, logs.warnings()
    rpc.deaf = False
    sent, _ = await serve_all(rpc, '[2, "trunc-2", "Reset", {"type": ')
    assert errors(sent) == [("trunc-2", "FormationViolation")]


async def test_answers_with_unknown_ids_are_logged_and_ignored():
    rpc = Rpc({})
    with Logs() as logs:
        sent, _ = await serve_all(rpc, '[3, "nobody", {}]', '[4, "nobody", "GenericError", "x", {}]',
                                  '[3, 5, {}]', '[3, "garbled", {"a": ')
    assert sent == []
    assert len(logs.warnings()) == 4
    assert logs.warned("unknown id nobody")


def test_ids_are_unique_and_short():
    a, b = Rpc({}), Rpc({})
    ids = [a._next_id() for _ in range(1000)] + [b._next_id() for _ in range(1000)]
    assert len(set(ids)) == 2000
    assert max(len(i) for i in ids) <= 36
    a._n = 999999998
    assert len({a._next_id(), a._next_id(), a._next_id()}) == 3


async def _run_with(rpc, ws):
    task = asyncio.create_task(rpc.serve(ws))
    await asyncio.sleep_ms(0)
    return task


async def _next_sent(ws, n):
    while len(ws.sent) < n:
        ws.sent_ev.clear()
        await asyncio.wait_for_ms(ws.sent_ev.wait(), 2000)
    return ws.sent[n - 1]


async def test_call_gets_its_answer_while_csms_calls_are_answered():
    rpc = Rpc({"ClearCache": lambda p: _ok()})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    call = asyncio.create_task(rpc.call("Heartbeat", {}))
    req = await _next_sent(ws, 1)
    assert req[0] == 2 and req[2] == "Heartbeat"
    ws.push('[2, "csms-1", "ClearCache", {}]')  # the CSMS calls while ours is outstanding
    assert await _next_sent(ws, 2) == [3, "csms-1", {"status": "Accepted"}]
    ws.push('[3, "%s", {"currentTime": "2026-01-01T00:00:00Z"}]' % req[1])
    assert await call == {"currentTime": "2026-01-01T00:00:00Z"}
    ws.end()
    await task


async def _ok():
    return {"status": "Accepted"}


async def test_one_outstanding_call_at_a_time():
    rpc = Rpc({})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    c1 = asyncio.create_task(rpc.call("A1", {}))
    c2 = asyncio.create_task(rpc.call("A2", {}))
    r1 = await _next_sent(ws, 1)
    await asyncio.sleep_ms(20)
    assert len(ws.sent) == 1, "second CALL sent before the first was answered"
    ws.push('[4, "%s", "NotSupported", "no", {}]' % r1[1])
    try:
        await c1
        raise AssertionError("no CallError")
    except CallError as e:
        assert e.code == "NotSupported"
    r2 = await _next_sent(ws, 2)
    assert r2[2] == "A2" and r2[1] != r1[1]
    ws.push('[3, "%s", {}]' % r2[1])
    assert await c2 == {}
    ws.end()
    await task


async def _outcome(c):
    try:
        return await c
    except BaseException as e:  # (CancelledError too)
        return type(e).__name__


async def test_callers_wait_their_turn_and_a_cancelled_one_hands_the_link_on():
    # The calls behind the one in flight go in the order they came, each within its timeout
    # counted from its call (one that runs out waiting is never sent); a caller cancelled while
    # waiting, or while its CALL is in flight, passes the link on to the next.
    rpc = Rpc({})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    with Logs() as logs:
        c1 = asyncio.create_task(rpc.call("A1", {}))
        r1 = await _next_sent(ws, 1)
        c2 = asyncio.create_task(rpc.call("A2", {}))
        c3 = asyncio.create_task(rpc.call("A3", {}, timeout_ms=50))
        c4 = asyncio.create_task(rpc.call("A4", {}))
        c5 = asyncio.create_task(rpc.call("A5", {}))
        assert await _outcome(c3) == "NotSent"  # (a CallTimeout: never sent, errors.py)
        assert logs.warned("A3 not sent: the link was busy for 50 ms")
        c4.cancel()
        assert await _outcome(c4) == "CancelledError"
        ws.push('[3, "%s", {"n": 1}]' % r1[1])
        assert await c1 == {"n": 1}
        r2 = await _next_sent(ws, 2)
        assert r2[2] == "A2"
        c2.cancel()  # in flight
        assert await _outcome(c2) == "CancelledError"
        r5 = await _next_sent(ws, 3)
        assert r5[2] == "A5"
        ws.push('[3, "%s", {}]' % r2[1])  # the cancelled call's answer: ignored
        ws.push('[3, "%s", {"n": 5}]' % r5[1])
        assert await c5 == {"n": 5}
        assert [m[2] for m in ws.sent] == ["A1", "A2", "A5"]
        assert logs.warned("unknown id " + r2[1])
        c6 = asyncio.create_task(rpc.call("A6", {}))  # the link is free again
        r6 = await _next_sent(ws, 4)
        ws.push('[3, "%s", {}]' % r6[1])
        assert await c6 == {}
    ws.end()
    await task


async def test_an_answer_or_a_link_loss_during_the_send_ends_the_wait_at_once():
    # The frame is out while send() still drains: its answer (or the link's loss) can come
    # before send() returns, and the caller must not then wait out its timeout.
    rpc = Rpc({})
    rpc.timeout_ms = 5000
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    sent = ws.send

    async def answered_in_send(text):
        await sent(text)
        ws.push('[3, "%s", {"ok": 1}]' % json.loads(text)[1])
        await asyncio.sleep_ms(20)

    async def lost_in_send(text):
        await sent(text)
        rpc.drop()

    ws.send = answered_in_send
    t0 = time.ticks_ms()
    assert await rpc.call("A", {}) == {"ok": 1}
    ws.send = lost_in_send
    try:
        await rpc.call("B", {})
        raise AssertionError("no Disconnected")
    except Disconnected:
        pass
    assert time.ticks_diff(time.ticks_ms(), t0) < 1000
    ws.end()
    await task


async def test_call_timeout_then_late_answer_is_ignored():
    rpc = Rpc({})
    rpc.timeout_ms = 50
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    with Logs() as logs:
        try:
            await rpc.call("Heartbeat", {})
            raise AssertionError("no timeout")
        except CallTimeout:
            pass
        assert logs.warned("Heartbeat", "no answer within 50 ms")
        late = ws.sent[0][1]
        ws.push('[3, "%s", {}]' % late)
        c = asyncio.create_task(rpc.call("Heartbeat", {}, timeout_ms=2000))
        r = await _next_sent(ws, 2)
        ws.push('[3, "%s", {"n": 2}]' % r[1])
        assert await c == {"n": 2}
        # not taken for the next call: kept for the probe that asks (clientrare.answers)
        assert logs.warned("answer to %s after its timeout" % late)
        assert rpc.late == [3, late, {}]
    ws.end()
    await task


async def test_link_loss_wakes_the_caller_and_send_failure_ends_serve():
    rpc = Rpc({"ClearCache": lambda p: _ok()})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    c = asyncio.create_task(rpc.call("Heartbeat", {}))
    await _next_sent(ws, 1)
    ws.fail_send = OSError(104)
    ws.push('[2, "x", "ClearCache", {}]')
    why = await task
    assert isinstance(why, OSError)
    try:
        await c
        raise AssertionError("caller not woken")
    except Disconnected:
        pass
    try:
        await rpc.call("Heartbeat", {})
        raise AssertionError("call without a link")
    except Disconnected:
        pass


def test_sniff():
    assert sniff(b'[2,"abc","Reset"') == (2, "abc")
    assert sniff(b' [ 3 , "id-1" , {') == (3, "id-1")
    assert sniff('[2,"é"]') == (2, None)
    assert sniff(b'[2,"a\\"b"]') == (2, None)
    assert sniff(b'[2,"' + b"x" * 37 + b'"') == (2, None)
    assert sniff(b'[2,""') == (2, None)
    assert sniff(b'[2,17,') == (2, None)
    assert sniff(b'{"a":1}') == (None, None)
    assert sniff(b"") == (None, None)
    assert sniff(memoryview(b'[4,"q"')) == (4, "q")
    assert sniff_call(b'[2, "m-7" ,\n"SendLocalList", {"listVersion"') == (2, "m-7", "SendLocalList")
    assert sniff_call(b'[2,"m-7","Send') == (2, "m-7", None)
    assert sniff_call(b'[2,"m-7","S\\u0065nd"') == (2, "m-7", None)
    assert sniff_call(b'[2,"m-7",5') == (2, "m-7", None)
    assert sniff_call(b'[3,"m-7",{') == (3, "m-7", None)
    assert sniff_call(b"x") == (None, None, None)


# -- messages spooled to flash ----------------------------------------------------------------

def spooled(text, limit=1024):
    # The message as ws.py hands it up once spooled (every call reuses the one spool file).
    sp = Store("flash").spool("rx")
    b = text.encode() if isinstance(text, str) else text
    write(sp.path, b)
    return Spooled(sp, len(b), limit, b[:128], bytearray(2048))


def entries(n):
    return [{"idTag": "T%04d" % i, "idTagInfo": {"status": "Accepted"}} for i in range(n)]


async def test_a_spooled_send_local_list_is_streamed_from_flash_to_its_handler():
    got = []

    async def h(p):
        assert not isinstance(p["localAuthorizationList"], list), "a generator, not a list"
        got.append((p["listVersion"], p["updateType"], list(p["localAuthorizationList"])))
        return {"status": "Accepted"}

    after = []
    rpc = Rpc({"SendLocalList": h})
    rpc.after_reply = lambda a, req, res: after.append((a, res))
    m = spooled(json.dumps([2, "big-1", "SendLocalList", {
        "listVersion": 7, "localAuthorizationList": entries(40), "updateType": "Full"}]))
    with Logs() as logs:
        sent, _ = await serve_all(rpc, m, '[2, "next", "FooBar", {}]')
    assert got == [(7, "Full", entries(40))]
    assert sent[0] == [3, "big-1", {"status": "Accepted"}]
    assert errors(sent) == [("next", "NotImplemented")]
    assert after == [("SendLocalList", {"status": "Accepted"})]
    assert not exists(m.spool.path), "the spool file is removed once handled"
    assert logs.said("SendLocalList", "big-1", "read from flash")


async def test_out_of_the_heap_a_spooled_lists_handler_runs_without_the_checker():
    # Frozen or in a ROMFS image the checker is loaded for pass 1 only (spooled.py): the
    # handler's work (the list applied, its 32 bucket files) runs with it out of sys.modules,
    # and the reader leaves with the message.
    import sys

    from ocpp_client import rpc as rpcmod

    out = rpcmod._CHECKER + ("ocpp_client.spooled", "ocpp_client.jsonstream")
    seen = []

    async def h(p):
        seen.append([m for m in rpcmod._CHECKER if m in sys.modules])
        return {"status": "Accepted", "n": len(list(p["localAuthorizationList"]))}

    saved = rpcmod.validate
    rpcmod.validate = None
    try:
        m = spooled(json.dumps([2, "big-2", "SendLocalList", {
            "listVersion": 8, "localAuthorizationList": entries(40), "updateType": "Full"}]))
        sent, _ = await serve_all(Rpc({"SendLocalList": h}), m)
        assert sent == [[3, "big-2", {"status": "Accepted", "n": 40}]], sent
        assert seen == [[]], seen
        for name in out:
            assert name not in sys.modules, name
    finally:
        rpcmod.validate = saved


async def test_a_malformed_spooled_call_is_answered_and_never_reaches_the_handler():
    seen = []

    async def h(p):
        seen.append(p)
        return {"status": "Accepted"}

    bad = entries(40)
    bad[33]["idTagInfo"]["status"] = "Perhaps"
    frames = [
        json.dumps([2, "b-1", "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                                "localAuthorizationList": bad}]),
        json.dumps([2, "b-2", "SendLocalList", {"listVersion": 1,
                                                "localAuthorizationList": entries(40)}]),
        json.dumps([2, "b-3", "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                                "localAuthorizationList": entries(40)}])[:-9],
    ]
    rpc = Rpc({"SendLocalList": h})
    sent = []
    for text in frames:  # one at a time: they share the one spool file, as on the charger
        m = spooled(text)
        sent += (await serve_all(rpc, m))[0]
        assert not exists(m.spool.path)
    assert errors(sent) == [("b-1", "PropertyConstraintViolation"),
                            ("b-2", "OccurenceConstraintViolation"), ("b-3", "FormationViolation")]
    assert "localAuthorizationList[33].idTagInfo.status" in sent[0][3]
    assert seen == []


class ClosingWs(FakeWs):
    # FakeWs with what wsrare.fail() uses: the close frames it sends are kept.
    closed = False

    def __init__(self, *frames):
        super().__init__(*frames)
        self.frames = []

    async def _send_frame(self, op, payload):
        self.frames.append((op, bytes(payload)))


async def test_a_spooled_message_that_is_not_utf8_fails_the_link_as_one_in_ram_does():
    # RFC 6455 8.1: text that is not UTF-8 fails the connection (1007), with no answer, whether
    # the message was in RAM or spooled to flash; an encoded surrogate or an overlong form
    # (MicroPython's decoder takes both) never reaches the local list.
    seen = []

    async def h(p):
        seen.append([e["idTag"] for e in p["localAuthorizationList"]])
        return {"status": "Accepted"}

    text = json.dumps([2, "big-u8", "SendLocalList", {
        "listVersion": 7, "localAuthorizationList": entries(40), "updateType": "Full"}]).encode()
    for bad in (b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xc3("):
        m = spooled(text.replace(b"T0033", b"T" + bad))
        ws = ClosingWs(m)
        ws.eof = True
        with Logs():
            why = await Rpc({"SendLocalList": h}).serve(ws)
        assert ws.sent == [] and ws.frames == [(8, b"\x03\xef")], (bad, ws.sent, ws.frames)
        assert "UTF-8" in str(why), why
        assert not exists(m.spool.path)
    assert seen == []
    # UTF-8 text is read, its multi-byte characters across the reader's chunks too.
    ok = entries(150)
    for i, e in enumerate(ok):
        e["idTag"] = "\u00e9t\u00e9\u20ac\U0001f600%d" % i
    m = spooled(json.dumps([2, "big-u8", "SendLocalList", {
        "listVersion": 8, "localAuthorizationList": ok, "updateType": "Full"}], separators=(",", ":")))
    sent, _ = await serve_all(Rpc({"SendLocalList": h}), m)
    assert sent == [[3, "big-u8", {"status": "Accepted"}]], sent
    assert seen == [[e["idTag"] for e in ok]]


async def test_a_plain_spooled_list_is_read_without_loading_the_utf8_checker():
    # Issue 12: the strict UTF-8 check (mend.py) loads for a spooled message at its first byte
    # that is not ASCII; a list of plain tags leaves its bytecode out of the heap in which the
    # update then looks for room (a 1,000-tag list in the reference workload).
    import sys

    sys.modules.pop("ocpp_client.mend", None)
    seen = []

    async def h(p):
        seen.append([e["idTag"] for e in p["localAuthorizationList"]])
        return {"status": "Accepted"}

    m = spooled(json.dumps([2, "plain", "SendLocalList", {
        "listVersion": 9, "localAuthorizationList": entries(150), "updateType": "Full"}]))
    sent, _ = await serve_all(Rpc({"SendLocalList": h}), m)
    assert sent == [[3, "plain", {"status": "Accepted"}]], sent
    assert len(seen[0]) == 150
    assert "ocpp_client.mend" not in sys.modules
    # past a first ASCII chunk, a character that is not ASCII loads it (and is checked)
    ok = entries(150)
    ok[120]["idTag"] = "\u00e9t\u00e9"
    m = spooled(json.dumps([2, "later", "SendLocalList", {
        "listVersion": 9, "localAuthorizationList": ok, "updateType": "Full"}]))
    sent, _ = await serve_all(Rpc({"SendLocalList": h}), m)
    assert sent == [[3, "later", {"status": "Accepted"}]], sent
    assert seen[1][120] == "\u00e9t\u00e9" and "ocpp_client.mend" in sys.modules


async def test_other_spooled_messages_get_the_oversize_answer():
    async def h(p):
        raise AssertionError("never called")

    rpc = Rpc({"DataTransfer": h, "SendLocalList": h})
    frames = [
        json.dumps([2, "dt-1", "DataTransfer", {"vendorId": "x", "data": "z" * 3000}]),
        json.dumps([3, "res-1", {"x": "y" * 3000}]),
        "garbage" * 500,
        json.dumps([2, "x" * 40, "SendLocalList", {}]) + " " * 3000,  # an id over 36
    ]
    ms = [spooled(t) for t in frames]
    with Logs() as logs:
        sent, why = await serve_all(Rpc({"DataTransfer": h}), *ms)
    assert errors(sent) == [("dt-1", "FormationViolation"), ("x" * 40, "FormationViolation")]
    assert "over the 1024-byte limit" in sent[0][3]
    assert logs.warned("over the 1024-byte limit")
    for m in ms:
        assert not exists(m.spool.path)
    # SendLocalList without a handler: the oversize answer too
    sent, _ = await serve_all(Rpc({}), spooled(json.dumps(
        [2, "s-1", "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                     "localAuthorizationList": entries(40)}])))
    assert errors(sent) == [("s-1", "FormationViolation")]


def test_only_streamed_calls_with_a_handler_are_worth_spooling():
    async def h(p):
        return {}

    rpc = Rpc({"SendLocalList": h, "DataTransfer": h})
    assert rpc.spool_wanted(b'[2, "a", "SendLocalList", {"listVersion": 1, "localAuth')
    assert not rpc.spool_wanted(b'[2, "a", "DataTransfer", {"vendorId": "x", "data": "zz')
    assert not rpc.spool_wanted(b'[3, "a", {"status": "Accepted"')
    assert not rpc.spool_wanted(b'[2, "a\\u0030", "SendLocalList", {')  # no readable id
    assert not Rpc({}).spool_wanted(b'[2, "a", "SendLocalList", {"listVersion": 1, "loc')


async def test_an_unreadable_spool_file_is_an_internal_error():
    async def h(p):
        raise AssertionError("never called")

    m = spooled(json.dumps([2, "gone", "SendLocalList", {"listVersion": 1, "updateType": "Full"}]))
    m.remove()
    sent, why = await serve_all(Rpc({"SendLocalList": h}), m, '[2, "next", "FooBar", {}]')
    assert errors(sent) == [("gone", "InternalError"), ("next", "NotImplemented")]
    assert isinstance(why, WsClosed)


async def test_a_call_that_cannot_be_sent_is_disconnected():
    rpc = Rpc({})
    ws = FakeWs()
    ws.fail_send = OSError(32)
    rpc.ws = ws
    with Logs() as logs:
        try:
            await rpc.call("Heartbeat", {})
            raise AssertionError("no Disconnected")
        except Disconnected:
            pass
    assert logs.warned("Heartbeat", "not sent", "OSError")
    assert rpc._pending_id is None


async def test_the_work_after_an_answer_runs_once_for_its_call_even_if_the_answer_is_lost():
    # A remote start's Authorize (work after its .conf) stayed queued when the .conf could not
    # be sent: it ran after another CALL's answer, and meanwhile every remote start was
    # Rejected. A CALL refused by its handler's failure drops what it queued.
    after = []

    async def boom(p):
        raise RuntimeError("kaput")

    rpc = Rpc({"RemoteStartTransaction": _ok_reset, "Reset": boom})
    rpc.after_reply = lambda a, req, res: after.append((a, res))
    ws = FakeWs('[2, "1", "RemoteStartTransaction", {"idTag": "T1"}]')
    ws.fail_send = OSError(104)
    with Logs():
        await rpc.serve(ws)
    assert after == [("RemoteStartTransaction", {"status": "Accepted"})]
    with Logs():
        await serve_all(rpc, '[2, "2", "Reset", {"type": "Soft"}]')
    assert after[1:] == [("Reset", None)]


async def test_a_null_payload_is_an_empty_one():
    # OCPP-J 1.6 4.2: "If there is no payload JSON allows for two different notations: null
    # or an empty object {}". ocpp-rpc sends null for a CALL without parameters and for a
    # handler that returns nothing: FormationViolation, and answers taken as malformed. An
    # empty array is PHP's empty object (json_encode): taken as {} too.
    sent, _ = await serve_all(Rpc({"ClearCache": lambda p: _ok()}),
                              '[2, "n1", "ClearCache", null]',
                              '[2, "n2", "Reset", null]',
                              '[2, "n3", "ClearCache", []]',
                              '[2, "n4", "Reset", []]')
    assert sent[0] == [3, "n1", {"status": "Accepted"}]
    assert sent[2] == [3, "n3", {"status": "Accepted"}]
    assert errors([sent[1], sent[3]]) == [("n2", "OccurenceConstraintViolation"),
                                          ("n4", "OccurenceConstraintViolation")]
    rpc = Rpc({})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    for i, empty in enumerate(("null", "[]")):
        call = asyncio.create_task(rpc.call("StatusNotification", {
            "connectorId": 0, "status": "Available", "errorCode": "NoError"}))
        req = await _next_sent(ws, i + 1)
        ws.push('[3, "%s", %s]' % (req[1], empty))
        assert await call == {}, empty
    ws.end()
    await task


async def test_a_short_callerror_to_our_call_fails_it_at_once():
    # OCPP-J 4.2.3: a CALLERROR has 5 elements. One with fewer (or a code that is not a string)
    # naming our pending CALL is still the CSMS's error: the call fails now, not after waiting
    # out its timeout (a tap's Authorize, 30 s). Logged as malformed.
    rpc = Rpc({})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    cases = (('"InternalError"', "InternalError", ""),
             ('"InternalError", "busy"', "InternalError", "busy"),
             ('', "GenericError", ""),
             ('17, "x"', "GenericError", "x"))
    with Logs() as logs:
        for i, (tail, code, desc) in enumerate(cases):
            t0 = time.ticks_ms()
            c = asyncio.create_task(rpc.call("Authorize", {"idTag": "T"}, timeout_ms=30000))
            req = await _next_sent(ws, i + 1)
            ws.push('[4, "%s"%s]' % (req[1], ", " + tail if tail else ""))
            try:
                await asyncio.wait_for_ms(c, 2000)
                raise AssertionError("no CallError")
            except CallError as e:
                assert (e.code, e.description) == (code, desc), (tail, e.code, e.description)
            assert time.ticks_diff(time.ticks_ms(), t0) < 2000
    assert logs.warned("malformed CALLERROR")
    # Not ours: still ignored.
    c = asyncio.create_task(rpc.call("Heartbeat", {}))
    req = await _next_sent(ws, len(cases) + 1)
    ws.push('[4, "someone-else", "InternalError"]')
    await asyncio.sleep_ms(20)
    assert not c.done()
    ws.push('[3, "%s", {"currentTime": "2026-01-01T00:00:00Z"}]' % req[1])
    assert (await c)["currentTime"]
    ws.end()
    await task



class _Stalled:
    # The stream of a peer gone without FIN or RST (a Wi-Fi router rebooted): nothing arrives,
    # and with the send buffer full every write blocks until the TCP stack gives up (~60 s on
    # lwIP). gone() ends it.
    def __init__(self):
        self.ev = asyncio.Event()

    async def readinto(self, buf):
        await self.ev.wait()
        return 0

    def write(self, b):
        pass

    async def drain(self):
        await self.ev.wait()

    def close(self):
        pass

    def gone(self):
        self.ev.set()


async def test_a_send_the_link_does_not_take_ends_the_call_at_its_timeout_and_the_link():
    # A tap's Authorize must fail within its own timeout (decided offline then), not when the
    # stack gives up; the link, the frame perhaps half out, is for the session to drop
    # (rpc.on_dead) and no frame more goes on it.
    from ocpp_client.ws import WebSocket

    rpc = Rpc({})
    st = _Stalled()
    ws = WebSocket(st, st, 4096)
    task = await _run_with(rpc, ws)
    dead = []
    rpc.on_dead = dead.append
    with Logs() as logs:
        for _ in range(2):  # the first's write stalls; the second finds the link closed
            t0 = time.ticks_ms()
            try:
                await asyncio.wait_for_ms(rpc.call("Authorize", {"idTag": "T"}, timeout_ms=300),
                                          3000)
                raise AssertionError("no Disconnected")
            except Disconnected:
                pass
            assert time.ticks_diff(time.ticks_ms(), t0) < 1500
    assert logs.warned("Authorize", "not sent within 300 ms")
    assert len(dead) == 1 and ws.closed
    st.gone()
    await task


async def test_a_call_behind_a_long_write_is_not_sent_and_the_link_stays():
    # Another frame holds the writer's turn (a long answer on a slow link) past the call's
    # timeout: nothing of the call went out, so it is NotSent (a tap decided offline, a
    # transaction message tried again uncounted) and the link is not dropped for it.
    from ocpp_client.errors import NotSent
    from ocpp_client.ws import WebSocket

    rpc = Rpc({})
    st = _Stalled()
    ws = WebSocket(st, st, 4096)
    task = await _run_with(rpc, ws)
    dead = []
    rpc.on_dead = dead.append
    assert await ws.writing.take()  # the long answer's write
    with Logs() as logs:
        t0 = time.ticks_ms()
        try:
            await rpc.call("Authorize", {"idTag": "T"}, timeout_ms=300)
            raise AssertionError("no NotSent")
        except NotSent:
            pass
        assert time.ticks_diff(time.ticks_ms(), t0) < 1000
    assert logs.warned("Authorize", "not sent: the link was writing")
    assert not dead and not ws.closed and rpc.quiet
    ws.writing.give()
    st.gone()
    await task


async def test_after_an_unanswered_call_the_link_is_quiet_until_a_frame_comes():
    # authorization.py decides taps offline at once while rpc.quiet: set by a CALL that timed
    # out or never got the link, cleared by any frame the CSMS sends, and by a new link.
    rpc = Rpc({"ClearCache": lambda p: _ok()})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    assert not rpc.quiet
    with Logs():
        c = asyncio.create_task(rpc.call("StatusNotification", {}, timeout_ms=200))
        await _next_sent(ws, 1)
        try:
            await rpc.call("Authorize", {"idTag": "T"}, timeout_ms=50)  # behind it: NotSent
            raise AssertionError("sent")
        except CallTimeout:
            pass
        assert rpc.quiet
        try:
            await c
            raise AssertionError("answered")
        except CallTimeout:
            pass
        assert rpc.quiet
        ws.push('[2, "x", "ClearCache", {}]')
        assert (await _next_sent(ws, 2))[:2] == [3, "x"]
    assert not rpc.quiet
    ws.end()
    await task


async def test_a_callresult_to_our_call_without_an_object_fails_it_at_once():
    # OCPP-J 4.2.2: a CALLRESULT's payload is a JSON object. One naming our pending CALL with
    # anything else ([3, id, [1]], a string, a fourth element; [] is {}, PHP's way of writing
    # it: test_a_null_payload_is_an_empty_one) is the CSMS's answer all the
    # same, unusable: the call fails now as unanswered (CallTimeout: a tap's Authorize is
    # decided offline, a transaction message retried under its id), not after waiting out its
    # timeout. Logged as malformed.
    rpc = Rpc({})
    ws = FakeWs()
    task = await _run_with(rpc, ws)
    with Logs() as logs:
        for i, tail in enumerate(('[1]', '"x"', '5', '{}, 1')):
            t0 = time.ticks_ms()
            c = asyncio.create_task(rpc.call("Authorize", {"idTag": "T"}, timeout_ms=30000))
            req = await _next_sent(ws, i + 1)
            ws.push('[3, "%s", %s]' % (req[1], tail))
            try:
                await asyncio.wait_for_ms(c, 2000)
                raise AssertionError("no CallTimeout")
            except CallTimeout:
                pass
            assert time.ticks_diff(time.ticks_ms(), t0) < 2000
    assert logs.warned("malformed CALLRESULT")
    ws.end()
    await task


async def test_the_caller_takes_its_answer_before_the_next_frame_is_handled():
    # The CSMS answers our StopTransaction, then sends a SendLocalList: the charger must see
    # them in that order (the answer's idTagInfo is checked against the list the CSMS had when
    # it answered, 1.6 3.5.2), even when both frames are already buffered.
    order = []

    async def send_list(p):
        order.append("list")
        return {"status": "Accepted"}

    rpc = Rpc({"SendLocalList": send_list})
    ws = FakeWs()
    task = await _run_with(rpc, ws)

    async def caller():
        await rpc.call("StopTransaction", {"transactionId": 1})
        order.append("answer")

    call = asyncio.create_task(caller())
    req = await _next_sent(ws, 1)
    ws.q.append('[3, "%s", {}]' % req[1])  # both at once, no wait between them
    ws.push('[2, "csms-1", "SendLocalList", {"listVersion": 2, "updateType": "Full"}]')
    await call
    await _next_sent(ws, 2)
    assert order == ["answer", "list"], order
    ws.end()
    await task
