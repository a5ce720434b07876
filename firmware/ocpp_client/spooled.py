# A CALL too long for RAM (ws.Spooled: written to flash as it arrived), read from its file as a
# stream. Only an action with one array field that may legitimately be this long is read
# (STREAMED); the rest of its payload is small. The file must be strict UTF-8 (else UnicodeError:
# the link fails with 1007, as for a message in RAM). Then two passes over the file:
#  1. the frame [2, id, action, {payload}] is walked; every field but the array is parsed; each
#     array item is parsed and checked on its own (validate.check_value) and counted; the
#     payload is then checked against the action's rules exactly as a CALL in RAM would be
#     (validate.check with the array's result), so a bad message gets the same error code and
#     nothing has been changed;
#  2. the handler gets the payload with the array as a generator that reads the items again,
#     one small dict at a time.
# The fields may come in any order: the `ocpp` package sends SendLocalList's updateType after
# the list, so it is only known once pass 1 is over.
import asyncio
import json
import time

from ocpp_client.jsonstream import Reader
from ocpp_client.errors import Reject as Bad  # a malformed message: answered with its code

# Actions whose CALL may legitimately be longer than the WebSocket's RAM limit: spooled to flash
# and read from here as a stream, with the array field that makes them long.
STREAMED = {"SendLocalList": "localAuthorizationList"}
_ITEM_MAX = const(1024)  # longest text of one item (an entry with every character \u-escaped fits)
_VALUE_MAX = const(256)  # longest text of any other field's value
_KEY_MAX = const(64)  # longest key text (a longer one is no field of OCPP 1.6)
_SLICE_MS = const(20)  # longest stretch of pass 1 between two turns of the other tasks
_SHAPE = "CALL must be [2,id,action,{payload}]"


async def read(f, buf, action):
    # -> the payload of the CALL in file f, its STREAMED[action] array (when present) a generator
    # of the items; raises Bad. `buf`: a bytearray to read through (None: one is allocated).
    # The checker is imported for pass 1 only, not held by this module: pass 2 (the handler's
    # work) does without it, and rpc.py drops it meanwhile where the code is out of the heap.
    from ocpp_client import validate

    if not _utf8(f, buf):
        raise UnicodeError("not valid UTF-8")  # the link fails (rpc.py), as for one in RAM
    f.seek(0)
    r = Reader(f, buf)
    try:
        return await _read(r, action, validate)
    except ValueError as e:  # malformed (jsonstream.Reader, or json.loads on a value)
        raise Bad(validate.FORMATION, "frame is not valid JSON (%s)" % e)


def _utf8(f, buf):
    # Is the whole file UTF-8 (RFC 6455 8.1)? MicroPython's decoder takes encoded surrogates and
    # overlong forms, which json.loads would then store: checked strictly (mend.py) chunk by
    # chunk, a character cut at a chunk's end carried into the next; an ASCII chunk costs a max().
    # The checker loads at the first chunk that is not ASCII: a list of plain tags (the rule)
    # leaves its bytecode (~1.3 KB of a 64-bit heap, kept once loaded) out of the heap in which
    # the update then looks for room.
    utf8_ok = None
    mv = memoryview(buf if buf is not None else bytearray(512))[:1024]
    k = 0  # bytes carried
    while True:
        n = k + (f.readinto(mv[k:]) or 0)
        if n == k:
            return not k  # (a character cut by the end)
        e = n
        for j in range(1, min(n, 4)):
            c = mv[n - j]
            if c < 0x80:
                break
            if c >= 0xC0:
                if j < (2 if c < 0xE0 else 3 if c < 0xF0 else 4):
                    e = n - j
                break
        if e and max(mv[:e]) >= 0x80:
            if utf8_ok is None:
                from ocpp_client.mend import utf8_ok
            if not utf8_ok(mv[:e]):
                return False
        k = n - e
        mv[:k] = bytes(mv[e:n])


async def _read(r, action, validate):
    r.expect(0x5B)  # [
    if r.load(8) != 2:
        raise Bad(validate.FORMATION, _SHAPE)
    r.expect(0x2C)
    r.load(_KEY_MAX)  # the id (the RPC layer answers with the one sniffed from the head)
    r.expect(0x2C)
    if r.load(_KEY_MAX) != action:
        raise Bad(validate.FORMATION, _SHAPE)
    if r.next_is(0x5D):  # ]
        raise Bad("ProtocolError", _SHAPE)
    r.expect(0x2C)
    if r.peek() != 0x7B:  # {
        raise Bad(validate.FORMATION, _SHAPE)
    payload, pos, streamed = await _payload(r, action, validate)
    if r.next_is(0x2C):
        raise Bad(validate.FORMATION, _SHAPE)
    r.expect(0x5D)
    if not r.end():
        raise Bad(validate.FORMATION, "frame is not valid JSON (text after the frame)")
    bad = validate.check(action, payload, streamed)
    if bad is not None:
        raise Bad(bad[0], bad[1])
    if pos >= 0:
        payload[STREAMED[action]] = _items(r, pos)
    return payload


async def _payload(r, action, validate):
    # Pass 1 over the payload object. -> (payload without the array's items, file offset of the
    # array or -1, the array's result for validate.check)
    fields = validate.rules_for(action)
    big = STREAMED[action]
    rule = None
    names = []
    for name, code, arg in fields:
        names.append(name)
        if name == big:
            rule = arg[1]  # the items' (code, arg)
    payload = {}
    unknown = False
    pos = -1
    streamed = None
    for k in r.members(_KEY_MAX):
        if k == big and r.peek() == 0x5B:
            pos = r.tell()
            n = 0
            bad = None
            t = time.ticks_ms()
            for text in r.items(_ITEM_MAX):
                if bad is None:
                    v = _loads(validate, text)
                    if validate.check_value(rule[0], rule[1], v, "") is not None:
                        # again, naming the item (the path is only built for the one reported)
                        bad = validate.check_value(rule[0], rule[1], v, "%s[%d]" % (big, n))
                n += 1
                if time.ticks_diff(time.ticks_ms(), t) >= _SLICE_MS:
                    await asyncio.sleep_ms(0)  # (the reader stays put: nothing else uses it)
                    t = time.ticks_ms()
            payload[k] = ()  # stand-in: validate.check takes the result from `streamed`
            streamed = {big: (n, bad)}
        elif k in names:
            payload[k] = _loads(validate, r.value(_VALUE_MAX))
            if k == big:  # not an array (the last one counts, as with json.loads)
                pos = -1
                streamed = None  # validate.check finds the wrong type
        else:
            if not unknown:  # validate.check names the first; the rest need no memory
                payload[k] = None
                unknown = True
            r.skip()
    return payload, pos, streamed


def _loads(validate, text):
    # json.loads of a value checked strictly first (validate.syntax: json.loads takes '{"a":}')
    why = validate.syntax(text)
    if why:
        raise ValueError(why)
    return json.loads(text)


def _items(r, pos):
    # Pass 2: the array's items again, one dict at a time (checked in pass 1).
    r.seek(pos)
    for text in r.items(_ITEM_MAX):
        yield json.loads(text)
