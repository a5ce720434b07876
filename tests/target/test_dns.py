# On-target tests for net/dns.py, the resolver the OCPP connection and MQTT share: the answer
# parser, the memo kept while the TTL lasts and served past it while the resolver is silent,
# a silent resolver that never holds the loop (a UDP socket on loopback plays the resolver),
# and each query's random source port.
import asyncio
import socket
import struct
import time

from net import dns


def _answer(qid, rcode=0, ip=None, ttl=60, q=b"\x06broker\x04home\x00\x00\x01\x00\x01"):
    an = 1 if ip else 0
    head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, an, 0, 0)
    body = q
    if ip:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + bytes(ip)
    return head + body


def test_dns_answers():
    assert dns.parse(_answer(7, ip=(10, 1, 2, 3)), 7) == ("10.1.2.3", 60)
    assert dns.parse(_answer(8, ip=(10, 1, 2, 3)), 7) is None  # not our query
    q = dns._query(7, "Broker.HOME")  # our question: its name in any case
    assert dns.parse(_answer(7, ip=(10, 1, 2, 3)), 7, q) == ("10.1.2.3", 60)
    assert dns.parse(_answer(7, ip=(10, 1, 2, 3)), 7, dns._query(7, "broker.homes")) is None
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
            self.seen(peer)
            if not self.silent:
                self.s.sendto(self.answer(d), peer)

    def seen(self, peer):
        pass

    def close(self):
        self.task.cancel()
        self.s.close()


class Resolver(UdpPeer):
    # Answers every A query with 10.1.2.3 (ttl seconds); `requests`: the queries.
    def __init__(self, ttl=60):
        self.ttl = ttl
        super().__init__()

    def answer(self, d):
        # (its question echoed, as resolvers do: RFC 1035 4.1.2)
        qid = struct.unpack_from("!H", d, 0)[0]
        return _answer(qid, ip=(10, 1, 2, 3), ttl=self.ttl, q=d[12:])


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
        memo[2] = time.ticks_ms()  # expired (a connection to it failed): asked again
        assert await dns.resolve("csms.test", r.addr(), memo) == "10.1.2.3"
        assert r.requests == 2
        r.silent = True
        memo[2] = time.ticks_ms()
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


class Forger(UdpPeer):
    # A resolver that answers each query with 6.6.6.6 the way `mode` says: "elsewhere" from
    # another port (an attacker who learnt or guessed the id), "other" from its own port but for
    # another name than the one asked; "ok": a true answer (10.1.2.3, the question echoed).
    def __init__(self):
        self.mode = "ok"
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _bind(self.other)
        super().__init__()

    def answer(self, d):
        qid = struct.unpack_from("!H", d, 0)[0]
        if self.mode == "other":
            return _answer(qid, ip=(6, 6, 6, 6))  # (its question: broker.home)
        ip = (10, 1, 2, 3) if self.mode == "ok" else (6, 6, 6, 6)
        return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + d[12:] + b"\xc0\x0c"
                + struct.pack("!HHIH", 1, 1, 60, 4) + bytes(ip))

    async def _serve(self):
        while True:
            try:
                d, peer = self.s.recvfrom(512)
            except OSError:
                await asyncio.sleep_ms(5)
                continue
            self.requests += 1
            (self.other if self.mode == "elsewhere" else self.s).sendto(self.answer(d), peer)

    def close(self):
        super().close()
        self.other.close()


async def test_an_answer_from_elsewhere_or_for_another_name_is_not_taken():
    # RFC 5452 3: a resolver takes a response only if it comes from the address the question
    # went to and carries the question asked (the id alone is 16 bits to guess). A forged
    # address for the CSMS's name sends the charger, with its Basic credentials at profile 1,
    # to someone else.
    r = Forger()
    try:
        assert await dns.resolve("csms.example", r.addr(), None, 300, 1) == "10.1.2.3"
        for mode in ("elsewhere", "other"):
            r.mode = mode
            try:
                ip = await dns.resolve("csms.example", r.addr(), None, 300, 1)
                raise AssertionError("%s: a forged answer was taken: %s" % (mode, ip))
            except dns.DnsError as e:
                assert "did not answer" in str(e), (mode, e)
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


class PortsResolver(Resolver):
    # A Resolver that keeps the source port of each query (`ports`).
    def __init__(self):
        self.ports = []
        super().__init__()

    def seen(self, peer):
        # (a struct sockaddr_in on the unix port: the port in bytes 2-3; (ip, port) else)
        self.ports.append(peer[1] if isinstance(peer, tuple) else peer[2] << 8 | peer[3])


class SeededOs:
    # dns.py's `os`: urandom() from a seeded RNG, after the 16-bit values given (a query takes
    # its id's first, then its port's).
    def __init__(self, *first):
        import random

        random.seed(5)
        self.rng = random
        self.first = list(first)

    def urandom(self, n):
        if self.first:
            return self.first.pop(0).to_bytes(n, "big")
        return bytes(self.rng.getrandbits(8) for _ in range(n))


async def _ports(values, n):
    # -> the source ports of n queries, dns.py's random values from SeededOs(*values)
    import os

    r = PortsResolver()
    dns.os = SeededOs(*values)
    try:
        for _ in range(n):
            assert await dns.resolve("csms.test", r.addr(), None, 300, 1) == "10.1.2.3"
        return r.ports
    finally:
        dns.os = os
        r.close()


async def test_each_query_goes_out_from_a_random_port():
    # RFC 5452 9.2: a resolver MUST use an unpredictable source port. lwIP gives a socket the
    # next ephemeral port: a forger who saw one query knows the next one's, and only the 16-bit
    # id is left to guess for an answer that sends the charger (its Basic credentials at
    # profile 1) elsewhere.
    ports = await _ports((), 4)
    assert len(ports) == 4 and all(49152 <= p <= 65535 for p in ports), ports
    for a, b in zip(ports, ports[1:]):
        assert abs(a - b) > 8, ports  # not in sequence


async def test_a_port_in_use_is_passed_over():
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        import os

        for _ in range(50):  # a free ephemeral port, held here (any address: 0.0.0.0)
            p = 49152 + int.from_bytes(os.urandom(2), "big") % 16384
            try:
                taken.bind(socket.getaddrinfo("0.0.0.0", p)[0][-1])
                break
            except OSError:
                continue
        other = 49152 + (p - 49152 + 5000) % 16384
        assert await _ports((7, p - 49152, other - 49152), 1) == [other]
        # always in use: the OS's choice, still answered
        assert len(await _ports((7,) + (p - 49152,) * 8, 1)) == 1
    finally:
        taken.close()
