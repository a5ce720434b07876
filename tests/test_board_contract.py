"""The board contract (firmware/boardbase.py) against its users and its implementations.

Read statically (the boards import `machine` and friends, which CPython lacks):
- every board member the firmware uses exists in the contract;
- every board derives from BoardBase, defines NAME, and each public member it has is a contract
  member with the contract's arguments (or one of the extras it names);
- every test double of a board in the on-target tests derives from the contract too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
BASE = FIRMWARE / "boardbase.py"
BOARDS = sorted((REPO / "boards").glob("*/board.py"))
MODULE_MEMBERS = {"NAME", "Board"}  # module level of board.py


@dataclass(frozen=True)
class Sig:
    args: tuple[str, ...]  # positional parameters after self
    defaults: int
    is_async: bool


def _sig(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Sig:
    args = tuple(a.arg for a in fn.args.args[1:])
    return Sig(args, len(fn.args.defaults), isinstance(fn, ast.AsyncFunctionDef))


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"no class {name}")


def _self_attrs(cls: ast.ClassDef) -> dict[str, int]:
    """self.X assigned anywhere in the class -> first line."""
    out: dict[str, int] = {}
    for node in ast.walk(cls):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and \
                    t.value.id == "self":
                out.setdefault(t.attr, t.lineno)
    return out


def _body(cls: ast.ClassDef) -> list[ast.stmt]:
    """The class body's statements, those of its `if False:` blocks included (the contract's
    required members: written out for readers and this test, compiled to nothing)."""
    out: list[ast.stmt] = []
    for node in cls.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Constant) and \
                node.test.value is False:
            out += node.body
        else:
            out.append(node)
    return out


def _members(cls: ast.ClassDef) -> tuple[dict[str, Sig], dict[str, int]]:
    methods: dict[str, Sig] = {}
    attrs: dict[str, int] = {}
    for node in _body(cls):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            is_prop = any(isinstance(d, ast.Name) and d.id == "property"
                          for d in node.decorator_list)
            if is_prop:
                attrs[node.name] = node.lineno
            else:
                methods[node.name] = _sig(node)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    attrs[t.id] = node.lineno
    for name, line in _self_attrs(cls).items():
        attrs.setdefault(name, line)
    return methods, attrs


def _contract() -> tuple[dict[str, Sig], set[str]]:
    cls = _class(ast.parse(BASE.read_text()), "BoardBase")
    methods, attrs = _members(cls)
    return methods, set(attrs) | set(methods)


def _extras(cls: ast.ClassDef) -> set[str]:
    for node in cls.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "EXTRAS" for t in node.targets):
            return {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant)}
    return set()


# ---- what the firmware uses ---------------------------------------------------------------------


class _Uses(ast.NodeVisitor):
    """Board members used in one firmware module: attributes of expressions that hold the board
    (a parameter or name `board`, `<x>.board`, names bound to those or to `Board()`), and names
    in getattr/hasattr on them; module members of `import board`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uses: list[tuple[str, int, str]] = []  # (member, line, kind)
        self.module_aliases: set[str] = set()
        self.scopes: list[set[str]] = [set()]

    def _is_board(self, e: ast.expr) -> bool:
        if isinstance(e, ast.Name):
            return (e.id == "board" and e.id not in self.module_aliases) or any(
                e.id in s for s in self.scopes)
        if isinstance(e, ast.Attribute):
            return e.attr == "board"
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute):
            return e.func.attr == "Board" and isinstance(e.func.value, ast.Name) and \
                e.func.value.id in self.module_aliases
        return False

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name == "board":
                self.module_aliases.add(a.asname or "board")

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        scope = {a.arg for a in node.args.args if a.arg == "board"}
        self.scopes.append(scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Assign(self, node: ast.Assign) -> None:
        if self._is_board(node.value):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.scopes[-1].add(t.id)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        v = node.value
        if isinstance(v, ast.Name) and v.id in self.module_aliases:
            self.uses.append((node.attr, node.lineno, "module"))
        elif self._is_board(v):
            self.uses.append((node.attr, node.lineno, "board"))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        if isinstance(f, ast.Name) and f.id in ("getattr", "hasattr") and len(node.args) >= 2 \
                and self._is_board(node.args[0]) and isinstance(node.args[1], ast.Constant):
            self.uses.append((str(node.args[1].value), node.lineno, "board"))
        self.generic_visit(node)


def _firmware_uses() -> list[tuple[Path, str, int, str]]:
    out = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        if path == BASE:
            continue
        v = _Uses(path)
        v.visit(ast.parse(path.read_text(), filename=str(path)))
        out += [(path, m, line, kind) for m, line, kind in v.uses]
    return out


def test_the_firmware_uses_only_contract_members() -> None:
    _, members = _contract()
    uses = _firmware_uses()
    found = {m for _, m, _, k in uses if k == "board"}
    # The scan sees the members the application is known to use (it would find nothing if it
    # were broken).
    assert {"set_relay", "set_pwm", "telemetry", "route", "wlan", "flash_root"} <= found
    bad = [f"{p.relative_to(REPO)}:{line}: board.{m}" for p, m, line, k in uses
           if (k == "board" and m not in members) or (k == "module" and m not in MODULE_MEMBERS)]
    assert not bad, "board members the contract (firmware/boardbase.py) lacks:\n" + "\n".join(bad)


def test_the_scan_catches_a_member_the_contract_lacks(tmp_path: Path) -> None:
    src = tmp_path / "x.py"
    src.write_text("def f(board):\n    board.rfid_i2c()\n\nclass P:\n    def g(self):\n"
                   "        b = self.board\n        return getattr(b, 's0_pulses', None)\n")
    v = _Uses(src)
    v.visit(ast.parse(src.read_text()))
    assert {m for m, _, _ in v.uses} == {"rfid_i2c", "s0_pulses"}


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.parent.name)
def test_each_board_keeps_to_the_contract(path: Path) -> None:
    methods, members = _contract()
    tree = ast.parse(path.read_text())
    names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
             if isinstance(t, ast.Name)}
    assert "NAME" in names, f"{path}: no module-level NAME"
    cls = _class(tree, "Board")
    assert any(isinstance(b, ast.Name) and b.id == "BoardBase" for b in cls.bases), \
        f"{path}: Board does not derive from boardbase.BoardBase"
    extras = _extras(cls)
    own_methods, own_attrs = _members(cls)
    bad = []
    for name, sig in own_methods.items():
        if name.startswith("_") or name in extras:
            continue
        if name not in methods:
            bad.append(f"{name}(): not in the contract (nor in EXTRAS)")
        elif methods[name] != sig:
            bad.append(f"{name}{sig.args}: the contract has {name}{methods[name].args} "
                       f"({methods[name].defaults} defaults, async={methods[name].is_async})")
    for name in own_attrs:
        if not name.startswith("_") and name not in members and name not in extras:
            bad.append(f"{name}: an attribute the contract lacks (nor in EXTRAS)")
    assert not bad, f"{path.relative_to(REPO)} differs from the contract:\n" + "\n".join(bad)


def test_board_doubles_in_tests_derive_from_the_contract() -> None:
    doubles = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and "Board" in node.name and \
                    node.name != "BoardBase":
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                doubles.append((path, node.name, bases))
    assert doubles, "the scan found no board doubles at all"
    allowed = {"BoardBase"} | {name for _, name, _ in doubles}
    bad = [f"{p.relative_to(REPO)}: class {n}({', '.join(sorted(b)) or 'object'})"
           for p, n, b in doubles if not b & allowed or not b]
    assert not bad, "board doubles that do not derive from BoardBase:\n" + "\n".join(bad)
    methods, _ = _contract()
    for path, name, _bases in doubles:
        cls = next(n for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, ast.ClassDef) and n.name == name)
        own, _ = _members(cls)
        bad += [f"{path.relative_to(REPO)}: {name}.{m}{sig.args}, the contract has "
                f"{m}{methods[m].args}" for m, sig in own.items()
                if m in methods and m != "__init__" and sig != methods[m]]
    assert not bad, "board doubles that differ from the contract:\n" + "\n".join(bad)
