# On-target tests for clock: OCPP timestamps (iso/parse_iso), the calendar, the port's epoch
# and the network-set offset.
import time

import clock


def reset(local=None):
    # Module state is global: every test starts unsynced, on the real time module.
    clock._off = 0
    clock._source = None
    clock.rtc_hook = None
    clock.time = local or time
    clock.EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0


def raises(s):
    try:
        clock.parse_iso(s)
    except ValueError:
        return True
    return False


def test_iso_known_values():
    assert clock.iso(0) == "1970-01-01T00:00:00Z"
    assert clock.iso(951782400) == "2000-02-29T00:00:00Z"
    assert clock.iso(1795239420) == "2026-11-21T05:37:00Z"
    assert clock.iso(2**31 - 1) == "2038-01-19T03:14:07Z"
    assert clock.iso(2**31) == "2038-01-19T03:14:08Z"  # past the 32-bit time_t limit
    assert clock.iso(4107542400) == "2100-03-01T00:00:00Z"  # 2100 is not a leap year
    assert clock.iso(4107542400 - 1) == "2100-02-28T23:59:59Z"
    assert clock.iso(-1) == "1969-12-31T23:59:59Z"


def test_parse_known_values():
    assert clock.parse_iso("2026-11-21T05:37:00Z") == 1795239420
    assert clock.parse_iso("2026-11-21T05:37:00.123Z") == 1795239420
    assert clock.parse_iso("2026-11-21T05:37:00.123456789Z") == 1795239420
    assert clock.parse_iso("2026-11-21T06:37:00+01:00") == 1795239420
    assert clock.parse_iso("2026-11-21T11:07:00.5+05:30") == 1795239420
    assert clock.parse_iso("2026-11-20T23:37:00-06:00") == 1795239420  # across midnight
    assert clock.parse_iso("2026-11-21T05:37:00+00:00") == 1795239420
    assert clock.parse_iso("2026-11-21T06:37:00+0100") == 1795239420
    assert clock.parse_iso("2026-11-21t05:37:00z") == 1795239420
    assert clock.parse_iso("2026-11-21T05:37:00") == 1795239420  # no zone: OCPP times are UTC
    assert clock.parse_iso("2038-01-19T03:14:08Z") == 2**31
    assert clock.parse_iso("2106-02-07T06:28:16Z") == 2**32
    assert clock.parse_iso("2016-12-31T23:59:60Z") == clock.parse_iso("2017-01-01T00:00:00Z")


def test_leap_years():
    p = clock.parse_iso
    assert p("2024-02-29T12:00:00Z") - p("2024-02-28T12:00:00Z") == 86400
    assert p("2024-03-01T00:00:00Z") - p("2024-02-28T00:00:00Z") == 2 * 86400
    assert clock.parse_iso("2000-02-29T00:00:00Z") == 951782400  # divisible by 400: leap
    assert raises("2100-02-29T00:00:00Z")  # divisible by 100: not leap
    assert raises("1900-02-29T00:00:00Z")
    assert raises("2026-02-29T00:00:00Z")
    assert not raises("2028-02-29T00:00:00Z")


def test_round_trip_over_centuries():
    t = -86400 * 365
    while t < 7258118400:  # 2200
        s = clock.iso(t)
        assert clock.parse_iso(s) == t, (t, s)
        t += 7654321  # about 3 months, odd: walks through every time of day
    for t in (0, 2**31 - 1, 2**31, 2**32, 4102444799, 4102444800):
        assert clock.parse_iso(clock.iso(t)) == t


def test_days_from_civil_matches_civil_from_days():
    for z in range(-800, 200000, 13):  # 1967..2517
        y, m, d = clock.civil_from_days(z)
        assert clock.days_from_civil(y, m, d) == z, z
    assert clock.days_from_civil(1970, 1, 1) == 0
    assert clock.days_from_civil(2000, 1, 1) * 86400 == 946684800
    assert clock.civil_from_days(0) == (1970, 1, 1)


def test_garbage_raises_value_error():
    bad = [
        "", "nonsense", "2026-11-21", "2026-11-21T05:37Z", "2026-11-21 05:37",
        "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-11-00T00:00:00Z",
        "2026-11-31T00:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T05:60:00Z",
        "2026-11-21T05:37:61Z", "2026-11-21T05:37:00Q", "2026-11-21T05:37:00.Z",
        "2026-11-21T05:37:00+2:00", "2026-11-21T05:37:00+02:0x", "2026-11-21T05:37:00+24:00",
        "2026-11-21T05:37:00+02:00junk", "2026-11-21T05:37:00Z ", "2026/11/21T05:37:00Z",
        "20x6-11-21T05:37:00Z", "2026-11-21T05:37:0aZ", "-026-11-21T05:37:00Z",
        "2026-1x-21T05:37:00Z", "2026-11-21T05:37:00+", "2026-11-21T05:37:00+-1:00",
        None, 12345, b"2026-11-21T05:37:00Z",
    ]
    for s in bad:
        assert raises(s), s


