# Name resolution that never blocks the loop, for every connection the charger makes by name:
# the OCPP connection (ocpp_client/connect.py), the MQTT broker (mqtt/link.py), the claim's
# check of the CSMS (hotspot/claimflow.py), downloads and uploads (net/http.py, net/ftp.py:
# firmware, diagnostics), DeleteCertificate's TLS probe (diag/certs.py) and the SNTP server of
# a charger whose clock is not trusted yet (net/sntp.py): one DNS query
# (RFC 1035, type A) on a non-blocking UDP socket to the resolver the board names
# (board.dns_server(): the DHCP-given one on the charger, `--dns` in the simulation).
# socket.getaddrinfo() blocks the whole loop for as long as the resolver takes (lwIP waits
# seconds for a resolver that does not answer: the ESP32's watchdog may fire); it is used only
# on a board that names no resolver, and said so once.
# net/http.py, net/ftp.py and diag/certs.py take the resolver as a `resolver=` argument beside
# `route=`, from their callers: board.dns_server()'s (ip, port), or None (getaddrinfo). Each
# resolves the name here, then routes the address, and TLS checks the name.
# A caller may keep the last answer in a `memo` ([host, ip, expiry ticks_ms]) across attempts:
# used until its TTL runs out, and past it while the resolver does not answer (RFC 8767's
# serve-stale: a resolver outage alone does not take the charger offline). A caller expires it
# by setting the expiry to now (ocpp_client/connect.py, after a connection to it failed: the
# name may have moved), without loading this module for it.
import asyncio
import os
import socket
import struct
import sys
import time

import log

_EAGAIN = (11, 35)  # EAGAIN / EWOULDBLOCK (Linux, lwIP)
_ECONNREFUSED = const(111)
_PORT_TRIES = const(4)
_TTL_MAX_S = const(3600)  # within ticks_ms()'s range; a longer TTL is only a longer memo
_warned = False


class DnsError(OSError):
    pass


def numeric(host):
    p = host.split(".")
    if len(p) != 4:
        return False
    for x in p:
        if not x.isdigit() or int(x) > 255:
            return False
    return True


def _query(qid, host):
    out = bytearray(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0))  # RD, one question
    for label in host.split("."):
        b = label.encode()
        if not 0 < len(b) < 64:
            raise DnsError("bad host name")
        out.append(len(b))
        out.extend(b)
    out.extend(b"\x00\x00\x01\x00\x01")  # root, type A, class IN
    return out


def _skip_name(d, i):
    while True:
        n = d[i]
        if n & 0xC0 == 0xC0:
            return i + 2
        if n == 0:
            return i + 1
        i += n + 1


def parse(d, qid, q=None):
    # -> ("a.b.c.d", ttl seconds) from an answer to our query, None for a datagram that is not
    # one (wrong id, or not our question `q` when given: a stray or spoofed reply is ignored,
    # RFC 5452 3); raises DnsError for a negative answer.
    if len(d) < 12:
        return None
    rid, flags, qd, an = struct.unpack_from("!HHHH", d, 0)
    if rid != qid or not flags & 0x8000:
        return None
    if q is not None and (qd != 1 or bytes(d[12 : len(q)]).lower() != q[12:].lower()):
        return None
    rcode = flags & 0xF
    if rcode == 3:
        raise DnsError("name does not exist")
    if rcode:
        raise DnsError("resolver error %d" % rcode)
    try:
        i = 12
        for _ in range(qd):
            i = _skip_name(d, i) + 4
        for _ in range(an):
            i = _skip_name(d, i)
            typ, cls, ttl, rdlen = struct.unpack_from("!HHIH", d, i)
            i += 10
            if typ == 1 and cls == 1 and rdlen == 4:
                return "%d.%d.%d.%d" % (d[i], d[i + 1], d[i + 2], d[i + 3]), ttl
            i += rdlen
    except (IndexError, ValueError):
        raise DnsError("malformed answer")
    raise DnsError("no address for the name")


def _ip_of(sockaddr):
    # getaddrinfo's address: (ip, port) on the ESP32, a struct sockaddr (bytes) on the unix port
    if isinstance(sockaddr, tuple):
        return sockaddr[0]
    return "%d.%d.%d.%d" % (sockaddr[4], sockaddr[5], sockaddr[6], sockaddr[7])


