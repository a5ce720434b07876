# servers: http
# ota/ pieces on their own: the refusal of a bundle larger than the free flash (before a byte is
# written), path rules, version order, the key rotation rule, the trial bookkeeping main.py does
# (slotchoice.py).
import json
import os

from fakeboard import FakeBoard
import slotchoice
from ota import bundle, keys, slots, update
from store import Store

CFG = json.loads(os.getenv("BORNE_FILESRV") or "{}")


class Board(FakeBoard):
    def reset(self, hard):
        raise AssertionError("no reset expected")


class Conn:
    session = None

    def started(self):
        return True

    def hold(self, on):
        pass


class Events:
    def __init__(self):
        self.kinds = []

    def add(self, kind, **kw):
        self.kinds.append((kind, kw))


async def test_a_bundle_larger_than_the_free_flash_is_refused_before_writing():
    with open(CFG["root"] + "/big.fw", "wb") as f:
        f.write(b"x" * 50000)
    ev = Events()
    u = update.Updater(Store("data"), Board(), {}, Conn(), ev, "unix_sim")
    u.slots.free_bytes = lambda: 16384 + 40000  # the reserve, and less than the bundle
    seen = []
    u.listeners.append(seen.append)
    assert u.request("http://127.0.0.1:%d/big.fw" % CFG["http"], 0, 3, 0) is None
    await u._job()
    assert seen == ["Downloading", "DownloadFailed"], seen
    assert "fit" in u.doc["why"] and u.doc["phase"] == "idle"
    assert not slots.exists(update.BUNDLE)
    assert ev.kinds[-1][0] == "fw_failed"


async def test_a_signed_download_larger_than_the_free_flash_fails_at_once():
    # SignedUpdateFirmware downloads under the same bound as UpdateFirmware (free flash less
    # the reserve): unbounded, it filled the flash to 0 bytes and the session's documents failed
    # to save. Too big is final: DownloadFailed at once, not after the retries.
    import asyncio

    from diag import signedfw

    with open(CFG["root"] + "/big.fw", "wb") as f:
        f.write(b"x" * 50000)
    u = update.Updater(Store("data"), Board(), {}, Conn(), Events(), "unix_sim")
    u.slots.free_bytes = lambda: 16384 + 40000  # the reserve, and less than the file
    sent = []

    class Diag:
        store = u.store
        settings = {}
        board = Board()

        class s:
            def feature(name):
                return Fw

        async def _send(action, p, final=False):
            sent.append(p["status"])

        class sec:
            def settle():  # (diag/secevents.py: the feature out of the heap once idle)
                pass

    class Fw:
        updater = u

    job = signedfw.SignedFirmware(Diag)
    job.doc = {"rid": 3, "ph": "get", "url": "http://127.0.0.1:%d/big.fw" % CFG["http"],
               "at": 0, "inst": 0, "tries": 3, "iv": 600, "key": ["3", 3], "sig": ""}
    await asyncio.wait_for(job._job(False), 20)  # a retry would wait 600 s
    assert sent == ["Downloading", "DownloadFailed"], sent
    assert not slots.exists(Diag.store.path(signedfw._FILE, ""))
    assert job.doc["rid"] is None


def test_an_unpacked_slot_is_counted_in_flash_blocks():
    # LittleFS gives each file whole blocks and each folder a pair: 40 modules of 600 bytes are
    # 24,000 bytes but 40 blocks (160 KiB) on an ESP32's 4 KiB blocks. Counted by their sizes, a
    # bundle of small files passed the room check and the install met ENOSPC partway.
    files = [["lib/m%d.mpy" % i, 600, ""] for i in range(40)] + [["app.mpy", 5000, ""],
                                                                 ["lib/x/y.mpy", 0, ""]]
    real = bundle.os

    class Flash:
        @staticmethod
        def statvfs(p):
            return (4096, 4096, 512, 100, 100, 0, 0, 0, 0, 255)

    bundle.os = Flash
    try:
        need = bundle._flash("fw.bin", files, 3000)
    finally:
        bundle.os = real
    blocks = 1 + 1 + 40 + 2 + 0 + 2 * 3  # .manifest, .sig, the files, 3 folders (slot, lib, lib/x)
    assert need == blocks * 4096, (need, blocks * 4096)


