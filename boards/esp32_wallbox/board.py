# The ESP32 wallbox board: the charger's hardware on `machine`, behind the interface in
# boards/README.md. Pins, dividers and wiring are documented in pins.py; this file only drives them.
#
# Safety first: Board() opens the contactor and puts the pilot at a steady +12 V (no offer) before
# it touches anything else, and reset() does the same before restarting. Two inputs do not wait
# for the event loop: an RCD trip and the loss of the pilot (pins.CP_LOST) de-energise the coil
# through the board's interlock (pins.py), in hardware, so a loop stalled by a garbage collection
# or a blocking call cannot delay it. MicroPython's ESP32 port has no hard pin interrupts (its
# ISR only schedules the handler, which runs between bytecodes), so no code could: the handlers
# here then bring the relay output in line and wake the connector; set_relay(True) is refused
# while either input says no.
# Everything else (and the session, its status and its report) is the connector state machine's,
# on the event loop: the other interrupts only set the `edge` flag. A watchdog (machine.WDT, fed
# by a task of the loop) resets a loop hung for WDT_MS; the contactor's pull-down holds it open
# through the reset.
#
# Provisioning (factory identity and per-device secrets) lives in the ESP32's NVS partition, not in
# the filesystem: namespace "borne", key "prov", one blob holding a UTF-8 JSON object of at most
# 2048 bytes, e.g. {"cp_id", "serial", "model", "vendor", "hotspot_key", "conn_password", ...}
# and "rfid": "pn532_uart" (the default) | "pn532_i2c" | "mfrc522" (the reader fitted at the
# factory); over it, key "inst" (at most 512 bytes), the installation ("meter_model": a Modbus
# model or "pulse", "meter_baud", "meter_parity", "phases", "grid_meter_model", ...).
# Provisioning that is missing or corrupt gives {}: the charger stays unprovisioned and
# safe (relay open, pilot +12 V) and says why in the log; an unknown reader is logged and there is
# no reader.
# `borne provision` writes "prov" once per device (esp32.NVS("borne").set_blob("prov", doc);
# commit()); `borne install` (or `borne provision` with the same options) writes "inst".
# Why NVS: a factory reset wipes /data, and MicroPython reformats (or refuses) a filesystem it cannot
# mount; the identity printed on the device's label must survive both. Only a full flash erase
# removes it. Nothing here invents a default for a missing secret: an unprovisioned board returns
# an empty dict and the application stays unprovisioned.
import asyncio
import gc
import io
import os
import time

import esp32
import machine
from machine import ADC, PWM, UART, Pin, bitstream
from micropython import const

import pins
from boardbase import BoardBase

NAME = "esp32_wallbox"

_DUTY_FULL = const(65535)  # duty_u16 65535 = 100 %: the LEDC output stays high, no low pulse
_BUZZ_DUTY = const(32768)  # square wave: loudest for a piezo
_TONE_TIMER_ID = const(0)  # hardware timer 0 stops the buzzer; the board owns it
# The status LED, one WS2812 written with machine.bitstream: high/low times (ns) of a 0 bit, then
# of a 1 bit, at 800 kHz (the stock neopixel driver's timing=1), its three bytes green, red, blue.
# (That driver's module and object would hold ~0.4 KB of heap for good, and a tuple per update.)
_WS2812_NS = const((400, 850, 800, 450))

