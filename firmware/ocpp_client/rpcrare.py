# The RPC layer's (rpc.py) seldom-run paths, out of the heap between their uses: the frames that
# break the OCPP-J rules (each answered or logged as the spec says), a message over the RAM limit
# that is not read (dropped with its answer) and a CALL refused before its handler
# (NotImplemented, a 1.6 rule broken, NotSupported). Each is a function of the Rpc `r`, loaded by
# supervisor.rare() for the frame and dropped after it. A MemoryError loading it reaches
# Rpc.serve(), which answers the CALL InternalError (SendLocalList: Failed) as for any frame the
# memory ran out on (rpc.py _last_resort); what runs without memory (no room to parse, to
# answer) stays in rpc.py.
import log
from ocpp_client.rpc import odd_id, sniff

_CALL = const(2)
_RESULT = const(3)
_ERROR = const(4)
_FORMATION = "FormationViolation"
_TAG = "rpc"


def _deaf(r, mid):
    # While the CSMS has Rejected the BootNotification no CALL is answered (rpc.py Rpc.deaf),
    # a broken one neither. -> True then, said.
    if r.deaf:
        log.warn(_TAG, "frame (id %s) not answered while Rejected", mid)
    return r.deaf


async def garbage(r, raw, why, text=None):
    # A frame that does not parse: answer the CALL it seems to be, if any. One that is not UTF-8
    # fails the connection instead (RFC 6455 8.1: 1007, no answer); the session reconnects.
    # `raw` may be a spooled message (its head names it), `text` False when it is known not UTF-8.
    from supervisor import rare

    kind, mid = sniff(getattr(raw, "head", raw))
    if kind == _CALL and mid is None:
        mid = odd_id(getattr(raw, "head", raw))
    try:
        if text is None:
            text = rare("ocpp_client.mend", "utf8_ok", raw)
    except MemoryError:  # no room for the check: answered as any frame that does not parse
        text = True
    if not text:
        why = "not valid UTF-8"
    if r.on_bad:
        r.on_bad("InvalidMessages", why)
    if not text and r.ws is not None:
        log.warn(_TAG, "frame (%d bytes, id %s) is %s: closing the link (1007)", len(raw), mid,
                 why)
        await rare("ocpp_client.wsrare", "fail", r.ws, 10)  # (wsrare.BAD_TEXT)
    if kind in (_RESULT, _ERROR):
        log.warn(_TAG, "answer %s is %s: ignored", mid, why)
        return
    if _deaf(r, mid):
        return
    log.warn(_TAG, "frame (%d bytes, id %s) is %s: FormationViolation", len(raw), mid, why)
    await r._error(mid, _FORMATION, "frame is " + why)


async def bad_frame(r, raw, msg):
    # Parsed, but not an OCPP-J message with a usable type and id (rpc.py _dispatch).
    if not isinstance(msg, list) or not msg:
        return await garbage(r, raw, "not an OCPP-J message array")
    kind = msg[0]
    if isinstance(kind, bool) or not isinstance(kind, int) or kind not in (_CALL, _RESULT,
                                                                         _ERROR):
        # OCPP-J 1.6 section 4.1.3: a message type not in the list is ignored.
        log.warn(_TAG, "unknown message type %r: ignored", kind)
        return
    mid = msg[1] if len(msg) > 1 else None
    if kind == _CALL:
        if _deaf(r, mid):
            return
        log.warn(_TAG, "CALL with a bad message id %r: FormationViolation", mid)
        # One that reads, only too long (OCPP-J 4.1.4: 36 at most), is refused under itself
        # (4.2.3: the answer carries "the exact same ID"): under "-1" the CSMS waited out its
        # timeout for an answer that had come.
        if isinstance(mid, str) and mid:
            return await r._error(mid, _FORMATION, "message id over 36 characters")
        # A number (17) under its own text ("17", odd_id), as the CSMS can match it.
        num = isinstance(mid, (int, float)) and not isinstance(mid, bool)
        return await r._error(odd_id(raw) if num else None, _FORMATION, "bad message id")
    log.warn(_TAG, "answer with a bad message id %r: ignored", mid)


def bad_answer(r, msg):
    # An answer that is not to our pending CALL: ignored. A malformed one to our pending CALL is
    # still the CSMS's answer: the call fails now instead of waiting out its timeout (a tap's
    # Authorize: 7 s). A CALLERROR short of its 5 elements or without a string code is taken as
    # the error it names (GenericError when none). A CALLRESULT whose payload is not a JSON
    # object (OCPP-J 4.2.2), or with more than 3 elements, cannot be read: the call fails as if
    # unanswered (CallTimeout; rpc.py), at once: a tap is decided offline, a transaction
    # message retried under the same id (the CSMS may have booked it: a new id, as after a
    # CALLERROR, could book it twice).
    mid = msg[1]
    if mid != r._pending_id:
        return log.warn(_TAG, "answer with unknown id %s: ignored", mid)
    if msg[0] == _ERROR:
        code = msg[2] if len(msg) > 2 and isinstance(msg[2], str) else "GenericError"
        desc = msg[3] if len(msg) > 3 and isinstance(msg[3], str) else ""
        log.warn(_TAG, "malformed CALLERROR to %s: taken as %s", mid, code)
        r._answer = [_ERROR, mid, code, desc, None]
    else:
        log.warn(_TAG, "malformed CALLRESULT to %s: taken as no answer", mid)
        r._answer = [0, mid]
    r._pending_id = None
    r._wake_caller()


async def bad_call(r, msg):
    # A CALL that is not [2, id, action, {payload}].
    mid = msg[1]
    if len(msg) < 4:
        log.warn(_TAG, "CALL %s is incomplete: ProtocolError", mid)
        return await r._error(mid, "ProtocolError", "CALL must be [2,id,action,{payload}]")
    log.warn(_TAG, "CALL %s is not [2,id,action,{}]: FormationViolation", mid)
    return await r._error(mid, _FORMATION, "CALL must be [2,id,action,{payload}]")


async def refuse(r, mid, action, h, known, bad):
    # A well-formed CALL that gets no handler: an unknown action, a 1.6 rule broken, or an
    # action this charger does not support (rpc.py _incoming decided there is one of them).
    if h is None and not known and action not in r.known_actions:
        log.warn(_TAG, "%s %s: NotImplemented", action[:40], mid)
        return await r._error(mid, "NotImplemented", "unknown action")
    if bad is not None:
        log.warn(_TAG, "%s %s: %s (%s)", action, mid, bad[0], bad[1])
        if r.on_bad:
            r.on_bad("InvalidMessages", action)
        return await r._error(mid, bad[0], bad[1])
    log.info(_TAG, "%s %s: NotSupported", action, mid)
    return await r._error(mid, "NotSupported", "%s is not supported" % action)


async def too_big(r, e):
    # e: a WsTooBig (read to its end and dropped), or a Spooled message that is not read from
    # flash (rpc.py _spooled)
    kind, mid = sniff(e.head)
    if kind == _CALL and mid is None:
        mid = odd_id(e.head)  # (over 36 characters, a number: answered under it all the same)
    log.warn(_TAG, "message of %d bytes over the %d-byte limit (type %s, id %s): dropped",
             e.size, e.limit, kind, mid)
    if kind == _CALL and mid and not _deaf(r, mid):
        await r._error(mid, _FORMATION,
                       "message of %d bytes is over the %d-byte limit" % (e.size, e.limit))
