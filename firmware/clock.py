# Wall-clock time in unix seconds UTC, whatever the port's epoch, set from the network.
#
# MicroPython's time.time() counts from 2000 on the ESP32 and from 1970 on the unix port;
# OCPP speaks UTC date-times. Everything above this module uses unix seconds. The date
# arithmetic is done here (days_from_civil) rather than with time.mktime/gmtime, whose epoch
# and range differ per port (the ESP32's gmtime covers 2000-2135 only as 32-bit seconds).
import time

import log

# Seconds from 1970-01-01 to the port's epoch.
EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0

# A board may install fn(unix_seconds) to set its hardware RTC when the network gives the time.
rtc_hook = None
# fn(step_seconds, source) after each setting (the SettingSystemTime security event, diag/).
listeners = []

_off = 0  # unix UTC = local seconds + _off
_source = None
# A boot that began with the clock untrusted (an ESP32 cold-booted offline says 2000-01-01):
# the steps that set it since, summed, in ms. A time read before is off by this much (txqueue.py
# moves the times of the records it stamped meanwhile). Read off the clock itself around each
# setting, not from the whole seconds asked: an RTC set to the second (the ESP32 board's hook)
# drops the fraction, and a record stamped before would come up to 1 s off against those after.
shift_ms = 0
_blind = False


def _local():
    return int(time.time()) + EPOCH_OFFSET


def now():
    return _local() + _off


def now_ms():
    try:
        ms = time.time_ns() // 1000000
    except AttributeError:
        ms = int(time.time()) * 1000
    return ms + (EPOCH_OFFSET + _off) * 1000


def set_utc(unix_seconds, source="net"):
    # Trust the network's time; the RTC (if the board has a hook) follows, and then the offset
    # is whatever the local clock still misses (0 once the RTC is set).
    global _off, _source, shift_ms, _blind
    unix_seconds = int(unix_seconds)
    step = unix_seconds - now()
    blind = _blind or not trusted()
    was = now_ms()
    if rtc_hook:
        try:
            rtc_hook(unix_seconds)
        except Exception as e:
            log.exc("clock", "rtc hook", e)
    _off = unix_seconds - _local()
    if blind:
        _blind = True
        shift_ms += now_ms() - was
    if _source is None or step > 2 or step < -2:
        log.info("clock", "set from %s to %s (step %ds)", source, iso(unix_seconds), step)
    _source = source
    for fn in listeners:
        fn(step, source)


def synced():
    return _source is not None


_FLOOR = const(1735689600)  # 2025-01-01T00:00:00Z: a clock behind it was never set


def trusted():
    # Set from the network, or a clock that kept the time (an RTC; the unix port's host clock):
    # an ESP32 cold-booted without one says 2000-01-01.
    return _source is not None or now() >= _FLOOR


def source():
    return _source


# -- calendar: proleptic Gregorian, days counted from 1970-01-01 --------------------------------


def days_from_civil(y, m, d):
    # Eras of 400 years (146097 days) make leap years regular; March-based years put the leap
    # day last.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def _mdays(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def iso(ts=None):
    # OCPP date-time: "2026-11-21T05:37:00Z".
    if ts is None:
        ts = now()
    ts = int(ts)
    days, s = divmod(ts, 86400)
    y, m, d = civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, s // 3600, s // 60 % 60, s % 60)


def iso_ms(ms):
    # With milliseconds: "2026-11-21T05:37:00.123Z". Two sessions started in one second by one
    # tag must not look like a retransmission of one StartTransaction.
    return "%s.%03dZ" % (iso(ms // 1000)[:-1], ms % 1000)


def _num(s, a, b):
    t = s[a:b]
    if len(t) != b - a or not t.isdigit():
        raise ValueError("bad date-time: %s" % s)
    return int(t)


def parse_iso(s):
    # "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)" -> unix seconds UTC (fraction dropped).
    # No zone is read as UTC: OCPP 1.6 times are UTC, and some servers omit the Z.
    if not isinstance(s, str) or len(s) < 19:
        raise ValueError("bad date-time: %r" % (s,))
    if s[4] != "-" or s[7] != "-" or s[10] not in "Tt " or s[13] != ":" or s[16] != ":":
        raise ValueError("bad date-time: %s" % s)
    y = _num(s, 0, 4)
    mo = _num(s, 5, 7)
    d = _num(s, 8, 10)
    h = _num(s, 11, 13)
    mi = _num(s, 14, 16)
    sec = _num(s, 17, 19)
    if not (1 <= mo <= 12 and 1 <= d <= _mdays(y, mo) and h < 24 and mi < 60 and sec <= 60):
        raise ValueError("bad date-time: %s" % s)
    i = 19
    n = len(s)
    if i < n and s[i] in ".,":
        i += 1
        # The fraction's digits, skipped without taking them one by one (each one-character
        # string would be interned as a qstr for good)
        z = s[i:]
        k = len(z) - len(z.lstrip("0123456789"))
        if k == 0:
            raise ValueError("bad date-time: %s" % s)
        i += k
    off = 0
    if i < n:
        z = s[i:]
        if z in ("Z", "z"):
            pass
        elif z[0] in "+-" and (len(z) == 6 and z[3] == ":" or len(z) == 5):
            oh = _num(z, 1, 3)
            om = _num(z, len(z) - 2, len(z))
            if oh > 23 or om > 59:
                raise ValueError("bad date-time: %s" % s)
            off = oh * 3600 + om * 60
            if z[0] == "-":
                off = -off
        else:
            raise ValueError("bad date-time: %s" % s)
    # A leap second (":60") lands on the next second, which is as close as unix time gets.
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off
