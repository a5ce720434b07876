"""The whole simulation: hardware, network gate, optional embedded CSMS, the agent, and the
control protocol of DESIGN.md section 4."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from borne.csms import Csms
from borne.sim.agent import Agent, Security
from borne.sim.dnsserver import DnsServer
from borne.sim.hardware import HW_FAULTS, Hardware
from borne.sim.meter_emu import MeterEmulator
from borne.sim.mqttopts import MqttOptions
from borne.sim.netgate import NetGate
from borne.sim.options import PULSE, Fitted, Runtime, Wires
from borne.sim.pn532_emu import Pn532Emulator
from borne.sim.sntp import NAME as SNTP_NAME
from borne.sim.sntp import SntpServer

log = logging.getLogger("borne.sim")

FAULT_KINDS = (*HW_FAULTS, "meter_down", "reader_down", "grid_down", "clear")
# The control protocol's commands (README "Driving the simulator"), as its help names them
COMMANDS = ("plug", "charge", "pause", "unplug", "load", "tap", "fault", "house", "net",
            "power_cut", "power_on", "button", "stall", "state")


class CommandError(Exception):
    pass


def check_csms_url(url: str) -> tuple[str, int]:
    """Host and port of a CSMS URL, or a clear error before anything starts."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("ws", "wss"):
        raise ValueError(f"--csms {url!r}: the URL must start with ws:// or wss://")
    if not u.hostname:
        raise ValueError(f"--csms {url!r}: the URL has no host")
    try:
        port = u.port or (443 if u.scheme == "wss" else 80)
    except ValueError:
        raise ValueError(f"--csms {url!r}: the port is not a number from 1 to 65535") from None
    return u.hostname, port


def check_flash_dir(flash: Path) -> Path:
    """The flash directory must be a writable directory (created if missing)."""
    if flash.exists() and not flash.is_dir():
        raise ValueError(f"--flash {flash}: exists and is not a directory")
    try:
        flash.mkdir(parents=True, exist_ok=True)
        probe = flash / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--flash {flash}: not writable ({e.strerror})") from None
    return flash.resolve()