async def lookup(host, server, held, err=OSError):
    # resolve() for a connection of its own (a download, an upload, DeleteCertificate's probe),
    # no memo: the caller imported this module for it, so it leaves the heap after unless it was
    # `held` (in use already then: a CSMS attempt's, the MQTT link's). Raises err("cannot
    # resolve HOST: why").
    try:
        return await resolve(host, server)
    except OSError as e:
        raise err("cannot resolve %s: %s" % (host, e))
    finally:
        if not held:
            from supervisor import drop

            drop("net.dns")


async def resolve(host, server, memo=None, timeout_ms=2000, tries=2):
    # -> the host's IPv4 address as text. server: (ip, port) of the resolver, or None.
    global _warned
    if ":" in host or numeric(host):  # (an IPv6 literal too)
        return host
    mine = memo is not None and memo[0] == host
    if mine and time.ticks_diff(memo[2], time.ticks_ms()) > 0:
        return memo[1]
    if server is None:
        if not _warned:
            _warned = True
            log.warn("net", "no DNS resolver known: names are resolved by getaddrinfo (blocking)")
        return _ip_of(socket.getaddrinfo(host, 80)[0][-1])
    try:
        ip, ttl = await _ask(host, server, timeout_ms, tries)
    except DnsError as e:
        if not mine or "answer" not in str(e):
            raise
        log.warn("net", "%s: %s; using its last address %s", host, e, memo[1])
        return memo[1]
    if memo is not None:
        memo[:] = host, ip, time.ticks_add(time.ticks_ms(), min(ttl, _TTL_MAX_S) * 1000)
    return ip


def _rand16():
    return int.from_bytes(os.urandom(2), "big")


async def _ask(host, server, timeout_ms, tries):
    qid = _rand16()
    # The answer is read into the WebSocket's spare receive buffer (1 KB, ocpp_client/ws.py)
    # while no connection holds it, taken meanwhile: recv() would need a fresh 512-byte block,
    # which a fragmented heap may not have (the CSMS's lookup at a reconnect, the claim's check).
    ws = sys.modules.get("ocpp_client.ws")
    buf = ws.spare_rx if ws is not None else None
    if buf is not None:
        ws.spare_rx = None
    q = _query(qid, host)
    try:
        a = await exchange(server, q, 512, lambda d: parse(d, qid, q), timeout_ms, tries, buf)
    finally:
        if buf is not None and ws.spare_rx is None:  # (a connection made meanwhile has its own)
            ws.spare_rx = buf
    if a is None:
        raise DnsError("the resolver did not answer")
    return a


async def exchange(server, q, size, check, timeout_ms, tries, buf=None):
    # One question `q` on a non-blocking UDP socket to server ((ip, port)), asked again after
    # each timeout (net/sntp.py's too): -> the first check(datagram) that is not None, or None.
    # A datagram is read into `buf` if given (checked as a memoryview of it), else recv(size).
    # The socket is connected to the server: a datagram from any other address or port never
    # reaches it (RFC 5452 3: a forger must then spoof the server's address, not only the id).
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        # From a random ephemeral port (RFC 5452 9.2: lwIP takes the next one, which a forger
        # who saw a query knows, leaving the 16-bit id); one in use: another, then the OS's.
        for _ in range(_PORT_TRIES):
            try:
                s.bind(socket.getaddrinfo("0.0.0.0", 49152 | _rand16() & 0x3FFF)[0][-1])
                break
            except OSError:
                pass
        s.connect(socket.getaddrinfo(server[0], server[1])[0][-1])  # numeric: no lookup
        for _ in range(tries):
            try:
                s.send(q)
            except OSError as e:
                if e.errno != _ECONNREFUSED:
                    raise
            waited = 0
            while waited < timeout_ms:
                try:
                    d = s.recv(size) if buf is None else s.readinto(buf)
                except OSError as e:
                    # ECONNREFUSED: an ICMP unreachable the connected socket reports (Linux); as
                    # silence (the memo's address still served, net/dns.py's callers unchanged)
                    if e.errno not in _EAGAIN and e.errno != _ECONNREFUSED:
                        raise
                    d = None
                if d is None:  # (readinto: nothing yet)
                    await asyncio.sleep_ms(20)
                    waited += 20
                    continue
                if buf is not None:
                    d = memoryview(buf)[:d]
                a = check(d)
                if a is not None:
                    return a
        return None
    finally:
        s.close()
