# OCPP-J RPC framing: CALL [2,id,action,payload], CALLRESULT [3,id,payload],
# CALLERROR [4,id,code,description,details]. At most one outstanding CALL of ours; the CSMS's
# calls are answered while we wait. Every incoming CALL is checked against the 1.6 rules
# (validate.py) before its handler runs, and every malformed frame gets the spec's reaction and a
# log line; nothing the CSMS sends can end the session except a broken transport, or a text
# message that is not UTF-8 (RFC 6455 8.1: the connection is failed with 1007, rpcrare.garbage).
import asyncio
import json
import os
import binascii
import time

import log
from ocpp_client.errors import CallError, CallTimeout, Disconnected, NotSent, Reject
from ocpp_client.ws import Spooled, WsError, WsTooBig, oom_wait
from supervisor import Turns, code_in_heap, drop, wake, within

_CALL = const(2)
_RESULT = const(3)
_ERROR = const(4)
_MAX_ID = const(36)  # OCPP-J: message ids are strings of at most 36 characters
_NO_ID = const("-1")  # the id of an answer to a frame whose id cannot be read (as OCPP 2.0.1)
_TAG = const("rpc")
_MIN_WRITE_MS = const(5000)  # the least a CALL's write gets (its limit if shorter)
_MIN_ANSWER_MS = const(2000)  # the least a written CALL waits for its answer (limit if shorter)
# A CALL that ran out of memory is answered InternalError, except an action with an answer of
# its own for that case: a SendLocalList too large for the memory available is Failed (the
# list stays as it was: locallist.py applies all or nothing). Payloads as JSON text.
_NO_MEMORY = {"SendLocalList": '{"status":"Failed"}'}
# The checker and its rules (validate.py, rules.py): with the bytecode in the heap, loaded by
# the first connection (load_checker(), after the handshake, whose TLS peak it would add to; an
# unclaimed charger has no CSMS to check frames from until its claim, and claim mode needs the
# ~7 KB) and kept, since a fragmented heap may later lack the blocks to load it again; out of
# it (frozen, a ROMFS image), where a load makes small objects only, loaded for each CALL and
# dropped after its check (~0.5 KB less between CALLs).
_CHECKER = ("ocpp_client.validate", "ocpp_client.rules")
validate = None


def load_checker():
    # Kept from the first connection on. A heap that has no block for it yet (after a claim,
    # claim mode still open in a fragmented heap) is no failure: each CALL then loads it for
    # its check, as where the code is out of the heap, until a later connection keeps it.
    global validate
    if validate is None and code_in_heap():
        try:
            validate = __import__(_CHECKER[0], None, None, ("check",))
        except MemoryError:
            drop(*_CHECKER)
            log.warn(_TAG, "no room to keep the frame checker yet: loaded for each CALL")


def _rare(name, *args):
    # A seldom-run path (rpcrare.py: a frame that breaks the rules, a message over the RAM limit,
    # a CALL refused before its handler), loaded for the frame and out of the heap after it.
    from supervisor import rare

    return rare("ocpp_client.rpcrare", name, *args)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def sniff(raw):
    # (message type, id) read from the start of a frame that may not parse (truncated, oversize,
    # broken JSON): '[2, "abc", ...' -> (2, "abc"). Either is None when it cannot be read.
    kind, mid, _ = sniff_call(raw)
    return kind, mid


def sniff_call(raw):
    # (message type, id, action) from the start of a frame, as sniff(); the action is None when
    # it cannot be read ('[2, "abc", "SendLocalList", ...' -> (2, "abc", "SendLocalList")).
    if isinstance(raw, str):
        b = raw[:128].encode()
    else:  # read in place, no 128-byte copy: _last_resort sniffs when memory ran out
        b = memoryview(raw)
        b = inplace(b[:128] if len(b) > 128 else b)
    n = len(b)
    i = _blank(b, 0)
    if i >= n or b[i] != 0x5B:  # [
        return None, None, None
    i = _blank(b, i + 1)
    j = i
    while i < n and 0x30 <= b[i] <= 0x39:
        i += 1
    if i == j or i - j > 3:
        return None, None, None
    kind = int(b[j:i])
    mid, i = _name(b, i)
    if mid is None:
        return kind, None, None
    action, _ = _name(b, i)
    return kind, mid, action


