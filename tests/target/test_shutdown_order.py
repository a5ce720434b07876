# Restarts open the relay first (DESIGN.md section 8: the relay opens first, then everything else
# is reported): main.py's fatal-crash path, the OCPP Reset (ocpp_client/remote.py) and the
# simulation board's reset().
import asyncio
import os
import sys

from fakeboard import FakeBoard

ORDER = []  # what the fakes below saw, in order


# -- main.py, crashing: the board's relay-off before the report and the trial's flash write ------
_FAKE_SLOTCHOICE = """
from test_shutdown_order import ORDER

def maintenance():
    return False

def choose():
    return "a", True

class _App:
    def run(self):
        raise ValueError("boom")

def enter(slot):
    return _App()

def give_up(slot, why):
    ORDER.append("give_up")
"""

_FAKE_BOARD = """
from test_shutdown_order import ORDER

class Board:
    def __init__(self):
        ORDER.append("Board()")

    def set_relay(self, on):
        ORDER.append("relay %d" % on)

    def reset(self, hard):
        ORDER.append("reset")
"""


class _Sys:
    # main.py's `sys`: the real one but print_exception, which records its turn.
    modules = sys.modules

    @staticmethod
    def print_exception(e, *a):
        ORDER.append("print_exception")


def _main_py():
    for d in sys.path:
        p = d + "/main.py"
        if d.endswith("firmware") and os.stat(p):
            return p
    raise AssertionError("firmware/main.py not on the path")


def test_a_crash_opens_the_relay_before_reporting_and_the_trial_verdict():
    with open("slotchoice.py", "w") as f:
        f.write(_FAKE_SLOTCHOICE)
    with open("board.py", "w") as f:
        f.write(_FAKE_BOARD)
    saved = {k: sys.modules.pop(k, None) for k in ("slotchoice", "board", "sys")}
    sys.path.insert(0, os.getcwd())
    sys.modules["sys"] = _Sys
    del ORDER[:]
    try:
        with open(_main_py()) as f:
            code = f.read()
        try:
            exec(code, {"__name__": "__main__"})
            raise AssertionError("main.py swallowed the crash")
        except ValueError:
            pass
    finally:
        sys.path.pop(0)
        for k, v in saved.items():
            sys.modules.pop(k, None)
            if v is not None:
                sys.modules[k] = v
    assert ORDER == ["Board()", "relay 0", "print_exception", "give_up", "reset"], ORDER


# -- OCPP Reset: the session's stop (relay open) before the event log's flash write ------------
class _Conn:
    finishing_stops = 0

    def stop_for(self, reason):
        ORDER.append("stop_for " + reason)
        return True


class _Events:
    def add(self, kind, **kw):
        ORDER.append("events.add")
        raise MemoryError("the event log's line")


class _Board(FakeBoard):
    def reset(self, hard):
        ORDER.append("reset %d" % hard)


class _Rpc:
    ws = None


class _Session:
    connector = _Conn()
    events = _Events()
    board = None  # (made in the test: a board needs the event loop's flag)
    rpc = _Rpc()
    queue = None

    def restart_tune(self):
        ORDER.append("tune")

    def online(self):
        return False


def test_an_ocpp_reset_stops_the_session_first_and_restarts_without_memory_for_the_log():
    from ocpp_client import remote

    del ORDER[:]
    s = _Session()
    s.board = _Board()
    asyncio.run(remote._reset(s, "Hard"))
    assert ORDER[0] == "stop_for HardReset", ORDER
    assert ORDER[-1] == "reset 1", "a MemoryError in the event log kept the reset: %s" % ORDER


# -- the simulation board: relay 0 on the wire before the reset line ---------------------------
class _Sock:
    def __init__(self):
        self.lines = []

    def send(self, b):
        self.lines.append(bytes(b))
        return len(b)


def test_the_simulation_board_opens_the_relay_before_it_resets():
    import board as simboard  # boards/unix_sim

    b = simboard.Board(["agent"])
    b._io = s = _Sock()
    b.set_relay(True)
    try:
        b.reset(True)
        raise AssertionError("reset() returned")
    except SystemExit as e:
        assert e.args[0] == 4
    assert s.lines == [b"relay 1\n", b"relay 0\n", b"reset 1\n"], s.lines
