"""Talking to a charger over its USB serial line: the one place the technicians' tools open a port.

The port is opened with pyserial (exclusively, so two tools never talk at once) and spoken to with
mpremote's own serial transport (raw REPL, raw-paste). Every failure becomes a ``DeviceError``
whose message is one line: what went wrong and what to do about it.

Two ways to talk, both over the same line:

- the **maintenance console** of the running application (``firmware/console.py``): "@cmd" lines
  answered by "@ok cmd {json}"; the application keeps running;
- the **raw REPL** (after Ctrl-C stopped the application): Python code run on the device.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import errno
import io
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error  # mpremote unpacks a short read

import serial
import serial.tools.list_ports
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

DEFAULT_TIMEOUT = 5.0  # seconds of silence after which a device counts as not answering
_ENOSPC = 28


def add_line_args(p: argparse.ArgumentParser, required: bool = True,
                  timeout: bool = True) -> None:
    """--port (and --timeout): how every technician's tool names and waits for the charger."""
    p.add_argument("--port", required=required,
                   help="the charger's serial port, e.g. /dev/ttyUSB0")
    if timeout:
        p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                       help="seconds of silence after which the charger counts as not answering")


class DeviceError(Exception):
    """A failure with the device, told in one line (cause, then what to do)."""


def ports_seen() -> str:
    found = sorted(p.device for p in serial.tools.list_ports.comports())
    return ", ".join(found) if found else "none"


def open_serial(port: str, timeout: float = DEFAULT_TIMEOUT) -> serial.Serial:
    """The port, opened exclusively, or a DeviceError naming why not."""
    if not os.path.exists(port):
        raise DeviceError(
            f"no device at {port}: plug the charger's USB cable in, or name its port with "
            f"--port (serial ports seen: {ports_seen()})"
        )
    try:
        return serial.Serial(port, 115200, timeout=timeout, exclusive=True)
    except serial.SerialException as e:
        text = str(e)
        if "exclusively lock" in text or getattr(e, "errno", None) in (errno.EBUSY, errno.EAGAIN):
            raise DeviceError(
                f"{port} is in use by another program (a monitor, mpremote, esptool?): "
                "close it and try again"
            ) from None
        if getattr(e, "errno", None) == errno.EACCES:
            raise DeviceError(
                f"no permission to open {port}: add your user to the 'dialout' group "
                "(then log in again)"
            ) from None
        raise DeviceError(f"cannot open {port}: {text}") from None


@dataclass
class Facts:
    """What a device says about itself from the raw REPL."""

    platform: str
    version: tuple[int, ...]
    mpy: int  # sys.implementation._mpy: .mpy version, sub-version, native arch
    machine: str
    has_nvs: bool
    flash_free: int
    flash_total: int
    boot_slot: str | None
    unique_id: str | None
    heap: int  # gc.mem_free() + gc.mem_alloc(): on the ESP32 port mem_free counts what the
    # heap can still grow by from the IDF heap (MicroPython >= 1.21)

    @property
    def mpy_version(self) -> tuple[int, int]:
        return self.mpy & 0xFF, (self.mpy >> 8) & 3

    @property
    def arch(self) -> int:
        return self.mpy >> 10


_PROBE = """import sys, os, gc
gc.collect()
try:
    import esp32
    n = hasattr(esp32, "NVS")
except ImportError:
    n = False
try:
    v = os.statvfs("/")
    ff, ft = v[0] * v[3], v[0] * v[2]
except OSError:
    ff = ft = 0
try:
    with open("/boot_slot") as f:
        s = f.read().strip()
except OSError:
    s = None
try:
    import machine, binascii
    u = binascii.hexlify(machine.unique_id()).decode()
except Exception:
    u = None
print(repr((sys.platform, tuple(sys.implementation.version), getattr(sys.implementation, "_mpy", 0),
  getattr(sys.implementation, "_machine", ""), n, ff, ft, s, u, gc.mem_free() + gc.mem_alloc())))
"""


class _Transport(SerialTransport):
    # mpremote's transport with every wait for the device bounded by our timeout (mpremote's
    # own are 10 s between characters, or none), and its diagnostic prints kept off the
    # technician's terminal (our errors say what happened).
    char_timeout = DEFAULT_TIMEOUT

    def read_until(self, min_num_bytes, ending, timeout=10, data_consumer=None,  # type: ignore[no-untyped-def]
                   timeout_overall=None):
        t = self.char_timeout if timeout is None else min(timeout, self.char_timeout)
        with contextlib.redirect_stdout(io.StringIO()):
            return super().read_until(min_num_bytes, ending, t, data_consumer, timeout_overall)

    def enter_raw_repl(self, soft_reset=True, timeout_overall=10):  # type: ignore[no-untyped-def]
        with contextlib.redirect_stdout(io.StringIO()):
            return super().enter_raw_repl(soft_reset, timeout_overall)


