"""`borne sim`: run the charger simulation."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from borne.sim import screen
from borne.sim.agent import Security
from borne.sim.meter_emu import MODELS as METER_MODELS
from borne.sim.mqttopts import MqttOptions, check_mqtt_url
from borne.sim.options import BOARDS, PULSE, READERS, Fitted, Runtime
from borne.sim.simulator import ClaimOptions, Simulator, check_csms_url, check_flash_dir

DEFAULT_CONTROL_PORT = 7700
DEFAULT_HTTP_PORT = 8080
DEFAULT_ID = "borne-sim-0001"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "sim",
        help="run the charger under the MicroPython unix port against simulated hardware",
        description="Run the firmware under the unix port with simulated EV, relay, RCD, LED and "
        "buzzer; with no --csms, an embedded development CSMS accepts the charger.",
    )
    p.add_argument("--csms", metavar="URL",
                   help="the CSMS to connect to (ws:// or wss://; the charge point id is "
                   "appended); ws://ID:PASSWORD@host/... is --profile 1 (wss://: 2) with "
                   "--auth-key PASSWORD and --id ID")
    p.add_argument("--id", help=f"charge point id (default {DEFAULT_ID})")
    p.add_argument("--flash", default="sim-flash", help="the charger's persistent filesystem")
    p.add_argument("--control", type=int, default=DEFAULT_CONTROL_PORT, metavar="PORT",
                   help="control protocol port on 127.0.0.1 (0 picks a free one)")
    p.add_argument("--heapsize", metavar="NwK", type=heapsize,
                   help="MicroPython heap (-X heapsize): N bytes, NK or NM, or NwK / NwM in "
                   "32-bit words (scaled to this host's word size), e.g. 100wK")
    p.add_argument("--diag", action="store_true",
                   help="the agent reports its heap (state's `heap`: peak, used, total)")
    run_as = p.add_mutually_exclusive_group()
    run_as.add_argument("--compiled", action="store_true",
                        help="run the mpy-cross build (`borne build`, into build/sim-BOARD/) "
                        "instead of the source: the .mpy files `borne deploy` installs, their "
                        "bytecode in the heap; check the memory budget with --heapsize")
    run_as.add_argument("--rom", action="store_true",
                        help="run that build as a ROMFS image executed in place (bytecode out "
                        "of the heap, as a production image holds it); --heapsize is then the "
                        "heap for the data, the image's block added to it")
    run_as.add_argument("--frozen", type=Path, metavar="MICROPYTHON",
                        help="run a unix port built with the application frozen into it "
                        "(boards/unix_sim/manifest.py says how): bytecode and names in the "
                        "image, as on a charger's firmware; unix_sim board only")
    p.add_argument("--phases", type=int, choices=(1, 3), default=3,
                   help="phases of the simulated supply the EV draws on (default 3): the power "
                   "and energy the meter measures; an sdm120 meter makes it single-phase")
    p.add_argument("--board", default="unix_sim", choices=BOARDS,
                   help="the board code that runs: unix_sim, or esp32_wallbox (its board.py "
                   "unchanged, on the emulated ESP32: machine, network, esp32, ... for the unix "
                   "port; its provisioning is written to the emulated NVS)")
    p.add_argument("--reader", default="pn532_uart", choices=READERS,
                   help="the RFID reader fitted (esp32_wallbox): PN532 on UART or I2C, MFRC522")
    p.add_argument("--meter-model", default="sdm630", choices=(*METER_MODELS, PULSE),
                   help="the Modbus meter the simulation fits (and the agent is told about); "
                   "sdm120 is single-phase and makes the installation single-phase; pulse: an "
                   "S0 meter (1 Wh a pulse)")
    p.add_argument("--grid-meter", choices=METER_MODELS, metavar="MODEL",
                   help="load balancing: a supply-side meter of this model on the same RS-485 "
                   "line (it sees the house load plus the EV); the `house` command sets the load")
    p.add_argument("--grid-meter-addr", type=int, default=2, metavar="N",
                   help="the grid meter's Modbus address (default 2; the charger's meter is 1)")
    p.add_argument("--main-fuse", type=int, default=25, metavar="A",
                   help="the supply's main fuse per phase, in amps (default 25)")
    p.add_argument("--heartbeat", type=int, default=300,
                   help="heartbeat interval the embedded CSMS gives")
    p.add_argument("--no-screen", action="store_true",
                   help="print the agent's log instead of the live status screen")
    p.add_argument("--profile", type=int, choices=(0, 1, 2, 3), default=None,
                   help="OCPP security profile: 1 ws+Basic, 2 wss+Basic, 3 wss+client cert")
    p.add_argument("--auth-key", metavar="KEY", help="AuthorizationKey for HTTP Basic (1, 2)")
    p.add_argument("--ca", type=Path, metavar="PEM", help="the CSMS's root CA (wss:// checks it)")
    p.add_argument("--cert", type=Path, metavar="PEM", help="client certificate (profile 3)")
    p.add_argument("--key", type=Path, metavar="PEM", help="client private key (profile 3)")
    m = p.add_argument_group("MQTT (the owner's broker, Home Assistant discovery)")
    m.add_argument("--mqtt", metavar="URL", help="the broker: mqtt://host[:port] or mqtts://...")
    m.add_argument("--mqtt-user", metavar="NAME", help="broker user name")
    m.add_argument("--mqtt-pass", metavar="PASSWORD", help="broker password")
    m.add_argument("--mqtt-ca", type=Path, metavar="PEM",
                   help="the broker's CA (mqtts:// checks it)")
    m.add_argument("--mqtt-controls", action="store_true",
                   help="the installation enables pause, current limit and free charging over MQTT")
    c = p.add_argument_group("claim mode (the charger starts unclaimed, its hotspot open)")
    c.add_argument("--claim", action="store_true",
                   help="start unclaimed: no CSMS; claim it with `borne claim` or the page")
    c.add_argument("--wifi-env", metavar="FILE",
                   help='visible networks: {"networks": [{"ssid", "password", "rssi"}]}')
    c.add_argument("--http-port", type=int, default=None, metavar="PORT",
                   help=f"hotspot HTTP port on loopback, in claim mode and when the setup button "
                   f"opens it (default {DEFAULT_HTTP_PORT}; outside claim mode a free one if "
                   f"{DEFAULT_HTTP_PORT} is taken; 0: a free one)")
    c.add_argument("--dns-port", type=int, default=0, metavar="PORT",
                   help="captive DNS port on loopback (default 0: a free one)")
    c.add_argument("--hotspot-key", help="the per-device WPA2 key (default: generated once)")
    c.add_argument("--conn-password", help="the connection password (default: generated once)")
    p.set_defaults(func=run)


_HEAPSIZE = re.compile(r"[1-9][0-9]*[wW]?[kKmM]?")
_HEAP_MIN = 700  # bytes: the unix port refuses a smaller -X heapsize


def heapsize(text: str) -> str:
    """A --heapsize the unix port's `-X heapsize=` accepts (N, NK, NM, NwK, NwM: decimal,
    w = in 32-bit words, then the size suffix), else an argparse error: MicroPython would refuse
    it at every start and the simulation would restart the agent forever."""
    from borne.sim.romboot import heap_bytes

    if not _HEAPSIZE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a MicroPython heap size: N bytes, NK, NM, or NwK (in 32-bit "
            "words), e.g. 100wK")
    if heap_bytes(text) < _HEAP_MIN:
        raise argparse.ArgumentTypeError(
            f"{text!r} is smaller than the {_HEAP_MIN} bytes MicroPython accepts (the "
            "application needs far more), e.g. 100wK")
    return text


def url_credentials(args: argparse.Namespace) -> None:
    """--csms ws://ID:PASSWORD@host/...: the URL's credentials become HTTP Basic's, as
    --profile 1 (wss://: 2) --auth-key PASSWORD --id ID, and leave the URL (the charger takes
    none in it, and the URL is printed). ValueError when they cannot be sent as given."""
    u = urllib.parse.urlsplit(args.csms)
    if u.username is None:
        return
    user, password = urllib.parse.unquote(u.username), urllib.parse.unquote(u.password or "")
    if args.profile is not None or args.auth_key is not None:
        raise ValueError("--csms: give the credentials in the URL or as --profile/--auth-key, "
                         "not both")
    if not password:
        raise ValueError("--csms: the URL has a user name but no password (ws://ID:PASSWORD@...)")
    if user and args.id and user != args.id:
        raise ValueError(f"--csms: the URL's user {user!r} is not the charge point id "
                         f"{args.id!r}: HTTP Basic's user name is the id (OCPP 1.6 security "
                         "profile 1)")
    # The charger decodes an AuthorizationKey of 32-40 hex digits (the whitepaper's hex form):
    # such a password would not go out as typed.
    if 32 <= len(password) <= 40 and not len(password) % 2 and all(
            c in "0123456789abcdefABCDEF" for c in password):
        raise ValueError("--csms: a password of 32-40 hex digits is taken as an AuthorizationKey "
                         "in hex: give it as --auth-key (what it decodes to is sent)")
    args.id = args.id or user or None
    args.profile = 2 if u.scheme == "wss" else 1
    args.auth_key = password
    args.csms = urllib.parse.urlunsplit(u._replace(netloc=u.netloc.rpartition("@")[2]))


_PEM_MAX = 16384


def security_from(args: argparse.Namespace) -> Security | None:
    """The --profile/--auth-key/--ca/--cert/--key options, checked; None when none is given."""
    given = [args.profile, args.auth_key, args.ca, args.cert, args.key]
    if all(x is None for x in given):
        return None
    for opt, path in (("--ca", args.ca), ("--cert", args.cert), ("--key", args.key)):
        if path is not None and not path.is_file():
            raise ValueError(f"{opt} {path}: no such file")
        if path is not None and path.stat().st_size > _PEM_MAX:
            # The settings document holding it would pass the store's 64 KiB bound: unreadable,
            # the charger would boot on the defaults, no CSMS and no CA.
            raise ValueError(f"{opt} {path}: {path.stat().st_size} bytes, more than a charger "
                             f"holds ({_PEM_MAX}): give the one root of the CSMS's chain, not a "
                             "system bundle")
    prof = args.profile or 0
    if prof in (1, 2) and not args.auth_key:
        raise ValueError(f"--profile {prof} needs --auth-key")
    if prof == 3 and (args.cert is None or args.key is None):
        raise ValueError("--profile 3 needs --cert and --key")
    return Security(prof, args.auth_key, args.ca, args.cert, args.key)


def run(args: argparse.Namespace) -> int:
    try:
        if args.csms:
            check_csms_url(args.csms)
            url_credentials(args)
        args.id = args.id or DEFAULT_ID
        if args.wifi_env:
            args.wifi_env = Path(args.wifi_env).resolve()
            check_wifi_env(args.wifi_env)
        if args.claim and args.csms:
            raise ValueError("--claim starts unclaimed: the claim gives the CSMS, not --csms")
        flash = check_flash_dir(Path(args.flash))
        tls = args.csms and (args.csms.lower().startswith("wss://") or (args.profile or 0) >= 2)
        if tls and args.ca is None and not any((flash / "data").glob("certs.*")):
            # (a root installed over OCPP, InstallCertificate, is in the flash's certs document)
            raise ValueError("--csms over TLS: the charger checks the CSMS's certificate against "
                             "a root CA and holds none: give it with --ca PEM (the root of the "
                             "CSMS's certificate chain, e.g. from /etc/ssl/certs/ for a public "
                             "one)")
        if not args.id or len(args.id) > 48:
            raise ValueError("--id must be 1 to 48 characters")
        for opt, port in (("--http-port", args.http_port), ("--dns-port", args.dns_port)):
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{opt} {port}: not a port (0-65535)")
        sim = simulator_from(args, flash)
    except ValueError as e:
        print(f"borne sim: {e}", file=sys.stderr)
        return 2
    try:
        lock_flash(flash)  # held until this process ends
        if args.control and _taken(args.control, socket.SOCK_STREAM):
            raise OSError(f"--control {args.control}: 127.0.0.1:{args.control} is in use "
                          "(another simulation?): give another port, or 0 for a free one")
        hotspot_ports(args)
    except OSError as e:
        print(f"borne sim: {e}", file=sys.stderr)
        return 1
    sim.http_port, sim.dns_port = args.http_port, args.dns_port
    if sim.claim is not None:
        sim.claim.http_port, sim.claim.dns_port = args.http_port, args.dns_port
        held = held_csms(flash)
        if held:
            print(f"borne sim: warning: {flash} holds an earlier claim (CSMS {held}): the charger "
                  "starts claimed and keeps trying that CSMS; give a new --flash, or unclaim it "
                  "(`borne unclaim`, or the button held 10 s), to start unclaimed",
                  file=sys.stderr)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        asyncio.run(_main(args, sim))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print(f"borne sim: {e}", file=sys.stderr)
        return 1
    return 0


def check_wifi_env(path: Path) -> None:
    """--wifi-env: a JSON file {"networks": [{"ssid", "password", "rssi"}, ...]} (ValueError
    otherwise: the simulated radio would silently see no network)."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--wifi-env {path}: no such file") from None
    except OSError as e:
        raise ValueError(f"--wifi-env {path}: cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise ValueError(f"--wifi-env {path}: not JSON ({e})") from None
    nets = doc.get("networks") if isinstance(doc, dict) else None
    if not isinstance(nets, list):
        raise ValueError(f'--wifi-env {path}: expected {{"networks": [{{"ssid": ..., '
                         '"password": ..., "rssi": ...}, ...]}')
    for i, n in enumerate(nets):
        if not (isinstance(n, dict) and isinstance(n.get("ssid"), str)
                and isinstance(n.get("password", ""), str)
                and isinstance(n.get("rssi", -60), int)):
            raise ValueError(f"--wifi-env {path}: network {i + 1} needs a string \"ssid\", a "
                             "string \"password\" (\"\" for an open one) and an integer "
                             "\"rssi\"")


def held_csms(flash: Path) -> str | None:
    """The CSMS URL a flash folder's settings document holds (firmware/store's format: the
    valid copy with the highest sequence number), None if none or unreadable."""
    import json
    import zlib

    best: tuple[int, str] | None = None
    for ext in (".json", ".bak"):
        try:
            head, body = (flash / "data" / f"settings{ext}").read_bytes().split(b"\n", 1)
            magic, seq, _ver, crc, length = head.split()
            body = body[:int(length)]
            if magic != b"B1" or zlib.crc32(body) != int(crc, 16):
                continue
            url = json.loads(body).get("csms_url") or ""
        except (OSError, ValueError, AttributeError):
            continue
        if best is None or int(seq) > best[0]:
            best = (int(seq), url)
    return best[1] if best and best[1] else None


_flash_locks: list[int] = []


def lock_flash(flash: Path) -> None:
    """An exclusive lock on the flash folder for the life of this process (the kernel drops it
    when the process ends, however): a second simulation on the same folder would run a second
    charger on its files, whose boot ends the first's running session as a power loss."""
    import fcntl

    fd = os.open(flash, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OSError(f"--flash {flash}: another simulation runs on this folder: stop it, or "
                      "give this one its own --flash (and --id, --control)") from None
    _flash_locks.append(fd)


def _taken(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:  # a port in TIME_WAIT is free for a listener
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def hotspot_ports(args: argparse.Namespace) -> None:
    """--http-port/--dns-port resolved (the default HTTP port, or a free one outside claim mode
    when it is taken) and checked free: OSError naming the option otherwise. The agent binds
    them only once its hotspot opens, where a taken port would fail out of sight."""
    if args.http_port is None:
        args.http_port = DEFAULT_HTTP_PORT
        if not args.claim and _taken(args.http_port, socket.SOCK_STREAM):
            args.http_port = 0  # the button's hotspot, outside claim mode: any free port
    for opt, port, kind in (("--http-port", args.http_port, socket.SOCK_STREAM),
                            ("--dns-port", args.dns_port, socket.SOCK_DGRAM)):
        if port and _taken(port, kind):
            raise OSError(f"{opt} {port}: 127.0.0.1:{port} is in use (another simulation?): "
                          "give another port, or 0 for a free one")


def simulator_from(args: argparse.Namespace, flash: Path) -> Simulator:
    """The simulation the options describe, each option checked (ValueError)."""
    security, mqtt = security_from(args), mqtt_from(args)
    if security is not None and security.profile >= 2 and not args.csms and not args.claim:
        # The charger would retry forever: profiles 2 and 3 connect over TLS, which the
        # embedded development CSMS (plain ws://) does not speak.
        raise ValueError(f"--profile {security.profile} connects over TLS (wss://): give the "
                         "CSMS with --csms wss://...; the embedded CSMS is plain ws://")
    claim = None
    if args.claim:
        claim = ClaimOptions(wifi_env=args.wifi_env,
                             hotspot_key=args.hotspot_key, conn_password=args.conn_password,
                             http_port=args.http_port or 0, dns_port=args.dns_port,
                             reader=True, meter=True)  # a whole charger once claimed
    fitted = Fitted(board=args.board, reader=args.reader, meter_model=args.meter_model,
                    phases=args.phases, grid_meter=args.grid_meter,
                    grid_meter_addr=args.grid_meter_addr, main_fuse_a=args.main_fuse)
    return Simulator(flash, cp_id=args.id, csms_url=args.csms,
                     fitted=fitted, runtime=runtime_from(args),
                     security=security, claim=claim, mqtt=mqtt,
                     heartbeat_interval=args.heartbeat)


def runtime_from(args: argparse.Namespace) -> Runtime:
    """--heapsize, --diag and how the application runs (--compiled, --rom: built here;
    --frozen: an interpreter holding it)."""
    if args.frozen is not None:
        if args.board != "unix_sim":
            raise ValueError("--frozen: the frozen interpreter holds the unix_sim board")
        if not os.access(args.frozen, os.X_OK):
            raise ValueError(f"--frozen {args.frozen}: not an executable")
        return Runtime(heapsize=args.heapsize, diag=args.diag, frozen=args.frozen.resolve())
    if not (args.compiled or args.rom):
        return Runtime(heapsize=args.heapsize, diag=args.diag)
    from borne import paths
    from borne.build import BuildError, compile_tree
    from borne.sim import romboot

    out = paths.BUILD / f"sim-{args.board}"
    try:
        compile_tree(args.board, out=out / "build", arch="x64")  # this host's native code
    except BuildError as e:
        raise ValueError(f"--{'rom' if args.rom else 'compiled'}: {e}") from None
    if args.rom:
        return Runtime(heapsize=args.heapsize, diag=args.diag,
                       rom=romboot.prepare(out / "build", out / "rom"))
    return Runtime(heapsize=args.heapsize, diag=args.diag, compiled=out / "build")


def mqtt_from(args: argparse.Namespace) -> MqttOptions | None:
    """The --mqtt* options, checked; None without --mqtt."""
    if not args.mqtt:
        if args.mqtt_user or args.mqtt_pass or args.mqtt_ca or args.mqtt_controls:
            raise ValueError("--mqtt-user/--mqtt-pass/--mqtt-ca/--mqtt-controls need --mqtt URL")
        return None
    check_mqtt_url(args.mqtt)
    if args.mqtt_ca is not None and not args.mqtt_ca.is_file():
        raise ValueError(f"--mqtt-ca {args.mqtt_ca}: no such file")
    if args.mqtt.startswith("mqtts://") and args.mqtt_ca is None:
        raise ValueError("--mqtt mqtts://... needs --mqtt-ca (the broker's certificate is checked)")
    return MqttOptions(args.mqtt, args.mqtt_user, args.mqtt_pass, args.mqtt_ca,
                       controls=args.mqtt_controls)


async def _main(args: argparse.Namespace, sim: Simulator) -> None:
    live = sys.stdout.isatty() and not args.no_screen
    if not live:
        await sim.start()
        assert sim.agent is not None
        # The ESP32 board's console telemetry (@tel, @led: a meter reading a second) feeds
        # `state`; printed, it would bury the agent's log.
        sim.agent.on_line = lambda line: None if line.startswith(("@tel ", "@led ")) \
            else print(line, flush=True)
    else:
        await sim.start()
    try:
        server = await sim.serve_control(args.control)
    except OSError as e:
        await sim.stop()
        raise OSError(f"control port {args.control}: {e.strerror}") from None
    port = server.sockets[0].getsockname()[1]
    if not live:
        print(f"[sim] control protocol on 127.0.0.1:{port}; CSMS {screen.csms_shown(sim)}",
              flush=True)
        for line in [*screen.how_to_drive(port), screen.hotspot_line(sim)]:
            print(f"[sim] {line}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cancel)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    drawer = loop.create_task(screen.show(sim, port)) if live else None
    try:
        await stop.wait()
    finally:
        if drawer:
            drawer.cancel()
        server.close()
        await sim.stop()


def _quiet_cancel(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Python 3.11's start_server reports a connection handler cancelled as the loop ends (a
    control client such as `nc` still connected at Ctrl-C, a CSMS link through the gate) with
    a traceback: the end of the simulation is no error."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)
