# The WebSocket's (ws.py) seldom-run paths, out of the heap between their uses: a protocol
# violation by the server (said, closed with its status code, raised as WsError), the
# server's close frame (answered, raised as WsClosed) and our own close before a restart. Each
# ends the connection; each is loaded by supervisor.rare() for it and dropped after. A
# MemoryError loading it ends the connection all the same (raised from recv_msg(), as any
# failure of the link: the session reconnects).
import asyncio
import struct

import log

from ocpp_client.ws import OP_CLOSE, WsClosed, WsError
from supervisor import within

# ws.py's violation numbers (_RSV .. _HUGE) -> what is wrong, and BAD_TEXT (a text message that
# is not UTF-8: the RPC layer finds it); _HUGE is a 1009 (too big), BAD_TEXT a 1007 (RFC 6455
# 8.1), the others 1002 (protocol error).
_WHY = ("reserved bits set", "server frames must not be masked", "bad frame length",
        "control frame fragmented or over 125 bytes", "close frame with a 1-byte body",
        "unknown control opcode %d", "continuation frame without a message",
        "new message inside a fragmented one", "unknown opcode %d", "message over %d bytes",
        "text message is not valid UTF-8")
BAD_TEXT = 10


async def _close(ws, payload):
    # Our close frame, best effort, once.
    if not ws.closed:
        ws.closed = True
        try:
            await within(ws._send_frame(OP_CLOSE, payload), 500)
        except Exception:
            pass


async def fail(ws, why, arg=None):
    # A protocol violation (_WHY[why], its %d from `arg`): close with its code and raise. Said
    # "by peer": the session backs off as after the server's close (client.py run()), not
    # retried every 1-2 s as a link the network took.
    text = _WHY[why]
    if arg is not None:
        text = text % arg
    await _close(ws, struct.pack("!H", 1009 if why == 9 else 1007 if why == BAD_TEXT else 1002))
    raise WsError("protocol error by peer: " + text)


async def closed(ws, n):
    # The server's close frame, its n-byte body in ws._ctl: echo its code, raise WsClosed (the
    # session backs off: "by peer"; not when it answers our own close). A code no endpoint may send (RFC 6455 7.4: 1005, 1006, 1015,
    # under 1000, unassigned) is answered 1002, not echoed; a reason that is not UTF-8 1007 (8.1).
    if n == 1:
        await fail(ws, 4)  # a 1-byte body
    ours = ws.closed  # the server answers our close (hang_up): no refusal of the CSMS
    ctl = ws._ctl
    code = ctl[0] << 8 | ctl[1] if n >= 2 else 1005
    ans = code if 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999 else 1002
    try:
        reason = str(bytes(ctl[2:n]), "utf-8") if n > 2 else ""
    except UnicodeError:
        reason, ans = "(reason not UTF-8)", 1007
    await _close(ws, struct.pack("!H", ans) if n >= 2 else b"")
    raise WsClosed("closed %s (%d%s)" % ("on our close" if ours else "by peer", code,
                                         " " + reason if reason else ""))


async def hang_up(ws, code):
    # Before a restart (remote.py, 1001: going away) or a reconnection with new credentials
    # (configuration.py, 1000): the closing handshake (RFC 6455 7.1.2). Our close frame, then
    # the server's, which the reader takes (closed(), above) and the session ends with: the CSMS
    # learns of it at once, not at its ping timeout (an ESP32's reset sends no FIN), and the
    # socket closes with nothing unread (no RST that could drop our frame). At most a second,
    # then the link is dropped.
    await _close(ws, struct.pack("!H", code))
    for _ in range(20):
        if ws.r is None:  # the session ended (aborted)
            break
        await asyncio.sleep_ms(50)
    ws.abort()


async def reconnect(s, what):
    # New credentials in use at once (configuration.py: a new AuthorizationKey; diag/csr.py: a
    # renewed client certificate): the link closed with 1000, normal closure, and made again by
    # the session with them.
    ws = s.rpc.ws
    if ws is not None:
        log.info("ocpp", "reconnecting with %s", what)
        await hang_up(ws, 1000)
