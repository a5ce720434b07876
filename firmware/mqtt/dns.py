# Name resolution that never blocks the loop: one DNS query (RFC 1035, type A) on a non-blocking
# UDP socket to the resolver the board names (board.dns_server(): the DHCP-given one on the
# charger, `--dns` in the simulation). socket.getaddrinfo() blocks the whole loop for as long as
# the resolver takes (lwIP waits seconds for a resolver that does not answer); it is used only
# on a board that names no resolver, and said so in the log once.
import asyncio
import os
import socket
import struct
import time

import log
from mqtt.prof import note

_TAG = "mqtt"
_EAGAIN = (11, 35)  # EAGAIN / EWOULDBLOCK (Linux, lwIP)
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


def parse(d, qid):
    # -> "a.b.c.d" from an answer to our query, None for a datagram that is not one (wrong id:
    # a stray or spoofed reply is ignored); raises DnsError for a negative answer.
    if len(d) < 12:
        return None
    rid, flags, qd, an = struct.unpack_from("!HHHH", d, 0)
    if rid != qid or not flags & 0x8000:
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
            typ, cls, _ttl, rdlen = struct.unpack_from("!HHIH", d, i)
            i += 10
            if typ == 1 and cls == 1 and rdlen == 4:
                return "%d.%d.%d.%d" % (d[i], d[i + 1], d[i + 2], d[i + 3])
            i += rdlen
    except (IndexError, ValueError):
        raise DnsError("malformed answer")
    raise DnsError("no address for the name")


def _ip_of(sockaddr):
    # getaddrinfo's address: (ip, port) on the ESP32, a struct sockaddr (bytes) on the unix port
    if isinstance(sockaddr, tuple):
        return sockaddr[0]
    return "%d.%d.%d.%d" % (sockaddr[4], sockaddr[5], sockaddr[6], sockaddr[7])


async def resolve(host, server, timeout_ms=2000, tries=2):
    # -> the host's IPv4 address as text. server: (ip, port) of the resolver, or None.
    global _warned
    if numeric(host):
        return host
    if server is None:
        if not _warned:
            _warned = True
            log.warn(_TAG, "no DNS resolver known: names are resolved by getaddrinfo (blocking)")
        return _ip_of(socket.getaddrinfo(host, 1883)[0][-1])
    qid = int.from_bytes(os.urandom(2), "big")
    q = _query(qid, host)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        addr = socket.getaddrinfo(server[0], server[1])[0][-1]  # numeric: no lookup
        for _ in range(tries):
            s.sendto(q, addr)
            waited = 0
            while waited < timeout_ms:
                t0 = time.ticks_us()
                try:
                    d = s.recv(512)
                except OSError as e:
                    if e.errno not in _EAGAIN:
                        raise
                    note("dns", t0)
                    await asyncio.sleep_ms(20)
                    waited += 20
                    continue
                ip = parse(d, qid)
                note("dns", t0)
                if ip is not None:
                    return ip
        raise DnsError("the resolver did not answer")
    finally:
        s.close()