def odd_id(raw):
    # The id of a CALL whose head sniff_call() cannot name: a JSON number or a string over 36
    # characters (OCPP-J 4.1.3/4.1.4: FormationViolation), as its text ('[2, 17, ...' -> "17"),
    # read in place from the first 128 bytes: the out-of-memory answers need it too. The CSMS
    # matches its answer by "the exact same ID" (4.2.3); under "-1" it waited out its timeout.
    # -> None when unreadable (an escape, a control or non-ASCII byte: not safely read here).
    if isinstance(raw, str):
        b = raw[:128].encode()
    else:
        b = memoryview(raw)
        b = inplace(b[:128] if len(b) > 128 else b)
    n = len(b)
    i = _blank(b, 0)
    if i >= n or b[i] != 0x5B:  # [
        return None
    i = b.find(b",", i)
    if i < 0:
        return None
    i = j = _blank(b, i + 1)
    if i < n and b[i] == 0x22:  # "
        i = j = i + 1
        while i < n and 0x20 <= b[i] <= 0x7E and b[i] != 0x22 and b[i] != 0x5C:
            i += 1
        if i >= n or b[i] != 0x22:
            return None
    else:
        while i < n and b[i] in b"+-.0123456789eE":
            i += 1
        if i >= n or b[i] not in b" \t\r\n,":
            return None
    return bytes(b[j:i]).decode() if i > j else None


def _quotable(s):
    # -> True when s is safe between JSON quotes as it is (printable ASCII, no quote or
    # backslash).
    for c in s:
        if not " " <= c <= "~" or c in '"\\':
            return False
    return True


def _blank(b, i):
    n = len(b)
    while i < n and b[i] in b" \t\r\n":
        i += 1
    return i


def _name(b, i):
    # ', "<printable ASCII, no escapes, 1..36>"' at b[i:] -> (the str, index past it) or (None, i)
    n = len(b)
    i = _blank(b, i)
    if i >= n or b[i] != 0x2C:  # ,
        return None, i
    i = _blank(b, i + 1)
    if i >= n or b[i] != 0x22:  # "
        return None, i
    j = i + 1
    k = b.find(b'"', j)
    if k < 0 or k == j or k - j > _MAX_ID:
        return None, i
    s = b[j:k]
    for c in s:
        if c < 0x20 or c == 0x5C or c > 0x7E:  # control, backslash (escapes) or non-ASCII
            return None, i
    return s.decode(), k + 1


def inplace(raw):
    # A frame's bytes to find() in: a memoryview (the WebSocket's receive buffer, up to 16 KB)
    # has no find(), a bytearray over the same bytes (uctypes) has, with no copy of the frame
    # (on every frame: a 16 KB block a fragmented heap may lack). The caller's memoryview keeps
    # the buffer alive meanwhile.
    if isinstance(raw, str):
        return raw.encode()
    if isinstance(raw, (bytes, bytearray)):
        return raw
    try:
        import uctypes

        return uctypes.bytearray_at(uctypes.addressof(raw), len(raw))
    except (ImportError, AttributeError, TypeError):  # a port without uctypes: a copy
        return bytes(raw)


def _suspect(raw):
    # Could the frame hold a \\u escape of a UTF-16 surrogate, or bytes MicroPython takes for
    # UTF-8 that are not (overlong forms, encoded surrogates, past U+10FFFF: lead bytes C0 C1 E0
    # ED F0 F4..FF)? Such a frame goes through mend.py. Plain ASCII and most text never do.
    b = inplace(raw)
    if b.find(b"\\ud") >= 0 or b.find(b"\\uD") >= 0:
        return True
    for c in b"\xc0\xc1\xe0\xed\xf0\xf4\xf5\xf6\xf7":
        if b.find(bytes((c,))) >= 0:
            return True
    return False


