# On-target test: the security extension's feature (diag/feature.py) loads, at a GetDiagnostics,
# only what uploads need. The certificate store (diag/certs.py, x509) and the signed update
# (diag/signedfw.py with ota/: the firmware feature's updater) load at their own first CALL:
# made at construction, they kept ~25 KB of a 32-bit heap for good after any upload.
import sys

from diag.secevents import SecurityEvents
from mphelp import CA
from settings import Settings
from store import Store

_HEAVY = ("diag.signedfw", "diag.certs", "diag.x509", "ota.update", "ota.ocpp", "ota.rsa")


class Queue:
    def add(self, action, payload, ref):
        pass


class Session:
    def __init__(self, store):
        self.store = store
        self.settings = Settings(store, {})
        self.config = None
        self.events = None
        self.connector = None
        self.board = None
        self.features = {}
        self.asked = []

        self.later = []
        self.sent = []

    def feature(self, name):  # a lazy feature attached (the firmware feature: ota/)
        self.asked.append(name)

    def after(self, fn, *args):
        self.later.append((fn, args))

    async def send(self, action, payload):
        self.sent.append((action, payload))


def _out(*names):
    for n in names:
        sys.modules.pop(n, None)


def test_the_uploads_feature_loads_neither_certificates_nor_the_firmware_updater():
    _out(*_HEAVY)
    st = Store("don")
    sec = SecurityEvents(st, Queue())
    sec.s = Session(st)
    d = sec.need()
    h = d.handlers()
    for a in ("GetDiagnostics", "GetLog", "ExtendedTriggerMessage", "SignedUpdateFirmware",
              "InstallCertificate", "GetInstalledCertificateIds", "DeleteCertificate",
              "CertificateSigned"):
        assert a in h, a
    assert [n for n in _HEAVY if n in sys.modules] == [], [n for n in _HEAVY if n in sys.modules]
    assert sec.s.asked == [], sec.s.asked


async def test_a_certificate_call_loads_the_store_for_itself_only():
    _out(*_HEAVY)
    st = Store("doc")
    sec = SecurityEvents(st, Queue())
    sec.s = Session(st)
    d = sec.need()
    res = await d.handlers()["GetInstalledCertificateIds"](
        {"certificateType": "ManufacturerRootCertificate"})
    assert res == {"status": "NotFound"}, res
    # and out of the heap again after it: the store lives in its document
    assert [n for n in _HEAVY if n in sys.modules] == [], [n for n in _HEAVY if n in sys.modules]
    assert sec._certs is None
    res = await d.handlers()["InstallCertificate"](
        {"certificateType": "ManufacturerRootCertificate", "certificate": CA})
    assert res == {"status": "Accepted"}, res
    assert "diag.certs" not in sys.modules and "diag.x509" not in sys.modules
    res = await d.handlers()["GetInstalledCertificateIds"](
        {"certificateType": "ManufacturerRootCertificate"})
    assert res["status"] == "Accepted" and len(res["certificateHashData"]) == 1, res


async def test_a_firmware_status_trigger_with_no_job_is_idle_and_loads_nothing():
    # ExtendedTriggerMessage(FirmwareStatusNotification) with no signed job and no update:
    # Idle (whitepaper L01.FR.28), without making the signed job (it kept ~20 KB for good).
    _out(*_HEAVY)
    st = Store("dot")
    sec = SecurityEvents(st, Queue())
    sec.s = Session(st)
    res = await sec.need().handlers()["ExtendedTriggerMessage"](
        {"requestedMessage": "FirmwareStatusNotification"})
    assert res == {"status": "Accepted"}, res
    for fn, args in sec.s.later:
        await fn(*args)
    assert sec.s.sent == [("SignedFirmwareStatusNotification", {"status": "Idle"})], sec.s.sent
    assert [n for n in _HEAVY if n in sys.modules] == [], [n for n in _HEAVY if n in sys.modules]
    assert sec.s.asked == [], sec.s.asked


class Journal(Queue):
    # The transaction queue: where a job's final status goes (journaled, delivered once online)
    def __init__(self):
        self.added = []

    def add(self, action, payload, ref):
        self.added.append((action, payload))


async def _run_after(s):
    # The session's work after the .conf (client.py after()), run as it runs it: one task each
    import asyncio

    items, s.later = s.later, []
    for fn, args in items:
        asyncio.create_task(fn(*args))
    await asyncio.sleep_ms(0)


def _get_log(port, rid):
    return {"log": {"remoteLocation": "http://127.0.0.1:%d/up/" % port}, "logType": "SecurityLog",
            "requestId": rid, "retries": 1}