def test_epoch_offset_on_this_port():
    reset()
    if time.gmtime(0)[0] == 2000:
        assert clock.EPOCH_OFFSET == 946684800
    else:
        assert clock.EPOCH_OFFSET == 0
    assert abs(clock.now() - (int(time.time()) + clock.EPOCH_OFFSET)) <= 1
    assert abs(clock.now_ms() // 1000 - clock.now()) <= 1


class Fake2000:
    # An ESP32-like time module: seconds since 2000-01-01.
    def __init__(self, t):
        self.t = t

    def time(self):
        return self.t

    def time_ns(self):
        return self.t * 1000000000 + 250000000

    def gmtime(self, t=None):
        return (2000, 1, 1, 0, 0, 0, 5, 1)


def test_epoch_2000_port():
    # 2026-11-21T05:37:00Z is 1795239420 unix seconds: 848554620 on a 2000-epoch RTC.
    fake = Fake2000(1795239420 - 946684800)
    reset(fake)
    clock.EPOCH_OFFSET = 946684800
    try:
        assert clock.now() == 1795239420
        assert clock.now_ms() == 1795239420250
        assert clock.iso() == "2026-11-21T05:37:00Z"
        clock.set_utc(1795239430, "csms")  # the RTC was 10 s slow
        assert clock.now() == 1795239430
        fake.t += 5
        assert clock.now() == 1795239435
    finally:
        reset()


def test_set_utc_offset_and_synced():
    reset()
    try:
        assert not clock.synced() and clock.source() is None
        target = clock.now() + 3600 * 24 * 400  # local clock far off (no RTC battery)
        clock.set_utc(target, "csms")
        assert clock.synced() and clock.source() == "csms"
        assert abs(clock.now() - target) <= 1
        assert abs(clock.now_ms() - target * 1000) <= 1500
        assert clock.iso() == clock.iso(clock.now())
        clock.set_utc(target - 7200, "ntp")  # steps backwards too
        assert abs(clock.now() - (target - 7200)) <= 1 and clock.source() == "ntp"
    finally:
        reset()


def test_rtc_hook():
    fake = Fake2000(1000)
    reset(fake)
    clock.EPOCH_OFFSET = 946684800
    calls = []

    def hook(unix):
        calls.append(unix)
        fake.t = unix - 946684800  # the board sets its RTC

    try:
        clock.rtc_hook = hook
        clock.set_utc(1795239420, "csms")
        assert calls == [1795239420]
        assert clock._off == 0  # the RTC is right now: no offset left to add
        assert clock.now() == 1795239420

        def broken(unix):
            raise OSError(5)

        clock.rtc_hook = broken
        clock.set_utc(1795239500, "csms")  # a failing RTC must not stop the clock being set
        assert clock.now() == 1795239500
    finally:
        reset()


def test_iso_ms_keeps_milliseconds():
    assert clock.iso_ms(1795240000123) == clock.iso(1795240000)[:-1] + ".123Z"
    assert clock.iso_ms(1795240000007).endswith(":40.007Z")
    assert clock.parse_iso(clock.iso_ms(1795240000999)) == 1795240000


class FakeRtc(Fake2000):
    # An ESP32 RTC with its fraction of a second: set, it takes whole seconds (the board's hook).
    def __init__(self, t, frac_ms):
        super().__init__(t)
        self.frac = frac_ms

    def time_ns(self):
        return self.t * 1000000000 + self.frac * 1000000


def test_a_clock_set_to_the_second_moves_earlier_stamps_by_its_real_step():
    # An ESP32 cold-booted offline (2000-01-01T00:00:10.700) stamps a record, then the CSMS
    # sets the clock; the RTC hook drops the fraction. The record's move (clock.shift_ms,
    # txqrare.restamp) must put it where the new clock puts the same moment: moved by whole
    # seconds it came 700 ms after a record stamped just after the setting (chaos mixed 94033).
    fake = FakeRtc(10, 700)
    reset(fake)
    clock.EPOCH_OFFSET = 946684800
    clock._blind = False
    clock.shift_ms = 0

    def hook(unix):
        fake.t = unix - 946684800
        fake.frac = 0

    try:
        before = clock.now_ms()
        clock.rtc_hook = hook
        clock.set_utc(1795239420, "csms")
        after = clock.now_ms()
        assert after == 1795239420000, after
        assert before + clock.shift_ms == after, (before + clock.shift_ms, after)
    finally:
        reset()
        clock._blind = False
        clock.shift_ms = 0


def test_a_record_of_another_boot_is_moved_by_the_step_saved_for_it():
    # txqrare.restamp: a record stamped before the clock was set in an earlier boot is moved
    # by the step saved for that boot, in ms; one saved by an older build (in s) still counts.
    from ocpp_client import txqrare
    from store import Store

    class Q:
        _prefix = "b2"

    q = Q()
    q.store = Store("flash/shifts")
    q.store.save("txshift", {"b1": 100})
    p = {"timestamp": "2000-01-01T00:00:10.700Z", "meterValue": [
        {"timestamp": "2000-01-01T00:00:11Z"}]}
    txqrare.restamp(q, {"i": "b1-7"}, p)
    assert p == {"timestamp": "2000-01-01T00:01:50.700Z", "meterValue": [
        {"timestamp": "2000-01-01T00:01:51Z"}]}, p
    q.store.save("txshiftms", {"b1": 100250})
    p = {"timestamp": "2000-01-01T00:00:10.700Z"}
    txqrare.restamp(q, {"i": "b1-8"}, p)
    assert p["timestamp"] == "2000-01-01T00:01:50.950Z", p


class _TxCfg:
    def get(self, k):
        return {"TransactionMessageAttempts": 3, "TransactionMessageRetryInterval": 0}[k]


class _Wire:
    # A CSMS that takes every message: what it was sent, by message id.
    def __init__(self):
        self.sent = {}

    async def call(self, action, payload, on_result=None, mid=None):
        self.sent[mid] = payload
        if on_result is not None:
            on_result({})
        return {}


def _blind_boot(name, prefix, stamped_s, set_to):
    # A boot of an ESP32 without a battery clock, offline at first: it queues a MeterValues
    # stamped `stamped_s` s after 2000-01-01, then the CSMS sets the clock to `set_to` (the
    # queue's clock listener saves the step). -> the step (ms).
    from ocpp_client.txqueue import TxQueue, METER
    from store import Store

    fake = FakeRtc(stamped_s, 190)
    reset(fake)
    clock.EPOCH_OFFSET = 946684800
    clock._blind = False
    clock.shift_ms = 0
    q = TxQueue(Store(name), _TxCfg())
    q._prefix = prefix
    try:
        q.add(METER, {"connectorId": 1, "meterValue": [
            {"timestamp": clock.iso_ms(clock.now_ms()), "sampledValue": [{"value": "52"}]}]}, "r")
        clock.set_utc(set_to, "csms")
        return clock.shift_ms
    finally:
        clock.listeners.remove(q._on_clock)
        reset()
        clock._blind = False
        clock.shift_ms = 0


def _delivered(name):
    # The next boot, the clock set: -> {message id: payload} of what the queue sends.
    import asyncio
    from ocpp_client.txqueue import TxQueue
    from store import Store

    q = TxQueue(Store(name), _TxCfg())
    clock.listeners.remove(q._on_clock)
    wire = _Wire()
    asyncio.run(q.deliver(wire, 20))
    return wire.sent


def test_a_boot_s_clock_step_outlives_the_dropping_of_older_ones():
    # chaos mixed 100023: the steps were a dict, bounded at 4 by dropping "the oldest"; but a
    # MicroPython dict keeps no order, and the boot that had just set its clock lost its own
    # step: after the next power cut its queued MeterValues went out at 2000-01-01T00:00:01,
    # before the transaction's start (and differing from their first send under the same id).
    # The steps four earlier boots (an older build) left:
    from store import Store

    Store("shiftboots").save("txshiftms", {"26fa7d98": 849967795524, "c867664f": 849967812558,
                                           "3f58d773": 849967807534, "04d44afc": 849967806444})
    step = _blind_boot("shiftboots", "f6e08171", 1, 1796652780)
    sent = _delivered("shiftboots")
    ts = sent["f6e08171-q1"]["meterValue"][0]["timestamp"]
    assert ts == clock.iso_ms(946684801190 + step), (ts, step)
    assert ts[:4] == "2026", ts


def test_the_steps_of_every_boot_with_records_queued_are_kept():
    # Six boots in a row each queue a record before the CSMS sets the clock, and each loses
    # power before the queue is delivered: every record goes out moved by its own boot's step.
    prefixes = ("b0000001", "b0000002", "b0000003", "b0000004", "b0000005", "b0000006")
    steps = {}
    for k, p in enumerate(prefixes):
        steps[p] = _blind_boot("shiftsix", p, 10 + k, 1796652780 + 60 * k)
    sent = _delivered("shiftsix")
    for k, p in enumerate(prefixes):
        ts = sent[p + "-q1"]["meterValue"][0]["timestamp"]
        assert ts == clock.iso_ms((946684810 + k) * 1000 + 190 + steps[p]), (p, ts)
    # Delivered, they are no longer kept by the next boot that sets its clock offline.
    _blind_boot("shiftsix", "b0000007", 20, 1796653200)
    from store import Store

    kept = [e[0] for e in Store("shiftsix").load("txshiftms", {}, 2)["s"]]
    assert kept == ["b0000007"], kept
