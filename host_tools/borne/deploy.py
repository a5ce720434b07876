"""`borne deploy` and `borne flash`: put the application, or MicroPython itself, on a charger.

``deploy`` builds the application (``borne build``) and copies it over USB serial with
``mpremote``, in one session:

1. drive the outputs safe (contactor open, pilot at +12 V): the session stops the running app,
2. copy the slot to ``/app_a.new``, so a failed copy never damages the installed slot,
3. copy ``main.py`` to the filesystem root,
4. swap ``/app_a.new`` in as ``/app_a`` and write ``/boot_slot`` (``a``), which main.py reads
   to put the slot first on sys.path,
5. hard-reset the charger.

``flash`` writes a MicroPython ESP32 firmware image (stock, or one built with
boards/esp32_wallbox/manifest.py) with ``esptool``: ``erase-flash`` (unless ``--no-erase``), then
``write-flash`` at 0x1000, where the ESP32's second-stage bootloader starts. Erasing wipes the
filesystem (/data and the slots) and the NVS partition, which holds the device's provisioning:
re-provision the charger after a full flash.

Both only print the exact commands with ``--dry-run``.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from borne import paths
from borne.build import BuildError, compile_tree

SLOT = "/app_a"
SLOT_NAME = "a"
ESP32_CHIP = "esp32"
ESP32_FIRMWARE_OFFSET = 0x1000  # plain ESP32 (S3/C3 images start at 0x0)
DEFAULT_BAUD = 460800

# Remove a file or a folder tree on the device, if it exists (MicroPython code for `exec`).
_RMTREE = """import os
def _rm(p):
    try:
        m = os.stat(p)[0]
    except OSError:
        return
    if m & 0x4000:
        for n in os.listdir(p):
            _rm(p + "/" + n)
        os.rmdir(p)
    else:
        os.remove(p)
"""


def _q(s: str) -> str:
    # A MicroPython string literal in double quotes (the shell line then quotes it with single).
    return json.dumps(s)


def tool(name: str) -> str:
    """A pinned tool from this venv (mpremote, esptool); the bare name if it is not installed."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    return shutil.which(name) or name


def _pin_consts(pins_py: Path) -> dict[str, int]:
    # NAME = const(N) assignments of a board's pins.py, read without running it.
    out: dict[str, int] = {}
    if not pins_py.is_file():
        return out
    for node in ast.parse(pins_py.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "const"
            and len(node.value.args) == 1
            and isinstance(node.value.args[0], ast.Constant)
            and isinstance(node.value.args[0].value, int)
        ):
            out[node.targets[0].id] = node.value.args[0].value
    return out


def safe_outputs_code(board_dir: Path) -> str | None:
    """MicroPython code that opens the contactor and sets the pilot to +12 V, from pins.py."""
    pins = _pin_consts(board_dir / "pins.py")
    if "RELAY" not in pins or "CP_PWM" not in pins:
        return None
    return (
        "from machine import Pin\n"
        f"Pin({pins['RELAY']}, Pin.OUT, value=0)\n"
        f"Pin({pins['CP_PWM']}, Pin.OUT, value=1)\n"
    )


def deploy_commands(
    app_dir: Path,
    main_py: Path,
    port: str | None = None,
    board_dir: Path | None = None,
    slot: str = SLOT,
    reset: bool = True,
) -> list[list[str]]:
    """The mpremote command line(s) that install ``app_dir`` as ``slot`` and ``main_py`` at /."""
    staging = slot + ".new"
    name = slot.rstrip("/").rpartition("/")[2].removeprefix("app_")
    cmd = [tool("mpremote"), "connect", port or "auto"]
    safe = safe_outputs_code(board_dir) if board_dir is not None else None
    if safe:
        cmd += ["exec", safe, "+"]
    cmd += ["exec", f"{_RMTREE}_rm({_q(staging)})\n", "+"]
    cmd += ["fs", "cp", "-r", str(app_dir), ":" + staging, "+"]
    cmd += ["fs", "cp", str(main_py), ":/main.py", "+"]
    swap = (
        f"{_RMTREE}_rm({_q(slot)})\n"
        f"os.rename({_q(staging)}, {_q(slot)})\n"
        'f = open("/boot_slot.new", "w")\n'
        f"f.write({_q(name)})\n"
        "f.close()\n"
        'os.rename("/boot_slot.new", "/boot_slot")\n'
    )
    cmd += ["exec", swap]
    if reset:
        cmd += ["+", "reset"]
    return [cmd]


def flash_commands(
    firmware: Path,
    port: str | None = None,
    baud: int = DEFAULT_BAUD,
    erase: bool = True,
) -> list[list[str]]:
    """The esptool command lines that (erase and) write a MicroPython image to an ESP32."""
    base = [tool("esptool"), "--chip", ESP32_CHIP]
    if port:
        base += ["--port", port]
    base += ["--baud", str(baud)]
    cmds = []
    if erase:
        cmds.append([*base, "erase-flash"])
    cmds.append([*base, "write-flash", "-z", hex(ESP32_FIRMWARE_OFFSET), str(firmware)])
    return cmds


def run_commands(cmds: list[list[str]], dry_run: bool) -> int:
    for cmd in cmds:
        print(shlex.join(cmd), flush=True)
        if dry_run:
            continue
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            print(f"borne: {Path(cmd[0]).name} exited with {rc}", file=sys.stderr)
            return rc
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "deploy",
        help=f"build the application and copy it into {SLOT} on a charger over serial (mpremote)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0 (default: mpremote's auto)")
    p.add_argument("--board", default="esp32_wallbox", help="board folder under boards/")
    p.add_argument("--no-build", action="store_true", help="copy build/<board>/ as it is")
    p.add_argument("--no-reset", action="store_true", help="leave the charger at the REPL")
    p.add_argument("--dry-run", action="store_true", help="only print the commands")
    p.set_defaults(func=_cmd_deploy)

    f = sub.add_parser(
        "flash",
        help="erase a charger's ESP32 and write a MicroPython firmware image (esptool)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0 (default: esptool's search)")
    f.add_argument("--firmware", required=True, type=Path, metavar="FILE",
                   help="MicroPython ESP32 image (.bin)")
    f.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="baud rate while writing")
    f.add_argument("--no-erase", action="store_true",
                   help="keep the filesystem and NVS (provisioning); write the image only")
    f.add_argument("--dry-run", action="store_true", help="only print the commands")
    f.set_defaults(func=_cmd_flash)


def _cmd_deploy(args: argparse.Namespace) -> int:
    board_dir = paths.BOARDS / args.board
    if not board_dir.is_dir():
        print(f"deploy: no board {args.board!r} under {paths.BOARDS}", file=sys.stderr)
        return 1
    out = paths.BUILD / args.board
    app = out / "slot"
    if not (args.no_build or args.dry_run):
        try:
            app = compile_tree(args.board)
        except BuildError as e:
            print(f"deploy: {e}", file=sys.stderr)
            return 1
    main_py = out / "main.py"
    if not args.dry_run and not (app.is_dir() and main_py.is_file()):
        print(f"deploy: {app} or {main_py} missing: run `borne build`", file=sys.stderr)
        return 1
    cmds = deploy_commands(app, main_py, args.port, board_dir, reset=not args.no_reset)
    return run_commands(cmds, args.dry_run)


def _cmd_flash(args: argparse.Namespace) -> int:
    if not args.dry_run and not args.firmware.is_file():
        print(f"flash: no firmware image {args.firmware}", file=sys.stderr)
        return 1
    cmds = flash_commands(args.firmware, args.port, args.baud, erase=not args.no_erase)
    return run_commands(cmds, args.dry_run)
