# MicroPython's `machine` module of the ESP32 port (1.28), emulated for the unix port so the
# ESP32 board's own code runs in the simulation (host side only, never shipped). Every name
# here exists in micropython-esp32-stubs (tests/test_board_esp32.py checks it); behaviour
# follows the port's C code (ports/esp32/machine_*.c), errors included, and where the stubs
# describe more than the ESP32 port takes (they document every port), the port's C code wins:
#   Pin(6..11) (the SPI flash), Pin(20, 24, 28..31) or beyond 39 -> ValueError("invalid pin")
#     (the port itself accepts 6-11 and the chip then hangs: the emulation refuses them), and
#     Pin(16, 17) when emulating the SPIRAM build (--spiram 1: a WROVER's PSRAM pins);
#   Pin(34..39, Pin.OUT) -> ValueError("pin can only be input"); Pin(alt=) -> TypeError, and
#     a Pin has no mode() (machine_pin.c: init, value, on, off, toggle, irq);
#   ADC on a pin without an ADC channel -> ValueError("invalid pin"); an ADC2 pin (0, 2, 4,
#     12-15, 25-27) read while Wi-Fi is active -> OSError(110, "ESP_ERR_TIMEOUT") (the port
#     ignores adc_oneshot_read()'s timeout and returns a meaningless reading: raised here, so
#     the mistake fails in CI); atten outside 0..3, width outside 9..12 -> ValueError;
#   UART(rxbuf <= 128, or txbuf 1..128) -> OSError(1, "ESP_FAIL") (uart_driver_install());
#   Timer.init(hard=True), WDT(id != 0), WDT(timeout <= 0) -> ValueError; RTC(args) ->
#     TypeError.
#
# The circuit around the chip is the one boards/esp32_wallbox/pins.py documents (imported as
# `pins`); the simulation drives it through sim/mpy/_wires.py:
#   - pilot: the LEDC output on pins.CP_PWM is the pilot driver's input; the ADC on
#     pins.CP_ADC reads the pilot through the resistor divider of pins.py (R1 100k to the pilot,
#     R2 21.5k to 3V3, R3 16.2k to GND), on the PWM's high or low phase by the time in the
#     period; pins.CP_LOST is the comparator output (high while the pilot is above +10.5 V).
#   - contactor: pins.RELAY drives the coil through the board's safety interlock (pins.py: an
#     RCD trip or a lost pilot de-energises it whatever the chip does): the coil's state is
#     "relay" to the host; pins.RELAY_FB and
#     pins.RCD_TRIP follow the host's "fb" / "rcd"; pins.RCD_TEST high makes the RCD module trip
#     (its self-test); pins.BUTTON is pressed (low) for "btn <ms>"; pins.S0_PULSE falls once a
#     pulse.
#   - UART pins.RFID_UART_ID on the PN532's wires is the --rfid socket (HSU); the same wires as
#     I2C reach the PN532 in I2C mode (sim/mpy/_pn532_i2c.py bridges it to the same socket);
#     SPI pins.RFID_SPI_ID with SS on pins.MFRC522_SS is an MFRC522 (sim/mpy/_mfrc522.py).
#   - UART pins.METER_UART_ID on the RS-485 wires is the --meter socket, only while
#     pins.RS485_DE_RE drives the bus; a UART whose baud rate, bits, parity or stop bits differ
#     from the line's (--meter-line, default "9600 8 E 1") gets no valid answer: its frames
#     never reach the meter, as on a real bus.
import micropython
import utime

import _rtc
import _thread
import _wires
import pins

# ---- the chip's pins ---------------------------------------------------------------------------
_NPINS = 40
_MISSING = (20, 24, 28, 29, 30, 31)
_FLASH = (6, 7, 8, 9, 10, 11)
# The SPIRAM build (ESP32_GENERIC-SPIRAM on a WROVER module; "--spiram 1") has no Pin(16) or
# Pin(17): they are the PSRAM's (ports/esp32/machine_pin.h).
_PSRAM = (16, 17) if _wires.arg("spiram") else ()
_FIRST_INPUT_ONLY = 34
_ADC1 = (32, 33, 34, 35, 36, 37, 38, 39)
_ADC2 = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27)

