"""The agent process: the firmware's main.py under the MicroPython unix port.

Power is the process: `power_cut` kills it at once (no clean shutdown), `power_on` starts it
again on the same flash directory. A reset (exit code 4) or a crash reboots it, as the
charger's watchdog would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from borne.sim.options import Runtime

log = logging.getLogger("borne.sim.agent")

EXIT_RESET = 4


@dataclass(frozen=True)
class Security:
    """The OCPP security profile the charger is provisioned with, and its credentials.

    1 = ws:// + HTTP Basic (auth_key), 2 = wss:// + HTTP Basic, 3 = wss:// + client certificate.
    `ca` is the CSMS's root CA (PEM file) every wss:// connection is checked against.
    """

    profile: int = 0
    auth_key: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def argv(self) -> list[str]:
        out = ["--profile", str(self.profile)]
        if self.auth_key:
            out += ["--auth-key", self.auth_key]
        for name, path in (("--ca", self.ca), ("--cert", self.cert), ("--key", self.key)):
            if path is not None:
                out += [name, str(Path(path).resolve())]
        return out


class Agent:
    """The agent process on `flash`: `runtime` says how the interpreter runs, `board` which
    board's code it loads, `args` are the board's `--key value` arguments (identity, wires,
    hardware, security, ...: the option objects' `argv()`, put together by the Simulator)."""

    def __init__(
        self,
        flash: Path,
        args: list[str],
        runtime: Runtime | None = None,
        board: str = "unix_sim",
        on_line: Callable[[str], None] | None = None,
        on_device: Callable[[str], None] | None = None,
        on_boot: Callable[[], None] | None = None,
    ) -> None:
        self.flash = flash
        self.args = list(args)
        self.runtime = runtime or Runtime()
        self.board = board  # unix_sim, or esp32_wallbox on the emulated chip (sim/mpy/)
        self.on_line = on_line
        # Console lines "@tel ..." / "@led ..." (the ESP32 board's telemetry), without the "@"
        self.on_device = on_device
        self.on_boot = on_boot  # called as each agent process starts
        self.lines: deque[str] = deque(maxlen=400)
        self.all_lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.powered = False
        self.boots = 0
        self.exit_codes: list[int] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    def board_args(self) -> list[str]:
        """The board's `--key value` arguments (given in BORNE_ARGS, see `_supervise`).

        The agent runs in its flash folder, so the flash is ".": its store's paths are then as
        short as a charger's ("./data/..." for "/data/..."), not the host's temporary folder,
        whose length every open path and journal name kept in the heap (~0.3 KiB at a session).
        """
        return ["--flash", ".", *self.args, *self.runtime.argv()]

    def argv(self) -> list[str]:
        return [*self.runtime.interpreter(), *self.board_args()]

    async def power_on(self) -> None:
        if self.powered:
            return
        self.powered = True
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def power_cut(self) -> None:
        # The process dies where it is first; what it printed before is still in the pipe and
        # is read to its end, so the log shows every line up to the cut (the last lines are the
        # ones that explain what a cut left behind).
        self.powered = False
        await self._kill()
        sup, self._supervisor = self._supervisor, None
        if sup:
            _, pending = await asyncio.wait({sup}, timeout=2)
            if pending:  # (it ends by itself once its process is gone: a bound, no more)
                sup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sup

    async def _kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def _supervise(self) -> None:
        try:
            while self.powered:
                self.flash.mkdir(parents=True, exist_ok=True)
                # The board's arguments go in the environment, one a line, not on the command
                # line: the unix port interns every command-line argument as a qstr, which a
                # charger never holds (the memory figures would count some 40 of them).
                env = dict(os.environ, MICROPYPATH=self.runtime.micropypath(self.board),
                           BORNE_ARGS="\n".join(self.board_args()))
                self.proc = await asyncio.create_subprocess_exec(
                    *self.runtime.interpreter(),
                    cwd=self.flash,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                if not self.powered:  # the power went as it started
                    await self._kill()
                    return
                self.boots += 1
                if self.on_boot:
                    self.on_boot()
                await self._note(f"[sim] agent started (boot {self.boots}, pid {self.proc.pid})")
                assert self.proc.stdout is not None
                while raw := await self.proc.stdout.readline():
                    await self._note(raw.decode(errors="replace").rstrip())
                code = await self.proc.wait()
                if not self.powered:
                    await self._note("[sim] power cut")
                    return
                self.exit_codes.append(code)
                what = "reset" if code == EXIT_RESET else f"exited with code {code}"
                await self._note(f"[sim] agent {what}; rebooting")
                await asyncio.sleep(0.2 if code == EXIT_RESET else 1.0)
        except asyncio.CancelledError:
            await self._kill()
            raise

    async def _note(self, line: str) -> None:
        if line.startswith(("@tel ", "@led ")) and self.on_device:
            self.on_device(line[1:])
        self.lines.append(line)
        self.all_lines.append(line)
        if self.runtime.log_file:
            with self.runtime.log_file.open("a") as f:
                f.write(line + "\n")
        if self.on_line:
            self.on_line(line)
        async with self._changed:
            self._changed.notify_all()

    async def wait_line(self, pattern: str, timeout: float = 20, start: int = 0) -> str:
        """The first output line (from index `start`) matching the regular expression."""
        rx = re.compile(pattern)

        async def find() -> str:
            async with self._changed:
                while True:
                    for line in self.all_lines[start:]:
                        if rx.search(line):
                            return line
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            tail = "\n".join(list(self.lines)[-25:])
            raise AssertionError(
                f"agent printed no line matching {pattern!r} within {timeout} s; "
                f"last lines:\n{tail}"
            ) from None
