# Freeze manifest of a unix port that holds the application frozen, as the ESP32 image does
# (boards/esp32_wallbox/manifest.py): the memory benchmark measures the data heap with the
# bytecode, its tables and its names in the interpreter's image instead of estimating it. From a
# MicroPython 1.28 checkout (with its lib/mbedtls and lib/micropython-lib submodules), built
# 32-bit, so that words, GC blocks and bytes are an ESP32's size (Debian's gcc-multilib):
# `make frozen MICROPYTHON_SRC=/path/to/micropython` (the Makefile holds the make line) puts it
# in build/frozen/micropython-borne, where `make bench` finds it.
#
# (The patch it applies, boards/micropython/: the resident modules' functions and simple classes
# in flash, as the charger's image holds them; FROZEN_PATCH=no measures stock MicroPython's
# frozen figures. -march=x86: ocpp_client/ws.py has native code; FFI and BTREE: libraries
# nothing here uses; USER_C_MODULES adds memtypes, the heap by object type, which heapwatch.py
# prints with each block map.) A 64-bit build (without MICROPY_FORCE_32BIT, -march=x64) also
# works; the bench then gives its figures in wK, as for the other runtimes. Then
# `borne sim --frozen build/frozen/micropython-borne`, or BORNE_FROZEN_MICROPYTHON set to it for
# `borne bench memory-budget`. The interpreter holds the firmware as it was when built: build it
# again after a change. Run from this folder by MicroPython's tools/manifestfile.py.
import os

# The unix port's own set (asyncio, ssl, mip, ...), as in the stock interpreter.
include("$(PORT_DIR)/variants/standard/manifest.py")
# The application: every firmware module but main.py (boards/firmware_manifest.py).
include("../firmware_manifest.py")

_BOARD = os.getcwd()

# This board's modules.
module("board.py", base_path=_BOARD)
module("simboard.py", base_path=_BOARD)
module("simparts.py", base_path=_BOARD)

# This board's resident modules join the application's (boards/firmware_manifest.py RESIDENT).
os.environ["MICROPY_FROZEN_STATIC_FUN"] = os.environ.get("MICROPY_FROZEN_STATIC_FUN", "") + ",board.py"