class Device:
    """An open line to a charger. Use as a context manager; ``close()`` leaves the REPL."""

    def __init__(self, port: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.port = port
        self.timeout = timeout
        self.serial = open_serial(port, timeout)
        t = _Transport.__new__(_Transport)  # on our already-open port
        t.char_timeout = timeout
        t.serial = self.serial
        t.in_raw_repl = False
        t.use_raw_paste = True
        t.device_name = port
        t.mounted = False
        self.t = t
        self.step = "connecting"

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.t.in_raw_repl:
                self.t.exit_raw_repl()
        except (OSError, serial.SerialException):
            pass
        with contextlib.suppress(OSError, serial.SerialException):
            self.serial.close()

    # ---- raw REPL ------------------------------------------------------------------------
    def raw(self, soft_reset: bool = False) -> None:
        """Stop the running program (Ctrl-C) and enter the raw REPL."""
        self.step = "stopping the application (Ctrl-C) and entering the raw REPL"
        try:
            self.t.enter_raw_repl(soft_reset=soft_reset, timeout_overall=self.timeout)
        except TransportError:
            raise DeviceError(
                f"the device on {self.port} does not answer as MicroPython (no raw REPL): check "
                "that this is the charger's port; a charger without MicroPython needs "
                "`borne flash`"
            ) from None
        except (OSError, serial.SerialException) as e:
            raise self._lost(e) from None

    def _lost(self, e: BaseException) -> DeviceError:
        return DeviceError(
            f"lost the device on {self.port} while {self.step} ({e}): check the cable and run "
            "the command again"
        )

    def exec(self, code: str, timeout: float | None = None) -> bytes:
        """Run code in the raw REPL; its output. Device exceptions become DeviceError."""
        if not self.t.in_raw_repl:
            self.raw()
        try:
            out, err = self.t.exec_raw(code, timeout=timeout or self.timeout)
        except TransportError as e:
            raise DeviceError(
                f"the device on {self.port} stopped answering while {self.step} ({e}): "
                "power-cycle the charger and run the command again"
            ) from None
        except (OSError, serial.SerialException, ValueError, struct_error) as e:
            raise self._lost(e) from None
        if err:
            text = err.decode(errors="replace").strip()
            if re.search(rf"OSError: (\[Errno {_ENOSPC}\]|{_ENOSPC}\b)|ENOSPC", text):
                raise DeviceError(
                    f"the charger's filesystem is full while {self.step}: nothing was "
                    "switched over; free space (remove old files) or flash a larger partition"
                )
            last = text.splitlines()[-1] if text else "error"
            raise DeviceError(f"the device failed while {self.step}: {last}")
        return out

    def eval(self, code: str) -> object:
        out = self.exec(code).decode(errors="replace").strip()
        try:
            return ast.literal_eval(out.splitlines()[-1])
        except (ValueError, SyntaxError, IndexError):
            raise DeviceError(
                f"the device on {self.port} answered {out[:60]!r} while {self.step}: "
                "is this a MicroPython charger?"
            ) from None

    def probe(self) -> Facts:
        self.step = "reading what the device is"
        v = self.eval(_PROBE)
        if not (isinstance(v, tuple) and len(v) == 10):
            raise DeviceError(f"the device on {self.port} gave an unexpected description: {v!r}")
        return Facts(*v)  # type: ignore[arg-type]

    def frozen_version(self) -> str | None:
        """The version of the application frozen into the device's image (its ``version``
        module found outside the filesystem: ``.frozen``, or the emulation's built-in
        folders), None when the image carries none. The running program's modules and path
        are put back."""
        self.step = "looking for an application frozen into the image"
        v = self.eval("""import sys
p, m = sys.path[:], sys.modules.pop("version", None)
sys.path[:] = [d for d in p if d not in ("", ".", "/", "/lib") and "app_" not in d]
try:
    import version
    v = str(version.VERSION)
except Exception:
    v = None
sys.modules.pop("version", None)
if m is not None:
    sys.modules["version"] = m
sys.path[:] = p
print(repr(v))""")
        return v if isinstance(v, str) else None

    def put(self, dest: str, data: bytes, chunk: int = 2048) -> None:
        """Write a file (through a temp name first is the caller's business)."""
        self.exec(f"f=open({dest!r},'wb')\nw=f.write")
        for i in range(0, len(data), chunk):
            self.exec(f"w({data[i:i + chunk]!r})")
        self.exec("f.close()")

    def hashes(self, top: str) -> dict[str, str]:
        """sha256 of every file under ``top`` on the device, by path relative to it."""
        return self._hash(f"_walk({top.rstrip('/')!r}, '')")

    def hash_file(self, path: str) -> str | None:
        """sha256 of one file on the device, None if it does not exist."""
        return self._hash(f"try:\n    print('f', _h({path!r}))\nexcept OSError:\n    pass"
                          ).get("f")

    def _hash(self, call: str) -> dict[str, str]:
        code = f"""import os, hashlib, binascii
def _h(p):
    h = hashlib.sha256()
    b = bytearray(512)
    with open(p, "rb") as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(b[:n] if n < 512 else b)
    return binascii.hexlify(h.digest()).decode()
def _walk(p, rel):
    for e in os.ilistdir(p):
        q = p + "/" + e[0]
        r = rel + e[0]
        if e[1] & 0x4000:
            _walk(q, r + "/")
        else:
            print(r, _h(q))
{call}
"""
        out = self.exec(code, timeout=max(self.timeout, 10))
        res = {}
        for line in out.decode(errors="replace").splitlines():
            name, _, digest = line.strip().rpartition(" ")
            if name:
                res[name] = digest
        return res

    def reset(self) -> None:
        """Restart the charger: machine.reset() where the port has it (the ESP32), else a soft
        reboot (Ctrl-D at the friendly REPL), which also runs main.py again."""
        self.step = "resetting the charger"
        try:
            has = self.exec("try:\n    import machine\n    r = hasattr(machine, 'reset')\n"
                            "except Exception:\n    r = False\nprint(r)")
            if b"True" in has:
                self.t.exec_raw_no_follow("import machine\nmachine.reset()")
            else:
                self.t.exit_raw_repl()
                self.serial.write(b"\x04")
        except (TransportError, OSError, serial.SerialException):
            pass  # the device may reset before it answers
        self.t.in_raw_repl = False

    # ---- the maintenance console ----------------------------------------------------------
    def console(self, name: str, timeout: float | None = None) -> dict[str, object]:
        """Send "@name" to the running application; its answer's data. TimeoutError when no
        application answers (at once if a REPL answers instead: nothing runs)."""
        self.step = f"asking the application for @{name}"
        rx = re.compile(rb"@(ok|err) " + re.escape(name.encode()) + rb" ?(.*?)\r?\n")
        try:
            self.serial.reset_input_buffer()
            self.serial.write(b"\r\n@" + name.encode() + b"\r\n")
            buf = b""
            deadline = time.monotonic() + (timeout or self.timeout)
            while time.monotonic() < deadline:
                buf += self.serial.read(self.serial.in_waiting or 1)
                m = rx.search(buf)
                if m:
                    if m.group(1) == b"err":
                        raise DeviceError(
                            f"the charger refused @{name}: {m.group(2).decode(errors='replace')}"
                        )
                    try:
                        data = json.loads(m.group(2) or b"{}")
                    except ValueError:
                        raise DeviceError(
                            f"the charger's answer to @{name} on {self.port} arrived garbled "
                            f"({m.group(2)[:40]!r}): noise on the line; check the cable and "
                            "run the command again"
                        ) from None
                    return data if isinstance(data, dict) else {}
                if b"SyntaxError" in buf and buf.rstrip().endswith(b">>>"):
                    break  # the friendly REPL read our line: no application is running
        except (OSError, serial.SerialException) as e:
            raise self._lost(e) from None
        raise TimeoutError(f"no answer to @{name}")

    def wait_output(self, pattern: bytes, timeout: float) -> bytes:
        """Read the line until ``pattern`` (a regular expression) shows; what was read."""
        rx = re.compile(pattern)
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                buf += self.serial.read(self.serial.in_waiting or 1)
                if rx.search(buf):
                    return buf
        except (OSError, serial.SerialException) as e:
            raise self._lost(e) from None
        raise TimeoutError(pattern.decode())


def read_mpy_header(path: Path) -> tuple[int, int, int]:
    """(.mpy version, sub-version, native arch or 0) of a compiled module."""
    head = path.read_bytes()[:4]
    if len(head) < 4 or head[0] != ord("M"):
        raise ValueError(f"{path} is not a .mpy file")
    return head[1], head[2] & 3, head[2] >> 2
