# On-target tests for net/dns.py, the resolver the OCPP connection and MQTT share: the answer
# parser, the memo kept while the TTL lasts and served past it while the resolver is silent,
# and a silent resolver that never holds the loop (a UDP socket on loopback plays the resolver).
import asyncio
import socket
import struct
import time

from net import dns


def _answer(qid, rcode=0, ip=None, ttl=60):
    q = b"\x06broker\x04home\x00\x00\x01\x00\x01"
    an = 1 if ip else 0
    head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, an, 0, 0)
    body = q
    if ip:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + bytes(ip)
    return head + body


def test_dns_answers():
    assert dns.parse(_answer(7, ip=(10, 1, 2, 3)), 7) == ("10.1.2.3", 60)
    assert dns.parse(_answer(8, ip=(10, 1, 2, 3)), 7) is None  # not our query
    for bad, why in ((_answer(7, rcode=3), "does not exist"), (_answer(7), "no address"),
                     (_answer(7, ip=(1, 2, 3, 4))[:-6], "malformed")):
        try:
            dns.parse(bad, 7)
            assert False, why
        except dns.DnsError as e:
            assert why in str(e), (why, e)
    assert dns.numeric("192.168.1.20") and not dns.numeric("broker.lan")
    assert not dns.numeric("1.2.3.256")


class UdpPeer:
    # A peer on a loopback UDP port (this file's resolver, test_sntp.py's time server): counts
    # the datagrams it gets and sends back answer(datagram), or nothing while silent.
    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.port = _bind(self.s)
        self.s.setblocking(False)
        self.silent = False
        self.requests = 0
        self.task = asyncio.create_task(self._serve())

    def addr(self):
        # (ip, port) as board.dns_server() gives it
        return "127.0.0.1", self.port

    async def _serve(self):
        while True:
            try:
                d, peer = self.s.recvfrom(512)
            except OSError:
                await asyncio.sleep_ms(5)
                continue
            self.requests += 1
            if not self.silent:
                self.s.sendto(self.answer(d), peer)

    def close(self):
        self.task.cancel()
        self.s.close()


class Resolver(UdpPeer):
    # Answers every A query with 10.1.2.3 (ttl seconds); `requests`: the queries.
    def __init__(self, ttl=60):
        self.ttl = ttl
        super().__init__()

    def answer(self, d):
        return _answer(struct.unpack_from("!H", d, 0)[0], ip=(10, 1, 2, 3), ttl=self.ttl)


def _bind(s):
    # -> a free loopback port it is bound to (the unix port's sockets have no getsockname)
    import os

    base = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
    for port in range(base, base + 200):
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            return port
        except OSError:
            continue
    raise AssertionError("no free UDP port")


async def test_the_answer_is_kept_for_its_ttl_and_served_while_the_resolver_is_silent():
    r = Resolver()
    try:
        memo = [None, None, 0]
        assert await dns.resolve("csms.test", r.addr(), memo) == "10.1.2.3"
        assert await dns.resolve("csms.test", r.addr(), memo) == "10.1.2.3"
        assert r.requests == 1, "the second is the memo's"
        assert await dns.resolve("127.0.0.9", r.addr(), memo) == "127.0.0.9"  # numeric
        assert await dns.resolve("::1", r.addr(), memo) == "::1"  # an IPv6 literal
        assert r.requests == 1
        dns.expire(memo)  # a connection to it failed: asked again
        assert await dns.resolve("csms.test", r.addr(), memo) == "10.1.2.3"
        assert r.requests == 2
        r.silent = True
        dns.expire(memo)
        assert await dns.resolve("csms.test", r.addr(), memo, 100, 1) == "10.1.2.3", "stale"
        assert r.requests == 3
        try:
            await dns.resolve("other.test", r.addr(), memo, 100, 1)
            raise AssertionError("a silent resolver gave an answer")
        except dns.DnsError as e:
            assert "did not answer" in str(e)
    finally:
        r.close()


async def test_a_zero_ttl_is_asked_again():
    r = Resolver(ttl=0)
    try:
        memo = [None, None, 0]
        await dns.resolve("csms.test", r.addr(), memo)
        await dns.resolve("csms.test", r.addr(), memo)
        assert r.requests == 2
    finally:
        r.close()


class LoopWatch:
    # The loop's longest pause (ms) while code that must never block it is awaited inside
    # `async with LoopWatch() as w:` (w.worst), for net/dns.py's tests and net/sntp.py's.
    async def __aenter__(self):
        self.worst = 0
        self._t = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc):
        self._t.cancel()

    async def _tick(self):
        last = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(5)
            now = time.ticks_ms()
            self.worst = max(self.worst, time.ticks_diff(now, last))
            last = now


async def test_a_silent_resolver_never_holds_the_loop():
    r = Resolver()
    r.silent = True
    try:
        async with LoopWatch() as w:
            t0 = time.ticks_ms()
            try:
                await dns.resolve("csms.test", r.addr(), None, 300, 2)
                raise AssertionError("answered")
            except dns.DnsError:
                pass
            assert time.ticks_diff(time.ticks_ms(), t0) >= 550
        assert w.worst < 100, w.worst
    finally:
        r.close()
