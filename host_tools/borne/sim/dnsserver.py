"""A small DNS server on a loopback UDP port: what the simulated charger's resolver is.

It answers A queries for the names it is given, NXDOMAIN for the others, or, with `silent`,
nothing at all (a resolver that is down: the charger must not wait on it). `hold()` keeps the
queries unanswered until `release()` answers them (a slow resolver); `wait_query()` waits until
a name was asked.
"""

from __future__ import annotations

import asyncio
import struct


def _qname(d: bytes, i: int) -> tuple[str, int]:
    labels = []
    while d[i]:
        n = d[i]
        labels.append(d[i + 1 : i + 1 + n].decode(errors="replace"))
        i += n + 1
    return ".".join(labels), i + 1


class HoldingServer(asyncio.DatagramProtocol):
    """A UDP server of the simulation that can hold its answers (a slow resolver, a slow time
    server): hold(), then release(). Subclasses answer a request in _answer()."""

    def __init__(self) -> None:
        self.held: list[tuple[bytes, tuple[str, int]]] | None = None

    def _take(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.held is not None:
            self.held.append((data, addr))
            return
        self._answer(data, addr)

    def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        raise NotImplementedError

    def hold(self) -> None:
        """Requests wait unanswered from now until release()."""
        if self.held is None:
            self.held = []

    def release(self) -> None:
        """Answer the held requests (as the server's knobs stand now) and stop holding."""
        held, self.held = self.held or [], None
        for data, addr in held:
            self._answer(data, addr)


class DnsServer(HoldingServer):
    def __init__(self, names: dict[str, str] | None = None) -> None:
        super().__init__()
        self.names = dict(names or {})
        self.silent = False
        self.queries: list[str] = []
        self._asked = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None
        self.addr = ""

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0))
        self.transport = transport  # type: ignore[assignment]
        port = transport.get_extra_info("sockname")[1]
        self.addr = f"127.0.0.1:{port}"
        return self.addr

    def stop(self) -> None:
        if self.transport:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            name, _ = _qname(data, 12)
        except IndexError:
            return
        self.queries.append(name)
        self._asked.set()
        self._take(data, addr)

    async def wait_query(self, name: str, timeout: float = 20) -> None:
        """Until the resolver has been asked for `name`; AssertionError after `timeout` s."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while name.lower() not in (q.lower() for q in self.queries):
            self._asked.clear()
            left = end - loop.time()
            try:
                await asyncio.wait_for(self._asked.wait(), max(left, 0))
            except TimeoutError:
                raise AssertionError(
                    f"the resolver was not asked for {name} within {timeout} s "
                    f"(asked: {sorted(set(self.queries))})") from None

    def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            qid, _flags, qd = struct.unpack_from("!HHH", data)
            name, end = _qname(data, 12)
        except (struct.error, IndexError):
            return
        if self.silent or qd != 1 or self.transport is None:
            return
        question = data[12 : end + 4]
        ip = self.names.get(name.lower())
        if ip is None:
            head = struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0)  # NXDOMAIN
            self.transport.sendto(head + question, addr)
            return
        head = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes(
            int(x) for x in ip.split("."))
        self.transport.sendto(head + question + answer, addr)
