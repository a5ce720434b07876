"""`borne check-board`: static checks of hardware API use, against MicroPython's ESP32 stubs.

Two checks run over the board's modules (``boards/<board>/*.py``; ``manifest.py`` runs on the
host and is skipped) and over every firmware module (``firmware/**/*.py``):

1. Every name taken from ``machine``, ``network``, ``esp32`` and ``neopixel`` exists in the
   MicroPython 1.28 ESP32 API as the ``micropython-esp32-stubs`` package describes it (its .pyi
   files in the venv's site-packages): ``from machine import X``, ``machine.X``, class attributes
   such as ``machine.Pin.IRQ_RISING``, and methods and attributes of objects whose class is known
   statically from a construction: ``self.pwm = machine.PWM(...)`` then ``self.pwm.duty_u16(...)``,
   or ``machine.RTC().datetime(...)``. A name assigned objects of different kinds is not checked.
2. Firmware code never imports ``machine``, ``network`` or ``esp32`` (nor ``umachine``): only the
   boards and the driver modules listed in ``DRIVER_ALLOW`` may touch the hardware.

Findings are printed as ``path:line:col: message``; any finding makes the command fail.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from borne import paths

STUBS_DIST = "micropython-esp32-stubs"
STDLIB_STUBS_DIST = "micropython-stdlib-stubs"
# Modules whose names are checked against the stubs; u-prefixed aliases map to the real module.
CHECKED_MODULES = frozenset({"machine", "network", "esp32", "neopixel"})
MODULE_ALIASES = {"umachine": "machine"}
# Modules firmware code outside boards/ and the allowed drivers must not import.
HARDWARE_MODULES = frozenset({"machine", "umachine", "network", "esp32"})
# Driver modules (paths relative to firmware/, e.g. "rfid/pn532_i2c.py") allowed to import them.
DRIVER_ALLOW: frozenset[str] = frozenset()
# Files of a board folder that run on the host, not on the charger.
BOARD_HOST_FILES = ("manifest.py",)
# Base classes that add no attributes worth checking.
_PLAIN_BASES = frozenset({"object", "Protocol", "Generic", "ABC", "NamedTuple", "TypedDict"})


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


@dataclass(frozen=True)
class Sym:
    """What an expression is, statically: a stub module, a stub class, or an instance of one."""

    kind: str  # "module" | "class" | "instance"
    module: str
    qual: str = ""  # class name inside the module, dotted for nested classes


@dataclass
class _Cls:
    module: str
    qual: str
    members: set[str] = field(default_factory=set)
    nested: dict[str, _Cls] = field(default_factory=dict)
    bases: list[ast.expr] = field(default_factory=list)
    open: bool = False  # defines __getattr__: any attribute may exist


@dataclass
class _Mod:
    name: str
    members: set[str] = field(default_factory=set)
    classes: dict[str, _Cls] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local -> (module, name)
    reexports: set[str] = field(default_factory=set)  # `from m import n as n`
    stars: list[str] = field(default_factory=list)
    open: bool = False


Lookup = tuple[bool, Sym | None]  # (the name exists, what it is when that is known)
_UNKNOWN: Lookup = (True, None)
_MISSING: Lookup = (False, None)
_OPEN = object()  # a base class that cannot be resolved: its subclass accepts any attribute


def _body(nodes: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    # Statements of a module or class body, looking into `if` / `try` blocks (version guards).
    for node in nodes:
        if isinstance(node, ast.If):
            yield from _body(node.body)
            yield from _body(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _body(node.body)
            for h in node.handlers:
                yield from _body(h.body)
            yield from _body(node.orelse)
        else:
            yield node


def _assigned_names(node: ast.stmt) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _parse_class(module: str, qual: str, node: ast.ClassDef) -> _Cls:
    cls = _Cls(module, qual, bases=list(node.bases))
    for item in _body(node.body):
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            cls.members.add(item.name)
            if item.name == "__getattr__":
                cls.open = True
        elif isinstance(item, ast.ClassDef):
            cls.nested[item.name] = _parse_class(module, f"{qual}.{item.name}", item)
        else:
            cls.members.update(_assigned_names(item))
    return cls


def _parse_module(name: str, path: Path) -> _Mod:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    mod = _Mod(name)
    package = name if path.name == "__init__.pyi" else name.rpartition(".")[0]
    for node in _body(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mod.members.add(node.name)
            if node.name == "__getattr__":
                mod.open = True
        elif isinstance(node, ast.ClassDef):
            mod.classes[node.name] = _parse_class(name, node.name, node)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{source}" if base and source else (base or source)
            for alias in node.names:
                if alias.name == "*":
                    mod.stars.append(source)
                    continue
                local = alias.asname or alias.name
                mod.imports[local] = (source, alias.name)
                if alias.asname == alias.name:
                    mod.reexports.add(local)
        else:
            mod.members.update(_assigned_names(node))
    return mod


class StubIndex:
    """The .pyi stubs of one MicroPython port, loaded lazily, one module at a time."""

    def __init__(self, dirs: Sequence[Path], version: str = "?") -> None:
        self.dirs = list(dirs)
        self.version = version
        self._mods: dict[str, _Mod | None] = {}

    @classmethod
    def installed(cls) -> StubIndex:
        """The stubs installed in this Python's environment (``make setup`` installs them)."""
        try:
            dist = importlib.metadata.distribution(STUBS_DIST)
        except importlib.metadata.PackageNotFoundError:
            msg = f"check-board: {STUBS_DIST} is not installed: run `make setup`"
            raise SystemExit(msg) from None
        dirs: list[Path] = []
        for name in (STUBS_DIST, STDLIB_STUBS_DIST):
            try:
                d = importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                continue
            base = Path(str(d.locate_file("")))
            tops = {Path(str(f)).parts[0] for f in d.files or []}
            for sub in ("", "stdlib"):
                candidate = base / sub if sub else base
                if (not sub or sub in tops) and candidate not in dirs:
                    dirs.append(candidate)
        if not any((d / "machine.pyi").exists() for d in dirs):
            raise SystemExit(f"check-board: no machine.pyi in {STUBS_DIST} ({dirs})")
        return cls(dirs, dist.version)

    def module(self, name: str) -> _Mod | None:
        if name not in self._mods:
            self._mods[name] = None
            rel = Path(*name.split("."))
            for d in self.dirs:
                for path in (d / rel.with_suffix(".pyi"), d / rel / "__init__.pyi"):
                    if path.is_file():
                        self._mods[name] = _parse_module(name, path)
                        break
                if self._mods[name] is not None:
                    break
        return self._mods[name]

    def cls(self, module: str, qual: str) -> _Cls | None:
        mod = self.module(module)
        if mod is None:
            return None
        head, *rest = qual.split(".")
        found = mod.classes.get(head)
        for part in rest:
            if found is None:
                return None
            found = found.nested.get(part)
        return found

    def module_attr(self, module: str, attr: str, _seen: frozenset[str] = frozenset()) -> Lookup:
        mod = self.module(module)
        if mod is None or mod.open or (attr.startswith("__") and attr.endswith("__")):
            return _UNKNOWN
        if attr in mod.classes:
            return True, Sym("class", module, attr)
        if attr in mod.members:
            return _UNKNOWN
        if attr in mod.reexports:
            source, name = mod.imports[attr]
            if source not in _seen:
                return self.module_attr(source, name, _seen | {module})
            return _UNKNOWN
        for star in mod.stars:
            if star in _seen:
                continue
            found = self.module_attr(star, attr, _seen | {module})
            if found[0]:
                return found
        return _MISSING

    def _base(self, cls: _Cls, expr: ast.expr) -> _Cls | object | None:
        if isinstance(expr, ast.Subscript):  # Generic[T], Protocol[...]
            expr = expr.value
        name = ast.unparse(expr)
        if name.rpartition(".")[2] in _PLAIN_BASES:
            return None
        mod = self.module(cls.module)
        if mod is None or "." in name:
            return _OPEN
        if name in mod.classes:
            return mod.classes[name]
        if name in mod.imports:
            source, orig = mod.imports[name]
            found = self.module_attr(source, orig)[1]
            if found is not None and found.kind == "class":
                return self.cls(found.module, found.qual) or _OPEN
        return _OPEN

    def class_attr(self, cls: _Cls, attr: str, _depth: int = 0) -> Lookup:
        if cls.open or (attr.startswith("__") and attr.endswith("__")) or _depth > 20:
            return _UNKNOWN
        if attr in cls.nested:
            return True, Sym("class", cls.module, f"{cls.qual}.{attr}")
        if attr in cls.members:
            return _UNKNOWN
        for expr in cls.bases:
            base = self._base(cls, expr)
            if base is _OPEN:
                return _UNKNOWN
            if isinstance(base, _Cls):
                found = self.class_attr(base, attr, _depth + 1)
                if found[0]:
                    return found
        return _MISSING

    def attr(self, sym: Sym, attr: str) -> Lookup:
        if sym.kind == "module":
            return self.module_attr(sym.module, attr)
        cls = self.cls(sym.module, sym.qual)
        if cls is None:
            return _UNKNOWN
        return self.class_attr(cls, attr)