async def test_ftp_locations_name_a_file_and_their_password_stays_out_of_the_event_log():
    from net import ftp, http

    ev = Events()
    u = update.Updater(Store("data"), Board(), {}, Conn(), ev, "unix_sim")
    assert "folder" in update._ftp_loc("ftp://u:pw-9@127.0.0.1/fw/")[1]
    assert "escapes" in update._ftp_loc("ftp://u:pw-9@127.0.0.1/a/../fw.bin")[1]
    # A location no download can use is a job all the same (the CSMS hears DownloadFailed, not
    # nothing): its first try fails, final, before any connection.
    for loc, err in (("ftp://u:pw-9@127.0.0.1/fw/", ftp.FtpError),
                     ("gopher://127.0.0.1/fw.bin", http.HttpError)):
        try:
            await update.fetch(loc, "data/x.fw", {}, Board())
            raise AssertionError("fetched " + loc)
        except err as e:
            assert update._final(e), (loc, e)
    assert u.request("ftp://u:pw-9@127.0.0.1:2121/fw%20x.bin", 2000000000, 1, 0) is None
    assert ev.kinds[-1] == ("fw_update", {"loc": "ftp://***@127.0.0.1:2121/fw%20x.bin"})
    assert update._ftp_loc(u.doc["loc"])[0] == ("127.0.0.1", 2121, "u", "pw-9", "/fw x.bin")
    assert update._ftp_loc("ftp://127.0.0.1/f")[0][2:4] == ("anonymous", "")
    u._stop_task()
    # a refused login, no such file, a bad location: final; a cut transfer, a timeout: retried
    for code, final in ((530, True), (550, True), (501, True), (426, False), (0, False),
                        (421, False)):
        assert update._final(ftp.FtpError("x", code)) == final, code
    assert update._final(ftp.FtpError("90000 bytes: more than the 100 that fit"))
    # "fit" elsewhere in a message (a host's or a path's name) is no such failure: retried
    from net import http

    assert not update._final(http.HttpError("HTTP 503 from http://h/benefits/fw.bin", 503))
    assert not update._final(ftp.FtpError("cannot open the control connection to outfit.example"
                                          ":21 within 10000 ms"))
    assert update._why(ftp.FtpError("login refused: 530 no")) == "FTP: login refused: 530 no"


def test_a_pasv_answer_is_read_with_or_without_parentheses():
    # RFC 1123 4.1.2.6: a client "cannot assume that the parentheses shown on page 40 of
    # RFC-959 will be present"; it scans from the first digit.
    from net import ftp

    for text in ("Entering Passive Mode (127,0,0,1,195,80).", "Entering Passive Mode "
                 "127,0,0,1,195,80", "=127,0,0,1,195,80", "Passive 127,0,0,1,195,80 ok"):
        assert ftp._pasv_port(text) == 50000, text
    for bad in ("Entering Passive Mode", "Entering Passive Mode (127,0,0,1,195)"):
        try:
            ftp._pasv_port(bad)
        except ftp.FtpError:
            continue
        raise AssertionError(bad)


def test_paths_outside_the_slot_are_refused():
    for bad in ("../main.py", "/main.py", "a/../../b.mpy", "a//b.mpy", "./a.mpy", "a\\b.mpy",
                ".manifest", "", "a b.mpy", "x" * 81):
        try:
            bundle.check_path(bad)
        except bundle.Refused:
            continue
        raise AssertionError(bad)
    for good in ("app.mpy", "ocpp_client/client.mpy", "hotspot/page.mpy", "a-b_c.1.mpy"):
        bundle.check_path(good)


def test_versions_compare_as_numbers():
    vt = bundle.version_tuple
    assert vt("0.10.0") > vt("0.9.9") and vt("1.2.3rc1") == vt("1.2.3") and vt("2") > vt("1.9")


def _key(i):
    n = (1 << 2047) | 12345 + i
    return {"id": keys.key_id(n), "n": "%x" % n, "e": 65537}


def _ring(*entries):
    return {"keys": list(entries)}


def test_key_rotation_keeps_a_trusted_key():
    a, b, c = _key(1), _key(2), _key(3)
    cur = keys._parse(_ring(a, b))
    assert sorted(keys.check_rotation(cur, _ring(b, c))) == sorted([b["id"], c["id"]])
    # b's id on another modulus: a stolen key posing as the owner's (and its id not its own)
    posing = {"id": b["id"], "n": c["n"], "e": 65537}
    for bad in (_ring(c), {"keys": []}, {"nope": 1}, {"keys": [{"id": b["id"]}]},
                _ring(posing), _ring(posing, c)):
        try:
            keys.check_rotation(cur, bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_a_key_id_is_the_fingerprint_the_release_tools_give():
    n = (1 << 2047) | 987654321
    # hashlib.sha256(n.to_bytes(256, "big")).hexdigest()[:16], as host_tools/borne/release.py
    assert keys.key_id(n) == "4ab21c121c1cd991", keys.key_id(n)


def test_main_counts_trial_boots_and_gives_up():
    os.mkdir("app_b")
    slots.write("app_b/.manifest", "{}")
    slots.write("boot_slot", "a")
    slots.write("boot_trial", "b 0")
    for n in range(1, slotchoice.TRIAL_BOOTS + 1):
        assert slotchoice.choose() == ("b", True)
        assert slotchoice._read("boot_trial") == "b %d" % n
    assert slotchoice.choose() == ("a", False)
    assert "not proven after 3 boots" in slots.Slots().take_note()
    assert not slots.exists("boot_trial")
    # an incomplete slot is never tried
    os.remove("app_b/.manifest")
    slots.write("boot_trial", "b 0")
    assert slotchoice.choose() == ("a", False)
    assert "incomplete" in slots.Slots().take_note()
    # a trial record naming the committed slot (a cut inside the commit) is just dropped
    slots.write("boot_trial", "a 1")
    assert slotchoice.choose() == ("a", False) and not slots.exists("boot_note")
