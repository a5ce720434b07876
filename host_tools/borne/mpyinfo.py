"""What MicroPython's .mpy loader puts in the GC heap, read from a .mpy file (format v6).

A module imported from a ROMFS image runs its bytecode where it lies, but the loader (MicroPython
1.28, py/persistentcode.c) still builds, in the heap: one raw-code record per function, class
body, lambda and comprehension (`mp_raw_code_t`), a table of child pointers for each code with
children, the module's qstr and constant tables (one allocation: 2-byte qstr ids rounded to
words, then one word per constant), a 4-word str/bytes header for each str/bytes constant that
is not already a qstr (its data stays in ROM), tuples, big ints and floats; and one qstr pool
entry per qstr the firmware does not already hold (its text stays in ROM). A frozen image
(mpy-tool.py -f) has all of these in flash: only what running the module makes (its globals
dict, function and class objects, instances) goes into the heap.

After the import and a collection, not all of it is still there: a function object points at
its code's children table, not at its own record, and the module's and class bodies' code is
dropped once run. So the records *retained* are the children tables of the functions the
module defines (at module level or in a class body), and everything those tables reach; and,
measured (not derived from the C source), for a class with a base class the body's children
table and what it reaches stay too (`based`: such class names, read from the source).
`Loaded.retained()` counts that; `Loaded.allocated()` counts everything the load allocates.

Structure sizes are this port's (`Port`): the 64-bit unix port here (`Port.host()`), where a
raw-code record is 24 bytes (MICROPY_PERSISTENT_CODE_SAVE follows MICROPY_PY_SYS_SETTRACE,
which the port's `sys` lacks: py/emitglue.h then holds two bytes of indicator, kind,
is_generator, fun_data and children), one 32-byte GC block. Native/viper code: the machine code
goes to executable memory outside the GC heap (the unix port mmaps it, with a 3-word region
record in the heap; an ESP32 copies it to its exec heap); viper rodata/bss go to the heap.

`with_strings_interned()` is the one writer here: build.py's rewrite of a resident module's
.mpy, whose str constants then load as qstrs.

`new_qstrs()` are the module's names (and qstr-able str constants) that the interpreter does
not hold as static qstrs: `static_qstrs()` asks the unix port itself, interning each candidate
in a fresh interpreter and watching its qstr count.
"""

from __future__ import annotations

import ast
import json
import os
import re
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# py/persistentcode.h
OBJ_NONE, OBJ_FALSE, OBJ_TRUE, OBJ_ELLIPSIS = 1, 2, 3, 4
OBJ_STR, OBJ_BYTES, OBJ_INT, OBJ_FLOAT, OBJ_COMPLEX, OBJ_TUPLE = 5, 6, 7, 8, 9, 10
KIND_BYTECODE, KIND_NATIVE, KIND_VIPER, KIND_ASM = 2, 3, 4, 5
_VIPERRELOC, _VIPERRODATA, _VIPERBSS = 0x10, 0x20, 0x40
_LOAD_NAME, _STORE_NAME = 0x11, 0x16  # py/bc0.h: a class body starts __module__ = __name__
# py/makeqstrdata.py's fixed list (the same ids in every MicroPython, so a .mpy marks them
# static instead of spelling them): 22 is __module__, 23 __name__.
_FIXED = {22: "__module__", 23: "__name__"}


