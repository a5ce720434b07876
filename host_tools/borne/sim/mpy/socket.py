# The ESP32's network as the emulated chip sees it (host side only): the unix port's sockets,
# with name resolution done by the simulated network. getaddrinfo() is where the chip's traffic
# is routed, so the firmware's own code (asyncio.open_connection, bind, ntptime) runs unchanged:
#   - the access point's address (192.168.4.1) while the AP is up: port 80 is the hotspot's
#     HTTP server on --http-port, port 53 its DNS server on --dns-port (loopback);
#   - anything else needs the station joined with an IP (network.WLAN(STA_IF)); without it
#     the lookup fails as lwIP's does on the ESP32: OSError(-202);
#   - the CSMS's host:port (from --csms) goes to the simulation's network gate (--gate), which
#     can cut the link; TLS still checks the CSMS's real host name;
#   - the station's DNS resolver (192.168.1.1:53, the DHCP-given one) is the simulation's
#     (--dns); it gives the CSMS's name a loopback address, which is then the CSMS's too;
#   - <any host>:123 (NTP) goes to the simulation's SNTP server (--sntp), if there is one;
#   - the rest (loopback servers of tests) resolves as on the host.
# With no --wifi-env the simulation has no radio world: the station is taken as joined.
from usocket import *  # noqa: F401,F403
import usocket as _s

import _wires

# The module's names are the ESP32 port's (ports/esp32/modsocket.c): what only the unix port has
# is taken away, so firmware that used it fails here and not on a chip; the port's own options
# for setsockopt() have lwIP's numbers, which are Linux's too.
for _n in ("AF_UNIX", "IP_DROP_MEMBERSHIP", "MSG_DONTROUTE", "SO_ERROR", "SO_KEEPALIVE",
           "SO_LINGER", "inet_ntop", "inet_pton", "sockaddr"):
    globals().pop(_n, None)
IPPROTO_IP = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
TCP_NODELAY = 1

_AP_IP = "192.168.4.1"
_STA_DNS = "192.168.1.1"  # network.py's station ifconfig()


def _csms():
    url = _wires.arg("csms") or ""
    i = url.find("://")
    if i < 0:
        return None
    rest = url[i + 3:]
    hostport = rest.split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host:
        host, port = hostport, ("443" if url.startswith("wss") else "80")
    return host, int(port)


def _route(host, port):
    import network

    if host == _AP_IP:
        if not network._ap_up():
            raise OSError(-202)
        if port == 80 and _wires.arg("http-port"):
            return "127.0.0.1", int(_wires.arg("http-port"))
        if port == 53 and _wires.arg("dns-port"):
            return "127.0.0.1", int(_wires.arg("dns-port"))
        return "127.0.0.1", port
    if _wires.arg("wifi-env") and not network._sta_up():
        raise OSError(-202)  # no interface with an IP: the lookup fails
    if port == 123 and _wires.arg("sntp"):
        return _wires.hostport(_wires.arg("sntp"))
    if port == 53 and host == _STA_DNS and _wires.arg("dns"):
        return _wires.hostport(_wires.arg("dns"))
    csms = _csms()
    if _wires.arg("gate") and csms and port == csms[1] and host in (csms[0], "127.0.0.1"):
        return _wires.hostport(_wires.arg("gate"))
    return host, port


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    host, port = _route(host, int(port))
    return _s.getaddrinfo(host, port, af, type, proto, flags)
