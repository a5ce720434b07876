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
    assert [k for _, k, _ in again.records()] == ["StartupOfTheDevice", "ResetOrReboot"]


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


def test_window_filter():
    s = SecurityEvents(Store("fc"), Queue())
    s.add("StartupOfTheDevice")
    t = next(s.records())[0]
    assert list(s.records(since=t + 1)) == [] and len(list(s.records(until=t))) == 1
