# On-target tests for eventlog.EventLog: the owner app's "last operations".
import clock
from eventlog import EventLog
from store import Store
from mphelp import read, write


def test_add_and_recent_newest_first():
    ev = EventLog(Store("flash"))
    t0 = clock.now()
    ev.add("boot")
    ev.add("plug", connector=1)
    ev.add("start", tag="04A1B2", meter_wh=1200)
    r = ev.recent()
    assert [e["k"] for e in r] == ["start", "plug", "boot"]
    assert r[0]["tag"] == "04A1B2" and r[0]["meter_wh"] == 1200 and r[1]["connector"] == 1
    assert all(t0 <= e["t"] <= clock.now() for e in r)
    assert [e["k"] for e in ev.recent(2)] == ["start", "plug"]
    assert len(ev) == 3


def test_time_is_network_utc():
    off = clock._off
    try:
        clock._off = 1795239420 - clock._local()  # as if set_utc(2026-11-21T05:37:00Z)
        ev = EventLog(Store("flash"))
        ev.add("boot")
        assert abs(ev.recent(1)[0]["t"] - 1795239420) <= 1
    finally:
        clock._off = off


def test_survives_reboot():
    ev = EventLog(Store("flash"))
    for i in range(5):
        ev.add("tap", n=i)
    ev2 = EventLog(Store("flash"))
    assert [e["n"] for e in ev2.recent()] == [4, 3, 2, 1, 0]
    ev2.add("boot")
    assert EventLog(Store("flash")).recent(1)[0]["k"] == "boot"


def test_bounded_ring():
    s = Store("flash")
    ev = EventLog(s, max_events=10)
    for i in range(95):
        ev.add("tap", n=i)
        assert len(ev) == min(i + 1, 10)
    assert [e["n"] for e in ev.recent(100)] == list(range(94, 84, -1))
    assert [e["n"] for e in EventLog(s, max_events=10).recent(3)] == [94, 93, 92]
    assert read("flash/events.log").count(b"\n") <= 2 * 10 + 1  # flash use is bounded too


def test_torn_tail_after_power_cut():
    ev = EventLog(Store("flash"))
    ev.add("boot")
    ev.add("plug")
    write("flash/events.log", read("flash/events.log") + b'3 abcd1234 {"t": 17')
    ev2 = EventLog(Store("flash"))
    assert [e["k"] for e in ev2.recent()] == ["plug", "boot"]
    ev2.add("boot")
    assert [e["k"] for e in EventLog(Store("flash")).recent()] == ["boot", "plug", "boot"]


def test_add_never_raises():
    import os

    ev = EventLog(Store("flash"))
    ev.add("boot")
    assert ev.add("huge", text="x" * 9000) is None  # over the journal's line limit
    assert [e["k"] for e in ev.recent()] == ["boot"]
    os.remove("flash/events.log")
    os.mkdir("flash/events.log")  # the file cannot be opened for append: a flash failure
    assert ev.add("plug") is None