# Pilot sampling. The ADC is not synchronised with the PWM, so the board reads it back to back and
# keeps the extremes: the highest readings are the high plateau, the lowest the low plateau. The
# second-highest and second-lowest are used, so one noisy reading cannot fake a level. One
# read_uv() plus the loop takes roughly 25-40 us on the ESP32, and the loop is adaptive:
# - at 0 % or 100 % duty the level is steady: _STEADY_SAMPLES readings suffice;
# - while the PWM runs, it samples until it has seen at least _PHASE_SAMPLES readings above and
#   below _SPLIT_MV (so on both plateaus) over at least one whole period, which takes 1-2 periods
#   even at 10 % duty (100 us high).
# - If one phase is still missing after 2 periods there is none (pilot shorted, EV fault): the
#   extremes are what the pilot really shows.
# Time only counts while sampling is dense (gaps under _GAP_US): if the task is interrupted (Wi-Fi,
# a soft IRQ), the pause cannot hide a phase. _SAMPLE_CAP_US of wall time bounds the loop anyway;
# the connector's debounce (safety.PilotWatch) absorbs a single reading cut short by that cap.
_STEADY_SAMPLES = const(8)
_PHASE_SAMPLES = const(3)
_SPLIT_MV = const(1500)  # between the lowest high plateau (D, +3 V) and the low plateau (-12 V)
_PERIOD_US = const(1000)  # 1 kHz
_GAP_US = const(200)
_SAMPLE_CAP_US = const(8000)
_SAMPLE_FRESH_MS = const(15)  # pilot_mv() reuses a sample younger than this
_PILOT_POLL_MS = const(20)  # the watcher samples 50 times a second: well inside the 100 ms budget
_UV_CEILING = const(4000000)  # above any ADC reading (uV)

# Stream ioctl requests and poll flags (MicroPython's stream protocol).
_MP_STREAM_FLUSH = const(1)
_MP_STREAM_POLL = const(3)
_MP_STREAM_CLOSE = const(4)
_EINVAL = const(22)
_POLL_RD = const(1)
_POLL_WR = const(4)

_READERS = ("pn532_uart", "pn532_i2c", "mfrc522")
_BUTTON_MIN_MS = const(50)  # shorter is contact bounce, not a press
_BUTTON_POLL_MS = const(20)  # the pin's level is sampled this often while pressed
_GC_FIRST_AREA = const(56 * 1024)  # v1.28's MICROPY_GC_INITIAL_HEAP_SIZE for the ESP32
_WDT_MS = const(5000)  # the loop must feed the watchdog within this, or the chip resets
_WDT_FEED_MS = const(1000)


