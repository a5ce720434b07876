# servers: http
# A firmware download across a power cut: a signed one keeps its bytes on flash as a plain one
# does (synced every ota.update.SYNC_BYTES) and both keep their count of tries and the rest of a
# retry's wait (retryInterval) through the boot. The cut is the job's task cancelled, then a new
# job object built from what the store kept, as a boot builds it.
import asyncio
import json
import os
import time

from otafakes import Board, Conn, Events
from ota import update
from store import Store

CFG = json.loads(os.getenv("BORNE_FILESRV") or "{}")
FAIL = "http://127.0.0.1:%d/status/500/fw.bin" % CFG.get("http", 0)  # retryable


def _spy():
    # ota.update.fetch counted and timed (both jobs call it through the module).
    real = update.fetch
    calls = []

    async def fetch(*a, **kw):
        calls.append(time.ticks_ms())
        return await real(*a, **kw)

    update.fetch = fetch
    return calls, real


def _signed(sent):
    # diag/signedfw.py's SignedFirmware over fakes, its document from the store (as at a boot).
    from diag import signedfw

    u = update.Updater(Store("data"), Board(), {}, Conn(), Events(), "unix_sim")

    class Diag:
        store = u.store
        settings = {}
        board = Board()

        class s:
            def feature(name):
                return Fw

            def online():
                return True

        async def _send(action, p, final=False):
            sent.append(p["status"])

        class sec:
            def add(kind, why=None):
                pass

            def settle():  # (diag/secevents.py: the feature out of the heap once idle)
                pass

    class Fw:
        updater = u

    return signedfw.SignedFirmware(Diag)


def _doc(url, tries, iv):
    return {"rid": 5, "ph": "get", "url": url, "at": 0, "inst": 0, "tries": tries, "iv": iv,
            "key": ["3", 3], "sig": ""}


async def _until(cond, s):
    for _ in range(s * 20):
        if cond():
            return
        await asyncio.sleep_ms(50)
    raise AssertionError("timed out")


async def test_a_signed_download_is_synced_to_flash_as_it_comes():
    # LittleFS keeps nothing of an open file's new data through a power cut until it is flushed:
    # unsynced, a cut late in a long signed download lost all of it (the boot's Range asked
    # from 0). Flushed every SYNC_BYTES, as UpdateFirmware's download is.
    from net import http

    with open(CFG["root"] + "/big.fw", "wb") as f:
        f.write(b"x" * (3 * update.SYNC_BYTES + 1000))
    flushes = []
    real_open = open

    class File:
        def __init__(self, p, mode):
            self.f = real_open(p, mode)
            self.n = 0

        def write(self, b):
            self.n += len(b)
            return self.f.write(b)

        def flush(self):
            flushes.append(self.n)
            self.f.flush()

        def close(self):
            self.f.close()

    http.open = File
    sent = []
    try:
        job = _signed(sent)
        job.doc = _doc("http://127.0.0.1:%d/big.fw" % CFG["http"], 1, 0)
        await asyncio.wait_for(job._get(job.store.path("signed_fw.part", ""), 5, False), 30)
    finally:
        del http.open
    assert sent[:2] == ["Downloading", "Downloaded"], sent
    assert len(flushes) >= 3 and flushes[0] >= update.SYNC_BYTES, flushes


async def test_a_signed_jobs_tries_and_retry_wait_outlast_a_power_cut():
    # 1.6 / the security whitepaper: `retries` is how many times the charger tries. Counted in
    # memory only, every boot began again at 0: a bundle that always fails was tried for ever
    # across reboots. And a boot in the retry's wait retried at once, not after retryInterval.
    calls, real = _spy()
    sent = []
    try:
        job = _signed(sent)
        job.doc = _doc(FAIL, 2, 3)
        job._save()
        t0 = time.ticks_ms()
        task = asyncio.create_task(job._job(False))
        await _until(lambda: len(calls) == 1, 10)
        await asyncio.sleep_ms(500)  # the try failed: in its retry's wait
        task.cancel()  # the power cut
        await asyncio.sleep_ms(0)
        sent2 = []
        job2 = _signed(sent2)  # the boot: resumed from the store
        await _until(lambda: "DownloadFailed" in sent2, 20)
    finally:
        update.fetch = real
    assert len(calls) == 2, "tried %d times for retries=2" % len(calls)
    assert time.ticks_diff(calls[1], t0) >= 2000, "retried %d ms after the first try" % (
        time.ticks_diff(calls[1], t0))
    assert job2.doc["rid"] is None


async def test_a_boot_in_an_update_firmware_retry_wait_waits_out_its_rest():
    # UpdateFirmware's retryInterval: the wait between two tries. A power cut in it made the boot
    # try again at once.
    calls, real = _spy()
    try:
        u = update.Updater(Store("data"), Board(), {}, Conn(), Events(), "unix_sim")
        assert u.request(FAIL, 0, 3, 3) is None
        t0 = time.ticks_ms()
        task = asyncio.create_task(u._job())
        await _until(lambda: len(calls) == 1, 10)
        await asyncio.sleep_ms(500)
        task.cancel()
        await asyncio.sleep_ms(0)
        u2 = update.Updater(Store("data"), Board(), {}, Conn(), Events(), "unix_sim")
        assert u2.doc["tries"] == 1 and u2.doc["phase"] == "download", u2.doc
        task = asyncio.create_task(u2._job())
        await _until(lambda: len(calls) == 2, 10)
        task.cancel()
    finally:
        update.fetch = real
    assert time.ticks_diff(calls[1], t0) >= 2000, "retried %d ms after the first try" % (
        time.ticks_diff(calls[1], t0))


