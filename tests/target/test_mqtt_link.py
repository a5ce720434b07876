# On-target tests of the MQTT link's pieces that need no broker: the framing of incoming bytes
# however they are cut, umqtt's packets written into the pipe (and rolled back when full), the
# command checks (the DNS resolver it uses: test_dns.py).
import struct

from mphelp import CA, hanging_listener, open_fds
from mqtt import commands
from mqtt.link import OUT_SIZE, Link, Refused


def _link():
    got = {"msgs": [], "acks": [], "up": 0}
    lk = Link("borne-T", "127.0.0.1", 1883, "u", "p", None, 60, None)
    lk.set_callback(lambda t, m: got["msgs"].append((t, m)))
    lk.on_puback = got["acks"].append

    def up():
        got["up"] += 1

    lk.on_up = up
    return lk, got


def _feed(lk, data, step):
    for i in range(0, len(data), step):
        chunk = data[i:i + step]
        if lk.skip:
            k = min(lk.skip, len(chunk))
            lk.skip -= k
            chunk = chunk[k:]
        lk.rx[lk.rn:lk.rn + len(chunk)] = chunk
        lk.rn += len(chunk)
        lk._frames()


def _publish(topic, payload):
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + payload
    n = len(body)
    head = bytearray(b"\x30")
    while True:
        head.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            break
    return bytes(head) + body


def test_framing_whatever_the_cut():
    stream = (b"\x20\x02\x00\x00" + _publish("a/set", b'{"pause":true}') + b"\x40\x02\x00\x07"
              + b"\xd0\x00" + _publish("a/set", b"x" * 300))
    for step in (1, 2, 3, 7, 64, len(stream)):
        lk, got = _link()
        _feed(lk, stream, step)
        assert got["up"] == 1 and lk.up
        assert got["msgs"] == [(b"a/set", b'{"pause":true}'), (b"a/set", b"x" * 300)], step
        assert got["acks"] == [7]
        assert lk.rn == 0


def test_an_oversized_packet_is_skipped_and_the_next_one_read():
    lk, got = _link()
    stream = (b"\x20\x02\x00\x00" + _publish("a/set", b"y" * 2000)
              + _publish("a/set", b'{"pause":false}'))
    _feed(lk, stream, 100)
    assert got["msgs"] == [(b"a/set", b'{"pause":false}')]


def test_refused_connack_and_bad_packets_raise():
    lk, _ = _link()
    try:
        _feed(lk, b"\x20\x02\x00\x04", 4)
        assert False, "a refused CONNACK must raise"
    except Refused as e:
        assert "bad user name or password" in str(e)
    lk, _ = _link()
    try:
        _feed(lk, b"\x20\x02\x00\x00\x00\x00", 6)
        assert False, "a reserved packet type must raise"
    except ValueError:
        pass
    lk, _ = _link()
    try:
        _feed(lk, b"\x30\xff\xff\xff\xff\x7f", 6)
        assert False, "a length over 4 bytes must raise"
    except ValueError:
        pass


def test_malformed_and_qos2_publish_are_dropped_not_run():
    lk, got = _link()
    qos2 = bytearray(_publish("a/set", b'{"pause":true}'))
    qos2[0] |= 0x04
    _feed(lk, b"\x20\x02\x00\x00" + bytes(qos2) + b"\x30\x04\x00\x09ab", 3)
    assert got["msgs"] == []
    assert lk.up


def test_a_retained_publish_is_dropped_not_run():
    # the broker's replay of a retained command at a (re)subscription (RETAIN bit 0x01)
    lk, got = _link()
    retained = bytearray(_publish("a/set", b'{"pause":true}'))
    retained[0] |= 0x01
    _feed(lk, b"\x20\x02\x00\x00" + bytes(retained) + _publish("a/set", b'{"pause":false}'), 5)
    assert got["msgs"] == [(b"a/set", b'{"pause":false}')]


def test_publish_into_the_pipe_and_rollback_when_full():
    lk, _ = _link()
    assert lk.send("t", b"v") is None  # not connected: dropped
    lk.up = True
    assert lk.send("a/b", b"hello", True, 0) == 0
    assert bytes(lk.pipe.out[:lk.pipe.n]) == b"\x31\x0a\x00\x03a/bhello"
    start = lk.pipe.n
    pid = lk.send("a/s", b"{}", False, 1)
    assert pid == 1
    assert bytes(lk.pipe.out[start:lk.pipe.n]) == b"\x32\x09\x00\x03a/s\x00\x01{}"
    n = lk.pipe.n
    assert lk.send("a/big", b"z" * OUT_SIZE) is None
    assert lk.pipe.n == n, "a message that does not fit leaves nothing behind"


