# The unix-port board: every "wire" of the charger is a loopback socket to the host simulation
# (`borne sim`). Pins travel as short text lines on one I/O socket; the RFID reader and the meter
# get byte-exact sockets of their own, so their drivers run unchanged.
#
# Byte sockets: --rfid HOST:PORT is the PN532's HSU (UART) line, --meter HOST:PORT the meter's
# RS-485 line (Modbus RTU frames; the grid meter of --grid-meter-model answers on it too, at
# --grid-meter-addr); each is a plain non-blocking socket, as a UART would be.
#
# I/O socket lines, host -> agent:  "cp <high_mv> <low_mv>", "fb <0|1>", "rcd <0|1>"
#                   agent -> host:  "relay <0|1>", "pwm <duty>", "led <rrggbb> <pattern> <bright>",
#                                   "tone <hz> <ms>", "tel <key> <json>", "reset <0|1>"
# Setup button (hotspot/): host -> agent "btn <ms>", one press of that length.
# S0 meter (meter model "pulse"): host -> agent "s0 <pulses since the agent started>".
# Memory pressure (tests/test_low_memory.py): host -> agent "squeeze <bytes>" takes every free
# block of the heap at least that long (what is left free is in smaller holes, as in a
# fragmented heap); "squeeze -1" gives them back. Answered "tel squeeze {held, free}".
import gc
import os
import sys
import socket
import asyncio
import json

from boardbase import BoardBase

NAME = "unix_sim"


def _args(argv):
    # --key value pairs after the script name
    out = {}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and i + 1 < len(argv):
            out[a[2:]] = argv[i + 1]
            i += 2
        else:
            i += 1
    return out


