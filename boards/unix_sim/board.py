# The unix-port board: every "wire" of the charger is a loopback socket to the host simulation
# (`borne sim`). Pins travel as short text lines on one I/O socket; the RFID reader and the meter
# get byte-exact sockets of their own, so their drivers run unchanged.
#
# Byte sockets: --rfid HOST:PORT is the PN532's HSU (UART) line, --meter HOST:PORT the meter's
# RS-485 line (Modbus RTU frames); each is a plain non-blocking socket, as a UART would be.
#
# I/O socket lines, host -> agent:  "cp <high_mv> <low_mv>", "fb <0|1>", "rcd <0|1>"
#                   agent -> host:  "relay <0|1>", "pwm <duty>", "led <rrggbb> <pattern> <bright>",
#                                   "tone <hz> <ms>", "tel <key> <json>", "reset <0|1>"
import sys
import socket
import asyncio
import json

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


class Board:
    def __init__(self, argv=None):
        self.args = a = _args(argv or sys.argv)
        self.flash_root = a.get("flash", ".") + "/data"
        self.diag = a.get("diag") == "1"  # heap sampling for the benchmarks
        self.edge = asyncio.ThreadSafeFlag()
        self._io = None
        self._cp_high = 12000  # state A until the simulation says otherwise
        self._cp_low = 12000
        self._fb = False
        self._rcd = False
        self._relay = False
        self._last_led = None

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
        if "meter-model" in a:
            p["meter_model"] = a["meter-model"]
        return p

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
            except (IndexError, ValueError):
                continue
            self.edge.set()

    def _send(self, line):
        if self._io is None:
            return
        b = line.encode() + b"\n"
        while b:
            try:
                n = self._io.send(b)
                b = b[n:]
            except OSError as e:
                if e.errno != 11:  # EAGAIN: loopback buffer full, try again
                    raise

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
        self._send("relay 1" if on else "relay 0")

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

    def tone(self, freq, ms):
        self._send("tone %d %d" % (freq, ms))

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

    def meter_stream(self):
        return self._byte_socket("meter")

    def wlan(self):
        return None

    def route(self, host, port):
        # The simulation's network: every connection to the CSMS passes its gate, which can cut
        # the link. Hostnames stay as given (TLS checks them).
        if "gate" in self.args:
            return _hostport(self.args["gate"])
        return host, port

    def set_rtc(self, unix_seconds):
        pass  # the host's clock is already right; the clock module keeps the offset

    def reset(self, hard):
        self._send("reset %d" % (1 if hard else 0))
        # Exit code 4 asks the simulation to start the agent again: a reboot.
        sys.exit(4)
