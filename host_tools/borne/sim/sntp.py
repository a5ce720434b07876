"""The simulation's SNTP server (RFC 4330): the time source an ESP32 asks before it may check a
CSMS certificate. It answers on a loopback UDP port with the host's clock, under the name NAME
(the simulation's resolver knows it; the ESP32 board's own server name). Knobs: `silent` drops
requests (no time source answers); `hold()` keeps them unanswered until `release()` (a slow
server); `forge` answers with an originate timestamp that is not the request's (a forged or
stray reply, which the charger must not take); `garbage` answers with a datagram that is no
SNTP reply. `wait_request()` waits until a request came."""

from __future__ import annotations

import asyncio
import struct
import time

from borne.sim.dnsserver import HoldingServer

NTP_TO_UNIX = 2208988800  # seconds from 1900-01-01 to 1970-01-01
NAME = "pool.ntp.org"  # the server's name on the simulated network


def answer(request: bytes, now: float) -> bytes | None:
    """The server's reply to a client request, or None for anything that is not one."""
    if len(request) < 48 or request[0] & 0x07 != 3:  # mode 3 = client
        return None
    secs = int(now) + NTP_TO_UNIX
    frac = int((now % 1) * 2**32)
    version = (request[0] >> 3) & 0x07 or 4
    head = bytes([(version << 3) | 4, 1, 0, 0xEC])  # LI 0, server, stratum 1, precision ~1 us
    out = head + struct.pack("!II", 0, 0) + b"GPS\x00"
    out += struct.pack("!II", secs, frac)  # reference time
    out += request[40:48]  # originate = the client's transmit time
    out += struct.pack("!IIII", secs, frac, secs, frac)  # receive, transmit
    return out


class SntpServer(HoldingServer):
    def __init__(self) -> None:
        super().__init__()
        self.silent = False
        self.forge = False
        self.garbage = False
        self.requests = 0
        self.answered = 0
        self._asked = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        self._transport = transport
        port: int = transport.get_extra_info("sockname")[1]
        return port

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests += 1
        self._asked.set()
        if self.silent or self._transport is None:
            return
        self._take(data, addr)

    def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(data, time.time())
        if not reply or self._transport is None:
            return
        if self.garbage:
            reply = b"\x00garbage" + bytes(40)
        elif self.forge:
            reply = reply[:24] + bytes(b ^ 0x5A for b in reply[24:32]) + reply[32:]
        self.answered += 1
        self._transport.sendto(reply, addr)

    async def wait_request(self, count: int = 1, timeout: float = 20) -> None:
        """Until `count` requests have come in all; AssertionError after `timeout` s."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.requests < count:
            self._asked.clear()
            try:
                await asyncio.wait_for(self._asked.wait(), max(end - loop.time(), 0))
            except TimeoutError:
                raise AssertionError(
                    f"{self.requests} SNTP requests in {timeout} s, {count} awaited") from None

    def stop(self) -> None:
        if self._transport:
            self._transport.close()
            self._transport = None
