"""The simulated ESP32's flash outside its filesystem, from the host: NVS and OTA data.

The agent-side emulation (``sim/mpy/esp32.py``, MicroPython) keeps them in files in the device's
flash directory; this module reads and writes the same files, so host tools (provisioning a
simulated charger, tests) see what the chip would hold. The formats are described at the top of
``sim/mpy/esp32.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

NVS_FILE = "nvs.json"
OTADATA_FILE = "otadata.json"

NvsValue = int | bytes


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def nvs_read(state_dir: Path) -> dict[str, dict[str, NvsValue]]:
    """Every committed NVS entry: {namespace: {key: int | bytes}}."""
    out: dict[str, dict[str, NvsValue]] = {}
    spaces = _read(Path(state_dir) / NVS_FILE).get("namespaces", {})
    for ns, items in spaces.items():
        d: dict[str, NvsValue] = {}
        for key, (typ, value) in items.items():
            d[key] = bytes.fromhex(value) if typ == "blob" else int(value)
        out[ns] = d
    return out


def nvs_write(state_dir: Path, namespace: str, key: str, value: NvsValue | None) -> None:
    """Set (or with None erase) one entry and commit it, as esp32.NVS + commit() would."""
    if not 0 < len(namespace) <= 15 or not 0 < len(key) <= 15:
        raise ValueError("NVS namespace and key names are 1-15 characters")
    path = Path(state_dir) / NVS_FILE
    doc = _read(path)
    spaces = doc.setdefault("namespaces", {})
    items = spaces.setdefault(namespace, {})
    if value is None:
        items.pop(key, None)
    elif isinstance(value, int):
        if not -(2**31) <= value < 2**31:
            raise ValueError("an NVS i32 holds -2**31 .. 2**31-1")
        items[key] = ["i32", value]
    else:
        items[key] = ["blob", bytes(value).hex()]
    doc["version"] = 1
    _write(path, doc)


def provision(state_dir: Path, doc: dict[str, Any]) -> None:
    """Write the ESP32 board's provisioning document (NVS "borne"/"prov", JSON)."""
    blob = json.dumps(doc).encode()
    if len(blob) > 2048:
        raise ValueError(f"provisioning is {len(blob)} bytes; the board reads at most 2048")
    nvs_write(state_dir, "borne", "prov", blob)


def otadata(state_dir: Path) -> dict[str, str]:
    """The OTA boot choice: {"boot": label, "state": ..., "prev": label} (defaults: ota_0)."""
    d = _read(Path(state_dir) / OTADATA_FILE)
    return {"boot": "ota_0", "state": "valid", "prev": "ota_0", **d}
