# Freeze manifest of the borne ESP32 wallbox firmware. The image is built through borne's board
# definition, which names this manifest (boards/micropython/BORNE_WALLBOX: 8 MiB of flash, two
# OTA app partitions for interpreter updates, a filesystem that holds an image bundle; it says
# why not ESP32_GENERIC-OTA):
#
#   cd micropython && git apply /path/to/borne/boards/micropython/frozen-static-functions.patch
#   cd ports/esp32 && make BOARD_DIR=/path/to/borne/boards/micropython/BORNE_WALLBOX
#
# (The patch, against v1.28.0, makes the resident modules' functions and simple classes in
# flash at build time, not in the heap at import: ~18 KiB of a plain ESP32's heap. Without it the
# image works the same, with stock MicroPython's figures. It has been built and run on the
# 32-bit unix port only: ARCHITECTURE.md "Memory". No ESP32 image has been built on this
# project's machines.)
#
# Write it with `borne flash --firmware build-BORNE_WALLBOX/firmware.bin`.
#
# The frozen code is the factory application: compiled to bytecode at build time and run from
# flash, it costs no RAM for code and is always there. Over-the-air updates never touch it: they
# install an application into a slot folder (/app_a or /app_b) on the filesystem, and the
# filesystem's main.py puts the active slot (named by /boot_slot) at the front of sys.path, so a
# slot's modules override the frozen ones; with no valid slot the frozen factory application runs.
# That is also why main.py itself is NOT frozen: MicroPython runs a frozen main.py in preference to
# the filesystem's, and the slot choice must stay updatable.
#
# This file is executed by MicroPython's tools/manifestfile.py (CPython) with the current directory
# set to this file's folder, so relative paths and os.getcwd() refer to boards/esp32_wallbox/.
# $(PORT_DIR), $(BOARD_DIR), $(MPY_DIR) and $(MPY_LIB_DIR) are expanded in path arguments only.
import os

# The stock ESP32 set: _boot, inisetup, flashbdev, asyncio, neopixel, umqtt.simple/robust, ntptime,
# requests, webrepl, mip, ...
include("$(PORT_DIR)/boards/manifest.py")
# The application: every firmware module but main.py (boards/firmware_manifest.py).
include("../firmware_manifest.py")

_BOARD = os.getcwd()

# This board's modules: `import board`, `pins`, `radio`, `boardonce` and `boardparts` find them
# in the frozen set.
module("board.py", base_path=_BOARD)
module("pins.py", base_path=_BOARD)
module("radio.py", base_path=_BOARD)
module("boardonce.py", base_path=_BOARD)
module("boardparts.py", base_path=_BOARD)

# This board's resident modules join the application's (boards/firmware_manifest.py RESIDENT).
os.environ["MICROPY_FROZEN_STATIC_FUN"] = os.environ.get("MICROPY_FROZEN_STATIC_FUN", "") + ",board.py,pins.py,radio.py"
