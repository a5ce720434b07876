# The connection to the owner's broker: umqtt.simple with its socket replaced.
#
# umqtt.simple (frozen into the stock ESP32 firmware) is blocking by design: connect() resolves
# the name, connects and does the TLS handshake in one call; publish() writes until the socket
# took everything; a QoS 1 publish and subscribe() wait for the broker's answer; wait_msg()
# reads a packet byte by byte; and its TLS path imports `ussl`, which MicroPython no longer
# has. On the charger's one loop any of these would stall charging and OCPP for seconds.
#
# So umqtt's packet code is kept (publish, subscribe, ping, the PUBLISH decoder in wait_msg)
# and its `sock` is a _Pipe: writes land in a preallocated buffer, and reads see exactly one
# whole packet that has already arrived; a read past it raises _Pending, which is what umqtt
# would have waited for (a PUBACK, a SUBACK: they are handled here when they arrive). The real
# socket is an asyncio stream this module drives: net/dns.py resolves the name on a UDP socket, TCP
# connects without blocking, TLS handshakes on the loop, and the buffer drains as fast as the
# socket takes it. A message that does not fit the buffer is dropped (the caller keeps the
# latest value and sends it again), so a slow or gone broker only costs MQTT. CONNECT is encoded
# here: umqtt's connect() opens a socket of its own.
import asyncio
import struct
import time

from umqtt.simple import MQTTClient

import log
from net import dns, tcp  # (tcp: its socket closed if the connect is given up)
from mqtt.prof import note

_TAG = "mqtt"
OUT_SIZE = const(1536)  # what may wait for the socket: a discovery message fits, with room
IN_SIZE = const(768)  # one incoming packet: commands are short; longer packets are dropped
_POLL_MS = const(50)
_OPEN_MS = const(10000)  # TCP connect, TLS handshake, CONNACK
_DRAIN_MS = const(30000)  # a broker that takes nothing for this long is gone
REFUSED = {1: "protocol version", 2: "client id rejected", 3: "server unavailable",
           4: "bad user name or password", 5: "not authorized"}


class _Pending(Exception):
    pass


class Refused(OSError):
    # CONNACK with a non-zero return code (MQTT 3.1.1, 3.2.2.3)
    pass


class _Pipe:
    def __init__(self):
        self.out = bytearray(OUT_SIZE)
        self.n = 0
        self.pkt = None  # memoryview of one whole incoming packet while umqtt decodes it
        self.pos = 0

    def write(self, b, n=None):
        if isinstance(b, str):
            b = b.encode()
        if n is None:
            n = len(b)
        end = self.n + n
        if end > OUT_SIZE:
            raise OSError(105)  # ENOBUFS: the caller rolls the message back
        self.out[self.n:end] = memoryview(b)[:n]
        self.n = end
        return n

    def read(self, n):
        p = self.pkt
        if p is None or self.pos + n > len(p):
            raise _Pending()
        b = bytes(p[self.pos:self.pos + n])
        self.pos += n
        return b

    def setblocking(self, flag):
        pass

    def close(self):
        pass