def _hostport(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


class _Pulses:
    # S0 pulses as the simulation counts them (.count, .flag: what an S0 pin IRQ would keep).
    def __init__(self):
        self.count = 0
        self.flag = asyncio.ThreadSafeFlag()


class Board(BoardBase):
    EXTRAS = ("args",)  # the simulation's --key value arguments

    def __init__(self, argv=None):
        super().__init__()
        self.args = a = _args(argv or sys.argv)
        self.diag = a.get("diag") == "1"  # heap sampling for the benchmarks
        self.stallwatch = a.get("stallwatch") == "1"  # the loop's longest stall (benchmarks)
        self._pulses = None
        self._io = None
        self._cp_high = 12000  # state A until the simulation says otherwise
        self._cp_low = 12000
        self._fb = False
        self._rcd = False
        self._relay = False
        self._last_led = None
        self._radio = None
        self._ballast = None  # "squeeze": the heap taken away from the application
        self._squeeze_block = -1

    @property
    def flash_root(self):
        return self.args.get("flash", ".") + "/data"

    def provisioning(self):
        a = self.args
        p = {
            "cp_id": a.get("id", "borne-sim-0001"),
            "serial": a.get("serial", "SIM0001"),
            "model": "borne-sim",
            "vendor": "borne",
        }
        if "csms" in a:
            p["csms_url"] = a["csms"]
        # Security profile and credentials (`borne sim --profile N --auth-key K --ca/--cert/--key
        # FILE`); certificate files are PEM, read here once.
        if "profile" in a:
            p["security_profile"] = int(a["profile"])
        if "auth-key" in a:
            p["auth_key"] = a["auth-key"]
        for arg, key in (("ca", "ca_pem"), ("cert", "cert_pem"), ("key", "key_pem")):
            if arg in a:
                with open(a[arg]) as f:
                    p[key] = f.read()
        p.update(_factory_secrets(a))
        if "meter-model" in a:
            p["meter_model"] = a["meter-model"]
        if "meter-baud" in a:
            p["meter_baud"] = int(a["meter-baud"])
        # Load balancing: the grid meter on the same RS-485 socket ("" = none), the main fuse.
        if "grid-meter-model" in a:
            p["grid_meter_model"] = a["grid-meter-model"]
        for arg, key in (("grid-meter-addr", "grid_meter_addr"), ("main-fuse", "main_fuse_a"),
                         ("grid-fallback", "grid_fallback_a")):
            if arg in a:
                p[key] = int(a[arg])
        # MQTT (`borne sim --mqtt URL`, mqtt/): the owner's broker, credentials, CA; controls.
        for arg, key in (("mqtt", "mqtt_url"), ("mqtt-user", "mqtt_user"),
                         ("mqtt-pass", "mqtt_pass"), ("mqtt-prefix", "mqtt_prefix")):
            if arg in a:
                p[key] = a[arg]
        if "mqtt-ca" in a:
            with open(a["mqtt-ca"]) as f:
                p["mqtt_ca_pem"] = f.read()
        if "mqtt-controls" in a:
            p["mqtt_controls"] = a["mqtt-controls"] == "1"
        return p

    def dns_server(self):
        # The resolver the network gave (DHCP): (ip, port). `--dns HOST:PORT` in the simulation;
        # None = ask getaddrinfo (blocking).
        return _hostport(self.args["dns"]) if "dns" in self.args else None

    def hotspot_options(self):
        # Test knobs: idle timeout, lockout base, grace before closing after a claim.
        out = {}
        for k in ("hotspot-idle-s", "lockout-base-ms", "close-grace-ms"):
            if k in self.args:
                out[k.replace("-", "_")] = int(self.args[k])
        return out

    async def start(self):
        if "io" not in self.args:
            return  # no simulation attached: inputs stay at their safe defaults
        s = socket.socket()
        s.connect(socket.getaddrinfo(*_hostport(self.args["io"]))[0][-1])
        s.setblocking(False)
        self._io = s
        self._send("relay 0")
        self._send("pwm 100")
        asyncio.create_task(self._reader(asyncio.StreamReader(s)))

    async def _reader(self, r):
        while True:
            line = await r.readline()
            if not line:
                # The simulation went away: that is the power going off.
                sys.exit(3)
            p = line.split()
            try:
                if p[0] == b"cp":
                    self._cp_high = int(p[1])
                    self._cp_low = int(p[2])
                elif p[0] == b"fb":
                    self._fb = p[1] == b"1"
                elif p[0] == b"rcd":
                    self._rcd = p[1] == b"1"
                elif p[0] == b"btn":
                    if self.on_button:
                        self.on_button(int(p[1]))
                    continue
                elif p[0] == b"squeeze":
                    self._squeeze(int(p[1]))
                    continue
                elif p[0] == b"s0":
                    if self._pulses is not None:
                        self._pulses.count = int(p[1])
                        self._pulses.flag.set()
                    continue
            except (IndexError, ValueError):
                continue
            self.edge.set()

    def _squeeze(self, block):
        # Takes every free block of at least `block` bytes (as a fragmented heap would have
        # none left), and goes on taking those that free up (a collection every 20 ms: what
        # the application lets go must not leave a block), until -1 gives them back. Chained (each holds the one before): a list's growing array would need bigger
        # and bigger blocks.
        self._ballast = None
        self._squeeze_block = block
        gc.collect()
        held = self._take(block) if block > 0 else 0
        self.telemetry("squeeze", {"held": held, "free": gc.mem_free()})
        if block > 0 and not getattr(self, "_squeezing", False):
            self._squeezing = True
            asyncio.create_task(self._squeezer())

    def _take(self, block):
        held = 0
        try:
            while True:
                self._ballast = (self._ballast, bytearray(block - 32))  # (32: the objects)
                held += block
        except MemoryError:
            pass
        return held

    async def _squeezer(self):
        while self._squeeze_block > 0:
            await asyncio.sleep_ms(20)
            if self._squeeze_block > 0:
                gc.collect()
                self._take(self._squeeze_block)
        self._squeezing = False

    def _send(self, line):
        if self._io is None:
            return
        self._put(line.encode() + b"\n")

    def _put(self, b):
        while True:
            try:
                n = self._io.send(b)
            except OSError as e:
                if e.errno != 11:  # EAGAIN: loopback buffer full, try again
                    raise
                continue
            if n >= len(b):
                return  # (no slice: a whole line sent allocates nothing)
            b = b[n:]

    # control pilot
    def pilot_mv(self):
        return self._cp_high

    def pilot_low_mv(self):
        return self._cp_low

    def set_pwm(self, duty_pct):
        self._send("pwm %s" % duty_pct)

    # relay
    def set_relay(self, on):
        self._relay = bool(on)
        if self._io is not None:
            # Constant lines: opening the relay allocates nothing (no memory left is no excuse).
            self._put(b"relay 1\n" if on else b"relay 0\n")

    def relay_feedback(self):
        return self._fb

    def rcd_tripped(self):
        return self._rcd

    # face
    def led(self, r, g, b):
        pass  # the simulation shows the LED's meaning (led_state), not each animation frame

    def led_state(self, color, pattern, brightness):
        st = (color, pattern, brightness)
        if st != self._last_led:
            self._last_led = st
            self._send("led %s %s %d" % st)

    def tone(self, freq_hz, ms):
        self._send("tone %d %d" % (freq_hz, ms))

    def telemetry(self, key, value):
        self._send("tel %s %s" % (key, json.dumps(value)))

    # buses: raw non-blocking byte streams, like machine.UART(timeout=0) on the charger
    def _byte_socket(self, key):
        if key not in self.args:
            return None
        s = socket.socket()
        s.connect(socket.getaddrinfo(*_hostport(self.args[key]))[0][-1])
        s.setblocking(False)
        return s

    def rfid_stream(self):
        return self._byte_socket("rfid")

    def meter_stream(self, baud, parity):
        # The simulated RS-485 line carries bytes, not bits: baud and parity do not matter here
        # (the ESP32 emulation checks them against the line's).
        return self._byte_socket("meter")

    def meter_pulses(self):
        if self.args.get("meter-model") != "pulse":
            return None
        if self._pulses is None:
            self._pulses = _Pulses()
        return self._pulses

    def wlan(self):
        if self._radio is None:
            self._radio = SimRadio(self.args)
        return self._radio

    def route(self, host, port):
        # The simulation's network: every connection to the CSMS passes its gate, which can cut
        # the link. Hostnames stay as given (TLS checks them).
        if "wifi-env" in self.args and not self.wlan().sta_up():
            raise OSError(113, "no Wi-Fi link")  # EHOSTUNREACH: the station is not joined
        if "gate" in self.args:
            return _hostport(self.args["gate"])
        return host, port

    def set_rtc(self, unix_seconds):
        pass  # the host's clock is already right; the clock module keeps the offset

    def reset(self, hard):
        self._send("reset %d" % (1 if hard else 0))
        # Exit code 4 asks the simulation to start the agent again: a reboot.
        sys.exit(4)


# -- Wi-Fi (hotspot/) ----------------------------------------------------------------------
# The radio is simulated: the access point "opens" and the hotspot's DNS and HTTP servers bind
# real loopback sockets (ports from --dns-port/--http-port); the visible networks and their
# passwords come from the JSON file --wifi-env, re-read at each scan and join:
#   {"networks": [{"ssid": "Home", "password": "secret99", "rssi": -50}, ...]}
# ("password": "" is an open network). Joining succeeds only with the right password.

_KEY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols: 5 bits each, no 0/o, 1/l


def make_secret(groups):
    # groups of 4 symbols: 4 groups = 80 bits of entropy
    out = []
    for i, b in enumerate(os.urandom(groups * 4)):
        if i and i % 4 == 0:
            out.append("-")
        out.append(_KEY_ALPHABET[b & 31])
    return "".join(out)


def _factory_secrets(a):
    # Per-device secrets set at provisioning. The simulation keeps them in <flash>/factory.json,
    # outside the store (the factory partition survives a factory reset), creating them on the
    # first boot; --hotspot-key / --conn-password override (and are written there).
    path = a.get("flash", ".") + "/factory.json"
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        d = {}
    want = dict(d)
    if "hotspot-key" in a:
        want["hotspot_key"] = a["hotspot-key"]
    if "conn-password" in a:
        want["conn_password"] = a["conn-password"]
    if not want.get("hotspot_key"):
        want["hotspot_key"] = make_secret(4)
    if not want.get("conn_password"):
        want["conn_password"] = make_secret(3)
    if want != d:
        with open(path, "w") as f:
            json.dump(want, f)
    return {"hotspot_key": want["hotspot_key"], "conn_password": want["conn_password"]}


class SimRadio:
    AP_IP = "127.0.0.1"

    def __init__(self, args):
        self.args = args
        self.ap = None  # (ssid, key) while the access point is up
        self._sta = None  # ssid joined

    def _networks(self):
        try:
            with open(self.args["wifi-env"]) as f:
                nets = json.load(f).get("networks", [])
        except (KeyError, OSError, ValueError, AttributeError):
            return []
        return [n for n in nets if isinstance(n, dict) and isinstance(n.get("ssid"), str)]

    # access point
    def ap_open(self, ssid, key):
        self.ap = (ssid, key)
        return self.AP_IP

    def ap_close(self):
        self.ap = None

    def listen_addr(self, service):
        # where the hotspot's servers bind: "http" or "dns"
        return self.AP_IP, int(self.args.get(service + "-port", 0))

    # station
    def scan(self):
        return [(n["ssid"], int(n.get("rssi", -60)), bool(n.get("password")))
                for n in self._networks()]

    async def join(self, ssid, password, timeout_ms=15000):
        self._sta = None
        await asyncio.sleep_ms(200)  # association and DHCP take a moment
        for n in self._networks():
            if n["ssid"] == ssid:
                if n.get("password", "") != password:
                    return "wrong_password"
                self._sta = ssid
                return "ok"
        await asyncio.sleep_ms(300)  # a real radio scans every channel before giving up
        return "not_found"

    def leave(self):
        self._sta = None

    def sta_up(self):
        return self._sta is not None