class Rpc:
    # While the CSMS has Rejected the BootNotification: its CALLs get no answer at all (1.6 4.2:
    # "SHALL NOT respond to any Central System initiated message"). Set by the session.
    deaf = False
    # [(message id, fn(answer frame))]: told of those CALLs' answers should they come after their
    # timeout (authorization.py: a late Authorize.conf still goes into the cache; its last few,
    # a second card may be tapped while the hub is slow). Over with the link.
    late_to = None

    def __init__(self, handlers, max_id=_MAX_ID):
        # handlers: action -> async fn(payload) -> response payload (dict)
        self.handlers = handlers
        self.known_actions = ()  # extra names answered NotSupported (the spec's are in rules.py)
        self.timeout_ms = 30000  # how long a CALL of ours waits for its answer
        self.ws = None
        self._prefix = binascii.hexlify(os.urandom(4)).decode()
        self._n = 0
        # One outstanding CALL of ours. The callers after it wait their turn asleep
        # (supervisor.Turns), the one in flight its answer (_waiter); each is woken by whoever
        # ends its wait (supervisor.wake), else by its timeout. (A Lock and an Event under
        # wait_for_ms made a task and two coroutines per waiting call, ~0.7 KB when a call
        # waited behind another at a busy moment.)
        self._link = Turns()
        self._waiter = None
        self._pending_id = None
        self._on_result = None
        self._answer = None
        # The id of our last CALL that timed out, and its answer if one came after all (the link
        # stalled: clientrare.answers takes a late answer as the answer).
        self.timed_out = self.late = None
        self._answered = None  # the id of the last answer sent for the frame being handled
        self.after_reply = None  # optional fn(action, request, response): work after the .conf
        self.on_dead = None  # fn(reason): the link must go (a CALL it would not take)
        # A CALL of ours went unanswered (timed out, waited out its turn behind one that did,
        # or could not be written) and nothing came from the CSMS since: a tap is decided
        # offline at once (authorization.py), not each after its own timeout again, until a
        # frame comes or the link is dropped.
        self.quiet = False
        self.on_bad = None  # fn(kind, info), never raising: a bad frame (security events)

    def spool_wanted(self, head):
        # ws.py's spool_if: is a message over the RAM limit worth writing to flash? Only a CALL
        # this side can read from there (anything else is refused by its head alone).
        kind, mid, action = sniff_call(head)
        try:
            from ocpp_client.spooled import STREAMED
        except MemoryError:
            # No memory to load the reader: spooled all the same if its action has an answer
            # for that (SendLocalList: Failed), given when it is read.
            STREAMED = _NO_MEMORY
        return kind == _CALL and mid is not None and action in STREAMED and action in self.handlers

    def _next_id(self):
        # Unique per boot (random prefix) and within a boot (counter): "1a2b3c4d-17", <= 28 chars.
        self._n = self._n + 1 if self._n < 999999999 else 1
        return "%s-%d" % (self._prefix, self._n)

    async def call(self, action, payload, timeout_ms=None, on_result=None, mid=None):
        # on_result(payload) runs the moment the CALLRESULT is read, before any later frame from
        # the CSMS is handled (a RemoteStop right after a StartTransaction.conf must see its id).
        # mid: the message id to send under (a journaled message keeps its first id, so a repeat
        # after a reconnect or a power cut is the same frame, which a CSMS can recognise).
        # The timeout counts from this call, waiting for an earlier CALL of ours included: a tap
        # behind a call on a dead link must not wait out that call's timeout first.
        limit = timeout_ms or self.timeout_ms
        t0 = time.ticks_ms()
        if not await self._link.take(limit):
            log.warn(_TAG, "%s not sent: the link was busy for %d ms", action, limit)
            self.quiet = True
            raise NotSent(action)
        try:
            ws = self.ws
            if ws is None:
                raise Disconnected()
            if mid is None:
                mid = self._next_id()
            self._pending_id = mid
            self._on_result = on_result
            self._answer = None
            # The writer's turn (an answer or a ping may be going out): not in time, nothing went
            # out and the link may be fine (a long answer on a slow link), so NotSent; whoever
            # holds the turn bounds its own write.
            text = json.dumps([_CALL, mid, action, payload])
            wt = getattr(ws, "writing", None)
            if wt is not None and not await wt.take(
                    max(1, limit - time.ticks_diff(time.ticks_ms(), t0))):
                log.warn(_TAG, "%s not sent: the link was writing for %d ms", action, limit)
                self.quiet = True
                raise NotSent(action)
            try:  # bounded too: a peer gone without FIN/RST blocks a write for a minute (at
                # least 5 s, or the call's limit if shorter: a frame whose turn came near its
                # deadline still gets a fair try; with 1 s, a slow link's stall of a TCP resend
                # or two dropped a healthy link)
                await within(ws.send(text, True) if wt is not None else ws.send(text),
                             max(min(limit, _MIN_WRITE_MS),
                                 limit - time.ticks_diff(time.ticks_ms(), t0)))
            except asyncio.TimeoutError:
                # The link takes no data: the frame may be half out, so no frame more goes on
                # it and the session drops it (on_dead); the tap is decided offline now.
                log.warn(_TAG, "%s %s not sent within %d ms: link stalled", action, mid, limit)
                self.quiet = ws.closed = True
                if self.on_dead is not None and self.ws is ws:
                    self.on_dead(WsError("link stalled"))
                raise Disconnected()
            except (OSError, WsError) as e:
                log.warn(_TAG, "%s %s not sent: %s %s", action, mid, type(e).__name__, e)
                raise Disconnected()
            if self._pending_id is not None:  # (not answered, nor the link gone, in the send)
                # A write that ended near or past the limit (a slow link, a long turn) still
                # leaves its answer a round trip's time: with 1 ms, a slow but healthy link's
                # Heartbeat timed out and the session reconnected.
                left = max(limit - time.ticks_diff(time.ticks_ms(), t0),
                           min(limit, _MIN_ANSWER_MS))
                self._waiter = asyncio.current_task()
                try:
                    await asyncio.sleep_ms(left)  # until answered or dropped
                finally:
                    self._waiter = None
                if self._pending_id is not None:
                    log.warn(_TAG, "%s %s: no answer within %d ms", action, mid, limit)
                    self.timed_out, self.late, self.quiet = mid, None, True
                    raise CallTimeout(action)
        finally:
            self._pending_id = None
            self._link.give()
        ans = self._answer
        if ans is None:
            raise Disconnected()
        if ans[0] == _RESULT:
            return ans[2]
        if ans[0] != _ERROR:  # a CALLRESULT that cannot be read (rpcrare.bad_answer)
            raise CallTimeout(action)
        raise CallError(ans[2], ans[3] if len(ans) > 3 else "", ans[4] if len(ans) > 4 else None)

    def _wake_caller(self):
        # The pending call's wait is over (its answer came, or the link went).
        t = self._waiter
        if t is not None:
            self._waiter = None
            wake(t)

    def drop(self):
        # The link is gone: wake any waiting caller with Disconnected.
        self.ws = None
        self.late_to = None  # (an answer comes on the link its CALL went out on)
        if self._pending_id is not None:
            self._answer = None
            self._pending_id = None
            self._wake_caller()

    async def serve(self, ws):
        # Reads frames until the transport fails; returns the exception that ended it. Bad frames
        # never end it: each is answered or logged, and the next one is read.
        self.ws = ws
        self.quiet = False
        recv = getattr(ws, "recv_msg", None) or ws.recv
        try:
            while True:
                try:
                    raw = await recv()
                except WsTooBig as e:
                    raw = e  # read to its end and dropped: answered as the oversize it is
                except MemoryError:
                    # No memory for the read's coroutines (a heap at its peak): read again once
                    # memory is back if no byte of the message was taken (ws.edge: the stream is
                    # in step). The watch (client.py) ends a link silent for too long.
                    if not getattr(ws, "edge", 0):
                        log.warn(_TAG, "out of memory mid-frame: the stream is out of step")
                        raise
                    if ws.closed:
                        raise
                    await oom_wait()
                    continue
                self._answered = None
                self.quiet = False  # the CSMS shows life
                try:
                    if isinstance(raw, Spooled):
                        await self._spooled(raw)
                    elif isinstance(raw, WsTooBig):
                        await _rare("too_big", self, raw)
                    else:
                        await self._dispatch(raw)
                except (OSError, WsError):
                    raise  # the transport failed while answering
                except Exception as e:
                    t = self._last_resort(raw, e)
                    k = 0
                    # Its answer, once the writer's turn is free (another frame may be going
                    # out), waited for in this frame: a heap out of memory may have no block
                    # for a coroutine to send it with (ws.send_now needs none). 5 s at most.
                    while t is not None and not self._said(t):
                        if not hasattr(ws, "send_now") or k == 100 or ws.closed:
                            await ws.send(t)  # (closed: raises, the link is gone)
                            break
                        k += 1
                        await asyncio.sleep_ms(50)
        except Exception as e:
            return e
        finally:
            self.drop()

    async def _reply(self, frame):
        ws = self.ws
        if ws is not None:
            sj = getattr(ws, "send_json", None)  # a long answer is never built whole (ws.py)
            if sj is not None:
                try:
                    await sj(frame)
                finally:
                    if validate is None:  # out of the heap between answers, as the checker
                        drop("ocpp_client.wsjson")
            elif isinstance(frame[2], dict):
                await ws.send(json.dumps(frame))
            else:  # a payload that writes itself (wsjson.py), to a transport without send_json
                from ocpp_client import wsjson

                await ws.send(wsjson.text(frame))
            self._answered = frame[1]

    def _last_resort(self, raw, e):
        # Handling a frame failed outside any handler (no memory to parse or answer it, a bug):
        # a CALL still gets one answer (none while Rejected), InternalError, built without json
        # from the id sniffed off its head (printable ASCII, no quote or backslash: safe between
        # quotes). -> its text (serve() sends it), or None.
        import gc

        gc.collect()
        head = getattr(raw, "head", None)  # an oversize message: its head names it
        kind, mid, action = sniff_call(raw if head is None else head)
        if kind == _CALL and mid is None:
            mid = odd_id(raw if head is None else head)
        if isinstance(raw, Spooled):
            raw.remove()  # (read or not: its file goes)
        log.exc(_TAG, "frame handling failed (id %s)" % mid, e)
        if kind == _CALL and mid and mid != self._answered and self.ws and not self.deaf:
            self._answered = mid
            ans = _NO_MEMORY.get(action) if isinstance(e, MemoryError) else None
            if ans is not None:  # (SendLocalList: Failed, the list as it was)
                return '[3,"%s",%s]' % (mid, ans)
            return '[4,"%s","InternalError","cannot handle the call",{}]' % mid
        return None

    def _no_memory(self, mid, action):
        # The answer to CALL mid (action, or None when unknown) that ran out of memory, built
        # without json after a collection. -> what to await for it (as _say()).
        import gc

        gc.collect()
        log.warn(_TAG, "%s %s: out of memory", action, mid)
        ans = _NO_MEMORY.get(action)
        if self.ws is not None and mid and _quotable(mid):
            if ans is None:
                return self._say(mid, '[4,"%s","InternalError","out of memory",{}]' % mid)
            return self._say(mid, '[3,"%s",%s]' % (mid, ans))
        if ans is None:
            return self._error(mid, "InternalError", "out of memory")
        if mid:
            return self._reply([_RESULT, mid, json.loads(ans)])
        return asyncio.sleep_ms(0)

    def _say(self, mid, text):
        # A short answer built without json, written at once when the link is free (_said()).
        # -> what to await: nothing more then, else the usual send (which needs a block for its
        # coroutine: without one, the MemoryError reaches serve(), whose last resort answers).
        if self._said(text):
            self._answered = mid
            return asyncio.sleep_ms(0)  # (allocates nothing: asyncio's one sleep generator)
        return self.ws.send(text)

    def _said(self, text):
        # -> True once text went out with no coroutine, whose frame is one more block a heap out
        # of memory may not have (ws.send_now); False while another frame is being written.
        sn = getattr(self.ws, "send_now", None)
        return sn is not None and sn(text)

    async def _error(self, mid, code, description):
        await self._reply([_ERROR, mid or _NO_ID, code, description, {}])

    async def _spooled(self, m):
        # A message over the RAM limit, spooled to flash (ws.Spooled). Only a CALL of an action
        # that may legitimately be this long (STREAMED) is read, from the file as a stream; any
        # other (ws.py spools only those when spool_wanted is its filter) gets the oversize
        # answer (rpcrare.too_big). The file is removed once handled.
        try:
            kind, mid, action = sniff_call(m.head)
            if self.deaf:
                return log.warn(_TAG, "CALL %s not answered while Rejected", mid)
            from ocpp_client import spooled

            h = self.handlers.get(action) if kind == _CALL and mid else None
            if h is None or action not in spooled.STREAMED:
                return await _rare("too_big", self, m)
            log.info(_TAG, "%s %s: %d bytes, read from flash", action, mid, m.size)
            try:
                f = m.open()
            except OSError as e:
                log.warn(_TAG, "%s %s: spool file unreadable (%s): InternalError", action, mid, e)
                return await self._error(mid, "InternalError", "cannot read the message")
            try:
                try:
                    payload = await spooled.read(f, m.scratch, action)
                    if validate is None:
                        drop(*_CHECKER)  # checked: the handler works without it (as _incoming)
                except Reject as e:
                    log.warn(_TAG, "%s %s: %s (%s)", action, mid, e.code, e.description)
                    return await self._error(mid, e.code, e.description)
                except MemoryError:
                    payload = None  # (the generator, pass 1, let go before the answer)
                    return await self._no_memory(mid, action)
                except UnicodeError:  # not UTF-8: the link fails with 1007, as for one in RAM
                    return await _rare("garbage", self, m, "not valid UTF-8", False)
                except OSError as e:
                    log.exc(_TAG, "%s %s: reading it from flash" % (action, mid), e)
                    return await self._error(mid, "InternalError", "cannot read the message")
                await self._handle(mid, action, h, payload)
            finally:
                f.close()
        finally:
            m.remove()
            # The reader stays loaded as long as the authorization feature (authorization.py)
            # where that is kept; out of the heap, not past this message.
            if validate is None:
                drop("ocpp_client.spooled", "ocpp_client.jsonstream", *_CHECKER)

    async def _dispatch(self, raw):
        try:
            msg = json.loads(raw)
        except MemoryError:
            import gc

            gc.collect()
            kind, mid, action = sniff_call(raw)
            if kind == _CALL and mid is None:
                mid = odd_id(raw)  # (a number, an id too long: answered under it all the same)
            log.warn(_TAG, "no memory to parse a frame of %d bytes (id %s)", len(raw), mid)
            if self.on_bad:
                self.on_bad("MemoryExhaustion", None)
            if kind == _CALL and not self.deaf:
                await self._no_memory(mid, action)
            return
        except ValueError:  # UnicodeError is a ValueError too
            return await _rare("garbage", self, raw, "not valid JSON")
        if _suspect(raw):
            from ocpp_client import mend  # loaded the first time it is needed

            if not mend.utf8_ok(raw):
                return await _rare("garbage", self, raw, "not valid UTF-8")
            msg = mend.unsurrogate(msg)
        # Not an array, an unknown message type, a bad message id: rpcrare.bad_frame().
        kind = msg[0] if isinstance(msg, list) and msg else None
        mid = msg[1] if kind is not None and len(msg) > 1 else None
        if (not _is_int(kind) or kind not in (_CALL, _RESULT, _ERROR)
                or not isinstance(mid, str) or not 0 < len(mid) <= _MAX_ID):
            return await _rare("bad_frame", self, raw, msg)
        if kind != _ERROR and len(msg) == (4 if kind == _CALL else 3) and (
                msg[-1] is None or type(msg[-1]) is list and not msg[-1]):
            # OCPP-J 4.2: no payload is null or {} (ocpp-rpc sends null); [] is PHP's {}
            # (json_encode of an empty array): a CSMS on PHP answers every empty conf so
            msg[-1] = {}
        if kind == _CALL:
            if self.deaf:
                return log.warn(_TAG, "CALL %s not answered while Rejected", mid)
            return await self._incoming(msg, raw)
        if mid != self._pending_id or (
            kind == _RESULT and (len(msg) != 3 or not isinstance(msg[2], dict))) or (
            kind == _ERROR and (len(msg) < 4 or not isinstance(msg[2], str))
        ):
            if mid != self._pending_id:
                late = mid == self.timed_out
                if late:
                    self.late = msg  # (clientrare.answers)
                lt = self.late_to
                for e in lt or ():
                    if e[0] == mid:
                        lt.remove(e)
                        e[1](msg)
                        late = True
                        break
                if late:
                    return log.warn(_TAG, "answer to %s after its timeout", mid)
            return _rare("bad_answer", self, msg)  # ignored, logged
        self._answer = msg
        self._pending_id = None
        if kind == _RESULT and self._on_result is not None:
            try:
                self._on_result(msg[2])
            except Exception as e:
                log.exc(_TAG, "result hook", e)
        self._wake_caller()
        # The caller takes its answer before the next frame is handled (buffered frames are read
        # without a pause): a StopTransaction.conf then a SendLocalList take effect in that
        # order, and the answer's idTagInfo meets the list the CSMS answered by (1.6 3.5.2).
        await asyncio.sleep(0)

    async def _incoming(self, msg, raw):
        mid = msg[1]
        if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
            return await _rare("bad_call", self, msg)  # ProtocolError, FormationViolation
        action, payload = msg[2], msg[3]
        h = self.handlers.get(action)
        try:
            v = validate or __import__(_CHECKER[0], None, None, ("check",))
            known, bad = v.known(action), v.check(action, payload)
            broken = v.syntax(inplace(raw))  # what json.loads takes, RFC 8259 not: never run
        except MemoryError:
            return await self._no_memory(mid, action)
        finally:
            v = None  # (not held through the handler)
            if validate is None:
                drop(*_CHECKER)
        if broken:
            return await _rare("garbage", self, raw, "not valid JSON (%s)" % broken, True)
        if h is None or bad is not None:  # NotImplemented, the rule broken, NotSupported
            return await _rare("refuse", self, mid, action, h, known, bad)
        await self._handle(mid, action, h, payload)

    async def _handle(self, mid, action, h, payload):
        # Run the handler of a checked CALL and answer it.
        try:
            res = await h(payload)
            if not isinstance(res, dict) and getattr(res, "json_to", None) is None:
                raise TypeError("handler returned %s" % type(res).__name__)
        except Exception as e:
            self._after(action, payload, None)  # refused: no work after it
            if isinstance(e, Reject):
                return await self._error(mid, e.code, e.description)
            if isinstance(e, MemoryError):
                return await self._no_memory(mid, action)
            log.exc(_TAG, "handler for %s failed" % action, e)
            return await self._error(mid, "InternalError", "handler failed")
        try:
            await self._reply([_RESULT, mid, res])
        finally:
            # The work the answer accepts goes on even when the answer is lost (the link failed
            # under it): the charger said yes, and its messages tell the CSMS what came of it.
            # Left waiting, it ran after another CALL's answer.
            self._after(action, payload, res)

    def _after(self, action, payload, res):
        if self.after_reply is not None:
            try:
                self.after_reply(action, payload, res)
            except Exception as e:
                log.exc(_TAG, "after %s" % action, e)
