# On-target test: a firmware job's final status that a power cut kept from the CSMS goes out
# after the boot as the CSMS first heard of the job: a signed job's (SignedUpdateFirmware) as
# SignedFirmwareStatusNotification with its requestId, though the job ended before the cut.
import asyncio
import sys

from diag.signedfw import SignedFirmware
from mphelp import until
from ota import update
from ota.ocpp import Firmware
from otafakes import Board, Conn, Events
from store import Store
from test_diag_onuse import Journal


class Rpc:
    def __init__(self):
        self.sent = []

    async def call(self, action, p):
        self.sent.append((action, p))
        return {}


class Session:
    # What ota/ocpp.py's Firmware asks of the OCPP session.
    def __init__(self, store):
        self.store = store
        self.board = Board()
        self.settings = {}
        self.connector = Conn()
        self.events = Events()
        self.registration = "Accepted"
        self.rpc = Rpc()
        self.features = {}

    def online(self):
        return True


def _diag(store, fw):
    # diag/feature.py's Diag as diag/signedfw.py uses it
    class Diag:
        class s:
            def feature(name):
                return fw

    Diag.store = store
    return Diag


async def test_a_signed_jobs_final_status_kept_by_a_power_cut_goes_out_signed_after_the_boot():
    st = Store("fwkept")
    # The trial boot of a signed job's firmware: InstallRebooting unsent, the job in ota's hands
    st.save("ota", dict(update.DEFAULTS, loc="signed", status="InstallRebooting", sent=False))
    st.save("signedfw", {"rid": 7, "ph": "ota", "st": "InstallRebooting"})
    fw = Firmware(Session(st))
    SignedFirmware(_diag(st, fw))  # security_ext.py loads it at such a boot
    assert fw.signed is not None
    fw.updater._installed()  # the trial proved itself: Installed, routed to the signed job
    assert fw._queue[-1] == ("SignedFirmwareStatusNotification",
                             {"status": "Installed", "requestId": 7}), fw._queue
    # The power goes before the CSMS answers it. At the boot the signed job has ended (nothing
    # loads diag/signedfw.py), and the status goes out as it went before.
    s = Session(st)
    fw = Firmware(s)
    t = asyncio.create_task(fw._send())
    try:
        await until(lambda: s.rpc.sent, "the kept status sent")
    finally:
        t.cancel()
    assert s.rpc.sent[0] == ("SignedFirmwareStatusNotification",
                             {"status": "Installed", "requestId": 7}), s.rpc.sent
    assert fw.updater.unsent() is None


class Config:
    def get(self, key):
        return None


class FeatureSession(Session):
    # The session's feature machinery (features.py) with the firmware feature lazy, as on the
    # charger, and an RPC whose CALLs the CSMS answers at once.
    def __init__(self, store):
        from ocpp_client import features

        super().__init__(store)
        self.config = Config()
        self.triggers = {}
        self.tasks = None  # (the session runs: a feature attached now starts its own tasks)
        self.rpc.handlers = features.handlers(self, (("firmware", False, ("UpdateFirmware",)),))

    def feature(self, name):
        from ocpp_client import features

        features.need(self, self.rpc.handlers, name)
        return self.features.get(name)


def _ota_modules():
    return [n for n in sys.modules if n.startswith("ota.") or n == "ocpp_client.firmware"]


async def _update(s, location):
    return await s.rpc.handlers.get("UpdateFirmware")(
        {"location": location, "retrieveDate": "2020-01-01T00:00:00Z", "retries": 1})


async def test_a_failed_update_leaves_the_heap_once_its_final_status_is_answered():
    # A download that fails for good (a location no retry mends: DownloadFailed at once) kept
    # ota/ (~24 KB at 64-bit) in the heap until the next reboot; a good update reboots.
    import gc

    for n in _ota_modules():
        sys.modules.pop(n, None)
    s = FeatureSession(Store("fwdrop"))
    gc.collect()
    m0 = gc.mem_alloc()
    assert await _update(s, "gopher://nowhere/fw.bin") == {}
    assert "firmware" in s.features and "FirmwareStatusNotification" in s.triggers
    await until(lambda: "firmware" not in s.features, "the feature dropped")
    assert [p["status"] for _, p in s.rpc.sent] == ["Downloading", "DownloadFailed"], s.rpc.sent
    assert _ota_modules() == [], _ota_modules()
    assert "FirmwareStatusNotification" not in s.triggers  # remote.py's Idle again
    gc.collect()
    print("heap kept by a failed update: %d bytes" % (gc.mem_alloc() - m0))
    # and the next UpdateFirmware attaches it again
    assert await _update(s, "gopher://nowhere/again.bin") == {}
    await until(lambda: len(s.rpc.sent) == 4, "the second job's statuses")
    assert [p["status"] for _, p in s.rpc.sent[2:]] == ["Downloading", "DownloadFailed"]


def _diag_at(store, later, txq):
    # diag/feature.py's Diag as a signed job's cancel() and a boot use it: work after the
    # answer kept in `later` (not run: the power goes first), the queue `txq`
    class Diag:
        class s:
            features = {}

            def feature(name):
                return None

        def after(fn, *args):
            later.append((fn, args))

    Diag.store = store
    Diag.sec = type("Sec", (), {"txq": txq})
    return Diag


async def test_a_replaced_signed_jobs_failure_cut_after_the_answer_is_sent_after_the_boot():
    # An UpdateFirmware (or another SignedUpdateFirmware) replaces a signed job not yet
    # installing: its final status under its requestId was owed by work after the answer, so a
    # power cut right after the answer left the CSMS waiting for it for ever.
    from ocpp_client import security_ext

    st = Store("fwowed")
    st.save("signedfw", {"rid": 4, "ph": "get", "st": "DownloadScheduled"})
    later = []
    sf = SignedFirmware(_diag_at(st, later, Journal()))
    assert sf.cancel("UpdateFirmware") is True
    assert later  # (the status after the answer: the power goes first)
    # The boot
    assert security_ext._signed_job(st)  # it loads diag/signedfw.py for it
    q = Journal()
    SignedFirmware(_diag_at(st, [], q))
    assert q.added == [("SignedFirmwareStatusNotification",
                        {"status": "DownloadFailed", "requestId": 4})], q.added
    # once queued, not again at the next boot
    assert not security_ext._signed_job(st)
