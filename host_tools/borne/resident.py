"""The resident modules: imported at boot and never dropped, as the freeze manifests list them.

`boards/firmware_manifest.py` names the application's (`RESIDENT`), and each board's manifest
adds its own file names to `MICROPY_FROZEN_STATIC_FUN`. A frozen build keeps their functions
and classes in flash (boards/micropython/frozen-static-functions.patch); the .mpy build interns
their str constants (build.py). This reads both lists from the manifests' source, so each is
written once.
"""

from __future__ import annotations

import ast
from pathlib import Path

from borne import paths


def assigned(path: Path, name: str) -> tuple[str, ...]:
    """The literal tuple a module-level `name = (...)` of a source gives."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            return tuple(ast.literal_eval(node.value))
    raise ValueError(f"{path} has no {name} tuple")


def firmware(root: Path = paths.REPO) -> tuple[str, ...]:
    """The application's resident modules, dotted (MicroPython's own `asyncio...` included);
    none for a tree without the freeze manifest."""
    path = root / "boards" / "firmware_manifest.py"
    return assigned(path, "RESIDENT") if path.exists() else ()


def board_files(board: str, root: Path = paths.REPO) -> list[str]:
    """The file names a board's manifest adds to the resident list (`board.py`, ...)."""
    path = root / "boards" / board / "manifest.py"
    if not path.exists():
        return []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.BinOp) and isinstance(node.right, ast.Constant):
            return [n for n in str(node.right.value).split(",") if n]
    raise ValueError(f"{path} adds no resident modules")


# Modules the firmware keeps once loaded where its bytecode is in the heap (.mpy files:
# `supervisor.code_in_heap()`), and drops after use where it is not: the CALL checker, loaded by
# rpc.load_checker() once the first connection is up, and the authorization feature with its
# list's updates and reader, from the first tap or list on (authorization.attach).
HELD_IN_HEAP = (
    "ocpp_client.validate", "ocpp_client.authorization", "ocpp_client.auth",
    "ocpp_client.locallist", "ocpp_client.listupdate", "ocpp_client.spooled",
    "ocpp_client.jsonstream",
)


def modules(board: str, root: Path = paths.REPO) -> set[str]:
    """Every module of a board's .mpy build that stays loaded once imported, dotted."""
    return ({*firmware(root), *HELD_IN_HEAP}
            | {f.removesuffix(".py") for f in board_files(board, root)})