def _growth(total, largest):
    # heap_growth()'s rule: up to twice the first area, within the largest free ESP-IDF block.
    return max(0, min(2 * _GC_FIRST_AREA - total, largest - largest // 40 - 2048))


def _cp_mv(uv):
    # ADC microvolts -> pilot millivolts, through the divider documented in pins.py.
    return (uv // 1000) * pins.CP_GAIN_X1000 // 1000 - pins.CP_OFFSET_MV


class _Rs485(io.IOBase):
    # The meter's byte stream: UART1 plus the transceiver's direction pin. write() drives the bus
    # for as long as the bytes take to leave (UART.flush() returns after the last stop bit), then
    # listens again, well before a meter may answer (Modbus leaves 3.5 characters of silence).
    # It blocks for the frame's air time: 8.3 ms for an 8-byte request at 9600 baud.
    # Reads pass straight through. As an io.IOBase with ioctl() it can be polled, so
    # asyncio.StreamReader / StreamWriter work on it exactly as on a bare UART.
    def __init__(self, uart, de):
        self.uart = uart
        self._de = de

    def write(self, buf):
        self._de.value(1)
        try:
            n = self.uart.write(buf)
            self.uart.flush()
        finally:
            self._de.value(0)
        return n

    def read(self, n=-1):
        if n is None or n < 0:
            return self.uart.read()
        return self.uart.read(n)

    def readinto(self, buf, n=-1):
        if n is None or n < 0:
            return self.uart.readinto(buf)
        return self.uart.readinto(buf, n)

    def any(self):
        return self.uart.any()

    def ioctl(self, req, arg):
        if req == _MP_STREAM_POLL:
            ret = 0
            if arg & _POLL_RD and self.uart.any():
                ret |= _POLL_RD
            if arg & _POLL_WR:
                ret |= _POLL_WR
            return ret
        if req in (_MP_STREAM_FLUSH, _MP_STREAM_CLOSE):
            return 0
        return -_EINVAL  # no file descriptor, nothing else supported


def _root():
    # The filesystem's root as the charger sees it: "/" at boot. (Under the unix port's
    # emulation of the chip it is the simulated device's flash directory.)
    d = os.getcwd()
    return d if d.endswith("/") else d + "/"


class Board(BoardBase):
    flash_root = _root() + "data"  # (_root is deleted below, once used)
    EXTRAS = ("rcd_test", "button")

    def __init__(self):
        # 1. Contactor open, before anything else (an external pull-down held it open until now).
        self._relay = Pin(pins.RELAY, Pin.OUT, value=0)
        # 2. Pilot at a steady +12 V: first as a plain GPIO driven high, then handed to the LEDC
        #    at 100 % duty, so there is no instant at -12 V in between. The GPIO's own output latch
        #    stays high underneath, so whenever the PWM is detached the pilot falls back to +12 V.
        Pin(pins.CP_PWM, Pin.OUT, value=1)
        self._cp_pwm = PWM(Pin(pins.CP_PWM), freq=pins.CP_PWM_HZ, duty_u16=_DUTY_FULL)
        self._radio = None  # radio.Radio, made on first use (claim mode, home Wi-Fi)
        # 3. The other outputs at rest.
        self._rcd_test = Pin(pins.RCD_TEST, Pin.OUT, value=0)
        Pin(pins.BUZZER, Pin.OUT, value=0)
        self._de = Pin(pins.RS485_DE_RE, Pin.OUT, value=0)  # listen
        # A soft reset leaves the last boot's watchdog running (ports/esp32/main.c does not stop
        # it): fed here, the boot has its whole timeout again to reach start()'s feeding task.
        if machine.reset_cause() == machine.SOFT_RESET:
            machine.WDT(timeout=_WDT_MS).feed()

        super().__init__()
        # Inputs. The RCD and the pilot-loss comparator (cut the coil in hardware, and) open the
        # relay output in their handler; the other interrupts only set the flag; the connector
        # reads the levels. (The port's Pin.irq takes handler, trigger and wake only.)
        self._fb = Pin(pins.RELAY_FB, Pin.IN)
        self._rcd = Pin(pins.RCD_TRIP, Pin.IN)
        self._cp_lost = Pin(pins.CP_LOST, Pin.IN)
        self._btn = Pin(pins.BUTTON, Pin.IN)
        both = Pin.IRQ_RISING | Pin.IRQ_FALLING
        self._fb.irq(handler=self._on_edge, trigger=both)
        self._rcd.irq(handler=self._on_trip, trigger=both)
        self._cp_lost.irq(handler=self._on_trip, trigger=both)
        self._pressed_at = None  # ticks_ms of the press in progress
        self._held_at = 0  # ticks_ms the button task last saw it held
        self._press_ms = 0  # the last press's length, for the button task
        self._pressed = asyncio.ThreadSafeFlag()
        self._btn.irq(handler=self._on_button, trigger=both)
        self._cp_adc = ADC(Pin(pins.CP_ADC), atten=ADC.ATTN_11DB)
        self._duty = _DUTY_FULL
        # ADC reading (uV) of a +1.5 V pilot: the inverse of _cp_mv().
        self._split_uv = (_SPLIT_MV + pins.CP_OFFSET_MV) * 1000 // pins.CP_GAIN_X1000 * 1000
        self._cp_high = 12000
        self._cp_low = 12000
        self._sampled = time.ticks_add(time.ticks_ms(), -10 * _SAMPLE_FRESH_MS)

        self._px_pin = Pin(pins.LED_WS2812, Pin.OUT)
        self._px = bytearray(3)  # green, red, blue
        bitstream(self._px_pin, 0, _WS2812_NS, self._px)  # dark

        self._buzz = None
        self._tone_timer = None
        self._tone_off_cb = self._tone_off  # bound once: the timer callback allocates nothing
        self._prov = None
        self._rfid = None
        self._meter = None
        self._s0 = None
        self._watcher = None
        self._wdt = None
        try:
            os.mkdir(self.flash_root)
        except OSError:
            pass  # already there

    # ---- identity ----------------------------------------------------------------------------
    def provisioning(self):
        if self._prov is None:
            self._prov = _once().read_provisioning()
        return self._prov

    def hotspot_options(self):
        # Knobs for tests and the factory (hotspot_idle_s, lockout_base_ms, close_grace_ms):
        # provisioning's "hotspot" object; a charger in the field has none.
        opts = self.provisioning().get("hotspot")
        return opts if isinstance(opts, dict) else {}

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self):
        # Buses open on first use (rfid_stream, meter_stream, ...); the pilot needs a watcher,
        # because an analog level raises no interrupt; the button a task that reports presses;
        # the watchdog a task that feeds it (so it starves when the loop hangs).
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_pilot())
            asyncio.create_task(self._button_task())
            self._wdt = machine.WDT(timeout=_WDT_MS)
            asyncio.create_task(self._feed())

    async def _feed(self):
        while True:
            self._wdt.feed()
            await asyncio.sleep_ms(_WDT_FEED_MS)

    def _on_edge(self, _pin):
        self.edge.set()

    def _on_trip(self, _pin):
        # Scheduled by the port's ISR (the interlock has cut the coil already): an RCD trip or a
        # lost pilot opens the relay output too, so the coil stays off once the input clears;
        # the connector sees the inputs at its next look and owns the rest.
        if self._rcd.value() == pins.RCD_TRIPPED_LEVEL or self._cp_lost.value():
            self._relay.value(0)
        self.edge.set()

    def _on_button(self, pin):
        # One call per edge. Any edge ends the press in progress (one that reads pressed was
        # released and pressed again since), counted only as long as the button task saw the
        # pin held, not until now: this handler runs late when the loop was blocked across the
        # release (a Wi-Fi scan, a TLS handshake), and a 9 s press must not read as the 10 s of
        # a factory reset.
        now = time.ticks_ms()
        start = self._pressed_at
        if start is not None:
            self._pressed_at = None
            if time.ticks_diff(now, start) >= _BUTTON_MIN_MS:
                self._press_ms = max(1, time.ticks_diff(self._held_at, start))
        if pin.value() == pins.BUTTON_PRESSED_LEVEL:
            self._pressed_at = self._held_at = now
            self._pressed.set()  # the task samples the pin until the release

    async def _button_task(self):
        # Samples the pin while a press lasts; one on_button(ms) call per press, on the loop,
        # after the release.
        while True:
            await self._pressed.wait()
            while True:
                t = time.ticks_ms()  # before the read: a stall in between only shortens it
                if self._btn.value() == pins.BUTTON_PRESSED_LEVEL:
                    self._held_at = t
                ms = self._press_ms
                self._press_ms = 0  # (no call since the read: no handler ran in between)
                fn = self.on_button
                if ms and fn is not None:
                    try:
                        fn(ms)
                    except Exception as e:
                        _warn("setup button handler: %r", (e,))
                if self._pressed_at is None:
                    break
                await asyncio.sleep_ms(_BUTTON_POLL_MS)

    async def _watch_pilot(self):
        # Sample the pilot 50 times a second and wake the connector whenever either level moves
        # to another 3 V band (A 12, B 9, C 6, D 3, E 0, F -12; the low level shows the diode).
        last = None
        while True:
            self._sample()
            band = ((self._cp_high + 1500) // 3000) * 16 + (self._cp_low + 1500) // 3000
            if band != last:
                last = band
                self.edge.set()
            await asyncio.sleep_ms(_PILOT_POLL_MS)

    # ---- control pilot -----------------------------------------------------------------------
    def _sample(self):
        read = self._cp_adc.read_uv
        split = self._split_uv
        steady = self._duty == 0 or self._duty == _DUTY_FULL
        hi1 = hi2 = -1
        lo1 = lo2 = _UV_CEILING
        n = n_hi = n_lo = 0
        t0 = t_prev = time.ticks_us()
        dense = 0  # microseconds of uninterrupted sampling
        while True:
            v = read()
            n += 1
            if v > split:
                n_hi += 1
            else:
                n_lo += 1
            if v > hi2:
                if v > hi1:
                    hi2 = hi1
                    hi1 = v
                else:
                    hi2 = v
            if v < lo2:
                if v < lo1:
                    lo2 = lo1
                    lo1 = v
                else:
                    lo2 = v
            if steady:
                if n >= _STEADY_SAMPLES:
                    break
                continue
            t = time.ticks_us()
            gap = time.ticks_diff(t, t_prev)
            t_prev = t
            if gap < _GAP_US:
                dense += gap
            if n_hi >= _PHASE_SAMPLES and n_lo >= _PHASE_SAMPLES:
                if dense >= _PERIOD_US:
                    break
            elif dense >= 2 * _PERIOD_US and (n_hi == 0 or n_lo == 0):
                break  # one level only: no PWM on the line (short or fault)
            if time.ticks_diff(t, t0) >= _SAMPLE_CAP_US:
                break
        if hi2 < 0:  # a single reading (cannot happen with the limits above)
            hi2 = hi1
        if lo2 == _UV_CEILING:
            lo2 = lo1
        self._cp_high = _cp_mv(hi2)
        self._cp_low = _cp_mv(lo2)
        self._sampled = time.ticks_ms()

    def _fresh(self):
        age = time.ticks_diff(time.ticks_ms(), self._sampled)
        return 0 <= age <= _SAMPLE_FRESH_MS

    def pilot_mv(self):
        if not self._fresh():
            self._sample()
        return self._cp_high

    def pilot_low_mv(self):
        # At 100 % duty there is no low phase: the "low" level is then the high level.
        if not self._fresh():
            self._sample()
        return self._cp_low

    def set_pwm(self, duty_pct):
        if duty_pct >= 100:
            d = _DUTY_FULL
        elif duty_pct <= 0:
            d = 0
        else:
            # Truncated, never rounded up: an EV reads the duty back as a current (x 0.6 up to
            # 85 %, (d - 64) x 2.5 above it), both rising with the duty, so a truncated duty never
            # reads as more than the offer. Rounded, 51 A (85 %) became 85.0004 %, read with the
            # high range as 52.5 A. (6 A, 10 %, becomes 9.9992 %: 8-10 % reads 6 A.)
            d = int(duty_pct * 655.35)
        self._cp_pwm.duty_u16(d)
        self._duty = d
        # The LEDC applies a new duty at the next period: let the cached sample expire 2 ms from
        # now, so the next reading shows the new waveform.
        self._sampled = time.ticks_add(time.ticks_ms(), 2 - _SAMPLE_FRESH_MS)

    # ---- contactor and safety inputs ---------------------------------------------------------
    def set_relay(self, on):
        if on and (self.rcd_tripped() or self._cp_lost.value()):
            on = False  # the safety inputs say no: never close against them
        self._relay.value(1 if on else 0)

    def relay_feedback(self):
        return self._fb.value() == pins.RELAY_FB_CLOSED_LEVEL

    def rcd_tripped(self):
        return self._rcd.value() == pins.RCD_TRIPPED_LEVEL

    def rcd_test(self, on):
        # Extra to the common interface: inject the RCD module's test current (self-test before a
        # session); rcd_tripped() must then turn True.
        self._rcd_test.value(1 if on else 0)

    def button(self):
        # Extra to the common interface: the setup button, True while pressed. Each press is
        # timed here and reported through on_button(ms) after the release.
        return self._btn.value() == pins.BUTTON_PRESSED_LEVEL

    def meter_pulses(self):
        if self.provisioning().get("meter_model") != "pulse":
            return None
        if self._s0 is None:
            from boardparts import S0

            self._s0 = S0()
        return self._s0

    # ---- face --------------------------------------------------------------------------------
    def led(self, r, g, b):
        px = self._px
        px[0] = g
        px[1] = r
        px[2] = b
        bitstream(self._px_pin, 0, _WS2812_NS, px)

    def led_state(self, color, pattern, brightness):
        # What the light means, on the console next to the telemetry ("@led ...").
        print("@led", color, pattern, brightness)

    def telemetry(self, key, value):
        # Agent facts on the console (UART0), one line each: `borne monitor` and the simulation
        # read them ("@tel <key> <json>").
        import json

        print("@tel", key, json.dumps(value))

    def tone(self, freq_hz, ms):
        # Starts the tone and returns; a one-shot hardware timer sets the duty back to 0.
        # (MicroPython 1.28 gives each distinct frequency its own LEDC timer and never retunes a
        # timer another channel uses, so the buzzer cannot disturb the pilot's 1 kHz.)
        if freq_hz <= 0 or ms <= 0:
            self._tone_off(None)
            return
        try:
            if self._buzz is None:
                self._buzz = PWM(Pin(pins.BUZZER), freq=freq_hz, duty_u16=0)
            else:
                self._buzz.freq(freq_hz)
            self._buzz.duty_u16(_BUZZ_DUTY)
        except ValueError:
            return  # a frequency the LEDC cannot make: stay silent rather than fail the caller
        if self._tone_timer is None:
            self._tone_timer = machine.Timer(_TONE_TIMER_ID)
        self._tone_timer.init(mode=machine.Timer.ONE_SHOT, period=ms, callback=self._tone_off_cb)

    def _tone_off(self, _timer):
        if self._buzz is not None:
            self._buzz.duty_u16(0)

    # ---- buses -------------------------------------------------------------------------------
    def _rfid_kind(self):
        kind = self.provisioning().get("rfid", "pn532_uart")
        return kind if kind in _READERS else None

    def rfid_stream(self):
        # The PN532 in HSU mode: UART2, 115200 8N1, non-blocking reads (asyncio polls it).
        if self._rfid_kind() != "pn532_uart":
            return None
        if self._rfid is None:
            self._rfid = UART(
                pins.RFID_UART_ID,
                baudrate=pins.PN532_BAUD,
                bits=8,
                parity=None,
                stop=1,
                tx=pins.PN532_TX,
                rx=pins.PN532_RX,
                rxbuf=512,
                timeout=0,
                timeout_char=0,
            )
        return self._rfid

    def rfid_driver(self):
        # The readers the board builds itself: a PN532 on I2C (the same two wires), an MFRC522
        # on SPI. None for the PN532 on the UART (rfid_stream()); ValueError for a reader the
        # provisioning names and this board does not know. (Built once, at boot: boardonce.py.)
        kind = self._rfid_kind()
        if kind is None:
            raise ValueError("unknown RFID reader %r in provisioning"
                             % (self.provisioning().get("rfid"),))
        if kind == "pn532_uart":
            return None
        return _once().rfid_driver(kind)

    def meter_stream(self, baud, parity):
        # The Modbus RTU meter on UART1 behind the RS-485 transceiver, at the line settings the
        # installation gives (8 data bits, parity "N", "E" or "O", 1 stop bit). Calling it again
        # re-initialises the same UART.
        uart = UART(
            pins.METER_UART_ID,
            baudrate=baud,
            bits=8,
            parity={"N": None, "E": 0, "O": 1}[parity],
            stop=1,
            tx=pins.RS485_TX,
            rx=pins.RS485_RX,
            rxbuf=512,
            timeout=0,
            timeout_char=0,
        )
        if self._meter is None:
            self._meter = _Rs485(uart, self._de)
        else:
            self._meter.uart = uart
        return self._meter

    def dns_server(self):
        # The home network's resolver, for name lookups that must not block (net/dns.py).
        return self.wlan().dns_server()

    def wlan(self):
        # The Wi-Fi radio (access point for claim mode, station for the home network) behind
        # the interface hotspot/ uses: radio.Radio on network.WLAN. One instance per boot.
        if self._radio is None:
            from radio import Radio

            self._radio = Radio()
        return self._radio

    # ---- clock and restart -------------------------------------------------------------------
    def ntp_server(self):
        # No battery RTC: after a power cut the clock starts at 2000 and is set by SNTP
        # (net/sntp.py; ntptime's server, whose blocking lookup and wait it does not use).
        return "pool.ntp.org", 123

    def set_rtc(self, unix_seconds):
        # The clock module passes seconds since 1970. The ESP32 port counts time.time() from 2000,
        # so no epoch arithmetic is left to the port: the calendar date is computed here (by the
        # clock module's calendar) and the RTC is set from it (weekday 0 = Monday; 1970-01-01 was
        # a Thursday).
        import clock

        s = int(unix_seconds)
        days = s // 86400
        rem = s - days * 86400
        y, m, d = clock.civil_from_days(days)
        wd = (days + 3) % 7
        machine.RTC().datetime((y, m, d, wd, rem // 3600, rem // 60 % 60, rem % 60, 0))

    def _safe(self):
        # Relay open, then the pilot to a plain GPIO driven high (+12 V). PWM.deinit() stops the
        # LEDC channel with its output low and leaves the pin routed to it (machine_pwm.c's
        # ledc_stop): -12 V on the pilot, as a soft reset's own deinit of every channel would
        # give until the next Board(). So the pin is taken back as a GPIO first (Pin() routes
        # it to its output latch, high), and the channel stopped after.
        self._relay.value(0)
        Pin(pins.CP_PWM, Pin.OUT, value=1)
        try:
            self._cp_pwm.deinit()
        except Exception:
            pass
        if self._buzz is not None:
            self._buzz.duty_u16(0)

    def reset(self, hard):
        self._safe()
        if hard:
            machine.reset()
        if self._wdt is not None:
            self._wdt.feed()  # a soft reset leaves it running: the next boot gets its whole time
        machine.soft_reset()

    def heap_growth(self):
        # v1.28 starts the GC heap at 56 KiB and adds an area from the ESP-IDF heap when an
        # allocation fails (MICROPY_GC_SPLIT_HEAP_AUTO). The port sizes that first area so one
        # doubling still leaves Wi-Fi and a TLS connection their RAM: counted up to twice it,
        # and never more than the largest free ESP-IDF block less the new area's own tables
        # (~1/40) and a margin.
        total = gc.mem_free() + gc.mem_alloc()
        if total >= 2 * _GC_FIRST_AREA:
            return 0
        try:
            largest = max(h[2] for h in esp32.idf_heap_info(esp32.HEAP_DATA))
        except Exception:
            return 0
        return _growth(total, largest)

    def app_partitions(self):
        # The OTA app partitions (MicroPython's ESP32_GENERIC-OTA table: ota_0, ota_1); the
        # bootloader rolls back an image that was not marked valid before the next boot. None
        # on an image whose table has none (stock ESP32_GENERIC's factory app:
        # get_next_update() raises OSError ENOENT): interpreter updates are refused.
        run = esp32.Partition(esp32.Partition.RUNNING)
        try:
            return run, run.get_next_update()
        except OSError:
            return None


del _root


def _once():
    # boardonce.py: the board's parts used once or seldom (provisioning, the RFID reader's
    # set-up, SNTP), imported for one use and out of sys.modules again, so their code
    # records and names leave the heap after. (boardparts.py: the S0 counter and the SPI
    # device, kept once made, imported when first asked for.)
    import boardonce
    import sys

    sys.modules.pop("boardonce", None)
    return boardonce


def _warn(msg, args):
    try:
        import log

        log.warn("board", msg, *args)
    except ImportError:
        pass
