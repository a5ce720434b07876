# One-line logging to the console (UART on the charger, stdout under the unix port).
# Secrets never reach here: callers pass ids and codes, never keys or passwords.
import sys

DEBUG = const(10)
INFO = const(20)
WARN = const(30)
ERROR = const(40)

level = INFO
try:
    import os

    if os.getenv("BORNE_DEBUG"):
        level = DEBUG
except Exception:
    pass
_MAX = const(400)  # characters of a message shown
# A level's letter: LETTERS[level // 10 - 1] (a text constant, no table in the heap).
LETTERS = const("DIWE")
# fn(level, tag, text): the agent log on flash (diag/agentlog.py) gets every printed line too.
sink = None
# Logging never raises MemoryError into its caller (the connector logs on its safety path): a
# line that cannot be formatted is dropped and counted, and the next line that can be printed
# says how many went. The count is a small int: updating it allocates nothing.
dropped = 0


def _emit(lvl, tag, msg, args):
    global dropped
    if lvl < level:
        return
    try:
        if dropped:
            _line(WARN, "log", "%d line(s) dropped: no memory" % dropped, ())
            dropped = 0
        _line(lvl, tag, msg, args)
    except MemoryError:
        dropped += 1


def _line(lvl, tag, msg, args):
    if args:
        try:
            msg = msg % args
        except Exception:
            msg = "%s %r" % (msg, args)
    # A line is a line: text from the network (ids, keys, tags) can carry newlines or escape
    # codes, or be long; it is bounded and shown escaped, never able to forge another line.
    if len(msg) > _MAX:
        msg = msg[:_MAX] + "..."
    for c in "\n\r\x1b":
        if c in msg:
            msg = msg.replace(c, "\\x%02x" % ord(c))
    sys.stdout.write("%s %s: %s\n" % (LETTERS[lvl // 10 - 1], tag, msg))
    if sink is not None:
        try:
            sink(lvl, tag, msg)
        except Exception:
            pass  # the console line is out; a failing flash log must not break the caller


def debug(tag, msg, *args):
    _emit(DEBUG, tag, msg, args)


def info(tag, msg, *args):
    _emit(INFO, tag, msg, args)


def warn(tag, msg, *args):
    _emit(WARN, tag, msg, args)


def error(tag, msg, *args):
    _emit(ERROR, tag, msg, args)


def exc(tag, msg, e):
    # The exception's type and text, without a traceback dump that could carry payloads.
    _emit(ERROR, tag, "%s: %s: %s", (msg, type(e).__name__, e))


def url(u):
    # A URL for a log line (which the agent log keeps and diagnostics upload): credentials
    # replaced by "***", the query and fragment by "?..." (a pre-signed upload's signature, a
    # CSMS token ride there). The last "@" before them ends the credentials: a password may hold
    # a "/".
    i = u.find("://")
    if i < 0:
        return u[:80]
    rest = u[i + 3:]
    cut = len(rest)
    for c in "?#":
        k = rest.find(c)
        if 0 <= k < cut:
            cut = k
    tail = "?..." if cut < len(rest) else ""
    rest = rest[:cut]
    at = rest.rfind("@")
    if at >= 0:
        rest = "***@" + rest[at + 1:]
    return (u[:i + 3] + rest)[:200] + tail
