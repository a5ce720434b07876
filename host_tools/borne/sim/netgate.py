"""A TCP gate between the agent and the CSMS, so the simulation can cut the network.

Cut, it behaves like a dead Wi-Fi link, not like a polite server: bytes in flight are dropped and
new connections hang, so the agent must find out by itself (pings, timeouts) that it is offline.
"""

from __future__ import annotations

import asyncio
import contextlib


class NetGate:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.up = True
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0
        self.down_rate = 0  # bytes/s toward the agent (a slow link); 0: as fast as loopback
        self._up_event = asyncio.Event()
        self._up_event.set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self._drop_all()
        if self._server:
            self._server.close()

    def set_up(self, up: bool) -> None:
        if up and not self.up:
            # Links that lived through the cut are dead now: reset them.
            self._drop_all()
            self._up_event.set()
        elif not up:
            self._up_event.clear()
        self.up = up

    def _drop_all(self) -> None:
        for a, b in list(self._pairs):
            a.transport.abort()
            if b is not None:
                b.transport.abort()
        self._pairs.clear()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (w, None)
        self._pairs.add(pair)
        await self._up_event.wait()  # a connection made while cut hangs until the link is back
        if pair not in self._pairs:
            return
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            self._pairs.discard(pair)
            w.transport.abort()
            return
        self._pairs.discard(pair)
        pair = (w, uw)
        self._pairs.add(pair)
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w, down=True),
                             return_exceptions=True)
        self._pairs.discard(pair)
        for x in (w, uw):
            with contextlib.suppress(Exception):
                x.close()

    async def _pipe(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, down: bool = False
    ) -> None:
        while data := await r.read(4096):
            rate = self.down_rate if down else 0
            step = 512 if rate else len(data)
            for i in range(0, len(data), step):
                if self.up:  # cut: the bytes are lost on the air
                    w.write(data[i : i + step])
                    await w.drain()
                if rate:
                    await asyncio.sleep(step / rate)
        w.close()
