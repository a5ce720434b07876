"""Write a store document onto the simulated charger's flash before it boots (the format of
firmware/store: a "B1 <seq> <version> <crc32> <length>" header line, then the JSON body)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any


def seed(flash: Path, name: str, data: dict[str, Any], version: int = 1) -> Path:
    body = json.dumps(data).encode()
    folder = flash / "data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_bytes(b"B1 1 %d %08x %d\n" % (version, zlib.crc32(body), len(body)) + body)
    return path


def read(flash: Path, name: str) -> dict[str, Any]:
    """A store document as the charger left it on flash: the JSON body after its header line."""
    raw = (flash / "data" / f"{name}.json").read_bytes()
    doc: dict[str, Any] = json.loads(raw.split(b"\n", 1)[1])
    return doc
