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
# A join's attempts: the driver's first and this many more. The port's status() names "no such
# network" (STAT_NO_AP_FOUND and IDF 5's variants) and an SAE/WPA3 refusal (STAT_WRONG_PASSWORD)
# at once, but a wrong WPA2 key only as the reason of the last failed attempt (ESP-IDF's
# 4-way handshake timeout, or STAT_HANDSHAKE_TIMEOUT) once no attempt remains: with the
# port's default (unlimited) it reads STAT_CONNECTING until the timeout, and the owner was told
# "could not join" instead of "wrong password". Station (firmware/station.py) rejoins after a
# drop itself.
_JOIN_RETRIES = const(2)
_REASON_4WAY_HANDSHAKE_TIMEOUT = const(15)  # ESP-IDF wifi_err_reason_t (no network.STAT_ name)


class Radio:
    def __init__(self):
        self._ap = network.WLAN(network.AP_IF)
        self._sta = network.WLAN(network.STA_IF)
        self._ip = "192.168.4.1"

    # access point
    def ap_open(self, ssid, key):
        # Configured before it starts: started first, the driver would broadcast its default
        # (open, "ESP_xxxxxx") access point until config() (docs/esp32/quickref.rst's order).
        ap = self._ap
        ap.config(essid=ssid, password=key, authmode=_AUTH_WPA2_PSK, max_clients=4)
        ap.active(True)
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
            # The port scans with show_hidden and never sets `hidden` (network_wlan.c): a
            # hidden network is the one with no name.
            if hidden or not ssid:
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
        was = sta.isconnected()
        try:
            sta.disconnect()
        except OSError:
            pass
        # Joined before (a claim on a claimed charger): the port learns of the disconnection
        # from the driver's event, and until then status() still says GOT_IP, which the new
        # attempt would take for its own.
        t0 = time.ticks_ms()
        while was and sta.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 2000:
            await asyncio.sleep_ms(50)
        # The port's status() shows the driver's last disconnect reason until the next one or
        # an address, and disconnect() sends none unless the station was joined: after a failed
        # join (or a drop the driver gave up on), the new attempt reads the old failure. That
        # one is taken for this attempt's only if it still stands at the timeout; before, a
        # retry after a wrong key or a router's outage would fail at once, for ever.
        old = sta.status()
        sta.config(reconnects=_JOIN_RETRIES)
        sta.connect(ssid, password)
        t0 = time.ticks_ms()
        st = old
        while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
            st = sta.status()
            if st == network.STAT_GOT_IP:
                return "ok"
            if st != old and st not in (network.STAT_IDLE, network.STAT_CONNECTING):
                break
            await asyncio.sleep_ms(200)  # (IDLE: our disconnect()'s, until an attempt ends)
        sta.disconnect()
        if st in (network.STAT_WRONG_PASSWORD, network.STAT_HANDSHAKE_TIMEOUT,
                  _REASON_4WAY_HANDSHAKE_TIMEOUT):
            return "wrong_password"
        if st in (network.STAT_NO_AP_FOUND, network.STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY,
                  network.STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD,
                  network.STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD):
            return "not_found"
        return "failed"  # another reason once the attempts are spent, or still trying

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