class Simulator:
    """One simulated charger on `flash`. The options: `fitted` (board, reader, meters,
    installation), `runtime` (how the agent's interpreter runs), `security`, `claim` (start
    unclaimed, hotspot up: no CSMS), `mqtt` (the owner's broker); with no `csms_url` an embedded
    CSMS giving `heartbeat_interval` accepts the charger. `http_port`/`dns_port`: where the
    hotspot's servers listen on loopback when the setup button opens it outside claim mode
    (0 = a free one chosen at start; claim mode takes its own from `claim`)."""

    def __init__(
        self,
        flash: Path,
        *,
        cp_id: str = "borne-sim-0001",
        csms_url: str | None = None,
        fitted: Fitted | None = None,
        runtime: Runtime | None = None,
        security: Security | None = None,
        claim: ClaimOptions | None = None,
        mqtt: MqttOptions | None = None,
        heartbeat_interval: int = 300,
        http_port: int = 0,
        dns_port: int = 0,
    ) -> None:
        self.fitted = fitted = fitted or Fitted()
        self.http_port, self.dns_port = http_port, dns_port
        self.runtime = runtime or Runtime()
        self.flash = check_flash_dir(flash)
        self.security = security
        self.claim = claim  # start unclaimed: no CSMS, hotspot on loopback ports
        self.cp_id = cp_id
        if csms_url:
            check_csms_url(csms_url)
        self.csms_url = csms_url
        self.csms: Csms | None = None
        self.heartbeat_interval = heartbeat_interval
        self.hw = Hardware(phases=fitted.supply_phases)
        self.gate: NetGate | None = None
        self.agent: Agent | None = None
        self.reader = Pn532Emulator()
        # An S0 meter counts pulses off the hardware's energy (1 Wh a pulse); the Modbus
        # emulator still answers on the RS-485 line, which the charger then does not use.
        pulse = fitted.meter_model == PULSE
        self.hw.s0_wh = 1.0 if pulse else None
        self.hw.console_telemetry = fitted.board == "esp32_wallbox"
        self.meter = MeterEmulator(self.hw, "sdm630" if pulse else fitted.meter_model)
        self.sntp = SntpServer()  # the network's time source (the ESP32 asks it before TLS)
        # The network's DNS resolver (DHCP's, on the charger): the CSMS's name (and localhost)
        # on loopback, where the gate or the CSMS listens. `dns.silent` makes it a dead one.
        self.dns = DnsServer({"localhost": "127.0.0.1", SNTP_NAME: "127.0.0.1"})
        # Load balancing: a supply-side meter on the same RS-485 line, at its own address.
        self.grid: MeterEmulator | None = None
        if fitted.grid_meter:
            self.grid = MeterEmulator(self.hw, fitted.grid_meter, address=fitted.grid_meter_addr,
                                      grid=True)
            self.meter.others.append(self.grid)
        self.mqtt = mqtt  # the owner's broker (mqtt/), None = no MQTT
        self._io_server: asyncio.Server | None = None
        self._rfid_server: asyncio.Server | None = None
        self._tick: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.claim is not None:
            await self._start_claim_mode()
            return
        if not self.csms_url:
            self.csms = Csms(heartbeat_interval=self.heartbeat_interval)
            self.csms_url = await self.csms.start()
        host, port = check_csms_url(self.csms_url)
        self.dns.names.setdefault(host.lower(), "127.0.0.1")
        self.gate = NetGate(host, port)
        gate_port = await self.gate.start()
        self._io_server = await asyncio.start_server(self.hw.serve_agent, "127.0.0.1", 0)
        self._rfid_server = await asyncio.start_server(self.reader.serve, "127.0.0.1", 0)
        meter_port = await self.meter.start()
        wires = Wires(io=_addr(self._io_server), sntp=f"127.0.0.1:{await self.sntp.start()}",
                      gate=f"127.0.0.1:{gate_port}", rfid=_addr(self._rfid_server),
                      meter=f"127.0.0.1:{meter_port}", dns=await self.dns.start())
        # The hotspot the setup button opens binds loopback ports, not 80 and 53 (root's).
        self.http_port = self.http_port or _free_port(socket.SOCK_STREAM)
        self.dns_port = self.dns_port or _free_port(socket.SOCK_DGRAM)
        args = ["--id", self.cp_id, "--csms", self.csms_url, *wires.argv(),
                "--http-port", str(self.http_port), "--dns-port", str(self.dns_port),
                *self.fitted.argv()]
        if self.security:
            args += self.security.argv()
        if self.mqtt:
            args += self.mqtt.argv()
        await self._power_on(args)

    async def _start_claim_mode(self) -> None:
        # The charger starts unclaimed: no CSMS and no gate (the claim gives the endpoint and
        # the agent connects where it says); its hotspot serves on loopback ports.
        assert self.claim is not None
        c = self.claim
        c.http_port = c.http_port or _free_port(socket.SOCK_STREAM)
        c.dns_port = c.dns_port or _free_port(socket.SOCK_DGRAM)
        self.http_port, self.dns_port = c.http_port, c.dns_port
        env = c.wifi_env
        if env is None:
            env = self.flash.parent / f"{self.flash.name}-wifi.json"
            env.write_text(json.dumps({"networks": c.networks}))
        self._io_server = await asyncio.start_server(self.hw.serve_agent, "127.0.0.1", 0)
        if c.reader:
            self._rfid_server = await asyncio.start_server(self.reader.serve, "127.0.0.1", 0)
        meter = f"127.0.0.1:{await self.meter.start()}" if c.meter else None
        wires = Wires(io=_addr(self._io_server), sntp=f"127.0.0.1:{await self.sntp.start()}",
                      dns=await self.dns.start(), meter=meter,
                      rfid=_addr(self._rfid_server) if self._rfid_server else None)
        await self._power_on(["--id", self.cp_id, *wires.argv(),
                              *replace(c, wifi_env=env).argv(),
                              *(self.fitted.argv() if c.meter else [])])

    async def _power_on(self, args: list[str]) -> None:
        if self.fitted.board == "esp32_wallbox":
            self._provision_nvs()
        self.agent = Agent(self.flash, args, self.runtime, self.fitted.board,
                           on_device=self.hw.device_line, on_boot=self.hw.boot)
        await self.agent.power_on()
        self._tick = asyncio.get_running_loop().create_task(self._integrate())

    def provisioning(self) -> dict[str, Any]:
        """What the factory and the installer write into the ESP32's NVS for this simulation:
        the identity, the CSMS and its credentials, the installation and the reader fitted
        (the installation goes under its own key, "inst", as `borne install` writes it)."""
        f = self.fitted
        doc: dict[str, Any] = {"cp_id": self.cp_id, "serial": "SIM0001", "model": "borne-esp32",
                               "vendor": "borne", "rfid": f.reader,
                               "meter_model": f.meter_model, "phases": f.supply_phases}
        if self.claim is None and self.csms_url:
            doc["csms_url"] = self.csms_url
        sec = self.security
        if sec is not None:
            doc["security_profile"] = sec.profile
            if sec.auth_key:
                doc["auth_key"] = sec.auth_key
            for key, path in (("ca_pem", sec.ca), ("cert_pem", sec.cert), ("key_pem", sec.key)):
                if path is not None:
                    doc[key] = Path(path).read_text()
        if f.meter_baud:
            doc["meter_baud"] = f.meter_baud
        doc.update(grid_meter_model=f.grid_meter or "", grid_meter_addr=f.grid_meter_addr,
                   main_fuse_a=f.main_fuse_a)
        return doc

    def _provision_nvs(self) -> None:
        # Per-device secrets are made once, like the unix_sim board's factory.json; the claim
        # options may set them.
        from borne.sim import esp32state

        old = esp32state.nvs_read(self.flash).get("borne", {}).get("prov", b"")
        try:
            prev = json.loads(old) if old else {}
        except ValueError:
            prev = {}
        doc = self.provisioning()
        c = self.claim
        doc["hotspot_key"] = (c and c.hotspot_key) or prev.get("hotspot_key") or make_secret(4)
        doc["conn_password"] = ((c and c.conn_password) or prev.get("conn_password")
                                or make_secret(3))
        # The emulated access point (192.168.4.1:80) is reached at a loopback port: the
        # hotspot's API takes that Host too.
        knobs: dict[str, Any] = {"http_host": "127.0.0.1"}
        if c is not None:
            knobs.update(hotspot_idle_s=c.idle_s, lockout_base_ms=c.lockout_base_ms,
                         close_grace_ms=c.close_grace_ms)
        doc["hotspot"] = {k: v for k, v in knobs.items() if v is not None}
        from borne.install import DEFAULTS, INST_KEY

        inst = {k: doc.pop(k) for k in DEFAULTS if k in doc}
        esp32state.provision(self.flash, doc)
        esp32state.nvs_write(self.flash, "borne", INST_KEY,
                             json.dumps(inst, separators=(",", ":")).encode())

    def factory_secrets(self) -> dict[str, str]:
        """The per-device secrets as the factory left them: in NVS on the ESP32 board, in
        <flash>/factory.json for unix_sim."""
        if self.fitted.board == "esp32_wallbox":
            from borne.sim import esp32state

            doc = json.loads(esp32state.nvs_read(self.flash)["borne"]["prov"])
        else:
            doc = json.loads((self.flash / "factory.json").read_text())
        return {k: doc[k] for k in ("hotspot_key", "conn_password")}

    @property
    def hotspot_url(self) -> str:
        """The claim page and API (while the hotspot is open: from the start in claim mode,
        after a 3 s button press otherwise)."""
        return f"http://127.0.0.1:{self.claim.http_port if self.claim else self.http_port}"

    async def _integrate(self) -> None:
        while True:
            self.hw.integrate()
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._tick:
            self._tick.cancel()
        if self.agent:
            await self.agent.power_cut()
        for server in (self._io_server, self._rfid_server):
            if server:
                server.close()
        await self.meter.stop()
        self.sntp.stop()
        self.dns.stop()
        if self.gate:
            await self.gate.stop()
        if self.csms:
            await self.csms.stop()

    # -- the control protocol ------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        hw = self.hw
        hw.integrate()
        tel = hw.telemetry if self.agent and self.agent.running else {}
        ocpp = tel.get("ocpp", {})
        return {
            "cp": hw.cp_state(),
            "relay": hw.relay_contacts,
            "pwm_duty": round(hw.pwm_duty, 2),
            "led": dict(hw.led) if self.agent and self.agent.running else
            {"color": "000000", "pattern": "off", "brightness": 0},
            "ocpp": {"connected": bool(ocpp.get("connected")), "status": ocpp.get("status"),
                     "queued": ocpp.get("queued", 0)},  # journaled messages not yet answered
            # the agent's heap (with diag: heapwatch.py): peak, used after a collection, total
            "heap": tel.get("heap"),
            "energy_wh": round(hw.energy_wh, 3),
            "power_w": round(hw.power_w(), 1),
            "session": tel.get("session"),
            "powered": bool(self.agent and self.agent.powered),
            "net": self.gate.up if self.gate else True,  # claim mode has no gate to cut
            "faults": sorted(self.faults()),
            "hotspot": tel.get("hotspot"),
            "device_faults": tel.get("device_faults", []),
            "tag": tel.get("tag"),
            "card": self.reader.card() is not None,
            "meter": tel.get("meter"),
            "house": list(hw.house_amps),
            "grid": tel.get("grid"),
            "supply": tel.get("supply"),
        }

    def faults(self) -> set[str]:
        """Injected faults: the hardware's and the emulated devices'."""
        out = set(self.hw.faults)
        if self.reader.down:
            out.add("reader_down")
        if self.meter.down:
            out.add("meter_down")
        if self.grid and self.grid.down:
            out.add("grid_down")
        return out

    async def command(self, req: Any) -> dict[str, Any]:
        try:
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                raise CommandError('a request is a JSON object with a "cmd" string')
            data = await self._run(req["cmd"], req)
        except CommandError as e:
            return {"ok": False, "error": str(e)}
        reply: dict[str, Any] = {"ok": True}
        if data:
            reply.update(data)
        return reply

    async def _run(self, cmd: str, req: dict[str, Any]) -> dict[str, Any] | None:
        hw = self.hw
        assert self.agent is not None
        if cmd == "plug":
            hw.set_ev(plugged=True)
        elif cmd == "charge":
            if not hw.plugged:
                raise CommandError("the EV is not plugged in: send plug first")
            hw.set_ev(asking=True)
        elif cmd == "pause":
            hw.set_ev(asking=False)
        elif cmd == "unplug":
            hw.set_ev(plugged=False)
        elif cmd == "load":
            amps = req.get("amps")
            if isinstance(amps, bool) or not isinstance(amps, int | float) or not 0 <= amps <= 80:
                raise CommandError('load needs "amps", a number from 0 to 80')
            follows = req.get("follows_offer", True)
            if not isinstance(follows, bool):
                raise CommandError('"follows_offer" is a bool')
            hw.integrate()
            hw.load_amps = float(amps)
            hw.follows_offer = follows
        elif cmd == "house":
            hw.set_house(_house_amps(req.get("amps")))
        elif cmd == "tap":
            uid = req.get("uid")
            if not isinstance(uid, str) or not uid or len(uid) > 20 or not _is_hex(uid):
                raise CommandError('tap needs "uid", a hex string of up to 20 digits')
            if len(uid) not in (8, 14, 20):
                raise CommandError(
                    "tap: uid must be 8, 14 or 20 hex digits "
                    "(an ISO 14443A UID of 4, 7 or 10 bytes)"
                )
            hold = req.get("hold", self.reader.presentation_s)
            if isinstance(hold, bool) or not isinstance(hold, int | float) or not 0 < hold <= 60:
                raise CommandError('tap: "hold" is the seconds the card stays, from 0 to 60')
            card = bytes.fromhex(uid)
            # The same card still held (its last tap's `hold` not over) is held longer: no new
            # presentation, so the charger reads no new tap; the reply says so.
            held = self.reader.card() == card
            self.reader.present(card, float(hold))
            hw.card(uid, float(hold))  # the same card in an MFRC522's field (ESP32 board)
            return {"held": held}
        elif cmd == "fault":
            kind = req.get("kind")
            if kind not in FAULT_KINDS:
                raise CommandError(f'fault needs "kind", one of {", ".join(FAULT_KINDS)}')
            if kind == "clear":
                hw.clear_faults()
                self.reader.set_down(False)
                self.meter.down = False
                self.meter.nonsense = None
                if self.grid:
                    self.grid.down = False
            elif kind in HW_FAULTS:
                hw.set_fault(kind)
            elif kind == "reader_down":
                self.reader.set_down(True)
            elif kind == "grid_down":
                if self.grid is None:
                    raise CommandError("fault grid_down: no grid meter in this simulation")
                self.grid.down = True
            else:
                self.meter.down = True
        elif cmd == "net":
            up = req.get("up")
            if not isinstance(up, bool):
                raise CommandError('net needs "up": true or false')
            if self.gate is None:
                raise CommandError("net: no network gate in claim mode")
            self.gate.set_up(up)
        elif cmd == "button":
            ms = req.get("ms")
            if isinstance(ms, bool) or not isinstance(ms, int) or not 0 < ms <= 60000:
                raise CommandError('button needs "ms", the press length from 1 to 60000')
            hw.press_button(ms)
        elif cmd == "stall":
            ms = req.get("ms")
            if isinstance(ms, bool) or not isinstance(ms, int) or not 0 < ms <= 30000:
                raise CommandError('stall needs "ms", from 1 to 30000')
            if self.fitted.board != "esp32_wallbox":
                raise CommandError("stall: only the emulated ESP32 can block its loop")
            hw.stall(ms)
        elif cmd == "power_cut":
            await self.agent.power_cut()
        elif cmd == "power_on":
            await self.agent.power_on()
        elif cmd == "state":
            return self.state()
        else:
            raise CommandError(f"unknown command {cmd!r}: one of {', '.join(COMMANDS)}")
        return None

    async def serve_control(self, port: int, host: str = "127.0.0.1") -> asyncio.Server:
        """Newline-delimited JSON on `host:port`: one request per line, one reply per line."""

        async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            import json

            try:
                while True:
                    try:
                        line = await r.readline()
                    except ValueError:  # a line over the stream limit
                        w.write(b'{"ok": false, "error": "request line too long"}\n')
                        break
                    if not line:
                        break
                    if not line.strip():
                        continue
                    try:
                        req = json.loads(line)
                    except ValueError:
                        reply: dict[str, Any] = {"ok": False, "error": "request is not valid JSON"}
                    else:
                        reply = await self.command(req)
                    w.write(json.dumps(reply).encode() + b"\n")
                    await w.drain()
            except ConnectionError:
                pass
            finally:
                with contextlib.suppress(Exception):
                    w.close()

        return await asyncio.start_server(client, host, port, limit=64 * 1024)


