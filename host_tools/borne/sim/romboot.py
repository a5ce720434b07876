"""The application as a ROMFS image executed in place (`borne sim --rom`, the memory benchmark).

A production image keeps the bytecode out of the heap (frozen into the firmware, or a ROMFS
partition mounted at /rom). The unix port can do the same: `vfs.VfsRom` mounts an image from a
buffer, and a .mpy imported from it runs its bytecode where it lies; only the module's data
(dicts, function objects, raw-code records, qstr pool entries) go into the heap.

The port offers no memory outside the GC heap, so the boot stub puts the image in one block of
the heap, first thing, and tells how many bytes that block holds (`builtins.ROM_HELD`, which
`firmware/heapwatch.py` subtracts from every figure it reports). The runner makes the heap
larger by exactly that block (`rom_heapsize()`), so `-X heapsize=NwK` still means N KiB of
32-bit words for the application's data. The image is one block allocated before anything else
and never freed: it does not fragment the rest.

Layout of a ROM run folder (`prepare()`), which `Agent(compiled=folder)` runs as it runs a
`borne build` output: `main.py` (this stub), `app.rom` (the image: the slot's .mpy files and the
MicroPython libraries of build/mplib compiled), `boot.py` (the firmware's main.py, kept as
source: a charger runs main.py from its filesystem, compiled at boot), `slotchoice.py` beside it
(as on the charger's flash) and an empty `slot/`.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from borne import paths

IMAGE = "app.rom"
WORD = struct.calcsize("P")
_BLOCK = 4 * WORD  # MicroPython's GC block: 4 words

STUB = '''\
# borne ROM boot (host_tools/borne/sim/romboot.py): mount the application image at /rom from a
# buffer and run the firmware's main.py; the image's heap block is reported as ROM_HELD.
# Its names are a function's locals: a module's globals would be qstrs a charger never holds.
import builtins
import gc
import os
import sys
import vfs


def boot():
    d = __file__.rsplit("/", 1)[0]
    gc.collect()
    a = gc.mem_alloc()
    img = bytearray(os.stat(d + "/app.rom")[6])
    builtins.ROM_HELD = gc.mem_alloc() - a
    with open(d + "/app.rom", "rb") as f:
        f.readinto(img)
    vfs.mount(vfs.VfsRom(img), "/rom")
    sys.path.insert(1 if sys.path and sys.path[0] == ".frozen" else 0, "/rom")
    with open(d + "/boot.py") as f:
        return compile(f.read(), "main.py", "exec")


code = boot()
del boot
gc.collect()
exec(code, {"__name__": "__main__", "__file__": "main.py"})
'''


def image_bytes(tree: Path) -> bytes:
    """A ROMFS image of a folder (files as they are; .py files are not compiled here)."""
    from mpremote.romfs import VfsRomWriter  # mpremote's writer (the format's reference)

    w = VfsRomWriter()

    def add(folder: Path) -> None:
        for p in sorted(folder.iterdir()):
            if p.is_dir():
                w.opendir(p.name)
                add(p)
                w.closedir()
            else:
                w.mkfile(p.name, p.read_bytes())

    add(tree)
    data: bytes = w.finalise()
    return data


def _mplib_compiled(dest: Path) -> None:
    """build/mplib (umqtt, ...) compiled to .mpy into dest, as a production image holds it."""
    from borne.build import check_mpy_cross, module_name, mpy_cross

    tool = mpy_cross()
    check_mpy_cross(tool)
    if not paths.MPLIB.is_dir():
        return
    for src in sorted(paths.MPLIB.rglob("*.py")):
        rel = src.relative_to(paths.MPLIB)
        out = dest / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([tool, "-o", str(out), "-s", module_name(rel), str(src)], check=True,
                       capture_output=True)


def prepare(built: Path, out: Path) -> Path:
    """A ROM run folder at `out` from a `borne build` output folder (`built`: slot/, main.py)."""
    out.mkdir(parents=True, exist_ok=True)
    tree = out / "rom.tree"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(built / "slot", tree)
    _mplib_compiled(tree)
    (out / IMAGE).write_bytes(image_bytes(tree))
    shutil.rmtree(tree)
    (out / "slot").mkdir(exist_ok=True)
    shutil.copyfile(built / "main.py", out / "boot.py")
    shutil.copyfile(built / "slotchoice.py", out / "slotchoice.py")  # beside it, as on flash
    (out / "main.py").write_text(STUB)
    return out


def build(out: Path, board: str = "unix_sim") -> Path:
    """Compile the firmware (`borne build`) and make a ROM run folder of it at `out`."""
    from borne.build import compile_tree

    compile_tree(board, out=out / "build")
    return prepare(out / "build", out / "rom")


def held_bytes(folder: Path) -> int:
    """The heap the image's block takes: the bytearray's data rounded to whole blocks."""
    n = (folder / IMAGE).stat().st_size
    return -(-n // _BLOCK) * _BLOCK


def rom_heapsize(heapsize: str, folder: Path) -> str:
    """`-X heapsize` for a ROM run: `heapsize` (NwK, NK, N) for the data plus the image's block
    and the allocation table that covers it (2 bits + 1 bit per block)."""
    extra = held_bytes(folder)
    extra += -(-extra // _BLOCK) * 3 // 8 + _BLOCK
    return str(heap_bytes(heapsize) + extra)


def heap_bytes(heapsize: str) -> int:
    """`-X heapsize` text as bytes, as the unix port reads it (w = times the word size / 4)."""
    s = heapsize.strip()
    mult = 1
    if s[-1:] in ("K", "k"):
        mult, s = 1024, s[:-1]
    elif s[-1:] in ("M", "m"):
        mult, s = 1024 * 1024, s[:-1]
    if s[-1:] in ("w", "W"):
        s = s[:-1]
        mult = mult * WORD // 4
    return int(s) * mult
