// borne's ESP32 wallbox (mpconfigboard.cmake says why it is a board of its own).
#define MICROPY_HW_BOARD_NAME "borne wallbox"
#define MICROPY_HW_MCU_NAME "ESP32"

// Not used by the charger: left out of the image.
#define MICROPY_PY_BLUETOOTH (0)
#define MICROPY_PY_ESPNOW (0)
#define MICROPY_PY_NETWORK_LAN (0)
