# The application part of a freeze manifest, included by each board's manifest.py: every package
# of firmware/ (ocpp_client, rfid, meter, led, hotspot, ota, evse, store, ...) and every top-level
# module, found by listing the folder so that a new package needs no edit here. main.py is not
# frozen: MicroPython runs a frozen main.py in preference to the filesystem's, and the choice of
# the application slot it makes must stay updatable (boards/esp32_wallbox/manifest.py).
# package() takes the .py files of a folder tree; a folder is a package if it holds any
# (MicroPython imports folders without __init__.py as namespace packages). Non-Python files are
# not frozen: what the charger serves must ship as Python modules (e.g. a page as a bytes
# constant). manifestfile.py runs an included manifest from its own folder (boards/).
import os

_FIRMWARE = os.path.normpath(os.path.join(os.getcwd(), "..", "firmware"))
_NOT_FROZEN = ("main.py",)


def _has_python(top):
    for _dir, _subdirs, files in os.walk(top):
        if any(f.endswith(".py") for f in files):
            return True
    return False


for _name in sorted(os.listdir(_FIRMWARE)):
    _path = os.path.join(_FIRMWARE, _name)
    if os.path.isdir(_path):
        if _name != "__pycache__" and _has_python(_path):
            package(_name, base_path=_FIRMWARE)  # noqa: F821 (manifestfile.py's API)
    elif _name.endswith(".py") and _name not in _NOT_FROZEN:
        module(_name, base_path=_FIRMWARE)  # noqa: F821

# The modules a charger imports at boot and keeps: with a MicroPython built with
# boards/micropython/frozen-static-functions.patch, mpy-tool makes their functions (but closures
# and those with defaults that are not constants) and their simple classes at build time, in
# flash, where each import would otherwise make them in the heap: ~18 KiB of a 32-bit charger's
# heap (ARCHITECTURE.md "Memory").
# A stock MicroPython ignores the list. No module loaded on use and dropped may be here: its slot
# would keep its globals alive until its next import (tests/test_frozen_manifest.py checks it).
# A board's manifest adds its own (board.py, ...).
RESIDENT = (
    "app", "boardbase", "clock", "eventlog", "heapwatch", "link", "log", "peripherals",
    "settings", "store", "store.journal", "supervisor",
    "diag.agentlog", "diag.secevents",
    "evse.connector", "evse.limits", "evse.offer", "evse.pilot", "evse.safety",
    "led.buzzer", "led.patterns", "led.status",
    "meter.meter", "meter.modbus", "meter.modbusmeter",
    "ocpp_client.client", "ocpp_client.config", "ocpp_client.errors", "ocpp_client.features",
    "ocpp_client.meterdata", "ocpp_client.metering", "ocpp_client.rpc",
    "ocpp_client.transactions", "ocpp_client.txqueue", "ocpp_client.ws",
    "rfid.pn532", "rfid.reader",
    # MicroPython's own, frozen by the port's manifest (asyncio.funcs is loaded on use)
    "asyncio", "asyncio.core", "asyncio.event", "asyncio.stream",
)


def frozen_file(name):
    # "store" -> "store/__init__.py" (a package), "store.journal" -> "store/journal.py"
    path = name.replace(".", "/")
    if os.path.isdir(os.path.join(_FIRMWARE, path)) or name == "asyncio":
        return path + "/__init__.py"
    return path + ".py"


# mpy-tool.py (run by makemanifest.py after this manifest, as a child process) reads it.
os.environ["MICROPY_FROZEN_STATIC_FUN"] = ",".join(frozen_file(n) for n in RESIDENT)
