"""A second CSMS on another stack, for the interoperability test: tests/interop/csms.js, the
`ocpp-rpc` package on Node.js (its own WebSocket library, `ws`, and its own schema validator,
ajv, in strict mode). Installed by `make test` into build/interop (BORNE_NODE_PEER); this side
starts it, reads what it prints and sends it CALLs for the charger."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).parent / "interop" / "csms.js"
REPO = Path(__file__).resolve().parents[1]

Event = dict[str, Any]


class NodeCsms:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.url = ""
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        modules = Path(os.environ.get("BORNE_NODE_PEER", REPO / "build" / "interop"))
        modules = modules / "node_modules"
        node = shutil.which("node")
        if node is None or not (modules / "ocpp-rpc").is_dir():
            pytest.fail("the Node CSMS peer is not installed (node, and ocpp-rpc in "
                        f"{modules}): `make test` installs it with npm")
        self._proc = await asyncio.create_subprocess_exec(
            node, str(SCRIPT), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_PATH": str(modules)})
        self._reader = asyncio.create_task(self._read())
        up = await self.wait(lambda e: e.get("ev") == "listening", "the Node CSMS to listen")
        self.url = f"ws://127.0.0.1:{up['port']}"

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for line in self._proc.stdout:
            self.events.append(json.loads(line))
            async with self._changed:
                self._changed.notify_all()

    async def wait(self, pred: Callable[[Event], Any], what: str, timeout: float = 20,
                   after: int = 0) -> Event:
        """The first event (from index `after`) that `pred` accepts."""

        def find() -> Event | None:
            return next((e for e in self.events[after:] if pred(e)), None)

        async def loop() -> Event:
            async with self._changed:
                while (e := find()) is None:
                    await self._changed.wait()
                return e

        try:
            return await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None

    async def wait_in(self, method: str, match: Callable[[dict[str, Any]], Any] | None = None,
                      after: int = 0, timeout: float = 20) -> dict[str, Any]:
        """The params of the first CALL `method` the charger made (from event `after`)."""
        e = await self.wait(lambda e: e.get("ev") == "in" and e["method"] == method
                            and (match is None or match(e["params"])), method, timeout, after)
        params: dict[str, Any] = e["params"]
        return params

    async def call(self, method: str, params: dict[str, Any], timeout: float = 20) -> Any:
        """A CALL to the charger; its answer (AssertionError with the error if it failed)."""
        assert self._proc is not None and self._proc.stdin is not None
        n = next(self._ids)
        self._proc.stdin.write((json.dumps({"id": n, "method": method, "params": params})
                                + "\n").encode())
        await self._proc.stdin.drain()
        e = await self.wait(lambda e: e.get("id") == n, f"the answer to {method}", timeout)
        assert "error" not in e, f"{method}: {e}"
        return e["result"]

    def violations(self) -> list[str]:
        return [e["error"] for e in self.events if e.get("ev") == "violation"]