@dataclass(frozen=True)
class Port:
    """Sizes that decide what the loader allocates."""

    word: int = 8
    rawcode: int = 24  # sizeof(mp_raw_code_t)
    exec_record: int = 24  # per native code: the unix port's mmap_region_t (heap)
    small_int_bits: int = 63
    first_pool: int = 20  # entries of the first dynamic qstr pool (then doubling)

    @property
    def block(self) -> int:
        return 4 * self.word

    def blocks(self, nbytes: int) -> int:
        """Bytes a heap allocation of `nbytes` takes (whole GC blocks; 0 allocates nothing)."""
        return -(-nbytes // self.block) * self.block if nbytes > 0 else 0

    @staticmethod
    def host() -> Port:
        return Port(word=struct.calcsize("P"))

    def pool_bytes(self, n_qstr: int) -> int:
        """Heap of the dynamic qstr pools that hold `n_qstr` entries (pools of first_pool
        entries, each next one twice the last; a pool: a 6-word header, then per entry a
        pointer, a 2-byte hash and a length byte)."""
        total, alloc, held = 0, self.first_pool, 0
        while held < n_qstr:
            total += self.blocks(6 * self.word + alloc * (self.word + 3))
            held += alloc
            alloc *= 2
        return total


@dataclass
class Const:
    kind: int
    data: bytes = b""
    items: list[Const] = field(default_factory=list)


@dataclass
class Code:
    kind: int
    name: str
    class_body: bool = False
    n_children_slots: int = 0  # children table entries (native: + the prelude pointer)
    data_bytes: int = 0  # viper rodata + bss (heap)
    children: list[Code] = field(default_factory=list)

    def walk(self) -> Iterable[Code]:
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class Mpy:
    arch: int
    qstrs: list[tuple[str, bool]]  # (text, marked static in the .mpy: the fixed list)
    consts: list[Const]
    top: Code
    file: str = ""  # its path in the image (load_image_tree)

    def names(self) -> set[str]:
        return {q for q, _ in self.qstrs}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        if len(out) != n:
            raise ValueError("truncated .mpy")
        self.pos += n
        return out

    def uint(self) -> int:
        n = 0
        while True:
            b = self.byte()
            n = (n << 7) | (b & 0x7F)
            if not b & 0x80:
                return n


def _vuint(buf: bytes, i: int) -> tuple[int, int]:
    n = 0
    while True:
        b = buf[i]
        i += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n, i


def _prelude(buf: bytes) -> tuple[int, int]:
    """(simple-name qstr index, offset of the first opcode) of a bytecode function."""
    i = 0
    while buf[i] & 0x80:  # the signature (MP_BC_PRELUDE_SIG)
        i += 1
    i += 1
    n_info = n_cell = 0
    shift = 0
    while True:  # MP_BC_PRELUDE_SIZE: xIIIIIIC
        z = buf[i]
        i += 1
        n_cell |= (z & 1) << (shift // 6)
        n_info |= ((z & 0x7E) >> 1) << shift
        shift += 6
        if not z & 0x80:
            break
    name, _ = _vuint(buf, i)
    return name, i + n_info + n_cell


def _const(r: _Reader) -> Const:
    kind = r.byte()
    if kind <= OBJ_ELLIPSIS:
        return Const(kind)
    n = r.uint()
    if kind == OBJ_TUPLE:
        return Const(kind, items=[_const(r) for _ in range(n)])
    data = r.take(n)
    if kind in (OBJ_STR, OBJ_BYTES):
        r.byte()  # the terminating NUL
    return Const(kind, data)


def _code(r: _Reader, qstrs: list[tuple[str, bool]]) -> Code:
    kind_len = r.uint()
    kind = (kind_len & 3) + KIND_BYTECODE
    has_children = bool(kind_len & 4)
    fun = r.take(kind_len >> 3)
    code = Code(kind, "?")
    flags = 0
    if kind == KIND_BYTECODE:
        qi, op = _prelude(fun)
        code.name = qstrs[qi][0] if qi < len(qstrs) else "?"
        if op + 1 < len(fun) and fun[op] == _LOAD_NAME:
            q1, j = _vuint(fun, op + 1)
            if j < len(fun) and fun[j] == _STORE_NAME:
                q2, _ = _vuint(fun, j + 1)
                code.class_body = (qstrs[q1][0], qstrs[q2][0]) == ("__name__", "__module__")
    elif kind == KIND_NATIVE:
        r.uint()  # prelude offset
    else:
        flags = r.uint()
        if kind == KIND_ASM:
            r.uint()
            r.uint()
    if kind == KIND_VIPER:
        rodata = r.uint() if flags & _VIPERRODATA else 0
        bss = r.uint() if flags & _VIPERBSS else 0
        r.take(rodata)
        code.data_bytes = (-(-bss // 8) * 8 + rodata) if rodata + bss else 0
    if has_children:
        n = r.uint()
        code.children = [_code(r, qstrs) for _ in range(n)]
        code.n_children_slots = n + (kind == KIND_NATIVE)
    if kind != KIND_BYTECODE and flags & _VIPERRELOC:
        while (op := r.byte()) != 0xFF:
            if op & 1:
                r.uint()
            op >>= 1
            if op <= 5 and op & 1:
                r.uint()
    return code


def parse(data: bytes) -> Mpy:
    """A .mpy file's qstrs, constants and code tree (raises ValueError if not .mpy v6)."""
    if len(data) < 4 or data[0] != ord("M") or data[1] != 6:
        raise ValueError("not a .mpy v6 file")
    r = _Reader(data)
    r.take(4)
    arch = (data[2] >> 2) & 0x2F
    if data[2] & 0x40:
        r.uint()  # arch flags
    n_qstr, n_obj = r.uint(), r.uint()
    qstrs: list[tuple[str, bool]] = []
    for _ in range(n_qstr):
        n = r.uint()
        if n & 1:
            qstrs.append((_FIXED.get(n >> 1, f"<static {n >> 1}>"), True))
        else:
            qstrs.append((r.take(n >> 1).decode("utf-8", "replace"), False))
            r.byte()
    consts = [_const(r) for _ in range(n_obj)]
    return Mpy(arch, qstrs, consts, _code(r, qstrs))


def _encode_uint(n: int) -> bytes:
    """py/persistentcode.c's mp_encode_uint: 7 bits a byte, most significant first."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def with_strings_interned(data: bytes) -> tuple[bytes, int]:
    """The same .mpy with each of its str constants (up to 255 bytes, no NUL) also named in its
    qstr table, and how many were added.

    The loader interns a module's qstr table before it makes its constants, and makes a str
    constant whose text is already a qstr that qstr: no heap object (4 words) and no data
    block rounded up to whole GC blocks, only a pool entry and the text packed in a qstr chunk
    (on an ESP32 a 34-byte text takes 44 bytes so, not 64). A qstr is never freed, so this is
    for modules that stay loaded from boot to the end (the build's resident list). The
    entries go after the table's own, so the bytecode's qstr indices do not move; the
    constants stay as they are (the file holds such a text twice)."""
    r = _Reader(data)
    r.take(4)
    if data[2] & 0x40:
        r.uint()  # arch flags
    head = r.pos
    n_qstr, n_obj = r.uint(), r.uint()
    q0 = r.pos
    texts: set[bytes] = set()
    for _ in range(n_qstr):
        n = r.uint()
        if not n & 1:
            texts.add(r.take(n >> 1))
            r.byte()
    q1 = r.pos
    new: list[bytes] = []
    for c in (_const(r) for _ in range(n_obj)):
        if (c.kind == OBJ_STR and 0 < len(c.data) < 256 and b"\0" not in c.data
                and c.data not in texts):
            texts.add(c.data)
            new.append(c.data)
    if not new:
        return data, 0
    added = b"".join(_encode_uint(len(t) << 1) + t + b"\0" for t in new)
    return (data[:head] + _encode_uint(n_qstr + len(new)) + _encode_uint(n_obj) + data[q0:q1]
            + added + data[q1:]), len(new)


@dataclass
class Loaded:
    """What loading one .mpy from ROM puts in the heap: per allocation, in whole GC blocks."""

    name: str
    tables: int  # the module's qstr + constant tables
    consts: int  # str/bytes headers, tuples, big ints, floats
    records: int  # every raw-code record
    children: int  # every children table
    native: int  # viper rodata/bss, exec-memory records
    kept_records: int  # the records and children tables still reachable after the import
    new_qstrs: list[str]

    def allocated(self) -> int:
        return self.tables + self.consts + self.records + self.children + self.native

    def retained(self) -> int:
        """Heap still held once the module is imported (and a collection ran): the tables,
        the constants, the code records reachable from the functions it defined."""
        return self.tables + self.consts + self.kept_records + self.native


def _const_bytes(c: Const, port: Port, qstrs: set[str]) -> int:
    if c.kind == OBJ_TUPLE:
        return port.blocks((2 + len(c.items)) * port.word) + sum(
            _const_bytes(i, port, qstrs) for i in c.items)
    if c.kind == OBJ_STR:
        text = c.data.decode("utf-8", "replace")
        return 0 if text in qstrs else port.blocks(4 * port.word)
    if c.kind == OBJ_BYTES:
        return port.blocks(4 * port.word) if c.data else 0
    if c.kind == OBJ_INT:
        v = int(c.data)
        if -(1 << (port.small_int_bits - 1)) <= v < 1 << (port.small_int_bits - 1):
            return 0
        digits = -(-v.bit_length() // 16)  # mpz: the object, its 16-bit digits
        return port.blocks(4 * port.word) + port.blocks(2 * digits)
    if c.kind in (OBJ_FLOAT, OBJ_COMPLEX):
        return port.blocks(port.word + 8 * (2 if c.kind == OBJ_COMPLEX else 1))
    return 0


def _tree_bytes(code: Code, port: Port) -> int:
    """The record and children table of `code` and all below it."""
    own = port.blocks(port.rawcode) + port.blocks(code.n_children_slots * port.word)
    return own + sum(_tree_bytes(c, port) for c in code.children)


def _kept(code: Code, port: Port, based: set[str]) -> int:
    """Records kept after `code` (module or class body, run once then dropped) has run: each
    function it defines keeps its children table and what that reaches, not its own record;
    a class with a base keeps its body's table too (measured: see the module's doc)."""
    total = 0
    for c in code.children:
        if c.class_body and c.name in based:
            total += _tree_bytes(c, port) - port.blocks(port.rawcode)
        elif c.class_body:
            total += _kept(c, port, based)
        elif not c.name.startswith("<") or c.name == "<lambda>":
            total += _tree_bytes(c, port) - port.blocks(port.rawcode)
    return total


def classes_with_bases(source: str) -> set[str]:
    """Names of the classes a module's source defines with a base class."""
    return {n.name for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.ClassDef) and n.bases}


def loaded(mpy: Mpy, name: str, static: set[str], port: Port | None = None,
           known: set[str] | None = None, based: set[str] | None = None) -> Loaded:
    """What loading `mpy` from ROM allocates. `static`: the firmware's static qstrs;
    `known`: qstrs already made before this load (other modules), if known. The new qstrs
    listed are all the module's non-static ones (another module may have made some first)."""
    port = port or Port.host()
    dyn = [q for q, s in mpy.qstrs if not s and q not in static]
    names = static | mpy.names() | (known or set())
    tables = port.blocks(-(-len(mpy.qstrs) * 2 // port.word) * port.word
                         + len(mpy.consts) * port.word)
    codes = list(mpy.top.walk())
    native = sum(port.blocks(c.data_bytes) + (port.blocks(port.exec_record)
                                              if c.kind != KIND_BYTECODE else 0)
                 for c in codes)
    return Loaded(
        name=name, tables=tables,
        consts=sum(_const_bytes(c, port, names) for c in mpy.consts),
        records=len(codes) * port.blocks(port.rawcode),
        children=sum(port.blocks(c.n_children_slots * port.word) for c in codes),
        native=native, kept_records=_kept(mpy.top, port, based or set()),
        new_qstrs=sorted(set(dyn)))


def candidates(mpys: Iterable[Mpy]) -> set[str]:
    """Strings whose static-ness matters: the qstr tables and the str constants."""
    out: set[str] = set()
    for m in mpys:
        out |= {q for q, s in m.qstrs if not s}
        out |= {c.data.decode("utf-8", "replace") for c in m.consts
                if c.kind == OBJ_STR and len(c.data) < 256}
    return out


# Run in the unix port: intern each candidate (getattr turns a str into a qstr), printing the
# qstr count after each. Its own names are all static qstrs of the port (checked 2026-12-03:
# its count before the first candidate equals that of a script that only imports micropython,
# run with the same arguments), so it holds none of the candidates before asking.
_PROBE = """\
import micropython, sys
micropython.qstr_info()
for s in __import__("json").loads(open(sys.argv[1]).read()):
    getattr(None, s, None)
    micropython.qstr_info()
"""
_COUNT = re.compile(r"n_qstr=(\d+)")


def static_qstrs(micropython: str, strings: Iterable[str]) -> set[str]:
    """Which of `strings` the interpreter holds as static qstrs (a fresh one: no module
    imported). Each is interned in turn; a string that does not grow the count was there."""
    cands = sorted(s for s in set(strings) if 0 < len(s.encode()) < 256)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "c.json"
        f.write_text(json.dumps(cands))
        probe = Path(tmp) / "p.py"
        probe.write_text(_PROBE)
        env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
        out = subprocess.run([micropython, str(probe), str(f)], capture_output=True,
                             text=True, check=True, cwd=tmp, env=env, timeout=60).stdout
    counts = [int(m) for m in _COUNT.findall(out)]
    if len(counts) != len(cands) + 1:
        raise RuntimeError(f"static qstr probe: {len(counts)} counts for {len(cands)}")
    return {s for s, a, b in zip(cands, counts, counts[1:], strict=False) if a == b}


def load_image_tree(tree: Path) -> dict[str, Mpy]:
    """The .mpy files under a folder, by dotted module name."""
    out: dict[str, Mpy] = {}
    for p in sorted(tree.rglob("*.mpy")):
        parts = list(p.relative_to(tree).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        mpy = parse(p.read_bytes())
        mpy.file = p.relative_to(tree).as_posix()
        out[".".join(parts)] = mpy
    return out


def loader_figures(mods: dict[str, Mpy], micropython: str, port: Port | None = None,
                   order: Iterable[str] | None = None,
                   sources: dict[str, Path] | None = None) -> dict[str, Loaded]:
    """`loaded()` for each module, those in `order` first, then the rest sorted: a str
    constant that an earlier module's names hold is not allocated (the loader finds it
    interned). `sources`:
    each module's .py, for its classes with a base (missing: counted as without)."""
    static = static_qstrs(micropython, candidates(mods.values()))
    known: set[str] = set()
    out: dict[str, Loaded] = {}
    first = [m for m in order or () if m in mods]
    for name in first + sorted(set(mods) - set(first)):
        src = (sources or {}).get(name)
        based = classes_with_bases(src.read_text()) if src and src.exists() else set()
        f = loaded(mods[name], name, static, port, known, based)
        known |= set(f.new_qstrs) | mods[name].names()
        out[name] = f
    return out