_AMBIGUOUS = Sym("ambiguous", "")
Scopes = tuple[int, ...]


def _scoped(tree: ast.AST) -> Iterator[tuple[ast.AST, Scopes, str | None]]:
    """Every node with its chain of enclosing function scopes and its enclosing class name."""
    stack: list[tuple[ast.AST, Scopes, str | None]] = [(tree, (), None)]
    while stack:
        node, scopes, cls = stack.pop()
        yield node, scopes, cls
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner, inner_cls = (*scopes, id(node)), cls
        elif isinstance(node, ast.ClassDef):
            inner, inner_cls = scopes, node.name
        else:
            inner, inner_cls = scopes, cls
        for child in reversed(list(ast.iter_child_nodes(node))):
            stack.append((child, inner, inner_cls))


def _module_name(name: str) -> str:
    top = name.split(".")[0]
    return MODULE_ALIASES.get(top, top)


class _FileCheck:
    def __init__(self, index: StubIndex, path: str, tree: ast.Module, forbid_hw: bool) -> None:
        self.index = index
        self.path = path
        self.tree = tree
        self.forbid_hw = forbid_hw
        self.bindings: dict[str, Sym] = {}
        self.types: dict[tuple[object, ...], Sym] = {}
        self.findings: set[Finding] = set()

    def _add(self, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 0)
        col = getattr(node, "col_offset", 0)
        self.findings.add(Finding(self.path, line, col, message))

    def run(self) -> set[Finding]:
        self._imports()
        for _ in range(3):  # types flow through at most a few assignments
            self.types = self._infer(self.types)
        for node, scopes, cls in _scoped(self.tree):
            if isinstance(node, ast.Attribute):
                self._resolve(node, scopes, cls, report=True)
        return self.findings

    # ---- pass 1: imports -------------------------------------------------------------------
    def _imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    self._hardware(node, top)
                    mod = _module_name(alias.name)
                    if mod in CHECKED_MODULES:
                        self.bindings[alias.asname or top] = Sym("module", mod)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                self._hardware(node, node.module.split(".")[0])
                mod = _module_name(node.module)
                if mod not in CHECKED_MODULES:
                    continue
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    found, sym = self.index.module_attr(mod, alias.name)
                    if not found:
                        self._add(
                            node,
                            f"from {node.module} import {alias.name}: no '{alias.name}' in "
                            f"module '{mod}' ({self._api()})",
                        )
                    elif sym is not None:
                        self.bindings[alias.asname or alias.name] = sym

    def _hardware(self, node: ast.AST, top: str) -> None:
        if self.forbid_hw and top in HARDWARE_MODULES:
            self._add(
                node,
                f"imports '{top}': firmware code reaches the hardware only through the board "
                "(boards/<name>/) or an allow-listed driver module",
            )

    # ---- pass 2: what each name and self attribute holds -------------------------------------
    def _infer(self, known: dict[tuple[object, ...], Sym]) -> dict[tuple[object, ...], Sym]:
        self.types = known
        out: dict[tuple[object, ...], Sym] = {}

        def put(key: tuple[object, ...] | None, sym: Sym | None) -> None:
            if key is None:
                return
            new = sym if sym is not None else _AMBIGUOUS
            old = out.get(key)
            out[key] = new if old is None or old == new else _AMBIGUOUS

        for node, scopes, cls in _scoped(self.tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                if node.value is None:
                    continue
                is_none = isinstance(node.value, ast.Constant) and node.value.value is None
                sym = self._resolve(node.value, scopes, cls, report=False)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, (ast.Tuple, ast.List)):
                        for key in self._store_keys(target, scopes, cls):
                            put(key, None)
                    elif not is_none:  # `x = None` then `x = PWM(...)`: x is a PWM
                        put(self._key(target, scopes, cls), sym)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = (*scopes, id(node))
                a = node.args
                for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                    if arg is not None:
                        put(("n", inner, arg.arg), None)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                for key in self._store_keys(node.target, scopes, cls):
                    put(key, None)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                for key in self._store_keys(node.optional_vars, scopes, cls):
                    put(key, None)
            elif isinstance(node, (ast.AugAssign, ast.NamedExpr)):
                for key in self._store_keys(node.target, scopes, cls):
                    put(key, None)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                put(("n", scopes, node.name), None)
        return out

    def _key(self, target: ast.expr, scopes: Scopes, cls: str | None) -> tuple[object, ...] | None:
        if isinstance(target, ast.Name):
            return ("n", scopes, target.id)
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and cls is not None
        ):
            return ("s", cls, target.attr)
        return None

    def _store_keys(
        self, target: ast.expr, scopes: Scopes, cls: str | None
    ) -> list[tuple[object, ...] | None]:
        if isinstance(target, (ast.Tuple, ast.List)):
            return [k for elt in target.elts for k in self._store_keys(elt, scopes, cls)]
        if isinstance(target, ast.Starred):
            return self._store_keys(target.value, scopes, cls)
        return [self._key(target, scopes, cls)]

    # ---- pass 3: resolve expressions and check attributes ------------------------------------
    def _name(self, name: str, scopes: Scopes) -> Sym | None:
        for i in range(len(scopes), -1, -1):
            sym = self.types.get(("n", scopes[:i], name))
            if sym is not None:
                return None if sym is _AMBIGUOUS else sym
        return self.bindings.get(name)

    def _resolve(self, node: ast.expr, scopes: Scopes, cls: str | None, report: bool) -> Sym | None:
        if isinstance(node, ast.Name):
            return self._name(node.id, scopes)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and cls is not None:
                sym = self.types.get(("s", cls, node.attr))
                return None if sym is None or sym is _AMBIGUOUS else sym
            base = self._resolve(node.value, scopes, cls, report)
            if base is None:
                return None
            found, sym = self.index.attr(base, node.attr)
            if not found and report:
                where = (
                    f"module '{base.module}'"
                    if base.kind == "module"
                    else f"class '{base.module}.{base.qual}'"
                )
                self._add(node, f"{ast.unparse(node)}: no '{node.attr}' in {where} ({self._api()})")
            return sym
        if isinstance(node, ast.Call):
            func = self._resolve(node.func, scopes, cls, report)
            if func is not None and func.kind == "class":
                return Sym("instance", func.module, func.qual)
        return None

    def _api(self) -> str:
        return f"MicroPython ESP32 API, {STUBS_DIST} {self.index.version}"


