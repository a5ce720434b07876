"""A broker that misbehaves on purpose, on a loopback port: for the MQTT bad-input tests and
the loop-stall benchmark. Real brokers (mosquitto) cover the good cases.

Modes: "silent" accepts and never answers; "slow" accepts the session and then reads nothing
(its receive buffer is small, so the charger's socket fills); "refuse" answers CONNACK with
"not authorized"; "garbage" accepts and then sends a run of malformed and foreign packets;
"midpacket" accepts and closes in the middle of a packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

CONNACK_OK = b"\x20\x02\x00\x00"


def publish(topic: str, payload: bytes, flags: int = 0, pid: int | None = None) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", pid) if pid is not None else b"")
    body += payload
    return bytes([0x30 | flags]) + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def garbage(base: str) -> list[bytes]:
    """What "garbage" sends after CONNACK, in order: every packet but the last is wrong."""
    return [
        publish("someone/else/set", b'{"pause": true}'),  # a topic that is not ours
        publish(f"{base}/set", b"x" * 3000),  # longer than any command
        publish(f"{base}/set", b'{"pause": true}', flags=0x04, pid=7),  # QoS 2: never asked
        b"\x30\x05\x00\x09ab",  # topic length past the packet's end
        b"\x90\x03\x00\x01",  # SUBACK cut short... and then
        b"\x00\x00",  # a reserved packet type: the charger drops the connection
    ]


class FakeBroker:
    def __init__(self, mode: str, base: str = "borne/borne-sim-0001") -> None:
        self.mode = mode
        self.base = base
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connects = 0
        self.received = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.mode == "slow":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.bind(("127.0.0.1", 0))
        self.server = await asyncio.start_server(self._serve, sock=sock)
        self.port = int(sock.getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self.server:
            self.server.close()
        for w in self._writers:
            w.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        if self.server:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connects += 1
        self._writers.append(w)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if self.mode == "silent":
                while await r.read(4096):
                    pass
                return
            head = await r.readexactly(2)  # CONNECT (short enough for one length byte here)
            rest = head[1]
            if rest & 0x80:
                rest = (rest & 0x7F) | (await r.readexactly(1))[0] << 7
            await r.readexactly(rest)
            if self.mode == "refuse":
                w.write(b"\x20\x02\x00\x05")
                await w.drain()
                await r.read(1)
                return
            w.write(CONNACK_OK)
            await w.drain()
            if self.mode == "slow":
                await asyncio.sleep(3600)  # read nothing: the charger's socket fills up
            elif self.mode == "garbage":
                for pkt in garbage(self.base):
                    w.write(pkt)
                    await w.drain()
                    await asyncio.sleep(0.05)
            elif self.mode == "midpacket":
                w.write(publish(f"{self.base}/set", b'{"pause": true}')[:9])
                await w.drain()
                return
            while data := await r.read(4096):
                self.received += len(data)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            w.close()
            if task is not None:
                self._tasks.discard(task)