_level = bytearray(_NPINS)  # what each pin reads: the circuit's level, or the output latch
_out = bytearray(_NPINS)  # 1: configured as an output
_irq = [None] * _NPINS  # (handler, trigger, pin) per pin
_coil = [0]  # the contactor's coil: pins.RELAY through the interlock
_pwm = [None] * _NPINS  # the PWM on a pin, if any
_idle_low = bytearray(_NPINS)  # 1: a deinit PWM's pin, held low by the stopped LEDC channel
_cp = [12000, 12000]  # the pilot's high and low levels (mV), from the host
_host_rcd = [0]  # the RCD module's trip output as the host drives it
_wifi = [0]  # set by network.WLAN: ADC2 cannot be read while the radio runs
# What the chip did to its outputs, in order (the last 200): ("out", gpio, level),
# ("pwm", gpio, freq, duty_u16), ("deinit", gpio). For tests of the board's sequences.
events = []


def _event(e):
    events.append(e)
    if len(events) > 200:
        del events[0]


def _gpio(id):
    if isinstance(id, Pin):
        return id.id
    if (not isinstance(id, int) or not 0 <= id < _NPINS or id in _MISSING or id in _FLASH
            or id in _PSRAM):
        raise ValueError("invalid pin")
    return id


def _set_input(g, v):
    # The circuit changes a pin's level; its interrupt fires on the matching edge.
    v = 1 if v else 0
    old = _level[g]
    if old == v or _out[g]:
        return
    _level[g] = v
    c = _counters.get(g)
    if c is not None and c._edge & (Counter.RISING if v else Counter.FALLING):
        c._n += c._step  # the pulse counter counts in hardware: no interrupt, nothing lost
    if g == pins.RCD_TRIP or g == pins.CP_LOST:
        _interlock()
    irq = _irq[g]
    if irq is None:
        return
    handler, trigger, pin = irq
    if not trigger & (Pin.IRQ_RISING if v else Pin.IRQ_FALLING):
        return
    # The port's ISR only schedules the handler (ports/esp32/machine_pin.c: no hard pin IRQs):
    # it runs on the main thread between bytecodes, never inside a blocking call, and an edge
    # that finds the queue full (MICROPY_SCHEDULER_DEPTH, 8 there) is lost.
    try:
        micropython.schedule(handler, pin)
    except RuntimeError:
        pass


def _interlock():
    # The coil is energised only while pins.RELAY is driven high, the RCD module is healthy and
    # the pilot is not lost: the hardware interlock of pins.py, which needs no code to run. Called
    # from the main thread (the output) and the host lines' thread (the inputs): each caller
    # checks again after its send, so the last state sent is the circuit's.
    while True:
        on = 1 if (_out[pins.RELAY] and _level[pins.RELAY]
                   and _level[pins.RCD_TRIP] != pins.RCD_TRIPPED_LEVEL
                   and not _level[pins.CP_LOST]) else 0
        if on == _coil[0]:
            return
        _coil[0] = on
        # Stamped with the chip's clock (CLOCK_MONOTONIC, as the host's time.monotonic()): when
        # the coil switched, not when the host got round to reading it.
        _wires.send("relay %d %d" % (on, utime.ticks_us()))


def _output(g, v):
    # The chip drives a pin: tell the circuit what it does.
    _drive(g, v)


def _drive(g, v):
    v = 1 if v else 0
    _event(("out", g, v))
    _level[g] = v
    if g == pins.RELAY:
        _interlock()
    elif g == pins.CP_PWM and _pwm[g] is None and not _idle_low[g]:
        _wires.send("pwm %d" % (100 if v else 0))
    elif g == pins.RCD_TEST:
        _rcd_level()


