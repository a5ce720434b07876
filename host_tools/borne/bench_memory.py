"""`borne bench memory-budget`: the memory figures of issue 12, on the reference workloads of
`borne/workload.py` (ARCHITECTURE.md "Memory" says what each figure includes).

- the smallest heap (-X heapsize=NwK, bisection) for both scenarios, for the .mpy build (the
  bytecode in the heap, as `borne deploy` installs it) and for the ROMFS image executed in place
  (bytecode out of the heap: the data working set);
- the data peak (heap in use after a collection, sampled every 50 ms) with the bytecode in ROM,
  the duration of a gc.collect() at that peak, the hour-long session run once at the ROM budget;
- the peak by object type and the largest single allocations (the heap's block map at the
  peak), the module data and bytecode per package once the boot modules are imported;
- the heap each feature costs once loaded (the modules `import app` loads are the baseline);
- the frozen-image estimate: each ROM peak less what the .mpy loader put in the heap for the
  modules loaded at that peak (records, tables, constants: `borne/mpyinfo.py`, calibrated in
  tests/test_mpyinfo.py) and less the qstr pool entries of their names, which mpy-tool -f
  keeps in flash; the boot modules by loader heap and by the data that stays;
- TLS: what a wss:// connection adds to the GC heap (mbedTLS's buffers are outside it);
- peers: the `ocpp` package's charge point in CPython on the same boot and session, and
  MicroOcpp's published ESP32 figures.

64-bit unix port: "NwK" is N KiB of 32-bit words, so pointer-sized data scales as on an ESP32
but bytes (bytecode, strings, buffers) count half here; the ESP32 estimate adds the bytecode's
other half back (data in wK + bytecode bytes). A frozen interpreter built 32-bit is measured in
true KiB (its word, block and byte sizes are an ESP32's), with the peak by kind of object when
it has boards/unix_sim/cmodules' memtypes.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from borne import mpyinfo, paths, workload
from borne.bench import WORD, bench
from borne.sim import romboot

MICROOCPP = ("MicroOcpp (C++, github.com/matth-x/MicroOcpp), its published ESP32 figures "
             "as issue 12 cites them: 12.3 KB heap idle, 21.9 KB peak")
TYPES = {"h": "other (instances, buffers, dict tables, code records)", "T": "tuples",
         "L": "lists", "D": "dicts", "S": "str/bytes", "A": "bytearrays/arrays",
         "F": "floats", "B": "functions",
         "M": "modules", "Q": "qstr pools"}
# Feature -> the modules it loads on top of the boot modules (ARCHITECTURE.md's feature table).
FEATURES: list[tuple[str, tuple[str, ...]]] = [
    ("ocpp transactions (eager)", ("ocpp_client.transactions",)),
    ("ocpp metering (eager)", ("ocpp_client.metering",)),
    ("ocpp firmware (UpdateFirmware)", ("ocpp_client.firmware",)),
    ("ocpp security_ext (eager; handlers on use)", ("ocpp_client.security_ext",)),
    ("ocpp authorization (local list, its updates, reader)", ("ocpp_client.authorization",
                                                              "ocpp_client.listupdate",
                                                              "ocpp_client.spooled")),
    ("smart charging (a profile set)", ("ocpp_client.smartcharging", "evse.smart",
                                        "evse.profile")),
    ("reservations (one made)", ("ocpp_client.reservations", "evse.reservation")),
    ("connection set-up (per attempt)", ("ocpp_client.connect", "ocpp_client.security",
                                         "ocpp_client.wsopen", "net.url", "diag.roots")),
    ("certificates (ca_pem changed)", ("diag.certs", "diag.x509", "ota.rsa")),
    ("ocpp remote", ("ocpp_client.remote",)),
    ("ocpp configuration (Get/ChangeConfiguration)", ("ocpp_client.configuration",)),
    ("ocpp vendor", ("ocpp_client.vendor",)),
    ("ota (update job)", ("ota.update",)),
    ("diag (GetDiagnostics...)", ("diag.feature",)),
    ("mqtt (broker set)", ("mqtt.feature",)),
    ("hotspot claim.py (radio boards)", ("hotspot.claim",)),
    ("hotspot open (servers, page)", ("hotspot.claim", "hotspot.httpd", "hotspot.dns",
                                      "hotspot.api", "hotspot.guard", "hotspot.validate",
                                      "hotspot.page")),
    ("hotspot claim flow", ("hotspot.claim", "hotspot.claimflow")),
]


def wk(nbytes: float) -> float:
    """Bytes of this port's heap in KiB of 32-bit words (the unit of -X heapsize=NwK)."""
    return nbytes * 4 / WORD / 1024


def kib(nbytes: float) -> float:
    return nbytes / 1024


