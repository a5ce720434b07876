# Captive DNS: every A query gets the charger's own access-point address, so a phone joined to
# the hotspot opens the claim page whatever name it asks for. UDP, one socket, one task.
#
# Robust to whatever the radio brings: datagrams under 12 bytes, responses (QR set) and
# anything unparsable are dropped or answered FORMERR; names are walked with bounds (63-byte
# labels, 255-byte names, no compression pointers in a question); other opcodes get NOTIMP;
# other types (AAAA, ...) get an empty NOERROR answer. The answer is built in a buffer
# allocated once.
import asyncio
import socket

import log

_TAG = "dns"
_MAX = const(512)  # classic DNS over UDP
_TTL = const(30)
_POLL_MS = const(50)


def answer(q, n, ip4, out):
    # Query q[:n] -> length of the reply written into out (0: send nothing).
    if n < 12 or n > _MAX:
        return 0
    if q[2] & 0x80:
        return 0  # a response: never answer those (no loops between resolvers)
    opcode = (q[2] >> 3) & 0x0F
    rd = q[2] & 0x01
    out[0] = q[0]
    out[1] = q[1]
    out[2] = 0x80 | (q[2] & 0x78) | rd  # QR, the query's opcode, RD copied
    out[3] = 0x80  # RA, NOERROR
    for i in range(4, 12):
        out[i] = 0
    if opcode != 0:
        out[3] |= 4  # NOTIMP
        return 12
    qd = q[4] << 8 | q[5]
    if qd != 1:
        out[3] |= 1  # FORMERR: exactly one question is the only form that makes sense
        return 12
    # walk the name
    i = 12
    total = 0
    while True:
        if i >= n:
            out[3] |= 1
            return 12
        ln = q[i]
        if ln == 0:
            i += 1
            break
        if ln & 0xC0 or ln > 63:
            out[3] |= 1  # a pointer or a reserved label type in a question
            return 12
        total += ln + 1
        if total > 255:
            out[3] |= 1
            return 12
        i += ln + 1
    if i + 4 > n:
        out[3] |= 1
        return 12
    qtype = q[i] << 8 | q[i + 1]
    qclass = q[i + 2] << 8 | q[i + 3]
    qend = i + 4
    qlen = qend - 12
    if 12 + qlen + 16 > _MAX:
        out[3] |= 1
        return 12
    out[5] = 1  # QDCOUNT
    out[12:qend] = q[12:qend]
    if qclass not in (1, 255) or qtype not in (1, 255):
        return qend  # NOERROR, no answer: only IPv4 addresses exist here
    out[7] = 1  # ANCOUNT
    a = qend
    out[a : a + 12] = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00" + bytes((_TTL,)) + b"\x00\x04"
    out[a + 12 : a + 16] = ip4
    return a + 16


def ip_bytes(ip):
    return bytes(int(x) for x in ip.split("."))


class CaptiveDns:
    def __init__(self, ip):
        self.ip4 = ip_bytes(ip)
        self._out = bytearray(_MAX)
        self._sock = None
        self._task = None
        self.answered = 0

    def start(self, host, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except (OSError, AttributeError):
            pass
        s.bind(socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1])
        s.setblocking(False)
        self._sock = s
        self._task = asyncio.create_task(self._serve())
        log.info(_TAG, "captive DNS on %s:%d", host, port)

    def stop(self):
        if self._task:
            self._task.cancel()
            self._task = None
        if self._sock:
            self._sock.close()
            self._sock = None

    async def _serve(self):
        s = self._sock
        out = self._out
        while True:
            try:
                q, addr = s.recvfrom(_MAX + 1)
            except OSError:  # EAGAIN (nothing pending), or an ICMP error on the socket
                await _readable(s)
                continue
            except MemoryError:  # no memory for this query: unanswered, the service goes on
                await _readable(s)
                continue
            try:
                k = answer(q, len(q), self.ip4, out)
            except Exception as e:  # a bug here must not stop the service
                log.exc(_TAG, "query", e)
                k = 0
            if k:
                try:
                    s.sendto(memoryview(out)[:k], addr)
                    self.answered += 1
                except (OSError, MemoryError):
                    pass


async def _readable(s):
    # Polled rather than parked on the loop's poller: with this UDP socket registered in
    # select.poll, the unix port (MicroPython 1.28) crashed in poll_iternext now and then.
    # A datagram waits at most _POLL_MS; _serve drains every pending one per wake-up.
    await asyncio.sleep_ms(_POLL_MS)
