# The emulated ESP32's real-time clock (host side only). A cold boot starts it at the ESP32
# port's epoch, 2000-01-01 00:00:00 UTC, as a chip after power-up; machine.RTC().datetime(...)
# and ntptime.settime() set it; time.time() and friends (sim/mpy/time.py) read it.
# It restarts at 2000 at every process start: the real RTC keeps counting through a software
# reset, so the emulation is the harsher case (no valid time after any reboot).
import utime

EPOCH_2000 = 946684800  # unix seconds of 2000-01-01

_base_s = 0  # seconds since 2000 at _base_us
_base_us = utime.ticks_us()
_base_host_ms = utime.ticks_ms()


def seconds_us():
    # -> (seconds since 2000, microseconds into that second)
    us = utime.ticks_diff(utime.ticks_us(), _base_us)
    # ticks_us wraps after ~18 minutes on a 30-bit small int: re-anchor well before that
    if us > 60000000:
        _rebase()
        us = utime.ticks_diff(utime.ticks_us(), _base_us)
    return _base_s + us // 1000000, us % 1000000


def _rebase():
    global _base_s, _base_us
    now = utime.ticks_us()
    us = utime.ticks_diff(now, _base_us)
    _base_s += us // 1000000
    _base_us = utime.ticks_add(now, -(us % 1000000))


def set_seconds(s, us=0):
    global _base_s, _base_us
    _base_s = int(s)
    _base_us = utime.ticks_add(utime.ticks_us(), -int(us))
