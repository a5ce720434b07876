"""The freeze manifests' list of resident modules (boards/firmware_manifest.py RESIDENT).

With MicroPython built with boards/micropython/frozen-static-functions.patch, a resident
module's plain functions (and its classes that only define such functions and constants) are
made in flash at build time and reach its globals through a slot that the GC keeps:
- a module listed there and then dropped would keep its globals in the heap until its next
  import, so the list names only modules that exist and that nothing drops;
- a class made in flash has a fixed dict (a store into it raises AttributeError), so no code
  stores an attribute into a resident module's class. mpy-tool sees such a store within the
  class's own module (and leaves that class to run time); this test sees the others.
"""

import ast
from pathlib import Path

from borne import resident as borne_resident

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
# Names whose calls drop the modules named in their arguments (supervisor.drop; rare() drops
# the module it imported for the call; features.unload the feature's).
_DROPPERS = {"drop", "rare", "_drop"}


def resident() -> tuple[str, ...]:
    return borne_resident.firmware()


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
    transient = borne_resident.assigned(FIRMWARE / "ocpp_client" / "features.py", "TRANSIENT")
    for t in (*transient, "authorization"):
        if "ocpp_client." + t in named:
            found.setdefault("ocpp_client." + t, []).append("ocpp_client/features.py TRANSIENT")
    assert not found, f"resident modules that are dropped somewhere: {found}"


def test_the_drop_scan_sees_a_drop() -> None:
    src = 'from supervisor import drop\n_OPEN = ("net.url", "ssl")\ndef f():\n    drop("log")\n'
    assert dropped_names(src) == {"net.url", "ssl", "log"}
    assert dropped_names('X = ("log",)\n') == set()


def _class_names() -> set[str]:
    out = set()
    for name in resident():
        if name.startswith("asyncio"):
            continue
        path = FIRMWARE / name.replace(".", "/")
        path = path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"
        out |= {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)}
    return out


def stores_into(source: str, classes: set[str]) -> list[int]:
    """Lines of `C.x = ...` / `mod.C.x = ...` (also +=, del, setattr(C, ...)) for a C in
    `classes`."""
    out = []

    def is_class(node: ast.AST) -> bool:
        return ((isinstance(node, ast.Name) and node.id in classes)
                or (isinstance(node, ast.Attribute) and node.attr in classes))

    for n in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(n, ast.Assign):
            targets = n.targets
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)):
            targets = [n.target]
        elif isinstance(n, ast.Delete):
            targets = n.targets
        elif (isinstance(n, ast.Call) and getattr(n.func, "id", "") in ("setattr", "delattr")
              and n.args and is_class(n.args[0])):
            out.append(n.lineno)
        for t in targets:
            if isinstance(t, ast.Attribute) and is_class(t.value):
                out.append(n.lineno)
    return out


def test_no_code_stores_into_a_resident_class() -> None:
    classes = _class_names()
    found = {str(p.relative_to(REPO)): lines for p in FIRMWARE.rglob("*.py")
             if (lines := stores_into(p.read_text(), classes))}
    assert not found, f"stores into a resident module's class (fixed in flash): {found}"


def test_the_store_scan_sees_a_store() -> None:
    src = "import rpc\nrpc.Rpc.x = 1\nRpc.y += 2\nsetattr(Rpc, 'z', 3)\nself.x = 4\n"
    assert stores_into(src, {"Rpc"}) == [2, 3, 4]


BOARDS = REPO / "boards"


def test_the_boards_resident_modules_exist_and_are_never_dropped() -> None:
    for board in ("esp32_wallbox", "unix_sim"):
        files = borne_resident.board_files(board)
        assert "board.py" in files
        assert all((BOARDS / board / f).exists() for f in files), (board, files)
        names = {f[:-3] for f in files}
        for p in [*FIRMWARE.rglob("*.py"), *(BOARDS / board).glob("*.py")]:
            assert not dropped_names(p.read_text()) & names, (board, p)


def test_the_modules_held_with_code_in_the_heap_exist() -> None:
    # build.py interns their str constants in the .mpy build (borne.resident.modules)
    for name in borne_resident.HELD_IN_HEAP:
        assert (FIRMWARE / (name.replace(".", "/") + ".py")).exists(), name
