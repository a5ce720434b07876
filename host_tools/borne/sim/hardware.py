"""The simulated hardware around the agent: the EV on the control pilot, the contactor with its
feedback contact, the RCD, the status LED and the buzzer, and the house load behind the main
fuse (what a supply-side meter sees besides the EV).

The physics stay honest: the EV draws current only while the relay is closed and it asks for
energy (state C), never more than the pilot's PWM offer, and energy rises only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("borne.sim.hw")

VOLTS = 230.0
RELAY_DELAY_S = 0.015  # contactor closing/opening time seen on the feedback contact
PILOT_FAULTS = ("diode", "pilot_short")
HW_FAULTS = ("rcd", "weld", *PILOT_FAULTS)


def offer_amps(duty: float) -> float:
    """The current an EV may draw for a PWM duty (IEC 61851-1:2017 Table A.8); 0: none."""
    if 8 <= duty < 10:
        return 6.0
    if 10 <= duty <= 85:
        return duty * 0.6
    if 85 < duty <= 96:
        return (duty - 64) * 2.5
    return 0.0


@dataclass
class Hardware:
    phases: int = 3
    plugged: bool = False
    asking: bool = False  # EV in state C
    load_amps: float = 16.0
    follows_offer: bool = True  # False: a misbehaving EV draws load_amps whatever the pilot says
    pwm_duty: float = 100.0
    relay_cmd: bool = False
    relay_contacts: bool = False
    faults: set[str] = field(default_factory=set)
    led: dict[str, Any] = field(
        default_factory=lambda: {"color": "000000", "pattern": "off", "brightness": 0}
    )
    tones: list[tuple[int, int]] = field(default_factory=list)
    telemetry: dict[str, Any] = field(default_factory=dict)
    energy_wh: float = 0.0
    # The rest of the house behind the main fuse (load balancing): amps on L1-L3 besides the EV,
    # and the import register of the supply-side (grid) meter that sees house + EV.
    house_amps: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    grid_energy_wh: float = 0.0
    resets: int = 0
    relay_log: list[tuple[float, bool]] = field(default_factory=list)  # (when, coil command)
    # An S0 meter (Wh a pulse; None: no S0 meter): pulses since the agent started, sent as
    # "s0 <count>"; and the last colour the ESP32's WS2812 shows.
    s0_wh: float | None = None
    # The agent's telemetry comes on its console (the ESP32 board), not on the I/O socket: it is
    # reset when a process starts (boot()), not when the socket connects, which may come later.
    console_telemetry: bool = False
    pixel: str = "000000"
    _s0_base: float = 0.0
    _s0_sent: int = -1
    _last_t: float = field(default_factory=time.monotonic)
    _writer: asyncio.StreamWriter | None = None
    _relay_task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    # -- EV and faults (the control protocol calls these) ------------------------------
    def cp_state(self) -> str:
        if "pilot_short" in self.faults:
            return "E"
        if self.pwm_duty <= 0:
            return "F"
        if not self.plugged:
            return "A"
        return "C" if self.asking else "B"

    def pilot_levels(self) -> tuple[int, int]:
        high = {"A": 12000, "B": 9000, "C": 6000, "D": 3000, "E": 0, "F": -12000}[self.cp_state()]
        pwm_running = 0 < self.pwm_duty < 100
        if not pwm_running:
            low = high
        elif "diode" in self.faults or self.cp_state() == "E":
            low = 0  # no diode: the EV side cannot hold the negative plateau at -12 V
        else:
            low = -12000
        return high, low

    def current_amps(self) -> float:
        if not (self.relay_contacts and self.plugged and self.asking):
            return 0.0
        if not self.follows_offer and offer_amps(self.pwm_duty) > 0:
            return self.load_amps
        return max(0.0, min(self.load_amps, offer_amps(self.pwm_duty)))

    def power_w(self) -> float:
        return self.current_amps() * VOLTS * self.phases

    def grid_amps(self) -> list[float]:
        """What the supply's main fuse carries per phase: the house, plus the EV on its phases."""
        ev = self.current_amps()
        return [h + (ev if k < self.phases else 0.0) for k, h in enumerate(self.house_amps)]

    def set_house(self, amps: list[float]) -> None:
        self.integrate()
        self.house_amps = [float(a) for a in amps]
        self.changed.set()

    def integrate(self) -> None:
        now = time.monotonic()
        dt_h = (now - self._last_t) / 3600.0
        self.energy_wh += self.power_w() * dt_h
        self.grid_energy_wh += sum(self.grid_amps()) * VOLTS * dt_h
        self._last_t = now
        if self.s0_wh:
            n = int(self.energy_wh / self.s0_wh) - int(self._s0_base / self.s0_wh)
            if n != self._s0_sent and self._writer is not None:
                self._s0_sent = n
                self._send(f"s0 {n}")

    def set_ev(self, *, plugged: bool | None = None, asking: bool | None = None) -> None:
        self.integrate()
        if plugged is not None:
            self.plugged = plugged
            if not plugged:
                self.asking = False
        if asking is not None:
            self.asking = asking and self.plugged
        self._push_pilot()

    def set_fault(self, kind: str, on: bool = True) -> None:
        self.integrate()
        if on:
            self.faults.add(kind)
        else:
            self.faults.discard(kind)
        if kind == "rcd":
            self._send(f"rcd {int(on)}")
        elif kind == "weld":
            self._schedule_feedback()
        else:
            self._push_pilot()

    def clear_faults(self) -> None:
        for kind in list(self.faults):
            self.set_fault(kind, False)

    # -- the agent's I/O socket ------------------------------------------------------
    def _send(self, line: str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(line.encode() + b"\n")

    def _push_pilot(self) -> None:
        high, low = self.pilot_levels()
        self._send(f"cp {high} {low}")
        self.changed.set()

    def _schedule_feedback(self) -> None:
        if self._relay_task:
            self._relay_task.cancel()

        async def settle() -> None:
            await asyncio.sleep(RELAY_DELAY_S)
            self.integrate()
            self.relay_contacts = True if "weld" in self.faults else self.relay_cmd
            self._send(f"fb {int(self.relay_contacts)}")
            self.changed.set()

        self._relay_task = asyncio.get_running_loop().create_task(settle())

    def _on_line(self, line: str) -> None:
        parts = line.split(None, 2)
        if not parts:
            return
        cmd = parts[0]
        self.integrate()
        if cmd == "relay" and len(parts) > 1:
            self.relay_cmd = parts[1] == "1"
            # "relay <0|1> [<monotonic us>]": the emulated ESP32 stamps the coil's switching
            when = int(parts[2]) / 1e6 if len(parts) > 2 and parts[2].isdigit() else None
            self.relay_log.append((when or time.monotonic(), self.relay_cmd))
            del self.relay_log[:-100]
            self._schedule_feedback()
        elif cmd == "pwm" and len(parts) > 1:
            with contextlib.suppress(ValueError):
                self.pwm_duty = float(parts[1])
            self._push_pilot()
        elif cmd == "led" and len(parts) > 2:
            pattern, _, bright = parts[2].partition(" ")
            self.led = {
                "color": parts[1],
                "pattern": pattern,
                "brightness": int(bright) if bright.isdigit() else 0,
            }
        elif cmd == "tone" and len(parts) > 2:
            with contextlib.suppress(ValueError):
                self.tones.append((int(parts[1]), int(parts[2])))
                del self.tones[:-20]
        elif cmd == "tel" and len(parts) > 2:
            with contextlib.suppress(ValueError):
                self.telemetry[parts[1]] = json.loads(parts[2])
        elif cmd == "reset":
            self.resets += 1
        elif cmd == "pixel" and len(parts) > 1:
            self.pixel = parts[1]
        self.changed.set()

    def card(self, uid_hex: str, hold_s: float) -> None:
        """A card held to an MFRC522 (the ESP32 board's SPI reader) for hold_s seconds."""
        self._send(f"card {uid_hex} {int(hold_s * 1000)}")

    def stall(self, ms: int) -> None:
        """The emulated chip's main thread blocks for `ms` (a garbage collection, a blocking
        call): no Python runs on it meanwhile, interrupt handlers included (the port schedules
        them); the circuit (the relay's interlock) still does."""
        self._send(f"stall {ms}")

    def boot(self) -> None:
        """A new agent process starts: what the last one said is no longer true."""
        self.telemetry = {}

    def device_line(self, line: str) -> None:
        """A line the ESP32 board prints on its console: "tel ..." or "led ..." (as unix_sim
        sends them on its I/O socket)."""
        self._on_line(line)

    def press_button(self, ms: int) -> None:
        """The setup button held for `ms` milliseconds (the board reports the press length)."""
        self._send(f"btn {ms}")

    def squeeze_heap(self, block: int | None, cap: int = 0) -> None:
        """Memory pressure on the unix_sim agent: it takes every free block of its heap of at
        least `block` bytes (None: gives them back), and with a `cap` more until at most `cap`
        bytes stay free; it answers with the `squeeze` telemetry."""
        self.telemetry.pop("squeeze", None)
        self._send(f"squeeze {-1 if block is None else block} {cap}")

    async def serve_agent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One agent process's I/O socket; a new agent (after a reboot) replaces the old one."""
        if self._writer is not None:
            self._writer.close()
        self._writer = writer
        if not self.console_telemetry:
            self.telemetry = {}
        self._s0_base = self.energy_wh  # the chip counts pulses from its boot
        self._s0_sent = -1
        # The agent boots with the relay open: the contacts follow the coil (unless welded).
        self.relay_cmd = False
        self._schedule_feedback()
        self._push_pilot()
        if "rcd" in self.faults:
            self._send("rcd 1")
        try:
            while line := await reader.readline():
                self._on_line(line.decode(errors="replace").strip())
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
                self.telemetry = {}  # what a dead agent said is no longer true
                # Power gone: the coil drops, the contacts open (unless welded).
                self.integrate()
                self.relay_cmd = False
                self.relay_contacts = "weld" in self.faults
                self.changed.set()
