"""The charger's energy meter on its RS-485 line: a `pymodbus` server with the RTU framer (RTU
frames, CRC-16 and all) over a loopback TCP socket, whose registers are filled from the
simulated hardware at every request, laid out as the chosen meter model's documentation says.

The register maps are written here from the manufacturers' documents on their own (not shared
with the firmware's `meter/models.py`), so a mistake on either side shows up as a wrong reading:

- Eastron SDM630 / SDM120 (Modbus protocol V1.7 / SDM120-Modbus): input registers (function 4),
  IEEE 754 float32, high word first. 0x0000/2/4 V L1-L3 N, 0x0006/8/A A L1-L3, 0x000C/E/10
  W L1-L3, 0x0034 total W (SDM630), 0x0046 Hz, 0x0048 import kWh, 0x0156 total kWh.
- ABB B23 (2CMC485003M0201 9.3): holding registers (function 3). 0x5000 active import energy
  U64 in 0.01 kWh; 0x5B00.. V L1-L3 U32 0.1 V; 0x5B0C.. A L1-L3 U32 0.01 A; 0x5B14 total W S32
  0.01 W; 0x5B2C Hz U16 0.01 Hz.
- Carlo Gavazzi EM340 (EM300 series protocol v2r17): functions 3 and 4 alike, INT32 least
  significant word first. 0x0000.. V*10; 0x000C.. A*1000; 0x0012.. W*10 per phase; 0x0028 W sys
  *10; 0x0033 Hz*10 (INT16); 0x0034 kWh(+) TOT *10.

Several meters share one RS-485 line as on a real bus: `others` are served by the same server
at their own slave addresses (pymodbus takes a list of devices), each with its own registers
and faults. A meter with `grid=True` is the supply-side meter of load balancing: it measures
the house load plus the EV (`Hardware.grid_amps()`), not the EV alone.

Faults: `down` makes the meter silent (no answer at all, as a dead meter on the bus); `nonsense`
makes it report implausible values ("backwards", "negative", "megawatt"); `corrupt` damages
the CRC of the next n answers; `garbage` puts bytes of line noise before the next answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from borne.sim.hardware import VOLTS, Hardware

log = logging.getLogger("borne.sim.meter")

MODELS = ("sdm630", "sdm120", "abb_b23", "em340")


def f32(v: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", v))
    return [hi, lo]


def u32(v: int) -> list[int]:
    v &= 0xFFFFFFFF
    return [v >> 16, v & 0xFFFF]


def s32_lsw_first(v: int) -> list[int]:
    v &= 0xFFFFFFFF
    return [v & 0xFFFF, v >> 16]


def u64(v: int) -> list[int]:
    return [(v >> s) & 0xFFFF for s in (48, 32, 16, 0)]


@dataclass
class Reading:
    """What the meter measures now."""

    volts: list[float]
    amps: list[float]
    watts: list[float]
    total_w: float
    hz: float
    import_wh: float


def layout(model: str, r: Reading) -> dict[int, list[int]]:
    """Register address -> words, for the model's map."""
    regs: dict[int, list[int]] = {}
    if model in ("sdm630", "sdm120"):
        for k in range(3):
            regs[0x0000 + 2 * k] = f32(r.volts[k])
            regs[0x0006 + 2 * k] = f32(r.amps[k])
            regs[0x000C + 2 * k] = f32(r.watts[k])
        regs[0x0034] = f32(r.total_w)
        regs[0x0046] = f32(r.hz)
        regs[0x0048] = f32(r.import_wh / 1000)
        regs[0x004A] = f32(0.0)
        regs[0x0156] = f32(r.import_wh / 1000)
    elif model == "abb_b23":
        regs[0x5000] = u64(int(r.import_wh // 10))
        for k in range(3):
            regs[0x5B00 + 2 * k] = u32(round(r.volts[k] * 10))
            regs[0x5B0C + 2 * k] = u32(round(r.amps[k] * 100))
            regs[0x5B16 + 2 * k] = u32(round(r.watts[k] * 100))
        regs[0x5B14] = u32(round(r.total_w * 100))
        regs[0x5B2C] = [round(r.hz * 100) & 0xFFFF]
    elif model == "em340":
        for k in range(3):
            regs[0x0000 + 2 * k] = s32_lsw_first(round(r.volts[k] * 10))
            regs[0x000C + 2 * k] = s32_lsw_first(round(r.amps[k] * 1000))
            regs[0x0012 + 2 * k] = s32_lsw_first(round(r.watts[k] * 10))
        regs[0x0028] = s32_lsw_first(round(r.total_w * 10))
        regs[0x0033] = [round(r.hz * 10) & 0xFFFF]
        regs[0x0034] = s32_lsw_first(int(r.import_wh // 100))
    else:
        raise ValueError(f"unknown meter model {model!r}; known: {', '.join(MODELS)}")
    return regs


def _blocks(model: str) -> tuple[list[SimData], list[SimData]]:
    """(holding, input) register blocks; addresses outside them answer ILLEGAL DATA ADDRESS."""
    regs = lambda a, n: SimData(address=a, count=n, values=0, datatype=DataType.REGISTERS)  # noqa: E731
    if model in ("sdm630", "sdm120"):
        # measurements are input registers; holding registers hold the set-up (not emulated
        # beyond existing: a read there answers zeros)
        return [regs(0x0000, 0x30)], [regs(0x0000, 0x0158)]
    if model == "abb_b23":
        return [regs(0x5000, 0x24), regs(0x5B00, 0x40)], [regs(0xFFF0, 1)]
    return [regs(0x0000, 0x60)], [regs(0x0000, 0x60)]


@dataclass
class MeterEmulator:
    hw: Hardware
    model: str = "sdm630"
    address: int = 1
    down: bool = False
    nonsense: str | None = None
    corrupt: int = 0
    garbage: bytes = b""
    requests: int = 0
    grid: bool = False
    others: list[MeterEmulator] = field(default_factory=list)
    _server: ModbusTcpServer | None = None
    port: int = 0

    def reading(self) -> Reading:
        hw = self.hw
        hw.integrate()
        if self.grid:
            phases = 1 if self.model == "sdm120" else 3
            cur = [a if k < phases else 0.0 for k, a in enumerate(hw.grid_amps())]
            energy = hw.grid_energy_wh
        else:
            phases = 1 if self.model == "sdm120" else hw.phases
            amps = hw.current_amps()
            cur = [amps if k < phases else 0.0 for k in range(3)]
            energy = hw.energy_wh
        volts = [VOLTS if k < phases else 0.0 for k in range(3)]
        watts = [v * a for v, a in zip(volts, cur, strict=True)]
        r = Reading(volts, cur, watts, sum(watts), 50.0, energy)
        if self.nonsense == "backwards":
            r.import_wh = max(0.0, energy - 5000.0)
        elif self.nonsense == "negative":
            r.import_wh = -1000.0
        elif self.nonsense == "megawatt":
            r.total_w = 1_000_000.0
        return r

    async def _fill(
        self, fc: int, start: int, address: int, count: int, registers: list[int], _set: object
    ) -> None:
        """pymodbus action: fill the block from the hardware before the read is answered."""
        self.requests += 1
        for addr, words in layout(self.model, self.reading()).items():
            for i, w in enumerate(words):
                k = addr + i - start
                if 0 <= k < len(registers):
                    registers[k] = w

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        # An answer starts with the address of the meter that gives it.
        me = next((m for m in (self, *self.others) if m.address == data[0]), self)
        return me._damage(data)

    def _damage(self, data: bytes) -> bytes:
        if self.down:
            return b""  # a dead meter: nothing on the line
        if self.corrupt and data:
            self.corrupt -= 1
            data = data[:-1] + bytes([data[-1] ^ 0x5A])
        if self.garbage:
            data, self.garbage = self.garbage + data, b""
        return data

    def _device(self) -> SimDevice:
        if self.model not in MODELS:
            raise ValueError(f"unknown meter model {self.model!r}; known: {', '.join(MODELS)}")
        holding, inputs = _blocks(self.model)
        coil = [SimData(address=0, values=False, datatype=DataType.BITS)]
        return SimDevice(
            id=self.address, simdata=(coil, list(coil), holding, inputs), action=self._fill
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        addresses = [m.address for m in (self, *self.others)]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"two meters at one bus address: {addresses}")
        devices = [m._device() for m in (self, *self.others)]
        self._server = ModbusTcpServer(
            devices,
            framer=FramerType.RTU,
            address=(host, port),
            ignore_missing_devices=True,  # other addresses on the bus: silence, as RS-485
            trace_packet=self._trace,
        )
        await self._server.serve_forever(background=True)
        transport = self._server.transport
        sockets: list = getattr(transport, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        for m in self.others:
            m.port = self.port
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.shutdown()
            self._server = None


async def run_forever(hw: Hardware, model: str, ready: Callable[[int], None]) -> None:
    """Serve a meter until cancelled (used by test fixtures)."""
    emu = MeterEmulator(hw, model)
    ready(await emu.start())
    try:
        await asyncio.Event().wait()
    finally:
        await emu.stop()
