"""borne install: set a charger's installation on site: its meter, supply and load balancing.

The installation is what the installer fitted, not who the charger is:

  --meter-model M     the charger's energy meter: a Modbus model (sdm630, sdm120, abb_b23,
                      em340) or "pulse" for an S0 pulse meter (default sdm630)
  --meter-addr N      its Modbus address, 1-247 (default 1)
  --meter-baud B      the RS-485 line's speed (default 9600)
  --meter-parity P    N, E or O: 8 data bits, this parity, 1 stop bit (default E)
  --wh-per-pulse X    an S0 meter's Wh per pulse (default 1)
  --phases 1|3        the supply the charger is wired to (default 3)
  --grid-meter-model  load balancing: the supply-side meter on the same RS-485 bus, a Modbus
                      model, or "none" (the default: no load balancing)
  --grid-meter-addr   its Modbus address (default 2; not the charger's meter's)
  --main-fuse A       the supply's main fuse per phase, amperes (default 25)
  --grid-fallback A   the offer while the grid meter is silent: 0 (pause) or 6 up to the main
                      fuse (default 6)
  --mqtt-controls     on|off: the owner's MQTT broker may pause, limit and free charging

Options left out keep what the charger holds: a new meter is `--meter-model em340
--meter-addr 3`, nothing else changes. Without options it shows the installation.

It writes only NVS namespace "borne", key "inst" (JSON, at most 512 bytes), beside the factory's
"prov" (identity and secrets, which it never reads out nor changes): the board merges "inst"
over "prov" at every boot, the application takes it into its settings, and a factory reset
keeps it. Like `borne provision`: it asks the application to end any session and restart into
a maintenance boot, reads the installation, merges, checks it (values and combinations: a
grid meter at the charger meter's address, a single-phase meter on three phases, a fallback
above the fuse), writes, reads back and compares its SHA-256, restarts the charger and checks
the application comes back. `borne provision` takes the same options.

Exit status: 0 done; 1 the device failed or is not provisioned; 2 bad values (nothing written).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import runpy
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

from borne.devlink import Device, DeviceError, add_line_args

NVS_NAMESPACE = "borne"
INST_KEY = "inst"
INST_MAX = 512  # boards/esp32_wallbox/boardonce.py's buffer
# Every installation setting and its firmware default (firmware/settingsdoc.py _INSTALLATION).
DEFAULTS: dict[str, Any] = {
    "meter_model": "sdm630", "meter_addr": 1, "meter_baud": 9600, "meter_parity": "E",
    "meter_wh_per_pulse": 1.0, "phases": 3, "grid_meter_model": "", "grid_meter_addr": 2,
    "main_fuse_a": 25, "grid_fallback_a": 6, "mqtt_controls": False,
}
# The options (argparse names), absent from a caller's namespace when it has none (borne flash).
_OPTS = ("meter_model", "meter_addr", "meter_baud", "meter_parity", "wh_per_pulse", "phases",
         "grid_meter_model", "grid_meter_addr", "main_fuse", "grid_fallback", "mqtt_controls")
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
MAX_FUSE_A = 630

Say = Callable[[str], None]


class InstallError(ValueError):
    """A value, or a combination, the charger must not be given: nothing was written."""


@cache
def meter_models() -> dict[str, int]:
    """The Modbus models the firmware knows (firmware/meter/models.py) and their phases."""
    from borne import paths

    ns = runpy.run_path(str(paths.FIRMWARE / "meter" / "models.py"))
    return {n: int(ns["model"](n)["phases"]) for n in ns["names"]()}


def _int(opt: str, text: str, lo: int, hi: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise InstallError(f"{opt} {text!r}: a whole number, {lo}-{hi}") from None
    if not lo <= v <= hi:
        raise InstallError(f"{opt} {v}: out of range, {lo}-{hi}")
    return v


def from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The installation settings the options give, checked one by one (InstallError)."""
    a = argparse.Namespace(**{k: getattr(args, k, None) for k in _OPTS})
    out: dict[str, Any] = {}
    known = meter_models()
    names = ", ".join(known)
    if a.meter_model is not None:
        m = a.meter_model.lower()
        if m != "pulse" and m not in known:
            raise InstallError(f"--meter-model {a.meter_model!r}: one of {names}, or pulse "
                               "(an S0 meter)")
        out["meter_model"] = m
    if a.meter_addr is not None:
        out["meter_addr"] = _int("--meter-addr", a.meter_addr, 1, 247)
    if a.meter_baud is not None:
        b = _int("--meter-baud", a.meter_baud, BAUDS[0], BAUDS[-1])
        if b not in BAUDS:
            raise InstallError(f"--meter-baud {b}: one of {', '.join(map(str, BAUDS))}")
        out["meter_baud"] = b
    if a.meter_parity is not None:
        p = a.meter_parity.upper()
        if p not in ("N", "E", "O"):
            raise InstallError(f"--meter-parity {a.meter_parity!r}: N, E or O")
        out["meter_parity"] = p
    if a.wh_per_pulse is not None:
        try:
            w = float(a.wh_per_pulse)
        except ValueError:
            w = float("nan")
        if not 0.01 <= w <= 10000:  # also refuses nan and inf
            raise InstallError(f"--wh-per-pulse {a.wh_per_pulse!r}: Wh per pulse, 0.01-10000 "
                               "(a meter marked 1000 imp/kWh is 1)")
        out["meter_wh_per_pulse"] = w
    if a.phases is not None:
        if a.phases not in ("1", "3"):
            raise InstallError(f"--phases {a.phases!r}: 1 or 3")
        out["phases"] = int(a.phases)
    if a.grid_meter_model is not None:
        g = a.grid_meter_model.lower()
        if g in ("none", ""):
            g = ""
        elif g not in known:
            raise InstallError(f"--grid-meter-model {a.grid_meter_model!r}: one of {names}, "
                               "or none (no load balancing); an S0 meter cannot be one")
        out["grid_meter_model"] = g
    if a.grid_meter_addr is not None:
        out["grid_meter_addr"] = _int("--grid-meter-addr", a.grid_meter_addr, 1, 247)
    if a.main_fuse is not None:
        out["main_fuse_a"] = _int("--main-fuse", a.main_fuse, 6, MAX_FUSE_A)
    if a.grid_fallback is not None:
        f = _int("--grid-fallback", a.grid_fallback, 0, MAX_FUSE_A)
        if 0 < f < 6:
            raise InstallError(f"--grid-fallback {f}: 0 (pause while the grid meter is silent) "
                               "or at least 6 A (an EV needs 6 A)")
        out["grid_fallback_a"] = f
    if a.mqtt_controls is not None:
        out["mqtt_controls"] = a.mqtt_controls == "on"
    return out


