# MicroPython's network module of the ESP32 port (WLAN only), emulated for the unix port (host
# side only). The radio world is the simulation's: the networks in range and their passwords
# come from the JSON file --wifi-env (re-read at each scan and connect), as for unix_sim's
# SimRadio:  {"networks": [{"ssid": "Home", "password": "secret99", "rssi": -50}, ...]}
# ("password": "" is an open network). Each connection attempt takes 300 ms to succeed or fail.
# The station's status() follows ports/esp32/network_wlan.c of v1.28: a failed attempt leaves
# the driver's disconnect reason (201 no such network; 15, the 4-way handshake timing out, for a
# wrong WPA2 key, as ESP-IDF reports it; 202 for an open network given a key is not modelled),
# and the driver tries again until config(reconnects=N) attempts have failed (N+1 in all;
# unlimited by default). status() answers a "no AP found" reason at once, STAT_IDLE after
# disconnect() of a joined station (ASSOC_LEAVE, until a new attempt ends), STAT_CONNECTING
# while attempts remain, and the raw reason (15) once they are spent. The reason is the port's
# one static, changed only by the driver's next disconnect event or an address: ESP-IDF sends
# that event for esp_wifi_disconnect() only when the station "is already connected to the AP"
# (its Wi-Fi guide), so disconnect() after a failed join leaves it, and a new connect() reads
# the old failure (a "no AP found" one, which status() answers first) until its own attempt
# ends. A joined network that leaves the file drops the station (a beacon timeout), and the
# driver's remaining attempts follow (its counter is reset by connect(), not by a join).
# config() takes the keys network_wlan.c knows, under either of their names (ssid/essid,
# key/password, security/authmode), each on the interface it belongs to: another key is
# ValueError("unknown config param"), an access point's key on the station (or reconnects on
# the access point) OSError("AP required") / OSError("STA required"), and nothing is applied.
# While either interface is active, ADC2 cannot be read (machine.ADC raises, as on the chip);
# the emulated socket module routes traffic only while the station has an IP or the access
# point is up (sim/mpy/socket.py).
import json

import machine
import utime
import _wires

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY = 210
STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD = 211
STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD = 212
AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4
AUTH_WPA3_PSK = 6
AUTH_WPA2_WPA3_PSK = 7

_CONNECT_MS = 300
_REASON_4WAY_HANDSHAKE_TIMEOUT = 15  # wifi_err_reason_t: what a wrong WPA2 key gives
_REASON_ASSOC_LEAVE = 8  # after wlan.disconnect()
_REASON_CONNECTION_FAIL = 205
_NO_AP = (STAT_NO_AP_FOUND, STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY,
          STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD, STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD)
# WLAN.config()'s keys in v1.28 (network_wlan.c), each with the interface it requires (None:
# either); the names of the left column are the ones these tables use.
_ALIAS = {"ssid": "essid", "key": "password", "security": "authmode",
          "dhcp_hostname": "hostname"}
_SET = {"mac": None, "essid": AP_IF, "hidden": AP_IF, "authmode": AP_IF, "password": AP_IF,
        "channel": None, "hostname": None, "max_clients": AP_IF, "reconnects": STA_IF,
        "txpower": None, "protocol": None, "pm": None}
# (the key is write-only: config("password") is an unknown param)
_GET = {"mac": None, "essid": None, "hidden": AP_IF, "authmode": AP_IF, "channel": None,
        "ifname": None, "hostname": STA_IF, "max_clients": None, "reconnects": STA_IF,
        "txpower": None, "protocol": None, "pm": None}


def _networks():
    try:
        with open(_wires.arg("wifi-env")) as f:
            nets = json.load(f).get("networks", [])
    except (TypeError, OSError, ValueError, AttributeError):
        return []
    return [n for n in nets if isinstance(n, dict) and isinstance(n.get("ssid"), str)]


_ifaces = [None, None]


