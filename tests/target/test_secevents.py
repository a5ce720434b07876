# On-target tests for diag/secevents.py: each event in the security log and in the transaction
# message journal (durable before add() returns), noisy kinds throttled.
from diag.secevents import SecurityEvents
from store import Store


class Queue:
    def __init__(self):
        self.items = []

    def add(self, action, payload, ref):
        self.items.append((action, payload, ref))


def test_recorded_and_queued():
    q = Queue()
    s = SecurityEvents(Store("fa"), q)
    assert s.add("StartupOfTheDevice")
    assert s.add("ResetOrReboot", "Soft reset")
    assert [p["type"] for _, p, _ in q.items] == ["StartupOfTheDevice", "ResetOrReboot"]
    assert q.items[1][1]["techInfo"] == "Soft reset" and "techInfo" not in q.items[0][1]
    assert all(a == "SecurityEventNotification" and r is None for a, _, r in q.items)
    assert q.items[0][1]["timestamp"].endswith("Z")
    again = SecurityEvents(Store("fa"), Queue())  # after a reboot, the log is still there
    assert [r["type"] for _, r in again.j.records()] == ["StartupOfTheDevice", "ResetOrReboot"]


def test_noisy_kinds_are_throttled_and_tech_info_bounded():
    q = Queue()
    s = SecurityEvents(Store("fb"), q)
    assert s.add("InvalidMessages", "x" * 1000)
    assert not s.add("InvalidMessages", "again")
    assert s.add("StartupOfTheDevice") and s.add("StartupOfTheDevice")
    assert [p["type"] for _, p, _ in q.items].count("InvalidMessages") == 1
    assert len(q.items[0][1]["techInfo"]) == 255


def test_a_refused_csms_certificate_is_reported_once_per_failure_burst():
    # OCTT TC_078_CS: every retry of a burst of refused connections is not an event, but each
    # new burst (after a connection succeeded) is, however soon after the last one.
    q = Queue()
    s = SecurityEvents(Store("fd"), q)
    bad = ValueError("MBEDTLS_ERR_X509_CERT_VERIFY_FAILED")
    for _ in range(3):
        s.on_link_error(bad)
    assert [p["type"] for _, p, _ in q.items] == ["InvalidCentralSystemCertificate"]
    s.on_link_error(None)  # connected: the burst ended
    s.on_link_error(bad)
    s.on_link_error(bad)
    assert [p["type"] for _, p, _ in q.items].count("InvalidCentralSystemCertificate") == 2
    # a refused password keeps its hourly throttle, a connection or not
    s.on_link_error(OSError("handshake refused: HTTP 401"))
    s.on_link_error(None)
    s.on_link_error(OSError("handshake refused: HTTP 401"))
    assert [p["type"] for _, p, _ in q.items].count("FailedToAuthenticateAtCentralSystem") == 1


def _security_log(s, since=None, until=None):
    # GetLog SecurityLog's file, its records' lines (the header line left out).
    from diag import report

    report.security_log("/seclog.txt", s, since, until)
    with open("/seclog.txt") as f:
        return f.read().splitlines()[1:]


def test_window_filter():
    s = SecurityEvents(Store("fc"), Queue())
    s.add("StartupOfTheDevice")
    t = next(s.j.records())[1]["t"]
    assert _security_log(s, since=t + 1) == [] and len(_security_log(s, until=t)) == 1


def test_events_of_a_boot_whose_clock_was_set_late_are_in_the_log_at_their_time():
    # An ESP32 cold-booted offline stamps 2000-01-01: its security events (and the event log's
    # records) fell out of a GetLog / GetDiagnostics window of the hours they happened in, and
    # read 26 years off. Once its clock is set (SettingSystemTime, the step in it) the report
    # moves them by that step; a boot that never got the time keeps its stamps.
    import clock
    from diag import report
    from eventlog import EventLog

    real = clock.now()
    was = clock._source, clock.shift_ms, clock._blind
    store = Store("fclk")
    s = SecurityEvents(store, Queue())
    ev = EventLog(store)
    clock.listeners.append(s.on_clock)
    try:
        s.add("StartupOfTheDevice")  # a boot with the time
        clock._off = 946684800 + 50 - clock._local()  # (a cold boot offline: 2000-01-01T00:00:50)
        s.add("StartupOfTheDevice")  # (it never gets the time)
        ev.add("boot")
        clock._off = 946684800 + 10 - clock._local()  # (the next cold boot, offline too)
        s.add("StartupOfTheDevice")
        ev.add("boot")
        ev.add("session_start", tag="A")
        set_at = real + 3600
        clock.set_utc(set_at)  # the network gives the time
        s.add("ResetOrReboot", "Hard reset")
        ev.add("reset", type="Hard")
        lines = _security_log(s, set_at - 600, set_at + 600)
        assert [ln.split()[1] for ln in lines] == [
            "StartupOfTheDevice", "SettingSystemTime", "ResetOrReboot"], lines
        t = clock.parse_iso(lines[0].split()[0])
        assert set_at - 1 <= t <= set_at, lines
        lines = _security_log(s)  # no window: the boot without the time as stamped
        assert len(lines) == 5 and lines[1].startswith("2000-01-01T00:00:5"), lines
        assert [clock.parse_iso(ln.split()[0]) >= set_at - 1 for ln in lines] == [
            False, False, True, True, True], lines
        fixed = list(report._fixed(ev, report._steps(s)))
        assert [r["k"] for _, r in fixed] == ["boot", "boot", "session_start", "reset"], fixed
        ts = [t for t, _ in fixed]
        assert ts[0] < 946684900 and all(set_at - 1 <= t <= set_at for t in ts[1:]), ts
    finally:
        clock.listeners.remove(s.on_clock)
        clock.set_utc(real)
        clock._source, clock.shift_ms, clock._blind = was
