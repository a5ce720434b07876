"""A charger on a serial line, without hardware: the MicroPython unix port behind a pseudo-terminal.

What a host tool sees at ``SerialDevice.port`` is what a MicroPython ESP32 shows on its USB serial
port. The unix port itself serves the friendly REPL, the raw REPL and raw-paste mode (mpremote's
protocol) and runs the application: ``device/boot.py`` mounts the device's filesystem (a host
folder, with the partition's size enforced) as ``/`` and runs ``boot.py`` and ``main.py`` from it,
as a board does after reset.

This bridge adds only what a board does and a process does not:

- **Soft reboot**: Ctrl-D makes the unix port exit; the bridge starts it again, printing
  ``MPY: soft reboot`` as a board does. Asked from the raw REPL, the new process comes back in the
  raw REPL without running ``main.py`` (the board's rule, which mpremote relies on).
- **Reset**: ``machine.reset()`` or the watchdog (the process ends: exit code 4, or killed, as
  the ESP32 emulation does it) boots it again with ``main.py``. A Ctrl-C that ended the process
  (where the unix port leaves SIGINT at its default action) brings back only the REPL.
- **The board's UART buffer**: after a Ctrl-C to a running program, what the host sends next
  waits until the REPL is up (the unix port flushes its terminal's input when its REPL starts).
- **The board's line discipline**: ``\\n`` leaves the device as ``\\r\\n`` (the unix port on a pty
  would send ``\\r\\r\\n`` for the REPL's own line ends); Ctrl-C interrupts a running program (the
  device's own pty delivers SIGINT, which the unix port turns into KeyboardInterrupt).
- **The cable and the charger's health**, for tests: ``unplug()``/``plug()`` make the port vanish
  and come back under the same name (the charger keeps running; what it prints meanwhile is lost,
  like a UART with nobody listening), ``hang()`` makes the device stop answering (the process is
  stopped), ``power_cycle()`` restarts it.

Two pseudo-terminals: the port the tools open (raw, like a USB CDC/UART bridge), and the unix port's
console; the bridge thread copies bytes between them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

from borne import paths

EXIT_RESET = 4  # the unix port's exit code for machine.reset() (see borne.sim.agent)
BOOT_SCRIPT = Path(__file__).with_name("device") / "boot.py"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'


def _raw_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave


class SerialDevice:
    """One emulated charger. ``port`` is a stable path (a symlink to the current pty)."""

    def __init__(
        self,
        flash: Path,
        port: Path,
        *,
        builtin: list[Path] | None = None,
        chip: Path | None = None,
        argv: list[str] | None = None,
        capacity: int = 2 * 1024 * 1024,
        heapsize: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.flash = Path(flash)
        self.port = str(port)
        self.builtin = [Path(p) for p in (builtin or [])]
        # NVS and OTA data: beside the filesystem's folder, not in it (a full erase wipes both).
        self.chip = Path(chip) if chip else self.flash.with_name(self.flash.name + ".chip")
        self.argv = list(argv or [])
        self.capacity = capacity
        self.heapsize = heapsize
        self.env = dict(env or {})
        self.output = bytearray()  # everything the device sent, for test diagnostics
        self.boots = 0
        self._lock = threading.Lock()
        self._client: tuple[int, int] | None = None  # the port's pty (master, slave)
        self._console: tuple[int, int] | None = None  # the unix port's pty
        self._proc: subprocess.Popen[bytes] | None = None
        self._raw = False  # the device is in the raw REPL (from what it printed)
        self._tail = b""  # last bytes printed, to find banners across reads
        self._last_in = b""  # the last byte the host sent
        self._cr = False  # the last byte out was \r
        self._hung = False
        self._mode = "boot"
        self._at_repl = False
        self._held: bytearray | None = None  # host bytes kept while the REPL starts
        self._held_since = 0.0
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None

    # ---- life -----------------------------------------------------------------------------
    def start(self) -> SerialDevice:
        self.flash.mkdir(parents=True, exist_ok=True)
        self.chip.mkdir(parents=True, exist_ok=True)
        self._console = os.openpty()
        self._console_mode(self._console[1])
        os.set_blocking(self._console[0], False)
        self.plug()
        self._spawn("boot")
        self._thread = threading.Thread(target=self._pump, name="serialdev", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        if self._thread:
            self._thread.join(5)
        self._kill()
        self.unplug()
        for fd in (*(self._console or ()), self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> SerialDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _console_mode(fd: int) -> None:
        # While a program runs, a board's UART neither echoes nor edits lines, and Ctrl-C
        # interrupts: no ICANON/ECHO, ISIG on with only VINTR; nothing translated either way.
        # (The unix port's REPL switches to raw mode itself while it reads a line.)
        attrs = termios.tcgetattr(fd)
        attrs[0] = 0  # iflag
        attrs[1] = 0  # oflag: no OPOST, the bridge adds the board's \r
        attrs[3] = termios.ISIG  # lflag
        cc = attrs[6]
        for i in (termios.VQUIT, termios.VSUSP, termios.VEOF):
            cc[i] = 0
        cc[termios.VINTR] = 3
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)

    def _spawn(self, mode: str) -> None:
        # "boot": boot.py and main.py, then the REPL, as after a reset; "raw": the raw REPL
        # after a soft reboot asked from it (main.py does not run); "repl": the friendly REPL
        # alone (a Ctrl-C that ended the process).
        assert self._console is not None
        slave = self._console[1]
        self._console_mode(slave)  # a REPL killed in raw mode left the terminal so
        env = dict(
            os.environ,
            BORNE_DEV_FLASH=str(self.flash.resolve()),
            BORNE_DEV_CAPACITY=str(self.capacity),
            BORNE_DEV_BUILTIN=":".join(str(p.resolve()) for p in self.builtin),
            BORNE_DEV_CHIP=str(self.chip.resolve()),
            BORNE_ESP32_STATE="/.chip",
            BORNE_DEV_ARGV=" ".join(self.argv),
            **self.env,
        )
        env.pop("BORNE_DEV_REPL_ONLY", None)
        cmd = [paths.micropython()]
        if self.heapsize:
            cmd += ["-X", f"heapsize={self.heapsize}"]
        if mode != "boot":
            env["BORNE_DEV_REPL_ONLY"] = "1"
        cmd += ["-i", str(BOOT_SCRIPT)]

        def ctty() -> None:  # runs in the child: its console pty becomes its controlling tty
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self._proc = subprocess.Popen(
            cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=self.flash,
            start_new_session=True, preexec_fn=ctty,
        )
        self._mode = mode
        self._at_repl = False
        self._tail = b""
        if mode == "boot":
            self.boots += 1
        if mode == "raw":
            # Back to the raw REPL: enter it in the new process and show only its prompt.
            os.write(self._console[0], b"\x01")
            self._swallow_until_raw()

    def _kill(self) -> None:
        p = self._proc
        if p and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGCONT)
                p.kill()
            p.wait(5)

    # ---- the cable and the device's health -----------------------------------------------
    def plug(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            self._client = _raw_pty()
            link = Path(self.port)
            tmp = link.with_name(link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(os.ttyname(self._client[1]))
            tmp.replace(link)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def unplug(self) -> None:
        with self._lock:
            if self._client is None:
                return
            Path(self.port).unlink(missing_ok=True)
            for fd in self._client:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._client = None
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    @property
    def plugged(self) -> bool:
        return self._client is not None

    def hang(self) -> None:
        """The device stops answering (its program is stopped where it is)."""
        self._hung = True
        if self._proc:
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        self._hung = False
        if self._proc:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def power_cycle(self) -> None:
        """Power off and on: the program restarts from boot.py/main.py."""
        self._hung = False
        self._kill()  # the pump sees the exit and boots it again

    # ---- the bridge ------------------------------------------------------------------------
    def _pump(self) -> None:
        assert self._console is not None
        console = self._console[0]
        while not self._stop:
            client = self._client[0] if self._client else None
            fds = [self._wake_r, console] + ([client] if client is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.1)
            except (OSError, ValueError):
                continue  # the port was closed under us (unplug)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if self._held is not None and time.monotonic() - self._held_since > 2:
                self._release()  # the program caught Ctrl-C and goes on: hold no longer
            if console in ready and not self._hung:
                self._from_device(console)
            if client is not None and client in ready:
                self._from_host(client, console)
            p = self._proc
            if p is not None and p.poll() is not None and not self._stop:
                self._reboot(p.returncode)

    def _from_device(self, console: int) -> None:
        try:
            data = os.read(console, 4096)
        except OSError:
            return
        self._note(data)
        self._send(self._board_newlines(data))

    def _from_host(self, client: int, console: int) -> None:
        try:
            data = os.read(client, 4096)
        except OSError:
            return
        if not data:
            return
        self._last_in = data[-1:]
        if self._hung:
            return  # nothing reads the UART
        if self._held is None and not self._at_repl and b"\x03" in data:
            # Ctrl-C to a running program: what follows waits in the "UART buffer" until the
            # REPL is up (the unix port flushes its terminal's input when the REPL starts; a
            # board's UART keeps it).
            cut = data.index(b"\x03") + 1
            self._write_console(console, data[:cut])
            self._held = bytearray(data[cut:])
            self._held_since = time.monotonic()
            return
        if self._held is not None:
            self._held += data
            return
        self._write_console(console, data)

    def _write_console(self, console: int, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError):  # input buffer full: lost, as on a UART
            os.write(console, data)

    def _release(self) -> None:
        assert self._console is not None
        if self._held is not None:
            held, self._held = bytes(self._held), None
            self._write_console(self._console[0], held)

    def _note(self, data: bytes) -> None:
        self.output += data
        tail = self._tail + data
        if b">>> " in tail or RAW_BANNER in tail:
            self._at_repl = True
            self._release()
        if RAW_BANNER in tail:
            self._raw = True
        if FRIENDLY_BANNER in tail:
            self._raw = tail.rfind(RAW_BANNER) > tail.rfind(FRIENDLY_BANNER)
        self._tail = tail[-64:]

    def _board_newlines(self, data: bytes) -> bytes:
        # A lone \n becomes \r\n (the board's cooked stdout); \r\n stays as it is.
        out = bytearray()
        for b in data:
            if b == 10 and not self._cr:
                out += b"\r"
            out.append(b)
            self._cr = b == 13
        return bytes(out)

    def _send(self, data: bytes) -> None:
        with self._lock:
            if self._client is None:
                return  # nobody listening: lost
            master = self._client[0]
            try:
                os.write(master, data)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EIO):
                    raise

    def _reboot(self, code: int) -> None:
        soft_raw = self._raw and self._last_in == b"\x04"
        self._raw = False
        self._last_in = b""
        if code == -signal.SIGINT:
            # Ctrl-C where the unix port leaves SIGINT at its default (before boot.py, between
            # main.py's end and the REPL) ends the process; a board stops there at its REPL
            # (main.py does not run again: after a maintenance boot the application would).
            self._send(b"\r\nKeyboardInterrupt\r\n")
            self._spawn("repl")
        elif code == EXIT_RESET or code < 0:  # machine.reset(), the watchdog, a power cycle
            self._send(b"\r\nets Jun  8 2016 00:22:57\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13\r\n")
            self._spawn("boot")
        else:  # Ctrl-D: the unix port's REPL ends, the board's reboots softly
            self._send(b"MPY: soft reboot\r\n")
            self._spawn("raw" if soft_raw else "boot")

    def _swallow_until_raw(self) -> None:
        # The new process prints its friendly banner before the raw REPL's: show only the latter.
        assert self._console is not None
        seen = b""
        deadline = time.monotonic() + 10
        while RAW_BANNER not in seen and time.monotonic() < deadline:
            r, _, _ = select.select([self._console[0]], [], [], 0.1)
            if r:
                with contextlib.suppress(OSError):
                    seen += os.read(self._console[0], 4096)
        rest = seen[seen.find(RAW_BANNER):] if RAW_BANNER in seen else seen
        self._note(rest)
        self._send(self._board_newlines(rest))


@contextlib.contextmanager
def running(flash: Path, port: Path, **kw: object) -> Iterator[SerialDevice]:
    """A started device, stopped at the end."""
    dev = SerialDevice(flash, port, **kw)  # type: ignore[arg-type]
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()