# The home network the simulated radio sees in claim mode, unless a --wifi-env file says otherwise.
DEFAULT_NETWORKS: list[dict[str, Any]] = [
    {"ssid": "borne-sim-home", "password": "home-wifi-pass", "rssi": -48},
    {"ssid": "Neighbours", "password": "not-yours-123", "rssi": -71},
    {"ssid": "Cafe Libre", "password": "", "rssi": -80},
]


@dataclass
class ClaimOptions:
    """Claim mode of the simulation: the agent starts unclaimed with its hotspot up.

    None = the board's default; ports 0 = free ones chosen at start."""

    networks: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_NETWORKS))
    wifi_env: Path | None = None
    hotspot_key: str | None = None
    conn_password: str | None = None
    idle_s: int | None = None
    lockout_base_ms: int | None = None
    close_grace_ms: int | None = None
    http_port: int = 0
    dns_port: int = 0
    reader: bool = False  # the RFID reader wired too (the `tap` command): a claimed owner's cards
    # The meters wired and the installation (`fitted`) given too, as outside claim mode: what
    # `borne sim --claim` runs, so the charger it claims charges as any other (the claim
    # workloads and most claim tests leave both out: the hotspot's heap is measured without)
    meter: bool = False

    def argv(self) -> list[str]:
        out = ["--http-port", str(self.http_port), "--dns-port", str(self.dns_port)]
        if self.wifi_env is not None:
            out += ["--wifi-env", str(self.wifi_env)]
        knobs = (("--hotspot-key", self.hotspot_key), ("--conn-password", self.conn_password),
                 ("--hotspot-idle-s", self.idle_s), ("--lockout-base-ms", self.lockout_base_ms),
                 ("--close-grace-ms", self.close_grace_ms))
        for flag, value in knobs:
            if value is not None:
                out += [flag, str(value)]
        return out


_KEY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # as the unix_sim board's: 5 bits a symbol


def make_secret(groups: int) -> str:
    """A per-device secret of `groups` groups of 4 symbols (20 bits each), e.g. abcd-efgh."""
    import secrets

    return "-".join("".join(secrets.choice(_KEY_ALPHABET) for _ in range(4))
                    for _ in range(groups))


def _addr(server: asyncio.Server) -> str:
    return f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _house_amps(amps: Any) -> list[float]:
    """`house` amps: one number for every phase, or [L1, L2, L3]; each from 0 to 200 A."""

    def ok(a: Any) -> bool:
        return not isinstance(a, bool) and isinstance(a, int | float) and 0 <= a <= 200

    if ok(amps):
        return [float(amps)] * 3
    if isinstance(amps, list) and len(amps) == 3 and all(ok(a) for a in amps):
        return [float(a) for a in amps]
    raise CommandError('house needs "amps": a number, or [L1, L2, L3], each from 0 to 200')


def _is_hex(s: str) -> bool:
    try:
        int(s, 16)
    except ValueError:
        return False
    return True
