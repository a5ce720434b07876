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
# Memory pressure (tests/test_low_memory.py): host -> agent "squeeze <bytes> [<cap>]" takes every
# free block of the heap at least that long (what is left free is in smaller holes, as in a
# fragmented heap), and with a cap more until at most <cap> bytes stay free; "squeeze -1" gives
# them back. Answered "tel squeeze {held, free}".
import sys
import socket
import asyncio
import json

from boardbase import BoardBase

NAME = "unix_sim"


def _hostport(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


def _on_use():
    # simboard.py: the board's parts used once or seldom (the arguments and provisioning at
    # boot, the hotspot's test knobs, the heap squeeze), imported for one use and out of
    # sys.modules again, so their data leaves the heap after. (simparts.py: the S0 counter, a
    # part kept once made but seldom needed, imported when first asked for.)
    import simboard

    sys.modules.pop("simboard", None)
    return simboard


class Board(BoardBase):
    # args: the simulation's --key value arguments the board reads after boot (simboard.KEPT;
    # provisioning reads them all again: the rest, paths and keys a charger never holds, is
    # not kept in the heap)
    EXTRAS = ("args",)

    def __init__(self, argv=None):
        super().__init__()
        m = _on_use()
        a = m.args(argv)
        self.diag = a.get("diag") == "1"  # heap sampling for the benchmarks
        self.stallwatch = a.get("stallwatch") == "1"  # the loop's longest stall (benchmarks)
        self.args = m.kept(a)
        self._argv = argv
        self._pulses = None
        self._io = None
        self._cp_high = 12000  # state A until the simulation says otherwise
        self._cp_low = 12000
        self._fb = False
        self._rcd = False
        self._relay = False
        self._last_led = None
        self._radio = None
        # (simboard.py's squeeze sets _ballast, _squeeze_block and _squeeze_mod when asked)

    @property
    def flash_root(self):
        return self.args.get("flash", ".") + "/data"

    def provisioning(self):
        m = _on_use()
        return m.provisioning(m.args(self._argv))  # at boot (and when the hotspot opens)

    def dns_server(self):
        # The resolver the network gave (DHCP): (ip, port). `--dns HOST:PORT` in the simulation;
        # None = ask getaddrinfo (blocking).
        return _hostport(self.args["dns"]) if "dns" in self.args else None

    # ntp_server(): BoardBase's (None): the host's clock is trusted, so nothing asks it. The
    # ESP32 board, which starts at 2000 after a power cut, names its server; in the simulation
    # that is the SNTP server by name (sim/sntp.py).

    def hotspot_options(self):
        # Test knobs: idle timeout, lockout base, grace before closing after a claim.
        return _on_use().hotspot_options(self.args)

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
        # The wires are read whatever the heap holds: a line that finds no memory (the squeeze
        # importing simboard in a heap the hotspot has filled) is tried again after a
        # collection; the reader ending would leave pilot and feedback frozen for good.
        while True:
            line = None
            for _ in range(50):
                try:
                    if line is None:
                        line = await r.readline()
                        if not line:
                            # The simulation went away: that is the power going off.
                            sys.exit(3)
                    self._line(line)
                    break
                except MemoryError:
                    await self._no_memory()
            else:
                self._unhandled(line)

    async def _no_memory(self):
        import gc

        gc.collect()
        await asyncio.sleep_ms(20)

    def _unhandled(self, line):
        # No memory for a second: a squeeze is still answered (nothing held, the free heap), so
        # the host is not left waiting; another line is lost, as to a glitch on its wire.
        import gc

        try:
            if line and line.startswith(b"squeeze"):
                self._send('tel squeeze {"held": 0, "free": %d}' % gc.mem_free())
        except MemoryError:
            pass

    def _line(self, line):
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
                return
            elif p[0] == b"squeeze":
                # kept while squeezing: giving the heap back must not need an import
                m = getattr(self, "_squeeze_mod", None) or _on_use()
                block = int(p[1])
                self._squeeze_mod = m if block > 0 else None
                m.squeeze(self, block, int(p[2]) if len(p) > 2 else 0)
                return
            elif p[0] == b"s0":
                if self._pulses is not None:
                    self._pulses.count = int(p[1])
                    self._pulses.flag.set()
                return
        except (IndexError, ValueError):
            return
        self.edge.set()

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
            from simparts import Pulses

            self._pulses = Pulses()
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

    # set_rtc(): BoardBase's (nothing): the host's clock is already right; the clock module
    # keeps the offset

    def reset(self, hard):
        self.set_relay(False)  # the contract: relay open first (a constant line, no allocation)
        self._send("reset %d" % (1 if hard else 0))
        # Exit code 4 asks the simulation to start the agent again: a reboot.
        sys.exit(4)


# -- Wi-Fi (hotspot/) ----------------------------------------------------------------------
# The radio is simulated: the access point "opens" and the hotspot's DNS and HTTP servers bind
# real loopback sockets (ports from --dns-port/--http-port); the visible networks and their
# passwords come from the JSON file --wifi-env, re-read at each scan and join:
#   {"networks": [{"ssid": "Home", "password": "secret99", "rssi": -50}, ...]}
# ("password": "" is an open network). Joining succeeds only with the right password.


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
        # Joined, and its network still in the file: a router that leaves it drops the station.
        s = self._sta
        if s is not None and not any(n["ssid"] == s for n in self._networks()):
            self._sta = None
        return self._sta is not None
