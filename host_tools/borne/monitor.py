"""borne monitor: follow a charger's log on its USB serial line, and send it safe commands.

Every line the charger prints is shown with the time it arrived, coloured by level (E errors
red, W warnings yellow, D debug dim), and written to the session log file (--log; default
monitor-<date>-<time>.log in the current folder, without colours). The charger's state lines
("@state {...}") are decoded into words: status, contactor, pilot state, current offered; the
board's telemetry lines ("@tel", "@led") are shown dimmed.

Type a command and Enter to send it to the charger's maintenance console:

  identity   charger id, serial, model, firmware version, board (no secret)
  stats      free heap and flash
  hotspot    open the claim hotspot (as a 3 s press of the setup button)
  restart    end any charging session, then restart the charger
  quit       leave the monitor (so does Ctrl-C); the charger keeps running

None of them can close the contactor. Nothing is sent to the charger but these commands: the
monitor never stops the application (no Ctrl-C reaches the charger).

What the charger sends reaches the terminal as text only: control characters (an escape
sequence could retitle or clear the terminal) are shown escaped (\x1b), tabs kept; a line that
does not end (a prompt, noise) is shown once it holds 1 KiB or after 0.5 s without more.

If nothing of the charger's arrives in 3 s, the monitor asks it `identity`; with no answer
3 s later it says the port seems wrong (another device, nothing behind it, the charger off) and
keeps listening.

If the cable is pulled, the monitor says so and waits for the port to come back, then goes on
(and the log file notes the gap). It opens the port exclusively: close it before `borne deploy`.

Exit status: 0 after quit / Ctrl-C / --duration; 1 the port or the session log could
not be opened.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import serial

from borne.devlink import DeviceError, add_line_args, open_serial, ports_seen

COMMANDS = ("identity", "stats", "hotspot", "restart")
_COLOURS = {"E": "\x1b[31m", "W": "\x1b[33m", "D": "\x1b[2m", "state": "\x1b[36m",
            "ok": "\x1b[32m", "err": "\x1b[31;1m", "note": "\x1b[35m"}
_RESET = "\x1b[0m"
PARTIAL_MAX = 1024  # bytes of a line without its newline shown as they are ...
PARTIAL_S = 0.5  # ... or after this long without more
PROBE_S = 3.0  # nothing from the charger this long after opening: ask it `identity` ...
ANSWER_S = 3.0  # ... and no answer this long after: say the port seems wrong


def printable(text: str) -> str:
    """``text`` with every non-printable character but the tab escaped (\\x1b, \\x7f, \\u2028):
    nothing the charger sends can drive the operator's terminal."""
    if text.isprintable():
        return text
    return "".join(c if c == "\t" or c.isprintable() else
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") for c in text)


def decode(line: str) -> tuple[str, str]:
    """(kind, text to show) for one line from the charger."""
    if line.startswith("@state "):
        try:
            s = json.loads(line[7:])
            return "state", (
                f"STATE {s.get('status')}"
                f"{' (' + s['error'] + ')' if s.get('error') not in (None, 'NoError') else ''}"
                f", contactor {'CLOSED' if s.get('relay') else 'open'}, pilot {s.get('cp')}"
                f", offer {s.get('offer_a')} A{', session running' if s.get('session') else ''}"
            )
        except (ValueError, AttributeError, KeyError):
            return "state", line
    if line.startswith("@ok "):
        name, _, data = line[4:].partition(" ")
        try:
            d = json.loads(data or "{}")
            body = ", ".join(f"{k}={v}" for k, v in d.items()) if isinstance(d, dict) else data
        except ValueError:
            body = data
        return "ok", f"{name.upper()}: {body or 'done'}"
    if line.startswith("@err "):
        return "err", f"REFUSED {line[5:]}"
    if line.startswith(("@tel ", "@led ")):
        return "D", line[1:].upper()[:3] + line[4:]  # the board's telemetry: shown dimmed
    if len(line) > 2 and line[1] == " " and line[0] in "EWID":
        return line[0], line
    return "", line


class Monitor:
    def __init__(self, port: str, out: TextIO, log_path: Path, colour: bool) -> None:
        self.port = port
        self.out = out
        self.colour = colour
        self.log_path = log_path
        self.log = log_path.open("a", encoding="utf-8")
        self.commands: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()
        self.reconnects = 0
        self.heard = False  # a line of the charger's (console answer, state, log) arrived

    def show(self, kind: str, text: str) -> None:
        text = printable(text)  # after decoding: a JSON "\\u001b" is an escape too
        stamp = dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        self.log.write(f"{stamp} {text}\n")
        self.log.flush()
        c = _COLOURS.get(kind, "") if self.colour else ""
        self.out.write(f"{stamp} {c}{text}{_RESET if c else ''}\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.show("note", f"[monitor] {text}")

    def send(self, cmd: str) -> None:
        self.commands.put(cmd)

    def _open(self, first: bool) -> serial.Serial | None:
        while not self.stop.is_set():
            try:
                s = open_serial(self.port, timeout=0.1)
                s.reset_input_buffer()  # what piled up before we listened is stale
                return s
            except DeviceError as e:
                if first:
                    raise
                if not os.path.exists(self.port):
                    self.stop.wait(0.3)
                    continue
                self.note(str(e))
                self.stop.wait(1.0)
        return None

    def run(self, duration: float | None = None) -> int:
        end = time.monotonic() + duration if duration else None
        ser = self._open(first=True)
        self.note(f"following {self.port}; session log {self.log_path}")
        asked: float | None = None  # when `identity` was sent, nothing heard before
        told = False
        opened = time.monotonic()
        buf = b""
        since = 0.0  # when the line in buf began arriving
        try:
            while not self.stop.is_set() and ser is not None:
                if end and time.monotonic() >= end:
                    break
                if not self.heard and not told:
                    # A wrong port (another device, nothing behind it) or a wrong charger
                    # state otherwise leaves an empty screen and log without a word why.
                    now = time.monotonic()
                    if asked is None and now - opened >= PROBE_S:
                        asked = now
                        self.note(f"nothing from the charger in {PROBE_S:.0f} s: asking it")
                        self.send("identity")
                    elif asked is not None and now - asked >= ANSWER_S:
                        told = True
                        self.note(f"no answer from {self.port}: not the charger's port, or the "
                                  "charger is off or not running borne; check --port (ports "
                                  f"seen: {ports_seen()}), the USB cable and the power; still "
                                  "listening")
                try:
                    self._send_pending(ser)
                    chunk = ser.read(ser.in_waiting or 1)
                except (OSError, serial.SerialException, TypeError):
                    # TypeError: pyserial reading a port whose file descriptor was closed
                    with contextlib.suppress(Exception):
                        ser.close()
                    self.note(f"cable disconnected: waiting for {self.port} to come back")
                    ser = self._open(first=False)
                    if ser is not None:
                        self.reconnects += 1
                        self.note("reconnected (what the charger printed meanwhile is lost)")
                    buf = b""
                    continue
                if chunk and not buf:
                    since = time.monotonic()
                buf += chunk
                while b"\n" in buf:
                    raw, _, buf = buf.partition(b"\n")
                    since = time.monotonic()
                    self._line(raw)
                while len(buf) >= PARTIAL_MAX:  # no newline coming: shown in pieces
                    self._line(buf[:PARTIAL_MAX])
                    buf = buf[PARTIAL_MAX:]
                if buf and time.monotonic() - since >= PARTIAL_S:
                    self._line(buf)  # a prompt, or noise without an end
                    buf = b""
        finally:
            if ser is not None:
                with contextlib.suppress(Exception):
                    ser.close()
            self.log.close()
        return 0

    def _line(self, raw: bytes) -> None:
        line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        if line:
            kind, text = decode(line)
            self.heard = self.heard or kind != ""
            self.show(kind, text)

    def _send_pending(self, ser: serial.Serial) -> None:
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return
            ser.write(b"\r\n@" + cmd.encode() + b"\r\n")
            self.note(f"sent {cmd}")


def _stdin_commands(mon: Monitor) -> None:
    with contextlib.suppress(OSError, ValueError):  # no keyboard to read: follow only
        _read_commands(mon)


def _read_commands(mon: Monitor) -> None:
    for line in sys.stdin:
        word = line.strip().lower()
        if not word:
            continue
        if word in ("quit", "q", "exit"):
            break
        if word in COMMANDS:
            mon.send(word)
        else:
            mon.note(f"unknown command {word!r}: {', '.join(COMMANDS)}, quit")
    else:
        if not sys.stdin.isatty():
            return  # no keyboard (a pipe ended): keep following until --duration or Ctrl-C
    mon.stop.set()


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "monitor",
        help="follow a charger's log over USB serial, with timestamps and colours; send safe "
        "commands (identity, stats, hotspot, restart)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_line_args(p, timeout=False)
    p.add_argument("--log", type=Path, metavar="FILE",
                   help="session log file (default monitor-<date>-<time>.log)")
    p.add_argument("--send", action="append", choices=COMMANDS, default=[], metavar="CMD",
                   help="send this command at the start (repeatable): " + ", ".join(COMMANDS))
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--colour", "--color", choices=("auto", "always", "never"), default="auto",
                   help="colours on the terminal (auto: when it is a terminal)")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    log_path = args.log or Path(dt.datetime.now().strftime("monitor-%Y%m%d-%H%M%S.log"))
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    try:
        mon = Monitor(args.port, sys.stdout, log_path, colour)
    except OSError as e:  # a --log folder that does not exist, a read-only working folder
        print(f"monitor: cannot write the session log {log_path} ({e.strerror}): name a "
              "writable file with --log", file=sys.stderr)
        return 1
    for cmd in args.send:
        mon.send(cmd)
    threading.Thread(target=_stdin_commands, args=(mon,), daemon=True).start()
    try:
        return mon.run(args.duration)
    except DeviceError as e:
        print(f"monitor: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