async def test_the_diagnostics_feature_leaves_the_heap_once_idle_and_never_before():
    # Kept for good after the first security-extension CALL (~12 KB at 64-bit) until now. An
    # upload running, or a status still owed by work after an answer, keeps it: the trigger's
    # answer and a replaced upload's failure come from it.
    from mphelp import closed_port, hanging_listener, until

    _out(*_HEAVY)
    sys.modules.pop("diag.feature", None)
    st = Store("dod")
    q = Journal()
    sec = SecurityEvents(st, q)
    s = sec.s = Session(st)
    res = await sec.handler("GetInstalledCertificateIds")(
        {"certificateType": "ManufacturerRootCertificate"})
    assert res == {"status": "NotFound"}, res
    assert sec.diag is None and "diag.feature" not in sys.modules  # nothing owed: out at once

    held, port = hanging_listener()  # an upload that hangs in its connect
    try:
        res = await sec.handler("GetLog")(_get_log(port, 1))
        assert res["status"] == "Accepted", res
        assert sec.diag is not None  # its upload's task is still to be made (after the .conf)
        await _run_after(s)
        await until(lambda: ("LogStatusNotification", {"status": "Uploading", "requestId": 1})
                    in s.sent, "Uploading")
        res = await sec.handler("GetInstalledCertificateIds")(
            {"certificateType": "ManufacturerRootCertificate"})
        assert sec.diag is not None and "diag.feature" in sys.modules  # the upload runs
        await sec.trigger_log()
        assert s.sent[-1] == ("LogStatusNotification", {"status": "Uploading", "requestId": 1})
        # A second GetLog replaces it: the first one's failure is owed by work after the answer
        res = await sec.handler("GetLog")(_get_log(closed_port(), 2))
        assert res["status"] == "AcceptedCanceled", res
        await _run_after(s)
        await until(lambda: sec.diag is None, "the feature dropped", 12000)
    finally:
        for c in held:
            c.close()
    assert q.added == [("LogStatusNotification", {"status": "UploadFailure", "requestId": 1}),
                       ("LogStatusNotification", {"status": "UploadFailure", "requestId": 2})], \
        q.added
    assert "diag.feature" not in sys.modules
    await sec.trigger_log()
    assert s.sent[-1] == ("LogStatusNotification", {"status": "Idle"}), s.sent[-1]


class Events:
    # The event log as the boot reads it (no reset before this boot)
    def recent(self, n):
        return []


def _boot_after_a_cut(root):
    # The store as the power cut left it, read by the next boot's security extension
    # (ocpp_client/security_ext.py): -> what it queued for the CSMS.
    from ocpp_client import security_ext

    st = Store(root)
    q = Journal()
    sec = SecurityEvents(st, q)
    s = sec.s = Session(st)
    s.events = Events()
    security_ext._boot_events(s, sec)
    return [a for a in q.added if a[0] != "SecurityEventNotification"]


async def test_an_upload_answered_then_cut_before_it_began_is_reported_failed_after_the_boot():
    # The CSMS has its answer (Accepted, the file's name) and waits for the upload's final
    # status. A power cut right after the answer, before the work after it ran (the upload's
    # task not made yet), left nothing on flash of the job: the CSMS waited for ever. Here the
    # work after the answer never runs (s.later), as with that power cut.
    from mphelp import closed_port

    _out(*_HEAVY)
    sys.modules.pop("diag.feature", None)
    sec = SecurityEvents(Store("dcut"), Journal())
    s = sec.s = Session(Store("dcut"))
    res = await sec.handler("GetLog")(_get_log(closed_port(), 5))
    assert res["status"] == "Accepted", res
    assert s.later  # (the upload starts after the answer)
    assert _boot_after_a_cut("dcut") == [
        ("LogStatusNotification", {"status": "UploadFailure", "requestId": 5})]

    sys.modules.pop("diag.feature", None)
    sec = SecurityEvents(Store("dcut2"), Journal())
    s = sec.s = Session(Store("dcut2"))
    res = await sec.handler("GetDiagnostics")(
        {"location": "ftp://u:p@127.0.0.1:%d/" % closed_port()})
    assert res.get("fileName"), res
    assert _boot_after_a_cut("dcut2") == [
        ("DiagnosticsStatusNotification", {"status": "UploadFailed"})]


async def test_a_replaced_upload_and_its_successor_cut_after_the_answer_both_end_failed():
    # A GetLog replaces one running (AcceptedCanceled): the first one's failure was owed by
    # work after the answer, and the second was not on flash yet; a power cut right after
    # that answer must leave the CSMS waiting for neither.
    from mphelp import hanging_listener, until

    _out(*_HEAVY)
    sys.modules.pop("diag.feature", None)
    st = Store("dcut3")
    sec = SecurityEvents(st, Journal())
    s = sec.s = Session(st)
    held, port = hanging_listener()
    try:
        res = await sec.handler("GetLog")(_get_log(port, 8))
        assert res["status"] == "Accepted", res
        await _run_after(s)
        await until(lambda: ("LogStatusNotification", {"status": "Uploading", "requestId": 8})
                    in s.sent, "Uploading")
        res = await sec.handler("GetLog")(_get_log(port, 9))
        assert res["status"] == "AcceptedCanceled", res
        got = _boot_after_a_cut("dcut3")
    finally:
        for c in held:
            c.close()
    assert got == [("LogStatusNotification", {"status": "UploadFailure", "requestId": 8}),
                   ("LogStatusNotification", {"status": "UploadFailure", "requestId": 9})], got
