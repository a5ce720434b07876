# The ESP32's Wi-Fi for the hotspot (firmware/hotspot/): the access point (AP_IF, WPA2-PSK)
# and the station (STA_IF) on network.WLAN. board.Board.wlan() returns one Radio (built once);
# the interface matches the unix_sim board's SimRadio:
#   ap_open(ssid, key) -> ip    ap_close()    listen_addr("http"|"dns") -> (host, port)
#   scan() -> [(ssid, rssi, secure)]    async join(ssid, password, timeout_ms) -> "ok" |
#   "wrong_password" | "not_found" | "failed"    leave()    sta_up() -> bool
#   dns_server() -> (ip, port) | None (net/dns.py asks it without blocking the loop)
import asyncio
import time

import network

_AUTH_WPA2_PSK = const(3)
_AUTH_OPEN = const(0)


class Radio:
    def __init__(self):
        self._ap = network.WLAN(network.AP_IF)
        self._sta = network.WLAN(network.STA_IF)
        self._ip = "192.168.4.1"

    # access point
    def ap_open(self, ssid, key):
        ap = self._ap
        ap.active(True)
        ap.config(essid=ssid, password=key, authmode=_AUTH_WPA2_PSK, max_clients=4)
        self._ip = ap.ifconfig()[0]
        return self._ip

    def ap_close(self):
        self._ap.active(False)

    def listen_addr(self, service):
        # Bound to the access point's address only: nothing is served on the home network.
        return self._ip, 80 if service == "http" else 53

    # station
    def scan(self):
        # Blocks the loop for about 2 s: the hotspot caches the answer and never scans while
        # the relay is closed.
        sta = self._sta
        sta.active(True)
        out = []
        for ssid, _bssid, _ch, rssi, auth, hidden in sta.scan():
            if hidden:
                continue
            try:
                name = ssid.decode()
            except UnicodeError:
                continue
            out.append((name, rssi, auth != _AUTH_OPEN))
        return out

    async def join(self, ssid, password, timeout_ms=15000):
        sta = self._sta
        sta.active(True)
        try:
            sta.disconnect()
        except OSError:
            pass
        sta.connect(ssid, password)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
            st = sta.status()
            if st == network.STAT_GOT_IP:
                return "ok"
            if st == network.STAT_WRONG_PASSWORD:
                sta.disconnect()
                return "wrong_password"
            if st == network.STAT_NO_AP_FOUND:
                sta.disconnect()
                return "not_found"
            if st == network.STAT_CONNECT_FAIL:
                sta.disconnect()
                return "failed"
            await asyncio.sleep_ms(200)
        sta.disconnect()
        return "failed"

    def leave(self):
        try:
            self._sta.disconnect()
        except OSError:
            pass

    def sta_up(self):
        return self._sta.isconnected()

    def dns_server(self):
        # The resolver DHCP gave the station, (ip, 53), or None while it is not joined.
        if not self._sta.isconnected():
            return None
        ip = self._sta.ifconfig()[3]
        return (ip, 53) if ip and ip != "0.0.0.0" else None