def check(inst: dict[str, Any]) -> None:
    """The combinations, on the whole installation (what the charger will run with)."""
    v = {**DEFAULTS, **inst}
    models = meter_models()
    meter, grid = v["meter_model"], v["grid_meter_model"]
    if meter != "pulse" and models.get(meter) == 1 and v["phases"] == 3:
        raise InstallError(f"the meter {meter} measures one phase, the supply has 3: "
                           "--phases 1, or a three-phase --meter-model")
    if grid:
        if meter != "pulse" and v["grid_meter_addr"] == v["meter_addr"]:
            raise InstallError(f"the grid meter and the charger's meter share the RS-485 bus and "
                               f"both have address {v['meter_addr']}: give them different "
                               "--grid-meter-addr / --meter-addr")
        if models.get(grid, 3) < v["phases"]:
            raise InstallError(f"the grid meter {grid} measures one phase, the supply has 3: "
                               "load balancing would not see L2 and L3; fit a three-phase one")
        if v["grid_fallback_a"] > v["main_fuse_a"]:
            raise InstallError(f"--grid-fallback {v['grid_fallback_a']} A is above the main fuse "
                               f"({v['main_fuse_a']} A)")


def blob(inst: dict[str, Any]) -> bytes:
    b = json.dumps(inst, separators=(",", ":"), sort_keys=True).encode()
    if len(b) > INST_MAX:  # cannot happen with the settings above; said plainly if it did
        raise InstallError(f"the installation is {len(b)} bytes, the board reads at most "
                           f"{INST_MAX}")
    return b


# ---- the device ------------------------------------------------------------------------------
def read_device(dev: Device) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """(the "inst" document, its SHA-256 or None when absent, the installation settings the
    factory's "prov" holds): the secrets in "prov" never leave the charger."""
    dev.step = "reading the charger's installation from NVS"
    keys = tuple(DEFAULTS)
    v = dev.eval(f"""import esp32, json, hashlib, binascii
def _rd(k, size):
    b = bytearray(size)
    try:
        n = esp32.NVS({NVS_NAMESPACE!r}).get_blob(k, b)
    except OSError:
        return None, None
    try:
        d = json.loads(bytes(b[:n]))
    except ValueError:
        d = None
    return (d if isinstance(d, dict) else None), binascii.hexlify(hashlib.sha256(b[:n]).digest())
i, h = _rd({INST_KEY!r}, {INST_MAX})
p = _rd("prov", 2048)[0] or {{}}
print(repr((i or {{}}, h.decode() if h else None, {{k: p[k] for k in {keys!r} if k in p}})))""")
    if not (isinstance(v, tuple) and len(v) == 3 and isinstance(v[0], dict)):
        raise DeviceError(f"the charger answered {v!r} when asked for its installation: is this "
                          "the borne esp32_wallbox board?")
    return v[0], v[1], v[2]


def set_blob(dev: Device, key: str, blob: bytes) -> None:
    """Write one blob of the charger's NVS namespace and commit it (`borne provision` too)."""
    dev.exec(f"""import esp32
n = esp32.NVS({NVS_NAMESPACE!r})
n.set_blob({key!r}, {blob!r})
n.commit()""")


def write_device(dev: Device, data: bytes) -> None:
    dev.step = "writing the installation into NVS"
    set_blob(dev, INST_KEY, data)
    _, digest, _ = read_device(dev)
    if digest != hashlib.sha256(data).hexdigest():
        raise DeviceError("the installation read back from NVS differs from what was written: "
                          "run the command again")


