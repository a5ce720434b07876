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
_NAMES = {DEBUG: "D", INFO: "I", WARN: "W", ERROR: "E"}
# fn(level, tag, text): the agent log on flash (diag/agentlog.py) gets every printed line too.
sink = None


def _emit(lvl, tag, msg, args):
    if lvl < level:
        return
    if args:
        try:
            msg = msg % args
        except Exception:
            msg = "%s %r" % (msg, args)
    sys.stdout.write("%s %s: %s\n" % (_NAMES[lvl], tag, msg))
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
