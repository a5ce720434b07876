"""What a simulation is made of, as small frozen option objects: how the agent's interpreter runs
(`Runtime`), the hardware fitted and its installation (`Fitted`), and where the agent finds the
simulated devices (`Wires`). Each `argv()` is its part of the agent's command line (`--key value`
pairs the board, and the emulated ESP32, read); the security profile (`agent.Security`), claim
mode (`simulator.ClaimOptions`) and MQTT (`mqttopts.MqttOptions`) are the others."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from borne import paths
from borne.sim.meter_emu import MODELS as METER_MODELS

BOARDS = ("unix_sim", "esp32_wallbox")
READERS = ("pn532_uart", "pn532_i2c", "mfrc522")  # the ESP32 board's reader variants
PULSE = "pulse"  # an S0 meter instead of a Modbus one
METER_LINE = "9600 8 E 1"  # the simulated RS-485 line: baud, data bits, parity, stop bits


@dataclass(frozen=True)
class Runtime:
    """How the agent's interpreter runs: its heap (`-X heapsize=`, e.g. "100wK"), the
    application it runs (the firmware source, a `borne build` output folder, that build as a
    ROMFS image executed in place, or an interpreter with it frozen in), the benchmark probes
    it starts (heap sampling, the loop's longest stall) and the file its output goes to."""

    heapsize: str | None = None
    compiled: Path | None = None  # a `borne build` output folder to run instead of the source
    # A ROM run folder (`sim/romboot.py` prepare()): the build as a ROMFS image mounted from a
    # buffer, bytecode executed in place. The heap is made larger by the image's block, so
    # `heapsize` stays the application's data heap; heapwatch leaves the image out.
    rom: Path | None = None
    # A unix port built with the application frozen into it (boards/unix_sim/manifest.py) to
    # run instead of this venv's: bytecode, its tables and its names in the interpreter's image,
    # as in the ESP32 image; main.py is the firmware's own, every other module the frozen one.
    frozen: Path | None = None
    diag: bool = False  # heapwatch.py: the state's `heap` (peak, used, total)
    stallwatch: bool = False  # stallwatch.py: the loop's longest stall
    log_file: Path | None = None  # every line the agent prints, appended

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.rom, self.compiled, self.frozen)) > 1:
            raise ValueError("a runtime runs one of a build (compiled), a ROM image (rom) or a "
                             "frozen interpreter (frozen)")

    def interpreter(self) -> list[str]:
        """The command up to the script's own arguments: micropython, its options, main.py."""
        cmd = [str(self.frozen) if self.frozen else paths.micropython()]
        heapsize = self.heapsize
        if heapsize and self.rom is not None:
            from borne.sim import romboot

            heapsize = romboot.rom_heapsize(heapsize, self.rom)
        if heapsize:
            cmd += ["-X", f"heapsize={heapsize}"]
        folder = self.rom or self.compiled
        main = folder / "main.py" if folder else paths.FIRMWARE / "main.py"
        if self.frozen:
            # main.py alone in a folder: the script's folder heads sys.path, where the firmware's
            # sources would be imported before the frozen modules.
            main = paths.BUILD / "frozen-main" / "main.py"
            main.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(paths.FIRMWARE / "main.py", main)
        return [*cmd, str(main)]

    def micropypath(self, board: str) -> str:
        """MICROPYPATH: where the application's and the board's modules are found (a ROM
        image puts itself at /rom, after .frozen)."""
        folder = self.rom or self.compiled
        if self.frozen:
            return f".frozen:{paths.MPLIB}"
        if folder:
            emulation = f"{paths.EMULATION}:{paths.CHIPS}:" if board == "esp32_wallbox" else ""
            slot = "" if self.rom else f"{folder / 'slot'}:"
            return f".frozen:{emulation}{slot}{paths.MPLIB}"
        return paths.micropypath(board)

    def argv(self) -> list[str]:
        out = []
        if self.diag:
            out += ["--diag", "1"]
        if self.stallwatch:
            out += ["--stallwatch", "1"]
        return out


@dataclass(frozen=True)
class Fitted:
    """The hardware fitted and its installation: the board code that runs, the RFID reader
    (an ESP32 board variant), the energy meter (a Modbus model, or `pulse` for an S0 meter) and
    the baud rate the charger is set to for it (None = the board's default), the supply's phases
    (an SDM120 makes it single-phase), and load balancing: a supply-side grid meter on the same
    RS-485 line at its own address (None = none) and the main fuse per phase."""

    board: str = "unix_sim"
    reader: str = "pn532_uart"
    meter_model: str = "sdm630"
    meter_baud: int | None = None  # the charger's setting; the line runs at METER_LINE
    phases: int = 3
    grid_meter: str | None = None
    grid_meter_addr: int = 2
    main_fuse_a: int = 25

    def __post_init__(self) -> None:
        for m in (self.meter_model, self.grid_meter or "sdm630"):
            if m not in (*METER_MODELS, PULSE):
                raise ValueError(f"meter model {m!r}: one of {', '.join(METER_MODELS)}, pulse")
        if self.board not in BOARDS:
            raise ValueError(f"board {self.board!r}: one of {', '.join(BOARDS)}")
        if self.reader not in READERS:
            raise ValueError(f"reader {self.reader!r}: one of {', '.join(READERS)}")
        if self.reader != "pn532_uart" and self.board != "esp32_wallbox":
            raise ValueError(f"reader {self.reader}: only the esp32_wallbox board has that variant")

    @property
    def supply_phases(self) -> int:
        """The installation's phases: a single-phase meter (SDM120) sits on a single-phase one."""
        return 1 if self.meter_model == "sdm120" else self.phases

    def argv(self) -> list[str]:
        """The meter and the installer's load-balancing settings, given at every boot."""
        out = ["--meter-model", self.meter_model,
               "--grid-meter-model", self.grid_meter or "",  # "" = no grid meter
               "--grid-meter-addr", str(self.grid_meter_addr),
               "--main-fuse", str(self.main_fuse_a),
               "--phases", str(self.supply_phases)]
        if self.meter_baud:
            out += ["--meter-baud", str(self.meter_baud)]
        return out


@dataclass(frozen=True)
class Wires:
    """Where the agent finds the simulated world, each "host:port" on loopback (None = not
    wired): the I/O socket (pin-level signals), the SNTP server, the network gate to the CSMS,
    the reader's HSU line and the RS-485 line (with its line settings, which the emulated ESP32's
    UART must match), the network's DNS resolver. The unix_sim board reads them; so does the
    emulated ESP32 (sim/mpy/)."""

    io: str
    sntp: str
    gate: str | None = None
    rfid: str | None = None
    meter: str | None = None
    meter_line: str = METER_LINE
    dns: str | None = None

    def argv(self) -> list[str]:
        out = ["--io", self.io, "--sntp", self.sntp, "--meter-line", self.meter_line]
        for flag, addr in (("--gate", self.gate), ("--rfid", self.rfid), ("--meter", self.meter),
                           ("--dns", self.dns)):
            if addr:
                out += [flag, addr]
        return out