def test_packet_ids_wrap():
    lk, _ = _link()
    lk.up = True
    lk.pid = 65535
    assert lk.send("a/s", b"{}", False, 1) == 1


def test_connect_packet():
    lk, _ = _link()
    lk.set_last_will("a/availability", "offline", True, 1)
    lk._connect_packet()
    p = bytes(lk.pipe.out[:lk.pipe.n])
    assert p[0] == 0x10 and p[2:9] == b"\x00\x04MQTT\x04"
    assert p[9] == 0x02 | 0x04 | 0x08 | 0x20 | 0x80 | 0x40
    assert p[10:12] == b"\x00\x3c"
    assert p.endswith(b"\x00\x01u\x00\x01p")


def test_command_checks():
    assert commands.parse(b'{"current_limit": 6}', 32) == (None, {"current_limit": 6})
    assert commands.parse(b'{"id": "x", "current_limit": null}', 32) == ("x", {"current_limit": None})
    for bad in (b'{"current_limit": 33}', b'{"current_limit": true}', b'{"pause": 1}',
                b'{"free_charging": null}', b"1", b'"s"', b'{"a": 1}', b"{" * 300):
        try:
            commands.parse(bad, 32)
            assert False, bad
        except commands.Bad:
            pass


def test_prefix_checks():
    from mqtt.keys import check

    for ok in ("borne", "home/ev", "a" * 32, "maison-été"):
        check("BorneMqttPrefix", ok)
    for bad in ("", "a" * 33, "a/+", "#", "/a", "a/", "a//b", "a\x00b", "a\tb", "a\x7fb",
                "a\x85b"):
        try:
            check("BorneMqttPrefix", bad)
            assert False, bad
        except ValueError:
            pass


def test_backoff_doubles_caps_and_jitters():
    from mqtt.feature import backoff_s

    assert [backoff_s(n, 0, 0) for n in (1, 2, 3, 8, 9, 50)] == [2, 4, 8, 256, 300, 300]
    assert [backoff_s(n, 0, 255) for n in (1, 2, 9)] == [3, 6, 450]
    assert backoff_s(1, 60, 0) == 60 and backoff_s(1, 60, 255) == 90  # refused credentials
    seen = {backoff_s(5, 0, r) for r in range(256)}
    assert min(seen) == 32 and max(seen) == 48 and len(seen) > 10


async def test_a_connect_given_up_closes_its_socket():
    # A broker that never answers the connect: each attempt, given up after 10 s, held its
    # socket until a collection (lwIP has ~10; the unix port never closed it): after a long
    # outage the charger had none left for OCPP.
    import gc

    held, port = hanging_listener()
    try:
        gc.collect()
        n0 = open_fds()
        lk = Link("borne-T", "127.0.0.1", port, None, None, None, 60, None)
        try:
            await lk.session()
            assert False, "the connect must time out"
        except Exception as e:
            assert type(e).__name__ in ("TimeoutError", "CancelledError"), repr(e)
        gc.collect()
        assert open_fds() == n0, "the socket of the connect was kept"
    finally:
        for s in held:
            s.close()


async def _sessions_end(ctx, tries=2):
    # -> how many fds `tries` sessions with a broker that closes at once (after a 400 to a TLS
    # ClientHello) left open.
    import asyncio
    import gc

    from mphelp import closed_port

    async def gone(r, w):
        try:
            await r.read(16)
            w.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await w.drain()
        finally:
            w.s.close()  # (MicroPython's Stream.close() does nothing)

    port = closed_port()
    srv = await asyncio.start_server(gone, "127.0.0.1", port)
    gc.collect()
    gc.disable()
    try:
        n0 = open_fds()
        for _ in range(tries):
            lk = Link("borne-T", "127.0.0.1", port, None, None, ctx, 60, None)
            try:
                await lk.session()
                assert False, "the session must end"
            except Exception as e:
                assert not isinstance(e, AssertionError), repr(e)
            await asyncio.sleep_ms(20)
        return open_fds() - n0
    finally:
        gc.enable()
        srv.close()
        await srv.wait_closed()


async def test_a_session_that_ends_closes_its_socket():
    # The session's end called the stream's close(), which does nothing in MicroPython: each
    # reconnect (a broker restart, a Wi-Fi drop) kept a socket until a collection (the ESP32)
    # or for ever (the unix port).
    assert await _sessions_end(None) == 0, "each session kept its socket"


async def test_a_failed_tls_handshake_closes_its_socket():
    # modtls lets the TCP socket go when the handshake fails: closing the TLS one missed it.
    from ocpp_client import security

    assert await _sessions_end(security.tls_context(CA)) == 0, "each handshake kept its socket"
