# Pin map of the borne ESP32 wallbox. It fits both modules the charger runs on: an ESP32-WROOM-32E
# with 8 MiB of flash (N8; the BORNE_WALLBOX image, no PSRAM) and an ESP32-WROVER-E (PSRAM: the
# .mpy application on ESP32_GENERIC-SPIRAM, README "Installing a charger").
#
# Only board.py reads this file. Every number here is a GPIO number.
#
# Rules the map follows, and why:
# - GPIO 6-11 are wired to the module's SPI flash: never used.
# - GPIO 1/3 are UART0, the REPL and the link mpremote and esptool use: left alone.
# - Strapping pins are read at reset and decide the boot mode: 0 (download mode when low), 2 (must
#   be low or floating for download), 5 (SDIO timing), 12 (flash voltage: high selects 1.8 V and the
#   module does not boot), 15 (boot log). None of them drives anything that can hurt: 0, 2 and 12
#   are unused; 5 is only the RFID reader's chip select, which idles high anyway; 15 is an input
#   (the pilot-loss comparator), whose level at reset only decides whether the boot log prints.
# - GPIO 34, 35, 36 and 39 are inputs only, with no internal pull resistors: they take the inputs
#   that have an external pull-up or are analog.
# - ADC2 (GPIO 0, 2, 4, 12-15, 25-27) cannot be read while Wi-Fi runs: the pilot sense uses ADC1.
# - Erratum (ESP32 ECO3 and earlier, "3.11"): powering the ADC or the radio pulls GPIO 36 and 39
#   low for about 80 ns. GPIO 36 is analog here (the glitch is harmless) and 39 is the setup
#   button, which is debounced; the safety inputs (relay feedback, RCD) sit on 34 and 35.
# - Outputs whose state matters while the chip is in reset or booting (relay coil, pilot) are on
#   pins that stay high-impedance through reset and boot (no boot-time PWM like 1, 3, 5, 14, 15),
#   with an external resistor that holds the safe level until board.py drives them.
# - GPIO 16/17 are unused: on a WROVER module they are the PSRAM's (not on its pads), and
#   MicroPython's SPIRAM build has no Pin(16)/Pin(17) at all. That leaves no free pin for the
#   PN532: the readers are alternatives (one fitted at the factory, provisioning's "rfid"), so
#   they share one header on the VSPI pins.
from micropython import const

# ---- Control pilot --------------------------------------------------------------------------
# PWM out (LEDC) into the +-12 V pilot driver (op-amp, non-inverting: GPIO high = +12 V).
# An external 10 k pull-up to 3V3 keeps the pilot at +12 V (state A, "no offer") while the GPIO
# floats during reset, boot and flashing.
CP_PWM = const(25)
CP_PWM_HZ = const(1000)

# Pilot sense: ADC1 channel 0 (GPIO 36, input only). The pilot line reaches the ADC through a
# three-resistor divider with an offset from the 3V3 rail:
#
#     CP ---[ R1 100k ]---+---[ R2 21.5k ]--- 3V3
#                         |
#                         +---[ R3 16.2k ]--- GND
#                         |
#                         +---[ 100 pF ]--- GND, BAT54S clamp to 3V3/GND --> GPIO 36
#
# Node voltage:  Vadc = (Vcp/R1 + 3.3/R2) / (1/R1 + 1/R2 + 1/R3)
#                     = 0.084574 * Vcp + 1.2981 V
# so -13 V .. +13 V on the pilot maps to 0.199 V .. 2.398 V (+12 V -> 2.313 V, -12 V -> 0.283 V).
# That window sits inside the 150-2450 mV range in which the ESP32 ADC at 11 dB attenuation is
# linear and eFuse-calibrated (ADC.read_uv). A 0..3.1 V window would put +12 V in the ADC's
# compressed top end and -12 V below its 150 mV floor, where A and B and the diode check blur.
# Inverted, in integers (Vadc in mV, result in mV):
#
#     Vcp = Vadc * (1 + R1/R2 + R1/R3) - 3.3 V * R1/R2
#         = Vadc * 11.824 - 15349 mV
#     cp_mv = adc_mv * CP_GAIN_X1000 // 1000 - CP_OFFSET_MV
#
# (adc_mv <= 3300, so adc_mv * 11824 stays below 2**30: a small int, no heap allocation.)
# The network loads the pilot with about 109 k, under 1 % of the 1 k source resistor's signal.
# With the 100 pF the node settles with tau = (R1 || R2 || R3) * C = 8.46 k * 100 pF = 0.85 us,
# well inside the shortest high phase (10 % of 1 ms).
CP_ADC = const(36)
CP_GAIN_X1000 = const(11824)
CP_OFFSET_MV = const(15349)

# Pilot loss: a comparator (LM393, open collector) on the pilot's high level, threshold +10.5 V:
# a peak hold (Schottky diode into 100 nF, 47 k bleed: tau 4.7 ms, a few periods) ahead of the
# same kind of divider makes it a level, not a copy of the PWM. Its output is released (high,
# external 10 k pull-up) while the high level is above +10.5 V, which is state A (no EV, or the
# pilot wire lost: the EV's resistor is gone). An unplug while charging makes it rise within a
# millisecond or two: the interlock (Contactor, below) cuts the coil at once, and its interrupt
# wakes the connector.
# GPIO 15 is a strapping pin: its level at reset only selects the boot log; it outputs a short
# PWM at boot, so a 1 k series resistor keeps that from fighting the comparator's output.
CP_LOST = const(15)

