# On-target tests for net/sntp.py, the time an untrusted clock gets before a TLS connection:
# which replies count (a server's, to our request, synchronised), the clock set through the
# clock module, a forged reply not taken, and a silent server that never holds the loop (a UDP
# socket on loopback plays the server, a second the resolver that names it).
import asyncio
import struct
import sys
import time

import clock
from test_dns import LoopWatch, Resolver, UdpPeer

from net import sntp

NTP_2026 = 1767225600 + 2208988800  # 2026-01-01T00:00:00Z in NTP seconds


def _reply(req, secs=NTP_2026, head=b"\x24\x01\x00\xec", originate=None):
    # LI 0, version 4, mode 4 (server), stratum 1; originate = the request's transmit time
    o = req[40:48] if originate is None else originate
    return head + bytes(20) + o + bytes(8) + struct.pack("!II", secs, 0)


def test_replies():
    nonce = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    req = sntp.request(nonce)
    assert len(req) == 48 and req[0] == 0x23 and req[40:48] == nonce  # v4, client
    assert sntp.parse(_reply(req), nonce) == 1767225600
    assert sntp.parse(_reply(req, secs=5), nonce) == 5 + 2**32 - 2208988800  # era 1: 2036+
    for bad in (_reply(req, originate=bytes(8)),  # not an answer to our request
                _reply(req, head=b"\x23\x01\x00\xec"),  # mode 3: a client's
                _reply(req, head=b"\xe4\x01\x00\xec"),  # leap indicator 3: unsynchronised
                _reply(req, head=b"\x24\x00\x00\xec"),  # stratum 0: kiss-o'-death
                _reply(req, head=b"\x24\x10\x00\xec"),  # stratum 16: unsynchronised
                _reply(req, secs=0),  # no transmit time
                _reply(req)[:47]):  # short
        assert sntp.parse(bad, nonce) is None, bad


class Server(UdpPeer):
    # An SNTP server: answers each request, with a wrong originate timestamp while forging.
    def __init__(self):
        self.forge = False
        super().__init__()

    def answer(self, d):
        return _reply(d, originate=bytes(8) if self.forge else None)


def _cold():
    clock._source = None
    clock._off = -clock._local() + 946684800  # the ESP32 after a power cut: 2000-01-01


def _reset():
    clock._off = 0
    clock._source = None


async def test_the_clock_is_set_from_the_named_server():
    r = Resolver()  # every name is 10.1.2.3 ...
    srv = Server()
    _cold()
    try:
        # ... so the server is named by its address here (no resolver asked); then by a name:
        # the resolver is asked, and no server answers at the address it gives
        assert await sntp.sync(("127.0.0.1", srv.port), r.addr())
        assert clock.trusted() and clock.source() == "sntp"
        assert abs(clock.now() - 1767225600) <= 1 and srv.requests == 1 and r.requests == 0
        assert "net.sntp" not in sys.modules, "dropped after (net.dns: held by test_dns)"
        _cold()
        assert not await sntp.sync(("time.test", srv.port), r.addr(), 100, 1)
        assert r.requests == 1 and not clock.trusted()
        assert not await sntp.sync(("time.test", srv.port), None)  # no resolver: not asked
        assert r.requests == 1
    finally:
        srv.close()
        r.close()
        _reset()


async def test_a_forged_reply_is_not_taken():
    srv = Server()
    srv.forge = True
    _cold()
    try:
        assert not await sntp.sync(("127.0.0.1", srv.port), ("127.0.0.1", 9), 200, 2)
        assert srv.requests == 2 and not clock.trusted()
        srv.forge = False
        assert await sntp.sync(("127.0.0.1", srv.port), ("127.0.0.1", 9), 200, 2)
        assert clock.trusted()
    finally:
        srv.close()
        _reset()


async def test_a_silent_server_never_holds_the_loop():
    srv = Server()
    srv.silent = True
    _cold()
    try:
        async with LoopWatch() as w:
            t0 = time.ticks_ms()
            assert not await sntp.sync(("127.0.0.1", srv.port), ("127.0.0.1", 9), 300, 2)
            took = time.ticks_diff(time.ticks_ms(), t0)
        assert 500 <= took < 2000, took  # two tries of 300 ms, bounded
        assert srv.requests == 2 and not clock.trusted()
        assert w.worst < 100, w.worst
    finally:
        srv.close()
        _reset()