def _rcd_level():
    tripped = _host_rcd[0] or (_out[pins.RCD_TEST] and _level[pins.RCD_TEST])
    lvl = pins.RCD_TRIPPED_LEVEL if tripped else 1 - pins.RCD_TRIPPED_LEVEL
    _set_input(pins.RCD_TRIP, lvl)


# The circuit at power-up: contacts open, RCD healthy, button up, pilot at +12 V (state A).
_level[pins.RELAY_FB] = 1 - pins.RELAY_FB_CLOSED_LEVEL
_level[pins.RCD_TRIP] = 1 - pins.RCD_TRIPPED_LEVEL
_level[pins.BUTTON] = 1 - pins.BUTTON_PRESSED_LEVEL
_level[pins.CP_LOST] = 1
_level[pins.S0_PULSE] = 1
_level[pins.CP_PWM] = 1  # its external pull-up


# ---- host lines ------------------------------------------------------------------------------
def _on_cp(w):
    _cp[0] = int(w[1])
    _cp[1] = int(w[2])
    _set_input(pins.CP_LOST, _cp[0] > 10500)


def _on_fb(w):
    closed = w[1] == b"1"
    _set_input(pins.RELAY_FB, pins.RELAY_FB_CLOSED_LEVEL if closed else
               1 - pins.RELAY_FB_CLOSED_LEVEL)


def _on_rcd(w):
    _host_rcd[0] = 1 if w[1] == b"1" else 0
    _rcd_level()


def _press(ms):
    _set_input(pins.BUTTON, pins.BUTTON_PRESSED_LEVEL)
    utime.sleep_ms(ms)
    _set_input(pins.BUTTON, 1 - pins.BUTTON_PRESSED_LEVEL)


def _on_btn(w):
    _thread.start_new_thread(_press, (int(w[1]),))


_s0 = [0]  # pulses the host has sent so far


def _on_s0(w):
    total = int(w[1])
    while _s0[0] < total:
        _s0[0] += 1
        _set_input(pins.S0_PULSE, 0)
        _set_input(pins.S0_PULSE, 1)


def _stall(ms):
    _wires.stall(ms)  # a blocking call: nothing else runs on the main thread meanwhile


def _on_stall(w):
    micropython.schedule(_stall, int(w[1]))


def _wire():
    if _wires.arg("io"):
        _wires.on("cp", _on_cp)
        _wires.on("fb", _on_fb)
        _wires.on("rcd", _on_rcd)
        _wires.on("btn", _on_btn)
        _wires.on("s0", _on_s0)
        _wires.on("stall", _on_stall)


# ---- Pin ---------------------------------------------------------------------------------------
class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    # (v1.28's ESP32 Pin takes mode, pull, value, drive and hold: no alt; hold is left out,
    # as the stubs lack it)
    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None):
        self.id = _gpio(id)
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None):
        g = self.id
        taken = False
        if mode is not None and mode != -1:
            if mode & 2 and g >= _FIRST_INPUT_ONLY:  # GPIO_MODE_DEF_OUTPUT
                raise ValueError("pin can only be input")
            if _pwm[g] is not None or _idle_low[g]:
                if _pwm[g] is not None:
                    _pwm[g]._detach()  # a mode change takes the pin back from the LEDC
                _idle_low[g] = 0
                taken = True
            _out[g] = 1 if mode & 2 else 0
        if value is not None:
            if _out[g]:
                _output(g, value)
            else:
                pass  # the latch is set for when the pin becomes an output
        if taken and g == pins.CP_PWM and value is None:
            _wires.send("pwm %d" % (100 if _out[g] and _level[g] else 0))
        _wire()

    def value(self, x=None):
        if x is None:
            return _level[self.id]
        if _out[self.id]:
            _output(self.id, x)

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def toggle(self):
        self.value(1 - _level[self.id])

    def irq(self, handler=None, trigger=3, wake=None):
        # (v1.28's ESP32 Pin.irq takes these three only: hard=, priority= raise TypeError)
        g = self.id
        _irq[g] = None if handler is None else (handler, trigger, self)
        _wire()
        return None

    def __repr__(self):
        return "Pin(%d)" % self.id


