"""A client of the simulator's control protocol, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any


class Control:
    """A client of the simulator's control protocol, over its real socket."""

    def __init__(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.r, self.w = r, w

    async def raw(self, line: bytes) -> dict[str, Any]:
        self.w.write(line)
        await self.w.drain()
        reply = await asyncio.wait_for(self.r.readline(), 10)
        assert reply, "the control socket closed"
        data: dict[str, Any] = json.loads(reply)
        return data

    async def __call__(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await self.raw(json.dumps({"cmd": cmd, **args}).encode() + b"\n")

    async def wait_state(self, pred: Any, what: str, timeout: float = 20) -> dict[str, Any]:
        """Poll `state` until `pred(state)` holds; a bounded wait with a clear failure."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: dict[str, Any] = {}
        while loop.time() < deadline:
            last = await self("state")
            if pred(last):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; state: {last}")


@contextlib.asynccontextmanager
async def running(sim: Any, tail: int | None = None) -> AsyncIterator[Any]:
    """Start a Simulator, stop it afterwards, and print the agent's log (its last `tail`
    lines), which pytest shows only when the test failed."""
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
        lines = sim.agent.all_lines if sim.agent else []
        print("---- agent log ----")
        print("\n".join(lines[-tail:] if tail else lines))


@contextlib.asynccontextmanager
async def controlling(sim: Any) -> AsyncIterator[Control]:
    """A control-protocol client of a running Simulator, over a socket of its own."""
    server = await sim.serve_control(0)
    r, w = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        yield Control(r, w)
    finally:
        w.close()
        server.close()
