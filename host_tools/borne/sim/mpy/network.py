# MicroPython's network module of the ESP32 port (WLAN only), emulated for the unix port (host
# side only). The radio world is the simulation's: the networks in range and their passwords
# come from the JSON file --wifi-env (re-read at each scan and connect), as for unix_sim's
# SimRadio:  {"networks": [{"ssid": "Home", "password": "secret99", "rssi": -50}, ...]}
# ("password": "" is an open network). A connect takes 300 ms to succeed or fail.
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
AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4
AUTH_WPA3_PSK = 6
AUTH_WPA2_WPA3_PSK = 7

_CONNECT_MS = 300


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
            w._target = None  # (ssid, key, ticks at connect)
            w._status = STAT_IDLE
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
            self._status = STAT_IDLE
        machine._wifi[0] = 1 if any(w is not None and w._active for w in _ifaces) else 0

    def _need_active(self):
        if not self._active:
            raise OSError("Wifi Not Started" if self._if == STA_IF else "AP Not Started")

    def connect(self, ssid=None, password=None, *, bssid=None):
        self._need_active()
        if self._if != STA_IF:
            raise OSError("STA required")
        self._target = (ssid, password or "", utime.ticks_ms())
        self._status = STAT_CONNECTING

    def disconnect(self):
        self._target = None
        self._status = STAT_IDLE

    def status(self, param=None):
        if param == "rssi":
            for n in _networks():
                if self.isconnected() and n["ssid"] == self._target[0]:
                    return int(n.get("rssi", -60))
            raise OSError("STA Not Connected")
        if param == "stations":
            return []
        t = self._target
        if self._if == STA_IF and t is not None and self._status == STAT_CONNECTING:
            if utime.ticks_diff(utime.ticks_ms(), t[2]) >= _CONNECT_MS:
                self._status = STAT_NO_AP_FOUND
                for n in _networks():
                    if n["ssid"] == t[0]:
                        ok = n.get("password", "") == t[1]
                        self._status = STAT_GOT_IP if ok else STAT_WRONG_PASSWORD
        return self._status

    def isconnected(self):
        if self._if == AP_IF:
            return self._active
        if not _wires.arg("wifi-env"):
            return True  # no radio world: the station is taken as joined (socket.py does too)
        return self._active and self.status() == STAT_GOT_IP

    def scan(self):
        self._need_active()
        utime.sleep_ms(50)  # the real scan blocks for about 2 s, every channel
        out = []
        for i, n in enumerate(_networks()):
            auth = AUTH_WPA2_PSK if n.get("password") else AUTH_OPEN
            bssid = bytes([0x02, 0, 0, 0, 0, i & 0xFF])
            out.append((n["ssid"].encode(), bssid, 1 + i % 11, int(n.get("rssi", -60)), auth,
                        False))
        return out

    def config(self, *args, **kw):
        if args:
            key = args[0]
            if key == "mac":
                return machine.unique_id()
            if key == "ssid":
                key = "essid"
            if key == "key":
                key = "password"
            if key == "password":
                raise ValueError("can't get password")
            if key not in self._cfg:
                raise ValueError("unknown config param")
            return self._cfg[key]
        for k, v in kw.items():
            if k == "ssid":
                k = "essid"
            if k == "key":
                k = "password"
            if k == "password" and v and len(v) < 8 and self._if == AP_IF:
                raise OSError("ESP_ERR_WIFI_PASSWORD")
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