class WLAN:
    IF_STA = 0
    IF_AP = 1
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __new__(cls, interface_id=STA_IF):
        # One object per interface, as the port returns.
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        w = _ifaces[interface_id]
        if w is None:
            w = object.__new__(cls)
            w._if = interface_id
            w._active = False
            w._cfg = {"essid": "ESP_" if interface_id else "", "password": "",
                      "authmode": AUTH_OPEN, "max_clients": 10, "channel": 1,
                      "hidden": False}
            w._target = None  # (ssid, key, ticks the current attempt began) while requested
            w._ok = False  # joined (GOT_IP)
            w._reason = 0  # the driver's last disconnect reason (kept across connect())
            w._tries = 0  # attempts failed since connect()
            w._conf_reconnects = 0  # the port's conf value: reconnects + 1, 0 = for ever
            _ifaces[interface_id] = w
        return w

    def __init__(self, interface_id=STA_IF):
        pass

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)
        if not self._active:
            self._target = None
            self._ok = False
        machine._wifi[0] = 1 if any(w is not None and w._active for w in _ifaces) else 0

    def _need_active(self):
        if not self._active:
            raise OSError("Wifi Not Started" if self._if == STA_IF else "AP Not Started")

    def connect(self, ssid=None, password=None, *, bssid=None):
        self._need_active()
        if self._if != STA_IF:
            raise OSError("STA required")
        self._target = (ssid, password or "", utime.ticks_ms())
        self._ok = False
        self._tries = 0

    def disconnect(self):
        if not machine._wifi[0]:
            raise OSError("Wifi Not Started")  # esp_wifi_disconnect(): ESP_ERR_WIFI_NOT_STARTED
        if self._ok:
            self._reason = _REASON_ASSOC_LEAVE
        self._target = None
        self._ok = False

    def _attempts(self):
        # The driver's attempts that ended since the last look, each _CONNECT_MS long.
        t = self._target
        if self._ok and t is not None and not any(n["ssid"] == t[0] for n in _networks()):
            self._ok = False  # the AP is gone: its beacons time out, the driver tries again
            self._reason = STAT_BEACON_TIMEOUT
            self._tries += 1
            if self._conf_reconnects and self._tries >= self._conf_reconnects:
                return
            t = self._target = (t[0], t[1], utime.ticks_ms())
        while t is not None and not self._ok:
            if utime.ticks_diff(utime.ticks_ms(), t[2]) < _CONNECT_MS:
                return
            reason = STAT_NO_AP_FOUND
            for n in _networks():
                if n["ssid"] == t[0]:
                    reason = 0 if n.get("password", "") == t[1] else _REASON_4WAY_HANDSHAKE_TIMEOUT
            if reason == 0:
                self._ok = True
                self._reason = 0
                return
            self._reason = reason
            self._tries += 1
            if self._conf_reconnects and self._tries >= self._conf_reconnects:
                return  # the driver gives up; still "requested", as on the port
            t = self._target = (t[0], t[1], utime.ticks_add(t[2], _CONNECT_MS))

    def _sta_status(self):
        self._attempts()
        r = self._reason
        if self._ok:
            return STAT_GOT_IP
        if r in _NO_AP:
            return r
        if r in (STAT_WRONG_PASSWORD, _REASON_CONNECTION_FAIL):
            return STAT_WRONG_PASSWORD
        if r == _REASON_ASSOC_LEAVE:
            return STAT_IDLE
        if self._target is not None and (self._conf_reconnects == 0
                                         or self._tries < self._conf_reconnects):
            return STAT_CONNECTING
        if r == 0:
            return STAT_IDLE
        return r

    def status(self, param=None):
        if param == "rssi":
            for n in _networks():
                if self.isconnected() and n["ssid"] == self._target[0]:
                    return int(n.get("rssi", -60))
            raise OSError("STA Not Connected")
        if param == "stations":
            return []
        if self._if == AP_IF:
            return None  # network_wlan.c: status() answers for the station only
        return self._sta_status()

    def isconnected(self):
        if self._if == AP_IF:
            return self._active
        if not _wires.arg("wifi-env"):
            return True  # no radio world: the station is taken as joined (socket.py does too)
        return self._active and self.status() == STAT_GOT_IP

    def scan(self):
        self._need_active()
        if self._if == STA_IF and self._sta_status() == STAT_CONNECTING:
            # esp_wifi_scan_start() refuses while the station connects (ESP_ERR_WIFI_STATE),
            # and network_wlan.c then returns the empty list
            return []
        utime.sleep_ms(50)  # the real scan blocks for about 2 s, every channel
        out = []
        for i, n in enumerate(_networks()):
            auth = AUTH_WPA2_PSK if n.get("password") else AUTH_OPEN
            bssid = bytes([0x02, 0, 0, 0, 0, i & 0xFF])
            # The port scans with show_hidden: a network marked "hidden" in the file comes with
            # an empty name, and the last field is always False (network_wlan.c's "XXX hidden?").
            name = b"" if n.get("hidden") else n["ssid"].encode()
            out.append((name, bssid, 1 + i % 11, int(n.get("rssi", -60)), auth, False))
        return out

    def _require(self, want):
        # network_wlan.c's require_if(): a key of the other interface's
        if want is not None and self._if != want:
            raise OSError("STA required" if want == STA_IF else "AP required")

    def config(self, *args, **kw):
        # network_wlan.c's config(): the keys it knows, each for the interface it names; any
        # other key is ValueError, and a set that raises applies none of its keys.
        if args and kw:
            raise TypeError("either pos or kw args are allowed")
        if args:
            if len(args) != 1:
                raise TypeError("can query only one param")
            key = _ALIAS.get(args[0], args[0])
            if key not in _GET:
                raise ValueError("unknown config param")
            self._require(_GET[key])
            if key == "mac":
                return machine.unique_id()
            if key == "reconnects":
                return self._conf_reconnects - 1
            return self._cfg.get(key)
        for k in kw:
            key = _ALIAS.get(k, k)
            if key not in _SET:
                raise ValueError("unknown config param")
            self._require(_SET[key])
        for k, v in kw.items():
            k = _ALIAS.get(k, k)
            if k == "password" and v and len(v) < 8 and self._if == AP_IF:
                raise OSError("ESP_ERR_WIFI_PASSWORD")
            if k == "reconnects":
                self._conf_reconnects = 0 if v == -1 else int(v) + 1
            self._cfg[k] = v

    def ifconfig(self, ip_mask_gateway_dns=None):
        if self._if == AP_IF:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        if self.isconnected():
            return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")


def hostname(name=None):
    return "borne"


def country(code=None):
    return "XX"


def _sta_up():
    # for the emulated socket module: does the station have an IP?
    w = _ifaces[STA_IF]
    return w is not None and w.isconnected()


def _ap_up():
    w = _ifaces[AP_IF]
    return w is not None and w._active
