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