async def test_a_replaced_update_firmwares_status_queued_offline_stays_its_own():
    # A SignedUpdateFirmware replaces a downloading UpdateFirmware: its DownloadFailed waits in
    # the queue while the link is down. Routed only when it went out, it was taken for the
    # signed job's (handed to ota meanwhile): SignedFirmwareStatusNotification DownloadFailed
    # under the signed job's requestId, which ended that job's routing (its Installing then
    # went out unsigned).
    from ota import ocpp

    calls = []

    class S:
        store = Store("data")
        board = Board()
        settings = {}
        connector = Conn()
        events = Events()
        registration = "Accepted"
        features = {}
        up = False

        def online():
            return S.up

        class rpc:
            async def call(action, p):
                calls.append((action, p))

    fw = ocpp.Firmware(S)
    sent = []
    job = _signed(sent)
    fw.signed = job
    job.diag.s.feature = lambda name: fw
    fw.updater.listeners[0]("DownloadFailed")  # the replaced job's end, said while offline
    job.doc = _doc("http://x/fw.bin", 1, 0)
    job.doc["ph"] = "ota"  # the signed job handed its file to ota
    fw.updater.listeners[0]("Installing")
    S.up = True
    task = asyncio.create_task(fw._send())
    await _until(lambda: len(calls) == 2, 10)
    task.cancel()
    assert calls == [("FirmwareStatusNotification", {"status": "DownloadFailed"}),
                     ("SignedFirmwareStatusNotification", {"status": "Installing",
                                                           "requestId": 5})], calls
    assert job.doc["rid"] == 5


async def test_an_update_firmware_retry_interval_past_the_ticks_range_is_capped():
    # retryInterval (and retries) had no bound: 2**70 s made the retry's asyncio.sleep raise
    # OverflowError after the first failed try (an ESP32's ticks overflow past ~6.2 days), the
    # job ended InstallationFailed for a download that merely failed once. Capped now.
    calls, real = _spy()
    seen = []
    try:
        u = update.Updater(Store("data"), Board(), {}, Conn(), Events(), "unix_sim")
        u.listeners.append(seen.append)
        assert u.request(FAIL, 0, 2**70, 2**70) is None
        assert u.doc["retries"] <= update.MAX_TRIES and u.doc["interval"] <= update.MAX_WAIT_S
        task = asyncio.create_task(u.run())
        await _until(lambda: len(calls) == 1, 10)
        await asyncio.sleep_ms(500)  # the try failed: in its retry's wait
        done = task.done()
        task.cancel()
    finally:
        update.fetch = real
    assert not done and "InstallationFailed" not in seen, seen
    assert u.doc["phase"] == "download" and u.doc["tries"] == 1, u.doc


async def test_a_signed_update_firmware_retry_interval_past_the_ticks_range_is_capped():
    # The same for SignedUpdateFirmware: its task died of the OverflowError, the job stayed
    # Downloading for the CSMS (and at every boot, whose resumed wait overflowed again).
    calls, real = _spy()
    sent = []
    try:
        job = _signed(sent)
        spawned = []
        job.diag.after = lambda fn, *a: spawned.append(fn)  # (diag/feature.py's, counted)

        class Cert:
            rsa = (3, 3)

        job.check_certificate = lambda pem: (Cert, None)
        ans = await job.on_request({"requestId": 7, "retries": 2**70, "retryInterval": 2**70,
                                    "firmware": {"location": FAIL, "signature": "",
                                                 "retrieveDateTime": "2020-01-01T00:00:00Z",
                                                 "signingCertificate": "x"}})
        assert ans == {"status": "Accepted"}, ans
        assert job.doc["tries"] <= update.MAX_TRIES and job.doc["iv"] <= update.MAX_WAIT_S
        await spawned[0]()
        task = job._task
        await _until(lambda: len(calls) == 1, 10)
        await asyncio.sleep_ms(500)
        done = task.done()
        task.cancel()
    finally:
        update.fetch = real
    assert not done and job.doc["n"] == 1 and job.doc["rid"] == 7, job.doc


async def test_a_signed_jobs_last_status_outlasts_a_boot():
    # Security whitepaper L01.FR.29: ExtendedTriggerMessage(FirmwareStatusNotification) sends
    # the status sent last, with its requestId. A job that ended (InvalidSignature, a final
    # status of its install) left no requestId in the store: after a boot the trigger said Idle.
    job = _signed([])
    job.doc = _doc(FAIL, 1, 0)
    job._save()
    await job._end("InvalidSignature")
    assert job.status() == ("InvalidSignature", 5)
    assert _signed([]).status() == ("InvalidSignature", 5)  # the boot
    job = _signed([])
    job.doc = {"rid": 6, "ph": "ota", "st": "Installing"}  # handed to ota
    job._save()
    job.route("InstallationFailed")  # ota's final status, sent as the job's
    job = _signed([])
    assert job.status() == ("InstallationFailed", 6)
    # Another job's status (an UpdateFirmware's): the firmware's state is its, after a boot too.
    job.route("Downloading")
    assert job.status() is None and _signed([]).status() is None
