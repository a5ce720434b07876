"""The freeze manifests' list of resident modules (boards/firmware_manifest.py RESIDENT).

With MicroPython built with boards/micropython/frozen-static-functions.patch, a resident
module's plain functions are made in flash at build time and reach its globals through a slot
that the GC keeps: a module listed there and then dropped would keep its globals in the heap
until its next import. So the list names only modules that exist and that nothing drops.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
MANIFEST = REPO / "boards" / "firmware_manifest.py"
# Names whose calls drop the modules named in their arguments (supervisor.drop; rare() drops
# the module it imported for the call; features.unload the feature's).
_DROPPERS = {"drop", "rare", "_drop"}


def resident() -> tuple[str, ...]:
    for node in ast.parse(MANIFEST.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "RESIDENT":
            return ast.literal_eval(node.value)
    raise AssertionError("boards/firmware_manifest.py has no RESIDENT tuple")


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def dropped_names(source: str) -> set[str]:
    """Module names a source may drop: string constants in a call of a dropper, and in a
    module-level tuple of a module that calls one (connect.py's _OPEN, claim.py's _LOADED)."""
    tree = ast.parse(source)
    out: set[str] = set()
    calls = False
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in _DROPPERS:
                calls = True
                for a in n.args:
                    out |= _strings(a)
    if calls:
        for n in tree.body:
            if isinstance(n, ast.Assign) and isinstance(n.value, (ast.Tuple, ast.List)):
                out |= _strings(n.value)
    return out


def test_every_resident_module_exists() -> None:
    missing = []
    for name in resident():
        if name.startswith("asyncio"):
            continue  # MicroPython's own, frozen by the port's manifest
        path = FIRMWARE / name.replace(".", "/")
        if not (path.with_suffix(".py").exists() or (path / "__init__.py").exists()):
            missing.append(name)
    assert not missing, f"RESIDENT names modules firmware/ does not hold: {missing}"


def test_no_resident_module_is_ever_dropped() -> None:
    named = set(resident())
    found = {}
    for p in FIRMWARE.rglob("*.py"):
        for n in dropped_names(p.read_text()) & named:
            found.setdefault(n, []).append(str(p.relative_to(REPO)))
    # a transient feature is dropped after its call (features.unload)
    ns: dict = {}
    src = (FIRMWARE / "ocpp_client" / "features.py").read_text()
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "TRANSIENT":
            ns["TRANSIENT"] = ast.literal_eval(node.value)
    for t in ns["TRANSIENT"] + ("authorization",):
        if "ocpp_client." + t in named:
            found.setdefault("ocpp_client." + t, []).append("ocpp_client/features.py TRANSIENT")
    assert not found, f"resident modules that are dropped somewhere: {found}"


def test_the_drop_scan_sees_a_drop() -> None:
    src = 'from supervisor import drop\n_OPEN = ("net.url", "ssl")\ndef f():\n    drop("log")\n'
    assert dropped_names(src) == {"net.url", "ssl", "log"}
    assert dropped_names('X = ("log",)\n') == set()