# ---- Contactor -------------------------------------------------------------------------------
# Relay coil driver (logic-level MOSFET, flyback diode on the coil): high = coil energised = main
# contacts closed. An external 100 k pull-down on the gate keeps the contactor open while the
# GPIO floats (reset, boot, flashing, a crash into the ROM).
# Interlock, in hardware: a second MOSFET in series on the coil's low side conducts only while the
# RCD module reports healthy (its output conducting) and the pilot-loss comparator's output is
# held low (a pilot below +10.5 V: an EV there): a trip or an unplug de-energises the coil within
# the comparator's and the coil's own times, whatever the firmware does or how long its loop is
# blocked. MicroPython's ESP32 port runs no Python in an interrupt (its pin ISR only schedules
# the handler), so only hardware can keep that promise; the firmware drives RELAY low as well
# once its handler runs, and never drives it high against either input.
RELAY = const(26)

# Relay feedback: the contactor's auxiliary contact (normally open, mechanically linked to the
# main contacts) switches an optocoupler whose open-collector output pulls GPIO 34 low. External
# 10 k pull-up to 3V3 (34 has no internal pulls). Low = main contacts closed.
RELAY_FB = const(34)
RELAY_FB_CLOSED_LEVEL = const(0)

# ---- Residual current monitor (RDC-DD module, 6 mA DC / 30 mA AC) -----------------------------
# Trip output: the module's open-collector output conducts (pulls low) while it is healthy and
# releases on a trip. External 10 k pull-up to 3V3 (35 has no internal pulls), so a trip, a
# module without power and a broken wire all read high = tripped (fail-safe).
RCD_TRIP = const(35)
RCD_TRIPPED_LEVEL = const(1)
# Test output: drives the module's test input through an NPN transistor; high = inject the test
# current (the module must then trip within its specified time).
RCD_TEST = const(27)

# ---- Face ------------------------------------------------------------------------------------
# One WS2812 status LED; a 330 R series resistor and a 74AHCT1G125 level shifter to 5 V.
LED_WS2812 = const(4)
# Piezo buzzer through an NPN transistor, driven with PWM (LEDC). GPIO 14 outputs a short PWM burst
# at boot: on the buzzer that is at worst a click, which is why the buzzer, and nothing that
# matters, sits here.
BUZZER = const(14)
# Setup button to GND, external 10 k pull-up (39 has no internal pulls). Pressed = low.
# The board times each press; what a press length means is the hotspot's (hotspot/claim.py).
BUTTON = const(39)
BUTTON_PRESSED_LEVEL = const(0)

# ---- RFID reader -----------------------------------------------------------------------------
# One reader header, whichever reader is fitted: the PN532 uses the MFRC522's MOSI (23, driven
# by the chip either way) and MISO (19, read either way) pins; its UART and I2C are routed there
# through the GPIO matrix.
# PN532 on UART2 (HSU, 115200 8N1). ESP32 TX -> PN532 RXD, ESP32 RX <- PN532 TXD.
RFID_UART_ID = const(2)
PN532_TX = const(23)
PN532_RX = const(19)
PN532_BAUD = const(115200)
# The same PN532 module speaks I2C instead when its mode switch says so; its SDA/TXD and SCL/RXD
# share the header pins, so the I2C alternative uses the same two wires: SDA on the pin wired to
# the module's SDA/TXD (our RX), SCL on the module's SCL/RXD (our TX). The module carries the
# I2C pull-ups. Hardware I2C bus 0, 100 kHz, PN532 address 0x24.
RFID_I2C_ID = const(0)
PN532_I2C_SDA = const(19)
PN532_I2C_SCL = const(23)
PN532_I2C_HZ = const(100000)
PN532_I2C_ADDR = const(0x24)
# MFRC522 (alternative reader) on SPI2 ("VSPI") at its IO_MUX pins: SCK 18, MOSI 23, MISO 19, SS 5.
# SS on strapping pin 5 is harmless: 5 idles high at boot and SS is active low. RST low = the
# chip's hard power-down.
RFID_SPI_ID = const(2)
MFRC522_SCK = const(18)
MFRC522_MOSI = const(23)
MFRC522_MISO = const(19)
MFRC522_SS = const(5)
MFRC522_RST = const(13)
MFRC522_SPI_HZ = const(4000000)

# ---- Energy meter ----------------------------------------------------------------------------
# Modbus RTU meter on UART1 through an RS-485 transceiver (MAX3485-class). UART1's default pins
# (9/10) are flash pins, so it is routed to 22/21 through the GPIO matrix.
METER_UART_ID = const(1)
RS485_TX = const(22)  # -> transceiver DI
RS485_RX = const(21)  # <- transceiver RO
# DE and /RE tied together: high = drive the bus, low = listen. External 10 k pull-down so the
# transceiver listens (never jams the bus) while the GPIO floats.
RS485_DE_RE = const(32)
METER_BAUD = const(9600)
# S0 pulse output of a pulse meter (DIN 43864 / IEC 62053-31: open collector, pulses >= 30 ms).
# External 4.7 k pull-up to 3V3 (the internal ~45 k is too weak for a cable); counted on falling
# edges by the chip's pulse counter (PCNT unit 0, machine.Counter: no interrupt, none lost while
# the loop is blocked; at most ~10 pulses a second at 1000 imp/kWh and 32 A x 3).
S0_PULSE = const(33)