class Link(MQTTClient):
    def __init__(self, client_id, host, port, user, password, ssl_ctx, keepalive, resolver):
        super().__init__(client_id, host, port, user or None, password if user else None,
                         keepalive)
        self.pipe = self.sock = _Pipe()
        self.ctx = ssl_ctx
        self.resolver = resolver  # fn() -> (ip, port) of the DNS resolver or None; or None
        self.memo = [None, None, 0]  # the broker's address while its TTL lasts (net/dns.py)
        self.rx = bytearray(IN_SIZE)
        self.rn = 0
        self.skip = 0  # bytes of an oversized packet still to drop
        self.up = False  # CONNACK accepted
        self.on_puback = None  # fn(pid)
        self.on_up = None  # fn(): the session is accepted; subscribe and publish the state
        self._err = None
        self._rx_ms = self._tx_ms = 0
        self._pinged = False  # a PINGREQ since the last bytes in
        self.dropped = 0

    # -- what the feature calls ---------------------------------------------------------------
    def room(self):
        return OUT_SIZE - self.pipe.n

    def send(self, topic, msg, retain=False, qos=0):
        # -> the packet id (QoS 1), 0 (QoS 0), or None when it was dropped: not connected, or the
        # buffer is full (a slow broker, a full socket): the caller keeps the latest value.
        if not self.up:
            return None
        p = self.pipe
        mark = p.n
        self._wrap_pid()
        try:
            MQTTClient.publish(self, topic, msg, retain, qos)
        except _Pending:
            pass  # QoS 1: umqtt would wait for the PUBACK here; _dispatch() takes it later
        except OSError:
            p.n = mark
            if not self.dropped:
                log.warn(_TAG, "the broker takes nothing: values wait (latest kept)")
            self.dropped += 1
            return None
        return self.pid if qos else 0

    def _wrap_pid(self):
        # umqtt counts packet ids up without end; MQTT's are 1..65535
        if self.pid >= 65535:
            self.pid = 0

    def subscribe_nowait(self, topic):
        self._wrap_pid()
        try:
            MQTTClient.subscribe(self, topic, 0)
        except _Pending:
            pass  # the SUBACK is checked when it arrives

    def close(self, why):
        # Ends the running session (session() raises OSError(why)).
        self._err = OSError(why)

    # -- one connection -----------------------------------------------------------------------
    async def session(self):
        # Connects, logs in, then moves bytes until the connection fails; raises why.
        host = self.server
        # Cleared before the first wait: a close() while connecting (the settings changed) then
        # ends this session as soon as it is open, not forgotten with the link left unfed.
        self._err = None
        ip = await dns.resolve(host, self.resolver() if self.resolver else None, self.memo)
        r, w = await asyncio.wait_for_ms(tcp.connect(ip, self.port, self.ctx, host), _OPEN_MS)
        self.pipe.n = self.rn = self.skip = self.dropped = 0
        self.up = False
        reader = None
        try:
            self._connect_packet()
            reader = asyncio.create_task(self._reader(r))
            await self._pump(w)
        finally:
            self.up = False
            if reader is not None:
                reader.cancel()
            tcp.close(w)  # (Stream.close() does nothing: the socket stayed open, one a session)

    def _connect_packet(self):
        # MQTT 3.1.1 CONNECT (section 3.1): clean session, keepalive, the will, user/password.
        def field(b):
            if isinstance(b, str):
                b = b.encode()
            return struct.pack("!H", len(b)) + b

        flags = 0x02
        pl = [field(self.client_id)]
        if self.lw_topic:
            flags |= 0x04 | (self.lw_qos << 3) | (0x20 if self.lw_retain else 0)
            pl.append(field(self.lw_topic))
            pl.append(field(self.lw_msg))
        if self.user is not None:
            flags |= 0x80
            pl.append(field(self.user))
            if self.pswd is not None:
                flags |= 0x40
                pl.append(field(self.pswd))
        body = b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack("!H", self.keepalive)
        body += b"".join(pl)
        del pl
        head = bytearray(b"\x10")
        n = len(body)
        while True:
            head.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                break
        if len(head) + len(body) > OUT_SIZE:
            raise ValueError("CONNECT too long")
        self.pipe.write(head)
        self.pipe.write(body)

    async def _pump(self, w):
        start = now = time.ticks_ms()
        self._rx_ms = self._tx_ms = now
        self._pinged = False
        ka = self.keepalive * 1000
        while True:
            if self._err is not None:
                raise self._err
            now = time.ticks_ms()
            if not self.up and time.ticks_diff(now, start) > _OPEN_MS:
                raise OSError("no CONNACK from the broker")
            if ka:
                if time.ticks_diff(now, self._rx_ms) > ka * 3 // 2:
                    raise OSError("the broker went silent")
                # Ping when nothing went out, and when nothing came in, for half of it: QoS 0
                # values sent every 5 s get no answer, and a live broker must not look silent.
                if self.up and (time.ticks_diff(now, self._tx_ms) > ka // 2 or (
                        not self._pinged and time.ticks_diff(now, self._rx_ms) > ka // 2)):
                    try:
                        self.ping()
                        self._pinged = True
                    except OSError:
                        pass  # the buffer is full: data is about to go anyway
            n = self.pipe.n
            if n:
                # Stream.write sends what the socket takes now and copies only the rest.
                t0 = time.ticks_us()
                w.write(memoryview(self.pipe.out)[:n])
                note("write", t0)
                self.pipe.n = 0
                self._tx_ms = now
                if getattr(w, "out_buf", True):
                    # the socket did not take it all: wait until it has, bounded (wait_for
                    # costs a few objects, so only then)
                    await asyncio.wait_for_ms(w.drain(), _DRAIN_MS)
                else:
                    await asyncio.sleep_ms(0)
            else:
                await asyncio.sleep_ms(_POLL_MS)

    async def _reader(self, r):
        mv = memoryview(self.rx)
        try:
            while True:
                n = await r.readinto(mv[self.rn:])
                if n is None:
                    continue
                if n == 0:
                    raise OSError("the broker closed the connection")
                self._rx_ms = time.ticks_ms()
                self._pinged = False
                if self.skip:
                    k = min(self.skip, n)
                    self.skip -= k
                    if k < n:
                        self.rx[0:n - k] = bytes(mv[k:n])
                    n -= k
                self.rn += n
                t0 = time.ticks_us()
                self._frames()
                note("receive", t0)
        except Exception as e:
            self._err = e

    def _frames(self):
        # Cuts the buffered bytes into whole packets (fixed header: type, remaining length as
        # 1-4 bytes of 7 bits) and hands each to _dispatch; keeps an incomplete one's start.
        b = self.rx
        i = 0
        while self.rn - i >= 2:
            rl = sh = 0
            j = i + 1
            whole = False
            while j < self.rn:
                c = b[j]
                j += 1
                rl |= (c & 0x7F) << sh
                if not c & 0x80:
                    whole = True
                    break
                sh += 7
                if sh >= 28:
                    raise ValueError("malformed packet length")
            if not whole:
                break
            total = j - i + rl
            if total > IN_SIZE:
                log.warn(_TAG, "a packet of %d bytes dropped (over %d)", total, IN_SIZE)
                self.skip = total - (self.rn - i)
                self.rn = i
                break
            if self.rn - i < total:
                break
            self._dispatch(i, total)
            i += total
        if i:
            k = self.rn - i
            if k:
                b[0:k] = bytes(memoryview(b)[i:self.rn])
            self.rn = k

    def _dispatch(self, i, total):
        b = self.rx
        t = b[i] & 0xF0
        if t == 0x30:  # PUBLISH: umqtt's decoder, reading this one packet
            if b[i] & 0x06 > 0x02:
                # QoS 2 (or the invalid 3): we subscribe at QoS 0 and never asked for it;
                # umqtt would run the callback and then fail an assertion.
                log.warn(_TAG, "PUBLISH with QoS %d dropped", (b[i] >> 1) & 3)
                return
            if b[i] & 0x01:
                # RETAIN: a stored message the broker replays at every (re)subscription (MQTT
                # 3.1.1, 3.3.1.3); a command from before a reconnect would undo later ones.
                log.warn(_TAG, "a retained command dropped (publish commands without retain)")
                return
            p = self.pipe
            p.pkt = memoryview(b)[i:i + total]
            p.pos = 0
            try:
                self.wait_msg()
            except Exception as e:
                log.warn(_TAG, "malformed PUBLISH dropped (%s)", type(e).__name__)
            finally:
                p.pkt = None
        elif t == 0x20 and total == 4:  # CONNACK
            rc = b[i + 3]
            if rc:
                raise Refused("the broker refused the connection: %s" % REFUSED.get(rc, rc))
            self.up = True
            if self.on_up:
                self.on_up()
        elif t == 0x40 and total == 4:  # PUBACK
            if self.on_puback:
                self.on_puback(b[i + 2] << 8 | b[i + 3])
        elif t == 0x90 and total == 5:  # SUBACK
            if b[i + 4] & 0x80:
                log.warn(_TAG, "the broker refused our subscription: no commands")
        elif t == 0xD0 and total == 2:  # PINGRESP
            pass
        else:
            raise ValueError("unexpected packet 0x%02x (%d bytes)" % (b[i], total))