# ---- Counter (esp32.PCNT, ports/esp32/modules/machine.py) -------------------------------------
_counters = {}  # gpio -> the Counter counting its edges


class Counter:
    # One singleton per PCNT unit id, as the port's: Counter(id) alone returns it unchanged;
    # with a source it is configured afresh and reset to 0.
    RISING = 1
    FALLING = 2
    UP = 1
    DOWN = 2
    _INSTANCES = {}

    def __new__(cls, unit_id, *args, **kwargs):
        self = cls._INSTANCES.get(unit_id)
        if self is None:
            self = object.__new__(cls)
            cls._INSTANCES[unit_id] = self
        return self

    def __init__(self, unit_id, *args, filter_ns=0, **kwargs):
        self._unit_id = unit_id
        if hasattr(self, "_n") and not (args or kwargs):
            return
        self._configure(*args, **kwargs)

    def _configure(self, src, edge=RISING, direction=UP):
        g = _gpio(src)
        self._unhook()
        self._edge = edge
        self._step = -1 if direction == Counter.DOWN else 1
        self._n = 0
        _counters[g] = self

    def init(self, *args, **kwargs):
        self.__init__(self._unit_id, *args, **kwargs)

    def deinit(self):
        self._unhook()
        if hasattr(self, "_n"):
            del self._n

    def _unhook(self):
        for k in [k for k, c in _counters.items() if c is self]:
            del _counters[k]

    def value(self, value=None):
        if not hasattr(self, "_n"):
            raise RuntimeError("not initialised")
        n = self._n
        if value is not None:
            self._n = value
        return n


# ---- bitstream -----------------------------------------------------------------------------------
_pixel = [None]  # the colour the status LED last showed


def bitstream(pin, encoding, timing, data):
    # Bit-banged output; encoding 0 (high/low pulse times) only, as extmod/machine_bitstream.c
    # (ValueError "encoding" for another, "requested length 4 but object has length N" for a
    # timing of another length). On pins.LED_WS2812, an output (the board sets it, as the
    # neopixel driver does), it lights the status LED, a WS2812 taking green, red, blue: its
    # colour goes to the simulation ("pixel rrggbb") when it changes.
    if encoding != 0:
        raise ValueError("encoding")
    if len(timing) != 4:
        raise ValueError("requested length 4 but object has length %d" % len(timing))
    g = pin.id
    if g != pins.LED_WS2812 or not _out[g] or len(data) < 3:
        return
    px = "%02x%02x%02x" % (data[1], data[0], data[2])
    if px != _pixel[0]:
        _pixel[0] = px
        _wires.send("pixel " + px)


# ---- ADC ---------------------------------------------------------------------------------------
# The pilot sense network of pins.py: R1 to the pilot, R2 to 3V3, R3 to GND.
_R1 = 100000
_R2 = 21500
_R3 = 16200


def _pilot_now_mv():
    p = _pwm[pins.CP_PWM]
    if p is None:
        return _cp[0] if _level[pins.CP_PWM] else _cp[1]
    d = p._duty
    if d >= 65535:
        return _cp[0]
    if d <= 0:
        return _cp[1]
    # 1 kHz: high for the first duty/65535 of every period
    return _cp[0] if (utime.ticks_us() % 1000) * 65535 < d * 1000 else _cp[1]


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 9
    WIDTH_10BIT = 10
    WIDTH_11BIT = 11
    WIDTH_12BIT = 12

    def __init__(self, pin, *, atten=None):
        g = _gpio(pin)
        if g not in _ADC1 and g not in _ADC2:
            raise ValueError("invalid pin")
        self._g = g
        self._atten = ADC.ATTN_11DB  # machine_adc.c: ADC_ATTEN_MAX unless given
        self.init(atten=atten)

    def init(self, *, atten=None):
        if atten is not None:
            self.atten(atten)

    def read_uv(self):
        g = self._g
        if g in _ADC2 and _wifi[0]:
            raise OSError(110, "ESP_ERR_TIMEOUT")
        if g == pins.CP_ADC:
            vcp = _pilot_now_mv() / 1000
            v = (vcp / _R1 + 3.3 / _R2) / (1 / _R1 + 1 / _R2 + 1 / _R3)
        else:
            v = 3.3 if _level[g] else 0.0
        full = (1.1, 1.5, 2.2, 3.3)[self._atten & 3]
        return int(min(v, full) * 1000000)

    def read_u16(self):
        full = (1.1, 1.5, 2.2, 3.3)[self._atten & 3]
        return min(65535, int(self.read_uv() / (full * 1000000) * 65535))

    def read(self):
        return self.read_u16() >> 4

    def atten(self, atten):
        if not 0 <= atten <= 3:
            raise ValueError("invalid attenuation")
        self._atten = atten

    def width(self, bits):
        if not 9 <= bits <= 12:
            raise ValueError("invalid bit-width")


