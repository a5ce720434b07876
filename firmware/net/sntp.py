# The time from the network without blocking the loop (SNTP, RFC 4330), for a charger whose
# clock is not trusted when a TLS connection needs it (an ESP32 after a power cut: no battery
# RTC, the clock at the port's epoch): security.sync_clock() loads this module for one query and
# it leaves the heap after (net/dns.py too, unless it was in use already).
# The board names the server (board.ntp_server(): (host name, port), or None). Its name is
# resolved by net/dns.py with the board's resolver; one 48-byte request goes out on a
# non-blocking UDP socket (net/dns.py exchange()), asked again once after a timeout.
# MicroPython's ntptime would do the same with a blocking getaddrinfo and a blocking wait: the
# whole loop (meter, pilot, LED, the OCPP session) stalled for seconds while the network is
# down. A reply counts only if it answers our request: a server's (mode 4), echoing the random
# transmit timestamp we sent as its originate timestamp (a forged or stray datagram does not
# know it), synchronised (stratum 1-15, leap indicator not 3) and with a transmit timestamp.
# The clock is set through clock.set_utc(), which knows the port's epoch.
import os
import struct

import clock
import log

_NTP_TO_UNIX = const(2208988800)  # seconds from 1900-01-01 (NTP's era 0) to 1970-01-01


def request(nonce):
    # LI 0, version 4, mode 3 (client); the transmit timestamp is the nonce, which the server
    # echoes as the originate timestamp (the client's own time is the one thing it lacks).
    q = bytearray(40)
    q[0] = 0x23
    q.extend(nonce)
    return q


def parse(d, nonce):
    # -> unix seconds UTC from a server's reply to our request, None for any other datagram.
    if len(d) < 48 or d[0] & 7 != 4 or d[0] >> 6 == 3 or not 1 <= d[1] <= 15:
        return None
    if d[24:32] != nonce:
        return None
    secs, frac = struct.unpack_from("!II", d, 40)
    if not (secs or frac):
        return None
    if secs < 0x80000000:
        secs += 0x100000000  # NTP era 1: from 2036-02-07 (RFC 4330 section 3)
    return secs - _NTP_TO_UNIX + (frac >> 31)


async def sync(server, resolver, timeout_ms=1000, tries=2):
    # Sets the clock from the server ((host, port)); -> True when it did. Never raises.
    import sys

    from supervisor import drop

    host = server[0]
    held = "net.dns" in sys.modules
    try:
        if resolver is None:
            raise OSError("no DNS resolver known")  # getaddrinfo would block the loop
        from net import dns

        ip = await dns.resolve(host, resolver)
        nonce = os.urandom(8)
        t = await dns.exchange((ip, server[1]), request(nonce), 64, lambda d: parse(d, nonce),
                               timeout_ms, tries)
        if t is None:
            raise OSError("no valid answer")
        clock.set_utc(t, "sntp")
        return True
    except Exception as e:
        log.warn("clock", "no time from SNTP (%s): %s", host, e)
        return False
    finally:
        drop("net.sntp")
        if not held:
            drop("net.dns")

