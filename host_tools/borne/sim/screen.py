"""The live one-screen status of `borne sim`."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from borne.sim.simulator import COMMANDS, Simulator

_CLEAR = "\x1b[H\x1b[2J"
_RGB_NAMES = {
    "00ff00": "green", "0000ff": "blue", "ff0000": "red", "ffff00": "yellow",
    "ffa500": "orange", "808080": "grey", "00ffff": "cyan", "ffffff": "white", "000000": "off",
    "ff00ff": "magenta",
}


def render(sim: Simulator, control_port: int | None) -> str:
    st: dict[str, Any] = sim.state()
    led = st["led"]
    colour = _RGB_NAMES.get(led["color"].lower(), "#" + led["color"])
    swatch = _swatch(led["color"]) if led["pattern"] != "off" else "  "
    ocpp = st["ocpp"]
    link = "online" if ocpp["connected"] else "OFFLINE"
    lines = [
        f"borne sim  -  {sim.cp_id}  -  CSMS {csms_shown(sim)}"
        + ("  (embedded)" if sim.csms else ""),
        *(how_to_drive(control_port) if control_port else ["control: off"]),
        hotspot_line(sim),
        "",
        f"  supply     {'on' if st['powered'] else 'CUT'}       "
        f"network {'up' if st['net'] else 'CUT'}",
        f"  pilot      {st['cp']}        PWM {st['pwm_duty']:.1f} %",
        f"  relay      {'CLOSED' if st['relay'] else 'open'}",
        f"  LED        {swatch} {colour} {led['pattern']} ({led['brightness']} %)",
        f"  OCPP       {link}, connector 1 {ocpp['status'] or '-'}",
        f"  power      {st['power_w'] / 1000:.2f} kW   energy {st['energy_wh'] / 1000:.3f} kWh",
        f"  meter      {_meter(st.get('meter'), sim.meter.model)}",
        f"  RFID       {'card at the reader' if st.get('card') else 'no card'}, "
        f"last tag {st.get('tag') or '-'}",
        f"  session    {st['session'] or '-'}",
        f"  faults     {', '.join(st['faults']) or 'none'}"
        + (f"   agent reports {', '.join(st['device_faults'])}" if st.get("device_faults") else ""),
        "",
        "agent log:",
    ]
    # the agent's log, without the ESP32 board's console telemetry (shown above)
    log = sim.agent.lines if sim.agent else ()
    tail = [x for x in log if not x.startswith(("@tel ", "@led "))][-12:]
    return "\n".join(lines + ["  " + x[:110] for x in tail]) + "\n"


def csms_shown(sim: Simulator) -> str:
    """The CSMS the charger uses: given, embedded, or the one a claim gave (kept in its flash)."""
    from borne.sim.cli import held_csms

    return sim.csms_url or held_csms(sim.flash) or "none until claimed"


def hotspot_line(sim: Simulator) -> str:
    """Where the hotspot's claim page and API serve (the port may be a free one chosen at
    start), and where the simulated charger's secrets are."""
    if sim.claim is None:
        return f"the setup button's hotspot (a 3 s press) serves on {sim.hotspot_url}/"
    where = ("nvs.json (the emulated NVS)" if sim.fitted.board == "esp32_wallbox"
             else "factory.json")
    return (f"claim page and API on {sim.hotspot_url}/; secrets in {sim.flash}/{where}: "
            f"`borne label --flash {sim.flash}` prints them")


def how_to_drive(port: int) -> list[str]:
    """What a newcomer needs to drive the simulation: the control protocol, by example."""
    return [
        f"control: 127.0.0.1:{port} takes one JSON request a line; in another terminal, e.g.:",
        f"""  echo '{{"cmd": "plug"}}' | nc -q 1 127.0.0.1 {port}    (an EV plugged in)""",
        """  {"cmd": "tap", "uid": "04a1b2c3"}  {"cmd": "charge"}  {"cmd": "net", "up": false}  """
        """{"cmd": "power_cut"}""",
        f"  commands: {' '.join(COMMANDS[:-1])}",
        f"  {COMMANDS[-1]} (README \"Driving the simulator\"); Ctrl-C ends the simulation",
    ]


def _meter(m: dict[str, Any] | None, model: str) -> str:
    """The agent's latest meter reading, as it knows it."""
    if not m or m.get("energy_wh") is None:
        return f"{model}: no reading yet"
    state = "ok" if m.get("ok") else "FAILING (last good reading)"
    return (f"{model}: {m['energy_wh'] / 1000:.3f} kWh, {(m.get('power_w') or 0) / 1000:.2f} kW "
            f"[{state}]")


def _swatch(rgb: str) -> str:
    try:
        r, g, b = (int(rgb[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return "  "
    return f"\x1b[48;2;{r};{g};{b}m  \x1b[0m"


async def show(sim: Simulator, control_port: int | None, period: float = 0.5) -> None:
    """Redraw the status while the simulation runs (only on a terminal)."""
    if not sys.stdout.isatty():
        return
    while True:
        sys.stdout.write(_CLEAR + render(sim, control_port))
        sys.stdout.flush()
        await asyncio.sleep(period)