# -- smallest heap -----------------------------------------------------------------------------
async def smallest(scenario: str, runtime: str, folder: Path, peak: int, step: int,
                   word: int = WORD) -> tuple[int | None, workload.Result | None, int]:
    """Smallest N (wK, to `step`) under which `scenario` passes, bisecting from its live peak
    (a heap smaller than the data live at the peak cannot pass). -> (N, its run, runs made).
    `word`: the interpreter's word size (NwK is N KiB of 4-byte words, whatever it is)."""
    unit = 256 * word
    lo = max(8, math.floor(peak / unit))
    hi = math.ceil(peak / unit * 1.15) + 4
    runs = 0
    ok: workload.Result | None = None
    while True:
        r = await workload.run_scenario(scenario, f"{hi}wK", runtime, folder)
        runs += 1
        if r.ok:
            ok = r
            break
        lo = hi
        if hi >= 512:
            return None, None, runs
        hi = min(512, math.ceil(hi * 1.3))
    while hi - lo > step:
        mid = (lo + hi) // 2
        r = await workload.run_scenario(scenario, f"{mid}wK", runtime, folder)
        runs += 1
        if r.ok:
            hi, ok = mid, r
        else:
            lo = mid
    return hi, ok, runs


# -- the heap's block map ----------------------------------------------------------------------
def allocations(heapmap: list[str], skip_bytes: int = 0, word: int = WORD
                ) -> list[tuple[int, str]]:
    """(bytes, type letter) of every allocation in a micropython.mem_info(1) block map of an
    interpreter with `word`-byte words; the ROM image's block (`skip_bytes`, the largest) left
    out."""
    block = 4 * word
    blocks: dict[int, str] = {}
    for line in heapmap:
        head, sep, body = line.partition(": ")
        if not sep:
            continue
        try:
            off = int(head.strip(), 16)
        except ValueError:
            continue
        for i, c in enumerate(body.rstrip()):
            blocks[off // block + i] = c
    out: list[tuple[int, str]] = []
    cur: list[Any] | None = None
    for b in sorted(blocks):
        c = blocks[b]
        if c == "=" and cur is not None and b == cur[2] + 1:
            cur[1] += 1
            cur[2] = b
            continue
        if cur is not None:
            out.append((cur[1] * block, cur[0]))
            cur = None
        if c not in ".=":
            cur = [c, 1, b]
    if cur is not None:
        out.append((cur[1] * block, cur[0]))
    out.sort(reverse=True)
    if skip_bytes and out and abs(out[0][0] - skip_bytes) <= block:
        out = out[1:]
    return out


def _qstr_pool_sizes(word: int = WORD) -> dict[int, int]:
    """Block-rounded size -> entries of MicroPython's qstr pools (10 entries, then each pool
    twice the last): a header of 6 words, then per entry a pointer, a 2-byte hash, a length
    byte. A map's 'h' of exactly such a size is taken for a pool."""
    out = {}
    n = 10
    block = 4 * word
    while n < 1 << 16:
        size = 6 * word + n * (word + 3)
        out[-(-size // block) * block] = n
        n *= 2
    return out


def label(nbytes: int, c: str, word: int = WORD) -> str:
    pools = _qstr_pool_sizes(word)
    if c == "h" and nbytes >= 512 and nbytes in pools:
        return f"qstr pool ({pools[nbytes]} entries)"
    return TYPES.get(c, c)


def by_type(allocs: list[tuple[int, str]], word: int = WORD) -> list[tuple[int, str]]:
    totals: dict[str, int] = {}
    for n, c in allocs:
        key = "Q" if label(n, c, word).startswith("qstr") else c
        totals[key] = totals.get(key, 0) + n
    return sorted(((n, TYPES.get(c, c)) for c, n in totals.items()), reverse=True)


def by_kind(heapmap: list[str]) -> list[tuple[int, int, str, str]]:
    """(bytes, objects, kind, name) from the "@mem" lines a block map carries on a unix port
    built with boards/unix_sim/cmodules (memtypes.c: the heap by object type), largest first."""
    out = []
    for line in heapmap:
        if line.startswith("@mem "):
            _, n, nbytes, kind, *name = line.split()
            out.append((int(nbytes), int(n), kind, " ".join(name) or "?"))
    return sorted(out, reverse=True)


def kind_lines(rows: list[tuple[int, int, str, str]], unit: Callable[[float], float]
               ) -> tuple[str, str, str]:
    """The peak by kind of object ("class 10.9 (66), ...": its bytes in `unit`, its objects),
    the largest classes, modules and instances, and the modules whose function objects weigh
    most (memtypes.c names a function row for the module that defined it)."""
    kinds: dict[str, list[int]] = {}
    defs: dict[str, list[int]] = {}
    for nbytes, n, kind, name in rows:
        key = f"{kind} {name}" if kind == "builtin" else kind
        for table, k in ((kinds, key), (defs, name if kind == "function" else "")):
            if k:
                v = table.setdefault(k, [0, 0])
                v[0] += nbytes
                v[1] += n
    total = ", ".join(f"{k} {unit(v[0]):.1f}" + (f" ({v[1]})" if v[1] else "")
                      for k, v in sorted(kinds.items(), key=lambda kv: -kv[1][0])[:12])
    named = [r for r in rows if r[2] in ("class", "module", "instance")]
    big = ", ".join(f"{kind} {name} {unit(b):.2f}" for b, _, kind, name in named[:10])
    fns = ", ".join(f"{k} {unit(v[0]):.2f} ({v[1]})"
                    for k, v in sorted(defs.items(), key=lambda kv: -kv[1][0])[:10])
    return total, big, fns


# -- module data per package, per feature -------------------------------------------------------
def _module_files() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for p in sorted(paths.FIRMWARE.rglob("*.py")):
        rel = p.relative_to(paths.FIRMWARE).with_suffix("")
        parts = list(rel.parts)
        if parts == ["main"]:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    for p in sorted((paths.BOARDS / "unix_sim").glob("*.py")):
        if p.name != "manifest.py":
            mods.setdefault(p.stem, p)
    return mods


def _top_imports(path: Path, name: str, known: set[str]) -> list[str]:
    """Firmware modules `path` imports at module level (not inside functions)."""
    out: list[str] = []
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.parse(path.read_text()).body:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            parts = t.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c imports a, a.b, a.b.c
                m = ".".join(parts[:i])
                if m in known and m not in out:
                    out.append(m)
    return out


def boot_order(root: str = "app") -> list[str]:
    """The modules `import app` loads, dependencies first."""
    files = _module_files()
    known = set(files)
    order: list[str] = []
    seen: set[str] = set()

    def visit(m: str) -> None:
        if m in seen:
            return
        seen.add(m)
        for d in _top_imports(files[m], m, known):
            visit(d)
        order.append(m)

    visit(root)
    return order


def mp_imports(modules: list[str], runtime: str, folder: Path,
               parts: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """Run mp_memory.py: the heap each module adds when imported in this order. `parts`, if
    given, gets the two parts of those figures that are not the module's data: "names" (the
    qstrs it interned, pool steps included) and "room" (a block it holds for later)."""
    script = Path(__file__).with_name("mp_memory.py")
    if runtime == "rom":
        args = ["--rom", str(folder / romboot.IMAGE)]
        mpath = f".frozen:{paths.MPLIB}"
    else:
        args = []
        mpath = f".frozen:{folder / 'slot'}:{paths.MPLIB}"
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([paths.micropython(), "-X", "heapsize=8M", str(script), *args,
                            *modules], env=dict(os.environ, MICROPYPATH=mpath), cwd=tmp,
                           capture_output=True, text=True, timeout=120, check=False)
    lines = r.stdout.splitlines()
    figs = [ln for ln in lines if ln.startswith("{")]
    if r.returncode != 0 or not figs:
        raise RuntimeError(f"mp_memory failed: {r.stdout[-400:]} {r.stderr[-1200:]}")
    out: dict[str, Any] = json.loads(figs[-1])
    if parts is not None:
        names: dict[str, int] = {}
        room: dict[str, int] = {}
        before: dict[str, int] = {}
        for ln, nxt in zip(lines, [*lines[1:], ""], strict=True):
            if ln.startswith("#names ") and nxt.startswith("qstr pool:"):
                m = ln.split()[1]
                n = qstr_info([nxt]).get("n_total_bytes", 0)
                if m in before:
                    names[m] = n - before.pop(m)
                else:
                    before[m] = n
            elif ln.startswith("#room "):
                _, m, n = ln.split()
                room[m] = mpyinfo.Port.host().blocks(int(n))
        parts["names"], parts["room"] = names, room
    return out


def data_only(figs: dict[str, Any], parts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Each module's figure less its names and its room: the data it holds."""
    return {m: v - parts["names"].get(m, 0) - parts["room"].get(m, 0)
            for m, v in figs.items() if isinstance(v, int)}


def per_package(modules: list[str], figures: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in modules:
        v = figures.get(m)
        if isinstance(v, int):
            pkg = m.split(".")[0] if "." in m or (paths.FIRMWARE / m).is_dir() else "(top level)"
            out[pkg] = out.get(pkg, 0) + v
    return out


def feature_costs(runtime: str, folder: Path) -> list[tuple[str, int, list[str]]]:
    """(feature, heap its modules add over the boot modules, errors)."""
    out = []
    for name, mods in FEATURES:
        f = mp_imports(["app", *mods], runtime, folder)
        errors = [f"{m}: {v}" for m, v in f.items() if not isinstance(v, int)]
        out.append((name, sum(v for m, v in f.items() if m != "app" and isinstance(v, int)),
                    errors))
    return out


# -- the frozen-image estimate --------------------------------------------------------------
def image_modules(folder_rom: Path) -> dict[str, mpyinfo.Mpy]:
    """The .mpy files the ROM image holds (the build's slot and build/mplib compiled), parsed:
    `folder_rom` is `workload.build("rom", out)`'s folder (out/rom, the build at out/build)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        romboot._mplib_compiled(tree)
        mods = mpyinfo.load_image_tree(tree)
    mods.update(mpyinfo.load_image_tree(folder_rom.parent / "build" / "slot"))
    return mods


def image_sources() -> dict[str, Path]:
    """Each image module's source (the firmware, the board, build/mplib)."""
    from borne.build import module_name

    out = {module_name(p.relative_to(paths.MPLIB)): p for p in paths.MPLIB.rglob("*.py")}
    out.update(_module_files())
    return out


_QSTR_INFO = ("n_pool", "n_qstr", "n_str_data_bytes", "n_total_bytes")


_ESP32 = mpyinfo.Port(word=4)  # an ESP32's word, block and pool entry sizes


def esp32_pools_extra(n_qstr: int) -> float:
    """KiB an ESP32 needs beyond this host's wK for the qstr pools of n_qstr run-time names.
    The chain is the same there (mpy-tool gives the frozen pool an alloc of 10, so the first
    dynamic pool has 20 entries on every port), but an entry is a 4-byte pointer, a 2-byte hash
    and a length byte: 7 bytes, of which 3 count only half in wK here."""
    return _ESP32.pool_bytes(n_qstr) / 1024 - wk(mpyinfo.Port.host().pool_bytes(n_qstr))


def qstr_info(heapmap: list[str]) -> dict[str, int]:
    """The qstr figures heapwatch printed with the block map (dynamic pools only)."""
    line = next((ln for ln in reversed(heapmap) if ln.startswith("qstr pool:")), "")
    out = {}
    for part in line[len("qstr pool:"):].split(","):
        k, _, v = part.strip().partition("=")
        if k in _QSTR_INFO and v.isdigit():
            out[k] = int(v)
    return out


def pool_steps(port: mpyinfo.Port, n_pools: int) -> int:
    """Names the first `n_pools` dynamic qstr pools hold (20, 40, ...: 2,540 for 7)."""
    return sum(port.first_pool << i for i in range(n_pools))


def name_counts(loader: dict[str, mpyinfo.Loaded],
                loaded: list[str]) -> tuple[int, int, int, int]:
    """Distinct names (qstrs: never freed) the modules `loaded` intern, and every module of
    `loader` once (their `new_qstrs`: the interpreter's static ones apart); and how many file
    names each adds (one qstr per module imported). -> (loaded, their files, all, all files)."""
    def names(mods: list[str]) -> int:
        return len(set().union(*(loader[m].new_qstrs for m in mods)))

    here = [m for m in loaded if m in loader]
    return names(here), len(here), names(list(loader)), len(loader)


@dataclass
class Frozen:
    """The ROM peak with what a frozen image keeps in flash taken out (mpyinfo.py)."""

    rom_peak: int
    loader: int  # records, tables, constants of the modules loaded at the peak
    qstr_saved: int  # pool bytes a frozen image does not need (conservative)
    qstr_saved_max: int  # ... if every module of the image had been loaded once
    module_qstrs: int  # distinct non-static qstrs of the modules loaded at the peak
    file_text: int  # text of their file names' qstrs (/rom/...: static when frozen)
    runtime_qstrs: int  # upper bound: the qstrs at the peak not in those modules
    modules: list[str]
    per_module: list[tuple[str, int]] = field(default_factory=list)  # loader heap, largest first

    @property
    def figure(self) -> int:
        return self.rom_peak - self.loader - self.qstr_saved - self.file_text

    @property
    def lowest(self) -> int:
        return self.rom_peak - self.loader - self.qstr_saved_max - self.file_text


def frozen_estimate(res: workload.Result, mods: dict[str, mpyinfo.Mpy],
                    figs: dict[str, mpyinfo.Loaded], port: mpyinfo.Port) -> Frozen | None:
    """A ROM run's peak minus the loader's heap for the modules loaded at that peak (the last
    block map's "@modules") and minus the qstr pools their names take. qstrs are never freed
    and the pools do not say who made an entry, so the runtime-made ones (main.py compiled
    at boot, names made by getattr/setattr with computed strings, file names) are bounded:
    at most the pool entries that are not a name of a module loaded at the peak; a frozen
    image keeps those in pools of its own (20 entries, then doubling), all else in flash.
    A ROM import also interns the module's file name (/rom/<path>.mpy, its text in the heap):
    a frozen module's file name is a static qstr, so those entries and their text go too."""
    listed = [ln.split()[1:] for ln in res.heapmap if ln.startswith("@modules")]
    info = qstr_info(res.heapmap)
    peak = res.heap.get("peak", 0)
    if not listed or not info or not peak:
        return None
    at_peak = [m for m in listed[-1] if m in figs]
    names: set[str] = set()
    for m in at_peak:
        names |= set(figs[m].new_qstrs)
    every: set[str] = set()
    for f in figs.values():
        every |= set(f.new_qstrs)
    pools = info["n_total_bytes"] - info["n_str_data_bytes"]
    files = [f"/rom/{mods[m].file}" for m in at_peak if m in mods and mods[m].file]
    runtime_hi = max(0, info["n_qstr"] - len(names) - len(files))
    runtime_lo = max(0, info["n_qstr"] - len(every) - len(files))
    return Frozen(rom_peak=peak, loader=sum(figs[m].retained() for m in at_peak),
                  qstr_saved=max(0, pools - port.pool_bytes(runtime_hi)),
                  qstr_saved_max=max(0, pools - port.pool_bytes(runtime_lo)),
                  module_qstrs=len(names), file_text=sum(len(f) + 1 for f in files),
                  runtime_qstrs=runtime_hi, modules=at_peak,
                  per_module=sorted(((m, figs[m].retained()) for m in at_peak),
                                    key=lambda x: -x[1]))


def frozen_lines(scenario: str, fz: Frozen) -> list[str]:
    return [
        f"memory-budget: {scenario}: frozen image estimate: {wk(fz.figure):.1f} wK data peak "
        f"(ROM peak {wk(fz.rom_peak):.1f} wK - loader records {wk(fz.loader):.1f} wK - qstr "
        f"pools {wk(fz.qstr_saved):.1f} wK - file-name qstr text {wk(fz.file_text):.1f} wK; "
        f"{wk(fz.lowest):.1f} wK if every module's names were in the pools at the peak). "
        f"It includes: module globals dicts, function, class "
        f"and closure objects, instances and all run-time data, the qstrs made at run time "
        f"(<= {fz.runtime_qstrs}: main.py compiled at boot, computed names; pools and text). "
        f"It leaves out what mpy-tool -f puts in flash: per module loaded at the peak "
        f"({len(fz.modules)}) the raw-code records, children tables, qstr/constant tables, "
        f"str/bytes headers and constant tuples, and the pool entries of the modules' "
        f"{fz.module_qstrs} names and file names; TLS buffers are outside the GC heap as in "
        f"every figure. "
        f"Target {workload.ROM_TARGET_KIB} KiB; MicroOcpp 12.3 KB idle / 21.9 KB peak",
        f"memory-budget: {scenario}: loader heap at the peak by module (wK, in flash when "
        f"frozen): " + ", ".join(f"{m} {wk(n):.1f}" for m, n in fz.per_module[:10]),
    ]


def module_table(figs: dict[str, mpyinfo.Loaded], rom_mods: dict[str, Any], top: int = 8
                 ) -> str:
    """The boot modules by loader heap (frozen: in flash) and by the data left (stays):
    `rom_mods` their data (`data_only`: names and room out)."""
    rows = [(m, figs[m].retained(), v - figs[m].retained()) for m, v in rom_mods.items()
            if isinstance(v, int) and m in figs]
    by_loader = ", ".join(f"{m} {wk(a):.1f}" for m, a, _ in sorted(rows, key=lambda r: -r[1])
                          [:top])
    by_data = ", ".join(f"{m} {wk(d):.1f}" for m, _, d in sorted(rows, key=lambda r: -r[2])
                        [:top])
    return (f"memory-budget: boot modules, wK: by loader heap (in flash when frozen; total "
            f"{wk(sum(r[1] for r in rows)):.1f}): {by_loader}; by the data that stays "
            f"(total {wk(sum(r[2] for r in rows)):.1f}): {by_data}")


# -- TLS ------------------------------------------------------------------------------------
_TLS_PROBE = """
import gc, socket, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cadata=open(ca, "rb").read())
gc.collect(); a = gc.mem_alloc()
s = socket.socket()
s.connect(socket.getaddrinfo(host, port)[0][-1])
t = ctx.wrap_socket(s, server_hostname="localhost")
t.write(b"ping")
t.read(4)
gc.collect(); b = gc.mem_alloc()
t.close()
gc.collect(); c = gc.mem_alloc()
print(b - a, c - a)
"""


async def tls_heap() -> tuple[int, int]:
    """(GC heap a live TLS connection holds, what stays after its close) under the unix port:
    a CA-checked TLS 1.2 client connection to a CPython server, one exchange."""
    import ssl

    from borne.sim.filesrv import self_signed

    with tempfile.TemporaryDirectory() as tmp:
        ctx, ca = self_signed(Path(tmp) / "pki")

        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(await r.readexactly(4))
            await w.drain()
            await r.read()
            w.close()

        srv = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx)
        port = srv.sockets[0].getsockname()[1]
        probe = Path(tmp) / "probe.py"
        probe.write_text(_TLS_PROBE)
        der = Path(tmp) / "ca.der"
        der.write_bytes(ssl.PEM_cert_to_DER_cert(ca.read_text()))
        proc = await asyncio.create_subprocess_exec(
            paths.micropython(), str(probe), "127.0.0.1", str(port), str(der),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        srv.close()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"the TLS probe failed: {text[-800:]}")
    held, freed = (int(x) for x in text.split()[:2])
    return held, freed


# -- peers ----------------------------------------------------------------------------------
async def peer(samples: int) -> dict[str, int]:
    from borne.csms import Csms

    csms = Csms()
    url = await csms.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "borne.peer_ocpp", url, str(samples),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        await csms.stop()
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"peer_ocpp failed: {err.decode()[-1500:]}")
    figures: dict[str, int] = json.loads(lines[-1])
    return figures


# -- the benchmark --------------------------------------------------------------------------
async def figures(full_hour: bool = True) -> list[str]:
    lines: list[str] = []

    def say(line: str) -> None:  # kept for the report; shown at once on stderr (a long run)
        lines.append(line)
        print(f"({line})", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="borne-mem-") as tmp:
        folders = {rt: workload.build(rt, Path(tmp) / rt) for rt in ("mpy", "rom")}
        folder_mpy, folder_rom = folders["mpy"], folders["rom"]
        assert folder_mpy is not None and folder_rom is not None
        held = romboot.held_bytes(folder_rom)
        say(f"memory-budget: unix port, {WORD * 8}-bit: NwK = N KiB of 32-bit words (pointer-"
            f"sized data as on an ESP32; bytes, i.e. bytecode, strings, buffers, count half "
            f"here). ROM image {held} bytes ({held // 1024} KiB) of bytecode and tables, "
            f"executed in place")
        found: dict[tuple[str, str], int | None] = {}
        peaks: dict[tuple[str, str], workload.Result] = {}
        for scenario, step in (("claim", 1), ("reference", 2)):
            for rt in ("mpy", "rom"):
                folder = folders[rt]
                assert folder is not None
                t0 = time.monotonic()
                print(f"(memory-budget: {scenario} [{rt}] ...)", file=sys.stderr, flush=True)
                free = await workload.run_scenario(scenario, None, rt, folder,
                                                   heapmap=(rt == "rom"))
                peaks[(scenario, rt)] = free
                if not free.ok:
                    say(f"memory-budget: {free.summary()}")
                    found[(scenario, rt)] = None
                    continue
                peak = free.heap.get("peak", 0)
                n, _, runs = await smallest(scenario, rt, folder, peak, step)
                found[(scenario, rt)] = n
                what = ".mpy in the heap" if rt == "mpy" else "bytecode in ROM"
                smallest_txt = f"-X heapsize={n}wK" if n else "did not pass at 512wK"
                say(f"memory-budget: {scenario} [{what}]: smallest heap {smallest_txt} (to "
                    f"{step}wK, {runs} runs, {time.monotonic() - t0:.0f} s); data peak "
                    f"{peak} bytes = {wk(peak):.1f} wK; gc.collect() at the peak "
                    f"{free.heap.get('gc_us', 0) / 1000:.2f} ms (longest "
                    f"{free.heap.get('gc_max_us', 0) / 1000:.2f} ms) on this host")
        # ESP32 estimates: the .mpy's bytecode is the difference between the two at boot.
        boot = boot_order()
        parts: dict[str, dict[str, int]] = {}
        rom_mods = mp_imports(boot, "rom", folder_rom, parts)
        mpy_mods = mp_imports(boot, "mpy", folder_mpy)
        data_boot = sum(v for v in rom_mods.values() if isinstance(v, int))
        code_boot = sum(v for v in mpy_mods.values() if isinstance(v, int)) - data_boot
        names_boot, room_boot = sum(parts["names"].values()), sum(parts["room"].values())
        for scenario in ("reference", "claim"):
            nm, nr = found.get((scenario, "mpy")), found.get((scenario, "rom"))
            rpeak = peaks[(scenario, "rom")].heap.get("peak", 0)
            names = qstr_info(peaks[(scenario, "rom")].heapmap).get("n_qstr", 0)
            pools = esp32_pools_extra(names)
            if nm and nr:
                bytecode = max(0, (nm - nr) * 1024 * WORD // 4)
                say(f"memory-budget: {scenario}: ESP32 estimate for the .mpy build: "
                    f"~{nr + pools + kib(bytecode):.0f} KiB of heap (the ROM run's {nr}wK of "
                    f"data + {pools:.1f} KiB for its {names} names' qstr pools + "
                    f"~{kib(bytecode):.0f} KiB of bytecode and its fragments: the .mpy run's "
                    f"extra {nm - nr}wK, bytes that count half here, at full size); "
                    f"target {workload.TARGET_WK} KiB. With the bytecode in ROM: "
                    f"~{nr + pools:.0f} KiB ({nr}wK + {pools:.1f}), data peak "
                    f"{wk(rpeak):.1f} wK (target {workload.ROM_TARGET_KIB} KiB). Both leave "
                    f"out the other half of the data's own bytes (buffers, strings made at run "
                    f"time), which count half here")
        say(f"memory-budget: boot modules (`import app`, {len(boot)} modules): "
            f"{data_boot} bytes = {wk(data_boot):.1f} wK with the bytecode in ROM: "
            f"{wk(names_boot):.1f} wK of it their names (qstr pools and text), "
            f"{wk(room_boot):.1f} wK app.py's room for the qstr pool to come, "
            f"{wk(data_boot - names_boot - room_boot):.1f} wK data; their bytecode "
            f"{code_boot} bytes ({kib(code_boot):.1f} KiB, the same on an ESP32) when loaded "
            f"from .mpy files")
        rom_data = data_only(rom_mods, parts)
        data_pkg = per_package(boot, rom_data)
        rom_pkg, mpy_pkg = per_package(boot, rom_mods), per_package(boot, mpy_mods)
        pkgs = ", ".join(f"{p} {wk(n):.1f} + {kib(mpy_pkg.get(p, 0) - rom_pkg.get(p, 0)):.1f}"
                         for p, n in sorted(data_pkg.items(), key=lambda x: -x[1]))
        say(f"memory-budget: per package at boot, data wK (names and room apart) + bytecode "
            f"KiB: {pkgs}")
        bad = [f"{m} ({v})" for m, v in rom_mods.items() if not isinstance(v, int)]
        if bad:
            say(f"memory-budget: modules that did not import alone: {'; '.join(bad)}")
        # The block map at the reference workload's peak (ROM run, bytecode out of the heap).
        ref = peaks[("reference", "rom")]
        allocs = allocations(ref.heapmap, held)
        if allocs:
            total = sum(n for n, _ in allocs)
            types = ", ".join(f"{t} {wk(n):.1f}" for n, t in by_type(allocs)[:8])
            say(f"memory-budget: reference peak by type (block map, {wk(total):.1f} wK in "
                f"{len(allocs)} allocations): {types}")
            big = ", ".join(f"{n} B {label(n, c)}" for n, c in allocs[:10])
            say(f"memory-budget: largest single allocations at the peak: {big}")
        qs = [ln for ln in ref.heapmap if ln.startswith("qstr pool:")]
        if qs:  # names interned at run time (the port's own are in ROM); never freed
            say(f"memory-budget: qstrs at the reference peak: {qs[-1][len('qstr pool: '):]}")
        mods = [ln.split()[1:] for ln in ref.heapmap if ln.startswith("@modules")]
        if mods:
            say(f"memory-budget: modules loaded at the reference peak ({len(mods[-1])}): "
                f"{' '.join(mods[-1])}")
        # The frozen-image estimate: each ROM peak less what mpy-tool -f keeps in flash.
        port = mpyinfo.Port.host()
        image = image_modules(folder_rom)
        loader = mpyinfo.loader_figures(image, paths.micropython(), port, order=boot,
                                        sources=image_sources())
        for scenario in ("reference", "claim"):
            fz = frozen_estimate(peaks[(scenario, "rom")], image, loader, port)
            for line in frozen_lines(scenario, fz) if fz else []:
                say(line)
        say(module_table(loader, rom_data))
        # Names are never freed, and the 8th dynamic pool is twice the 7th: how near the step.
        n_peak, f_peak, n_all, f_all = name_counts(loader, mods[-1] if mods else [])
        step = pool_steps(port, 7)
        eighth = (_ESP32.pool_bytes(step + 1) - _ESP32.pool_bytes(step)) / 1024
        say(f"memory-budget: names (qstrs, never freed; this port's static ones apart): the "
            f"modules loaded at the reference peak {n_peak} and {f_peak} file names; every "
            f"module of the build loaded once {n_all} and {f_all} file names, before any made at "
            f"run time; 7 pools hold {step} names, the 8th takes {port.first_pool << 7} entries "
            f"({eighth:.1f} KiB on an ESP32)")
        await frozen_measured(say)
        # The hour, once, at the ROM run's smallest heap: nothing grows per MeterValues.
        nr = found.get(("reference", "rom"))
        if full_hour and nr:
            hour = await workload.reference(f"{nr + 2}wK", "rom", folder_rom,
                                            samples=360 - workload.QUEUED)
            key = next((k for k in hour.used if k.startswith("tap-started")), "")
            short_key = next((k for k in ref.used if k.startswith("tap-started")), "")
            say(f"memory-budget: the hour (360 MeterValues, 1 s apart + clock-aligned) at "
                f"{nr + 2}wK, bytecode in ROM: {'passed' if hour.ok else hour.summary()}; "
                f"heap in use after the session {hour.used.get(key, 0)} bytes vs "
                f"{ref.used.get(short_key, 0)} after {workload.SHORT_SAMPLES} samples")
        # Per feature.
        rows_rom = feature_costs("rom", folder_rom)
        rows_mpy = feature_costs("mpy", folder_mpy)
        say("memory-budget: per feature, heap its modules add over the boot modules: "
            "data wK (bytecode in ROM) | + bytecode KiB (.mpy) | ESP32 .mpy estimate KiB")
        for (name, d, err), (_, m, _) in zip(rows_rom, rows_mpy, strict=True):
            note = f"  ({'; '.join(err)[:160]})" if err else ""
            say(f"memory-budget:   {name:34} {wk(d):6.1f} | {kib(m - d):6.1f} | "
                f"{wk(d) + kib(m - d):6.1f}{note}")
    # TLS and the peers.
    held_tls, _ = await tls_heap()
    say(f"memory-budget: TLS: a live TLS 1.2 connection (CA-checked, the CSMS's certificate) "
        f"adds {held_tls} bytes to the GC heap (the socket object); "
        f"mbedTLS's record buffers (16 KiB in + 4 KiB out) and "
        f"handshake state are calloc'd outside the GC heap on the unix port (its mbedTLS "
        f"config is not bare-metal: libc calloc), as on an ESP32 (ESP-IDF heap), so every "
        f"figure above leaves them out; an ESP32 needs ~35 KB of ESP-IDF heap beside the GC "
        f"heap for them")
    p = await peer(360)
    say(f"memory-budget: peer, the `ocpp` package's charge point (CPython "
        f"{sys.version.split()[0]}, ws://, boot + session with 360 MeterValues): tracemalloc "
        f"peak {kib(p['traced_peak']):.0f} KiB ({kib(p['traced_imports']):.0f} KiB of it its "
        f"imports), peak RSS {p['rss_max_kib'] / 1024:.1f} MiB")
    say(f"memory-budget: {MICROOCPP} (its code in flash: compare with the ROM data peak)")
    return lines


async def frozen_measured(say: Callable[[str], None]) -> None:
    """The frozen image measured, not estimated: both workloads on a unix port with the
    application frozen into it (workload.FROZEN_ENV), when one has been built here. Built
    32-bit (boards/unix_sim/manifest.py says how), its figures are in true KiB: an ESP32's word
    and GC block size, bytes at full size; a 64-bit build's are in wK as elsewhere."""
    try:
        interp = workload.frozen_interpreter()
    except ValueError:
        say(f"memory-budget: frozen, measured: not run ({workload.FROZEN_ENV} unset: "
            f"`make frozen MICROPYTHON_SRC=<a MicroPython v1.28.0 checkout>` builds the "
            f"interpreter, boards/unix_sim/manifest.py says what it is)")
        return
    word = workload.word_bytes(interp)
    unit, sign = (kib, "KiB") if word == 4 else (wk, "wK")
    build = "32-bit build: an ESP32's word size" if word == 4 else "64-bit build"
    build += (", resident functions in flash (boards/micropython/)"
              if workload.functions_in_flash(interp) else ", stock MicroPython")
    for scenario in ("reference", "claim"):
        free = await workload.run_scenario(scenario, None, "frozen", interp, heapmap=True)
        if not free.ok:
            say(f"memory-budget: frozen, measured: {free.summary()}")
            continue
        peak = free.heap.get("peak", 0)
        n, _, runs = await smallest(scenario, "frozen", interp, peak, 1, word)
        names = qstr_info(free.heapmap).get("n_qstr", 0)
        allocs = allocations(free.heapmap, 0, word)
        types = ", ".join(f"{t} {unit(b):.1f}" for b, t in by_type(allocs, word)[:6])
        heap = f"-X heapsize={n}wK" if n else "none up to 512wK"
        heap += f" (= {n} KiB)" if n and word == 4 else ""
        say(f"memory-budget: {scenario} [frozen, measured on {interp.name}, {build}]: smallest "
            f"heap {heap} ({runs} runs); data peak {unit(peak):.1f} {sign} ({types}); {names} "
            f"names made at run time")
        kinds = by_kind(free.heapmap)
        if kinds:
            total, big, fns = kind_lines(kinds, unit)
            say(f"memory-budget: {scenario} [frozen] the peak by kind of object, {sign} (objects):"
                f" {total}; the largest classes, modules and instances: {big}; function "
                f"objects by the module that defined them: {fns}")


@bench("memory-budget")
async def memory_budget() -> list[str]:
    return await figures()
