# The ESP32 port's `time` for the unix port (host side only): the epoch is 2000-01-01 and the
# wall clock is the emulated RTC (sim/mpy/_rtc.py: 2000-01-01 at a cold boot, until NTP or the
# application sets it). Ticks, sleeps and everything else are the unix port's own.
from utime import *  # noqa: F401,F403  (ticks_ms, ticks_us, ticks_diff, ticks_add, sleep_ms, ...)
import utime as _u

import _rtc

_EPOCH = _rtc.EPOCH_2000


def time():
    return _rtc.seconds_us()[0]


def time_ns():
    s, us = _rtc.seconds_us()
    return (s * 1000000 + us) * 1000


def gmtime(secs=None):
    if secs is None:
        secs = time()
    return _u.gmtime(int(secs) + _EPOCH)


localtime = gmtime  # the ESP32 keeps UTC unless a TZ is set, which this firmware never does


def mktime(local_time):
    # UTC, whatever the host's time zone (the unix port's mktime is local time)
    t = local_time
    y, m, d, hh, mm, ss = t[0], t[1], t[2], t[3], t[4], t[5]
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hh * 3600 + mm * 60 + ss - _EPOCH