def describe(v: dict[str, Any]) -> str:
    meter = v["meter_model"]
    if meter == "pulse":
        m = f"S0 pulse meter, {v['meter_wh_per_pulse']:g} Wh/pulse"
    else:
        m = f"{meter} at address {v['meter_addr']}"
    line = f"RS-485 {v['meter_baud']} baud 8{v['meter_parity']}1"
    lb = (f"grid meter {v['grid_meter_model']} at address {v['grid_meter_addr']}, main fuse "
          f"{v['main_fuse_a']} A, fallback {v['grid_fallback_a']} A"
          if v["grid_meter_model"] else "no load balancing")
    return (f"meter {m}; {line}; {v['phases']} phase{'s' if v['phases'] != 1 else ''}; {lb}; "
            f"MQTT controls {'on' if v['mqtt_controls'] else 'off'}")


def apply(dev: Device, changes: dict[str, Any], say: Say) -> bool:
    """Merge ``changes`` into what the charger holds, check, write and verify; True if written.
    Call it in the REPL (after make_safe) on a provisioned charger."""
    held, held_hash, factory = read_device(dev)
    before = {**DEFAULTS, **factory, **{k: held[k] for k in DEFAULTS if k in held}}
    inst = {**{k: held[k] for k in DEFAULTS if k in held}, **changes}
    check({**factory, **inst})
    data = blob(inst)
    after = {**DEFAULTS, **factory, **inst}
    if held_hash == hashlib.sha256(data).hexdigest():
        say(f"installation unchanged: {describe(after)}")
        return False
    write_device(dev, data)
    diff = ", ".join(f"{k} {before[k]!r} -> {after[k]!r}" for k in DEFAULTS
                     if before[k] != after[k])
    say(f"installation written to NVS {NVS_NAMESPACE}/{INST_KEY} ({len(data)} bytes), read back "
        f"and verified ({diff or 'as the factory had it'}): {describe(after)}")
    return True


def install(args: argparse.Namespace, say: Say = print) -> int:
    from borne import paths
    from borne.deploy import make_safe, wait_for_app
    from borne.provision import read_device_prov

    changes = from_args(args)
    with Device(args.port, args.timeout) as dev:
        make_safe(dev, paths.BOARDS / "esp32_wallbox", say)
        facts = dev.probe()
        if not facts.has_nvs:
            raise DeviceError(f"this device runs MicroPython on {facts.platform} "
                              f"({facts.machine}) without esp32.NVS: it is not an ESP32 charger; "
                              "check --port")
        cp_id, _ = read_device_prov(dev)
        if not cp_id:
            raise DeviceError("the charger is not provisioned (no identity in NVS borne/prov): "
                              "run `borne provision` first (it takes the same options)")
        if changes:
            try:
                apply(dev, changes, say)
            except InstallError as e:
                dev.reset()  # back to its application, unchanged
                raise InstallError(f"{e} (the charger restarts as it was)") from None
        else:
            held, _, factory = read_device(dev)
            say(f"{cp_id}: {describe({**DEFAULTS, **factory, **held})}")
        app = facts.boot_slot is not None or dev.frozen_version() is not None
        dev.reset()
        if app:
            ident = wait_for_app(dev, say)
            say(f"{ident.get('cp_id')} restarted with its installation")
        else:
            say("no application on the charger yet: install it with `borne deploy`")
    return 0


def add_install_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("installation (left out: kept as the charger has it)")
    names = ", ".join(meter_models())
    g.add_argument("--meter-model", metavar="MODEL", help=f"{names} or pulse (S0)")
    g.add_argument("--meter-addr", metavar="N", help="the meter's Modbus address, 1-247")
    g.add_argument("--meter-baud", metavar="BAUD", help="RS-485 speed (default 9600)")
    g.add_argument("--meter-parity", metavar="N|E|O", help="RS-485 parity (default E)")
    g.add_argument("--wh-per-pulse", metavar="WH", help="an S0 meter's Wh per pulse")
    g.add_argument("--phases", metavar="1|3", help="the supply's phases (default 3)")
    g.add_argument("--grid-meter-model", metavar="MODEL",
                   help=f"load balancing's grid meter: {names}, or none")
    g.add_argument("--grid-meter-addr", metavar="N", help="its Modbus address (default 2)")
    g.add_argument("--main-fuse", metavar="A", help="the supply's main fuse per phase, A")
    g.add_argument("--grid-fallback", metavar="A",
                   help="the offer while the grid meter is silent: 0 (pause) or >= 6 A")
    g.add_argument("--mqtt-controls", choices=("on", "off"),
                   help="MQTT may pause, limit and free charging")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "install",
        help="set a provisioned charger's installation: meter, phases, load balancing (NVS)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_line_args(p)
    add_install_args(p)
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    try:
        return install(args)
    except InstallError as e:
        print(f"install: {e}: nothing was written", file=sys.stderr)
        return 2
    except DeviceError as e:
        print(f"install: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("install: interrupted: the charger may be left stopped (contactor open) until it "
              "is reset or power-cycled; run the same command again", file=sys.stderr)
        return 1
