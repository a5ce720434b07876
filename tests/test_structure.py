"""Structure rules of the firmware, checked by reading its source (no MicroPython needed).

- The import graph of firmware/ has no circle (lazy imports inside functions count: a circle
  there is still two modules that cannot be understood one without the other).
- No module outside evse/ touches an underscore name of the connector: other packages use its
  public surface (ARCHITECTURE.md, "Sessions and transactions").
- The meter modules' private copies of meter/maps.py's layout (`_E = const(8)`: const() does not
  cross modules, and the firmware never loads maps.py) agree with it.
"""

import ast
import re
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"


def _modules() -> dict[str, Path]:
    out = {}
    for p in FIRMWARE.rglob("*.py"):
        rel = p.relative_to(FIRMWARE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            out[".".join(parts)] = p
    return out


def _imports(path: Path, mods: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from pkg import mod` imports pkg.mod when it is a module
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for n in names:
            if n in mods:
                out.add(n)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = _imports(path, mods)
        deps.discard(name)
        # a package's __init__ is no edge worth a circle: every submodule "imports" it
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    # Strongly connected components of more than one module (Tarjan).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    n = 0

    def visit(v: str) -> None:
        nonlocal n
        index[v] = low[v] = n
        n += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_firmware():
    graph = import_graph()
    assert len(graph) > 40, "the scan found too few modules to mean anything"
    assert circles(graph) == [], f"import circles in firmware/: {circles(graph)}"


def test_the_circle_check_sees_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# `connector._x`, `conn._x`, `getattr(connector, "_x")`: a reach-in past the public surface
_REACH_IN = re.compile(
    r"\b(?:connector|conn)\s*\.\s*_[A-Za-z]"
    r"|getattr\(\s*(?:connector|conn)\s*,\s*['\"]_"
)


def reach_ins(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if _REACH_IN.search(line)]


def test_no_module_outside_evse_touches_the_connectors_private_names():
    found = []
    for p in sorted(FIRMWARE.rglob("*.py")):
        if p.relative_to(FIRMWARE).parts[0] == "evse":
            continue
        found += [f"{p.relative_to(FIRMWARE)}: {line}" for line in reach_ins(p.read_text())]
    assert found == [], "reach-ins past the connector's public surface:\n" + "\n".join(found)


def test_the_reach_in_scan_sees_one():
    assert reach_ins("x = self.connector._apply()\ny = conn.status_of(1)") == [
        "x = self.connector._apply()"]
    assert reach_ins('getattr(connector, "_hw")') == ['getattr(connector, "_hw")']


_CONST = re.compile(r"^(_?)([A-Z][A-Z0-9_]*) = const\((-?\w+)\)", re.M)


def consts(text: str) -> dict[str, tuple[bool, int]]:
    # name (without its underscore) -> (private, value) of each `NAME = const(n)` of a module
    return {m[2]: (m[1] == "_", int(m[3], 0)) for m in _CONST.finditer(text)}


def test_meter_layout_copies_agree_with_meter_maps():
    layout = {k: v for k, (private, v) in consts((FIRMWARE / "meter/maps.py").read_text()).items()
              if not private}
    assert {"E", "NVALUES", "F32", "U64"} <= layout.keys(), "the scan found no layout"
    checked = 0
    for name in ("meter.py", "modbusmeter.py", "pulse.py"):
        for k, (private, v) in consts((FIRMWARE / "meter" / name).read_text()).items():
            if private and k in layout:
                assert v == layout[k], f"meter/{name}: _{k} = {v}, meter/maps.py: {k} = {layout[k]}"
                checked += 1
    assert checked >= 15, "the scan found too few copies to mean anything"


def test_the_layout_scan_reads_private_and_public_consts():
    assert consts("_E = const(8)\nNVALUES = const(9)\nx = 1") == {"E": (True, 8),
                                                                    "NVALUES": (False, 9)}