def check_file(
    path: Path, display: str, index: StubIndex, forbid_hardware_imports: bool
) -> list[Finding]:
    """Check one file; ``display`` is the path shown in findings."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=display)
    except SyntaxError as e:
        return [Finding(display, e.lineno or 0, e.offset or 0, f"syntax error: {e.msg}")]
    return sorted(_FileCheck(index, display, tree, forbid_hardware_imports).run())


def files_to_check(root: Path, board: str = "esp32_wallbox") -> list[Path]:
    """The board's modules and every firmware module under ``root``."""
    out: list[Path] = []
    board_dir = root / "boards" / board
    if board_dir.is_dir():
        out += [p for p in sorted(board_dir.glob("*.py")) if p.name not in BOARD_HOST_FILES]
    firmware = root / "firmware"
    if firmware.is_dir():
        out += [p for p in sorted(firmware.rglob("*.py")) if "__pycache__" not in p.parts]
    return out


def check_tree(
    root: Path = paths.REPO,
    board: str = "esp32_wallbox",
    index: StubIndex | None = None,
    allow: Iterable[str] | None = None,
) -> list[Finding]:
    """Run both checks over ``root``'s board and firmware; ``allow`` overrides DRIVER_ALLOW."""
    index = index or StubIndex.installed()
    allowed = frozenset(DRIVER_ALLOW if allow is None else allow)
    findings: list[Finding] = []
    firmware = root / "firmware"
    for path in files_to_check(root, board):
        forbid = path.is_relative_to(firmware) and (
            path.relative_to(firmware).as_posix() not in allowed
        )
        display = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        findings += check_file(path, display, index, forbid)
    return sorted(findings)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "check-board",
        help="check that board and firmware code only use names of the MicroPython ESP32 API",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--board", default="esp32_wallbox", help="board folder under boards/")
    p.add_argument("--root", type=Path, default=paths.REPO, help="repository root to check")
    p.set_defaults(func=_cmd_check_board)


def _cmd_check_board(args: argparse.Namespace) -> int:
    index = StubIndex.installed()
    findings = check_tree(args.root, args.board, index)
    for f in findings:
        print(f)
    n = len(files_to_check(args.root, args.board))
    if findings:
        print(f"check-board: {len(findings)} problem(s) in {n} files", file=sys.stderr)
        return 1
    print(f"check-board: {n} files use only the MicroPython ESP32 API ({STUBS_DIST} "
          f"{index.version}); no hardware imports outside boards/")
    return 0
