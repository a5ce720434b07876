# OCPP-J RPC framing: CALL [2,id,action,payload], CALLRESULT [3,id,payload],
# CALLERROR [4,id,code,description,details]. At most one outstanding CALL of ours; the CSMS's
# calls are answered while we wait.
import asyncio
import json
import os
import binascii

import log

CALL = const(2)
RESULT = const(3)
ERROR = const(4)
_TAG = "rpc"


class CallError(Exception):
    # The CSMS answered our CALL with a CALLERROR.
    def __init__(self, code, description="", details=None):
        super().__init__(code, description)
        self.code = code
        self.description = description
        self.details = details or {}


class CallTimeout(Exception):
    pass


class Disconnected(Exception):
    pass


class Reject(Exception):
    # Raised by a handler to answer an incoming CALL with a CALLERROR.
    def __init__(self, code, description=""):
        super().__init__(code, description)
        self.code = code
        self.description = description


class Rpc:
    def __init__(self, handlers, max_id=36):
        # handlers: action -> async fn(payload) -> response payload (dict)
        self.handlers = handlers
        self.known_actions = ()  # actions of the spec we do not support -> NotSupported
        self.ws = None
        self._prefix = binascii.hexlify(os.urandom(4)).decode()
        self._n = 0
        self._lock = asyncio.Lock()  # one outstanding CALL of ours
        self._pending_id = None
        self._on_result = None
        self._answer = None
        self._event = asyncio.Event()
        self.after_reply = None  # optional fn(action, request, response): work after the .conf

    def _next_id(self):
        self._n += 1
        return "%s-%d" % (self._prefix, self._n)

    async def call(self, action, payload, timeout_ms=30000, on_result=None):
        # on_result(payload) runs the moment the CALLRESULT is read, before any later frame from
        # the CSMS is handled (a RemoteStop right after a StartTransaction.conf must see its id).
        async with self._lock:
            ws = self.ws
            if ws is None:
                raise Disconnected()
            mid = self._next_id()
            self._pending_id = mid
            self._on_result = on_result
            self._answer = None
            self._event.clear()
            try:
                await ws.send(json.dumps([CALL, mid, action, payload]))
                try:
                    await asyncio.wait_for_ms(self._event.wait(), timeout_ms)
                except asyncio.TimeoutError:
                    raise CallTimeout(action)
            finally:
                self._pending_id = None
            ans = self._answer
            if ans is None:
                raise Disconnected()
            if ans[0] == RESULT:
                return ans[2]
            raise CallError(ans[2], ans[3] if len(ans) > 3 else "", ans[4] if len(ans) > 4 else None)

    def drop(self):
        # The link is gone: wake any waiting caller with Disconnected.
        self.ws = None
        if self._pending_id is not None:
            self._answer = None
            self._event.set()

    async def serve(self, ws):
        # Reads frames until the socket fails; returns the exception that ended it.
        self.ws = ws
        try:
            while True:
                raw = await ws.recv()
                await self._dispatch(raw)
        except Exception as e:
            return e
        finally:
            self.drop()

    async def _reply(self, frame):
        ws = self.ws
        if ws is not None:
            await ws.send(json.dumps(frame))

    async def _dispatch(self, raw):
        try:
            msg = json.loads(raw)
        except Exception:
            log.warn(_TAG, "frame is not JSON (%d bytes): ignored", len(raw))
            return await self._error_for_garbage(raw)
        if not isinstance(msg, list) or len(msg) < 3 or not isinstance(msg[1], str):
            log.warn(_TAG, "frame is not an OCPP-J message array: %s", raw[:80])
            mid = msg[1] if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str) else ""
            return await self._reply([ERROR, mid, "FormationViolation", "not an OCPP-J message", {}])
        kind, mid = msg[0], msg[1]
        if kind == CALL:
            return await self._incoming(msg)
        if kind in (RESULT, ERROR):
            if mid != self._pending_id:
                log.warn(_TAG, "answer with unknown id %s: ignored", mid)
                return
            if (kind == RESULT and (len(msg) != 3 or not isinstance(msg[2], dict))) or (
                kind == ERROR and (len(msg) < 4 or not isinstance(msg[2], str))
            ):
                log.warn(_TAG, "malformed answer to %s: ignored", mid)
                return
            self._answer = msg
            self._pending_id = None
            if kind == RESULT and self._on_result is not None:
                try:
                    self._on_result(msg[2])
                except Exception as e:
                    log.exc(_TAG, "result hook", e)
            self._event.set()
            return
        log.warn(_TAG, "unknown message type %r", kind)
        await self._reply([ERROR, mid, "ProtocolError", "unknown message type", {}])

    async def _error_for_garbage(self, raw):
        # A CALLERROR needs an id; unparsable frames have none we can trust, so we answer with "".
        await self._reply([ERROR, "", "FormationViolation", "frame is not valid JSON", {}])

    async def _incoming(self, msg):
        mid = msg[1]
        if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
            return await self._reply([ERROR, mid, "FormationViolation", "CALL must be [2,id,action,{}]", {}])
        action, payload = msg[2], msg[3]
        h = self.handlers.get(action)
        if h is None:
            code = "NotSupported" if action in self.known_actions else "NotImplemented"
            log.info(_TAG, "%s %s", code, action)
            return await self._reply([ERROR, mid, code, "%s is not %s" % (action, "supported" if code == "NotSupported" else "implemented"), {}])
        try:
            res = await h(payload)
        except Reject as e:
            return await self._reply([ERROR, mid, e.code, e.description, {}])
        except Exception as e:
            log.exc(_TAG, "handler for %s failed" % action, e)
            return await self._reply([ERROR, mid, "InternalError", "handler failed", {}])
        await self._reply([RESULT, mid, res])
        if self.after_reply is not None:
            try:
                self.after_reply(action, payload, res)
            except Exception as e:
                log.exc(_TAG, "after %s" % action, e)