# ---- PWM (LEDC) --------------------------------------------------------------------------------
class PWM:
    def __init__(self, dest, *, freq=None, duty_u16=None, duty_ns=None):
        g = _gpio(dest)
        if g >= _FIRST_INPUT_ONLY:
            raise ValueError("pin can only be input")
        self._g = g
        self._freq = 5000
        self._duty = 32768
        self._t0 = None
        if _pwm[g] is not None:
            _pwm[g]._detach()
        _out[g] = 1
        self.init(freq=freq, duty_u16=duty_u16, duty_ns=duty_ns)

    def init(self, *, freq=None, duty_u16=None, duty_ns=None):
        # One configuration of the LEDC channel: frequency and duty take effect together.
        g = self._g
        _pwm[g] = None  # not attached while half-configured: no glitch reaches the circuit
        self._live = True
        _idle_low[g] = 0
        try:
            if freq is not None:
                self.freq(freq)
            if duty_u16 is not None:
                self.duty_u16(duty_u16)
            elif duty_ns is not None:
                self.duty_ns(duty_ns)
        finally:
            _pwm[g] = self
        self._changed()

    def freq(self, value=None):
        if value is None:
            return self._freq
        if not 1 <= value <= 40000000:
            raise ValueError("freqency must be from 1Hz to 40MHz")
        self._freq = int(value)
        self._changed()

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65535")
        self._duty = int(value)
        self._changed()

    def duty_ns(self, value=None):
        period_ns = 1000000000 // self._freq
        if value is None:
            return self._duty * period_ns // 65535
        if not 0 <= value <= period_ns:
            raise ValueError("duty_ns must be from 0 to %d ns" % period_ns)
        self.duty_u16(min(65535, value * 65535 // period_ns))

    def duty(self, value=None):
        if value is None:
            return self._duty >> 6
        self.duty_u16(value << 6)

    def _changed(self):
        g = self._g
        if _pwm[g] is not self:
            return
        _event(("pwm", g, self._freq, self._duty))
        if g == pins.CP_PWM:
            _wires.send("pwm %s" % _pct(self._duty))
        elif g == pins.BUZZER:
            if self._duty and self._t0 is None:
                self._t0 = utime.ticks_ms()
            elif not self._duty and self._t0 is not None:
                ms = utime.ticks_diff(utime.ticks_ms(), self._t0)
                self._t0 = None
                _wires.send("tone %d %d" % (self._freq, ms))

    def _detach(self):
        if self._g == pins.BUZZER and self._t0 is not None:
            self._duty = 0
            self._changed()
        _pwm[self._g] = None

    def deinit(self):
        # The channel stops (its timer and channel freed) even when a Pin() init has taken the
        # pin back meanwhile; a pin still routed to it idles low: ledc_stop() (machine_pwm.c)
        # until a Pin() mode-setting init takes it back.
        g = self._g
        if not self._live:
            return
        self._live = False
        _event(("deinit", g))
        if _pwm[g] is self:
            self._detach()
            _idle_low[g] = 1
            if g == pins.CP_PWM:
                _wires.send("pwm 0")


def _pct(d):
    # duty_u16 -> percent, as the simulation reads the pilot's duty
    p = d * 10000 // 65535
    return "%d.%02d" % (p // 100, p % 100)


# ---- UART --------------------------------------------------------------------------------------
_PARITY_NAME = {None: "N", 0: "E", 1: "O"}


class UART:
    INV_TX = 32
    INV_RX = 4
    INV_RTS = 64
    INV_CTS = 8
    RTS = 1
    CTS = 2
    IRQ_RX = 1
    IRQ_BREAK = 2
    IRQ_RXIDLE = 4096

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None,
                 txbuf=256, rxbuf=256, timeout=0, timeout_char=0, invert=0):
        if id not in (0, 1, 2):
            raise ValueError("UART(%d) does not exist" % id)
        self._id = id
        self._sock = None
        self._rx = bytearray()
        self._line = None
        self._rs485 = False
        self._unsent = 0  # bytes written and not yet on the wire (flush() waits for them)
        self.init(baudrate, bits, parity, stop, tx=tx, rx=rx, txbuf=txbuf, rxbuf=rxbuf,
                  timeout=timeout, invert=invert)

    def init(self, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None,
             txbuf=256, rxbuf=256, timeout=0, timeout_char=0, invert=0):
        if bits not in (5, 6, 7, 8):
            raise ValueError("invalid data bits")
        if parity not in (None, 0, 1):
            raise ValueError("invalid parity")
        if stop not in (1, 2):
            raise ValueError("invalid stop bits")
        if invert & ~(UART.INV_TX | UART.INV_RX | UART.INV_RTS | UART.INV_CTS):
            raise ValueError("invalid inversion mask")
        # uart_driver_install(): the RX ring above the 128-byte FIFO, the TX one 0 or above it
        # (ESP_FAIL, which check_esp_err() raises as OSError(1, "ESP_FAIL"))
        if rxbuf <= 128 or 0 < txbuf <= 128:
            raise OSError(1, "ESP_FAIL")
        # Default pins: UART1's (9, 10) are the SPI flash's, refused like any flash pin.
        tx = _gpio(tx if tx is not None else (1, 10, 17)[self._id])
        rx = _gpio(rx if rx is not None else (3, 9, 16)[self._id])
        if tx >= _FIRST_INPUT_ONLY:
            raise ValueError("pin can only be input")
        self._cfg = (int(baudrate), bits, _PARITY_NAME[parity], stop)
        self._timeout = timeout
        if self._sock is None:
            if (tx, rx) == (pins.PN532_TX, pins.PN532_RX):
                self._sock = _wires.connect("rfid")
                self._line = (115200, 8, "N", 1)  # the PN532's HSU
            elif (tx, rx) == (pins.RS485_TX, pins.RS485_RX):
                self._sock = _wires.connect("meter")
                self._rs485 = True
                w = (_wires.arg("meter-line") or "9600 8 E 1").split()
                self._line = (int(w[0]), int(w[1]), w[2], int(w[3]))
            if self._sock is not None:
                self._sock.setblocking(False)

    def deinit(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _on_line(self):
        return self._sock is not None and self._cfg == self._line

    def _pull(self):
        if self._sock is None:
            return
        try:
            b = self._sock.recv(512)
        except OSError:
            return
        if b and self._on_line():
            self._rx.extend(b)
        # bytes received at the wrong baud rate or parity are framing errors: dropped

    def any(self):
        self._pull()
        return len(self._rx)

    def read(self, nbytes=-1):
        self._pull()
        if not self._rx:
            return None
        n = len(self._rx) if nbytes is None or nbytes < 0 else min(nbytes, len(self._rx))
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return out

    def readinto(self, buf, nbytes=-1):
        self._pull()
        if not self._rx:
            return None
        n = len(buf) if nbytes is None or nbytes < 0 else min(nbytes, len(buf))
        n = min(n, len(self._rx))
        buf[:n] = self._rx[:n]
        self._rx = self._rx[n:]
        return n

    def readline(self):
        self._pull()
        i = self._rx.find(b"\n")
        return self.read(i + 1 if i >= 0 else -1)

    def write(self, buf):
        n = len(buf)
        self._unsent += n
        if self._sock is None:
            return n
        if self._rs485 and not _level[pins.RS485_DE_RE]:
            return n  # the transceiver passes the bytes only while DE drives the bus
        if not self._on_line():
            return n  # the far end sees framing or parity errors and ignores the frame
        mv = memoryview(buf)
        sent = 0
        while sent < n:
            try:
                sent += self._sock.send(mv[sent:])
            except OSError:
                utime.sleep_ms(1)
        return n

    def flush(self):
        # Returns once the last stop bit has left: the air time of what write() queued.
        n = self._unsent
        self._unsent = 0
        if n:
            baud, bits, parity, stop = self._cfg
            utime.sleep_us(n * (1 + bits + (parity != "N") + stop) * 1000000 // baud)

    def txdone(self):
        return True

    def sendbreak(self):
        pass



# ---- I2C and SPI -------------------------------------------------------------------------------
class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000):
        if id not in (0, 1):
            raise ValueError("I2C(%d) doesn't exist" % id)
        scl = _gpio(scl) if scl is not None else (18, 25)[id]
        sda = _gpio(sda) if sda is not None else (19, 26)[id]
        self._dev = None
        if (sda, scl) == (pins.PN532_I2C_SDA, pins.PN532_I2C_SCL):
            import _pn532_i2c

            self._dev = _pn532_i2c.Bridge(pins.PN532_I2C_ADDR)

    def init(self, *, scl=None, sda=None, freq=400000):
        pass

    def _target(self, addr):
        d = self._dev
        if d is None or not d.present(addr):
            raise OSError(19)  # MP_ENODEV: no ACK from that address
        return d

    def scan(self):
        return [self._dev.addr] if self._dev is not None and self._dev.present(self._dev.addr) \
            else []

    def writeto(self, addr, buf, stop=True):
        self._target(addr).write(buf)
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        self._target(addr).read_into(buf)

    def readfrom(self, addr, nbytes, stop=True):
        b = bytearray(nbytes)
        self.readfrom_into(addr, b, stop)
        return bytes(b)


class SPI:
    MSB = 0
    LSB = 1

    def __init__(self, id, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        if id not in (1, 2):
            raise ValueError("SPI(%d) doesn't exist" % id)
        for p in (sck, mosi, miso):
            if p is not None:
                _gpio(p)
        self._chip = None
        if id == pins.RFID_SPI_ID:
            import _mfrc522

            self._chip = _mfrc522.chip()

    def init(self, *args, **kw):
        pass

    def deinit(self):
        pass

    def _selected(self):
        return self._chip is not None and _out[pins.MFRC522_SS] and not _level[pins.MFRC522_SS] \
            and _level[pins.MFRC522_RST]

    def write_readinto(self, write_buf, read_buf):
        if self._selected():
            self._chip.write_readinto(write_buf, read_buf)
        else:
            for i in range(len(read_buf)):
                read_buf[i] = 0xFF  # MISO pulled up: nobody answers

    def write(self, buf):
        self.write_readinto(buf, bytearray(len(buf)))

    def readinto(self, buf, write=0x00):
        self.write_readinto(bytes([write]) * len(buf), buf)

    def read(self, nbytes, write=0x00):
        b = bytearray(nbytes)
        self.readinto(b, write)
        return bytes(b)


# ---- Timer, RTC, WDT ---------------------------------------------------------------------------
class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id, *args, **kw):
        if id not in (0, 1, 2, 3):
            raise ValueError("invalid Timer number")
        self._id = id
        self._gen = 0
        if args or kw:
            self.init(*args, **kw)

    def init(self, *, mode=1, period=-1, freq=-1, callback=None, hard=False):
        if hard:
            raise ValueError("hard Timers are not implemented")
        self._gen += 1
        if freq > 0:
            period = 1000 // freq or 1
        if period < 0 or callback is None:
            return
        _thread.start_new_thread(self._run, (self._gen, mode, period, callback))

    def _run(self, gen, mode, period, cb):
        # Soft timer callbacks on the ESP32: scheduled, run by the main thread.
        while True:
            utime.sleep_ms(period)
            if gen != self._gen:
                return
            micropython.schedule(cb, self)
            if mode == Timer.ONE_SHOT:
                return

    def deinit(self):
        self._gen += 1

    def value(self):
        return 0


class RTC:
    # machine_rtc.c: RTC() takes no arguments; init() takes 8 fields with the hour 4th (no
    # weekday; the 7th is ignored, the 8th is the microseconds), datetime() the weekday 4th.
    def __init__(self):
        pass

    def init(self, datetime):
        if len(datetime) != 8:
            raise ValueError("requested length 8 but object has length %d" % len(datetime))
        y, m, d, hh, mm, ss, _x, us = datetime
        self.datetime((y, m, d, 0, hh, mm, ss, us))

    def datetime(self, datetimetuple=None):
        import time

        if datetimetuple is None:
            s, us = _rtc.seconds_us()
            t = time.gmtime(s)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], us)
        y, m, d, _wd, hh, mm, ss, us = datetimetuple
        _rtc.set_seconds(time.mktime((y, m, d, hh, mm, ss, 0, 0)), us)

    def memory(self, data=None):
        return b""


_wdt = [None]  # (timeout_ms, last feed ticks)
# A soft reset does not stop the watchdog (ports/esp32/main.c's soft-reset cleanup leaves the
# task WDT subscription of machine_wdt.c alone): the next boot must feed it in time. The chip's
# state across that reset is this file beside the NVS (esp32.py's directory), read and removed
# when the next process imports this module; reset_cause() is then SOFT_RESET.
_WDT_FILE = "wdt_soft_reset.json"
_cause = [1]  # PWRON_RESET


class WDT:
    # Once started it cannot be stopped; not fed within the timeout, the chip resets (the host
    # is told "reset 1", then the process stops at once and the simulation boots it again).
    def __init__(self, *, id=0, timeout=5000):
        if id != 0:
            raise ValueError()
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        first = _wdt[0] is None
        _wdt[0] = [max(1, int(timeout)), utime.ticks_ms()]
        if first:
            _thread.start_new_thread(_watch, ())

    def feed(self):
        _wdt[0][1] = utime.ticks_ms()


def _watch():
    while True:
        utime.sleep_ms(20)
        timeout, fed = _wdt[0]
        if utime.ticks_diff(utime.ticks_ms(), fed) > timeout:
            _wires.send("reset 1")
            _wires.die()


def _wdt_file():
    import esp32

    return esp32._path(_WDT_FILE)


def _carry_wdt():
    # At import: a watchdog armed before a soft reset runs on, from its last feed (the host's
    # monotonic ticks are the chip's). A file older than its timeout is a power cut's leftover.
    import json
    import os

    try:
        with open(_wdt_file()) as f:
            timeout, fed = json.load(f)
        os.remove(_wdt_file())
    except (OSError, ValueError):
        return
    _cause[0] = SOFT_RESET
    if utime.ticks_diff(utime.ticks_ms(), fed) <= timeout:
        _wdt[0] = [timeout, fed]
        _thread.start_new_thread(_watch, ())


# ---- the chip ----------------------------------------------------------------------------------
def reset():
    _wires.send("reset 1")
    raise SystemExit(4)  # the simulation boots the agent again


def soft_reset():
    if _wdt[0] is not None:
        import json

        with open(_wdt_file(), "w") as f:
            json.dump(_wdt[0], f)
    _wires.send("reset 0")
    raise SystemExit(4)


def unique_id():
    # The factory MAC address in eFuse: fixed per device, kept next to its NVS.
    import esp32

    return esp32._efuse_mac()


def freq(hz=None):
    if hz is None:
        return 160000000


def idle():
    utime.sleep_ms(1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def reset_cause():
    return _cause[0]


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_carry_wdt()
