# MicroPython's ntptime (frozen in the ESP32 firmware), for the unix port (host side only):
# one SNTP request to `host` on UDP port 123, whose answer's transmit time sets the RTC.
# The simulated network (sim/mpy/socket.py) routes <host>:123 to the simulation's SNTP server.
# Blocking, as the original: up to `timeout` seconds.
import socket
import struct

import time

host = "pool.ntp.org"
timeout = 1

_NTP_TO_UNIX = 2208988800
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0


def time():  # noqa: F811  (the module's own name, as in MicroPython)
    q = bytearray(48)
    q[0] = 0x1B  # LI 0, version 3, mode 3 (client)
    addr = socket.getaddrinfo(host, 123)[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q, addr)
        msg = s.recv(48)
    finally:
        s.close()
    if len(msg) < 48:
        raise OSError(5)  # a short answer is no answer
    val = struct.unpack("!I", msg[40:44])[0]
    return val - _NTP_TO_UNIX - _EPOCH_OFFSET


def settime():
    import machine
    import time as _t

    t = time()
    tm = _t.gmtime(t)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
