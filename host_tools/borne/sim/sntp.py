"""The simulation's SNTP server (RFC 4330): the time source an ESP32 asks before it may check a
CSMS certificate. It answers on a loopback UDP port with the host's clock; `silent` makes it
drop requests (no time source answers)."""

from __future__ import annotations

import asyncio
import struct
import time

NTP_TO_UNIX = 2208988800  # seconds from 1900-01-01 to 1970-01-01


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


class SntpServer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.silent = False
        self.requests = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        self._transport = transport
        port: int = transport.get_extra_info("sockname")[1]
        return port

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests += 1
        if self.silent or self._transport is None:
            return
        reply = answer(data, time.time())
        if reply:
            self._transport.sendto(reply, addr)

    def stop(self) -> None:
        if self._transport:
            self._transport.close()
            self._transport = None
