# borne's ESP32 wallbox image: MicroPython's ESP32 port (v1.28.0) with the application frozen in
# (../../esp32_wallbox/manifest.py), for a module with 8 MiB of flash (ESP32-WROOM-32E-N8 and
# the like). From a v1.28.0 checkout with ../frozen-static-functions.patch applied:
#   cd ports/esp32 && make BOARD_DIR=/path/to/borne/boards/micropython/BORNE_WALLBOX
# then flash build-BORNE_WALLBOX/firmware.bin with `borne flash --firmware`.
#
# Why a board of its own rather than ESP32_GENERIC-OTA (4 MiB):
# - an interpreter update (an image bundle) is downloaded to the filesystem, checked, then
#   written into the other app partition; the 4 MiB OTA layout leaves 960 KiB of filesystem,
#   less than one image, so it could never take one. 8 MiB gives two 2.4 MiB app partitions
#   and a 3 MiB filesystem (MicroPython's partitions-8MiBplus-ota.csv);
# - ESP32_GENERIC-OTA already fills most of its 1.5 MiB partition (it compiles for size to fit
#   at all; the plain ESP32_GENERIC app was 1,562 KB at v1.21, ~1,672 KB at v1.23), and the
#   frozen application adds about as much as its .mpy files, ~290 KB;
# - what a charger never uses is left out (Bluetooth: NimBLE and its controller; ESP-NOW;
#   wired Ethernet), and lwIP gets sockets enough for claim mode.
# Not built on this project's machines (no ESP-IDF toolchain here): the image's size is an
# estimate until it is.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/../../esp32_wallbox/manifest.py)
