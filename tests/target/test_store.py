# On-target tests for store.Store: what the charger relies on after a power cut or a bad flash.
# Each test runs in its own empty working directory.
import os
from binascii import crc32
import json

import store as store_mod
from store import Store
from mphelp import Logs, Cut, Power, powered, unpowered, read, write, exists

ROOT = "flash/state"
DEFAULTS = {"name": "", "brightness": 80, "free": False, "tags": [], "net": {"ssid": ""}}


def doc_bytes(data, seq, version=1):
    # The documented on-flash format as save() writes it (the length zero-padded: its header is
    # written before the body and filled in after), built independently of the implementation.
    body = json.dumps(data).encode()
    return b"B1 %d %d %08x %010d\n" % (seq, version, crc32(body), len(body)) + body


def doc(v):
    return {"name": "v%d" % v, "brightness": v}


def test_creates_nested_root():
    Store(ROOT)
    assert exists("flash/state")
    Store(ROOT + "/")  # again: existing root is fine


def test_round_trip_and_format():
    s = Store(ROOT)
    data = {"name": "Garage héé", "brightness": 40, "free": True, "tags": ["04A1", "B2"],
            "net": {"ssid": "home"}, "none": None, "f": 1.5}
    s.save("settings", data)
    assert Store(ROOT).load("settings", DEFAULTS) == data
    # header then body, exactly as documented (seq 1, version 1)
    assert read(s.path("settings")) == doc_bytes(data, 1)
    assert s.path("settings") == ROOT + "/settings.json"


def test_missing_gives_copy_of_defaults_and_logs():
    # A first boot is not a problem: logged, but not as a warning.
    with Logs() as lg:
        d = Store(ROOT).load("settings", DEFAULTS)
    assert d == DEFAULTS
    assert lg.said("settings.json", "not written yet", "defaults"), lg.lines
    assert not lg.warnings(), lg.lines
    with Logs() as lg:  # loaded on use again (smart charging's documents): said once a boot
        s = Store(ROOT)
        s.load("settings", DEFAULTS)
        s.load("settings", DEFAULTS)
    assert len([x for x in lg.lines if "not written yet" in str(x)]) == 1, lg.lines
    d["tags"].append("x")
    d["net"]["ssid"] = "changed"
    assert DEFAULTS["tags"] == [] and DEFAULTS["net"]["ssid"] == ""  # defaults not shared


def test_missing_keys_filled_from_defaults():
    s = Store(ROOT)
    s.save("settings", {"name": "old firmware", "brightness": 10})
    d = Store(ROOT).load("settings", DEFAULTS)
    assert d["name"] == "old firmware" and d["brightness"] == 10
    assert d["free"] is False and d["tags"] == [] and d["net"] == {"ssid": ""}


def test_seq_counts_up_and_keeps_backup():
    s = Store(ROOT)
    for v in (1, 2, 3):
        s.save("settings", doc(v))
    assert read(s.path("settings")) == doc_bytes(doc(3), 3)
    assert read(s.path("settings", ".bak")) == doc_bytes(doc(2), 2)
    assert not exists(s.path("settings", ".tmp"))
    # a new Store (reboot) that saves without loading first still counts up
    s2 = Store(ROOT)
    s2.save("settings", doc(4))
    assert read(s2.path("settings")) == doc_bytes(doc(4), 4)


def test_flipped_byte_falls_back_to_bak():
    s = Store(ROOT)
    s.save("settings", doc(1))
    s.save("settings", doc(2))
    b = bytearray(read(s.path("settings")))
    b[-3] ^= 0x01
    write(s.path("settings"), b)
    with Logs() as lg:
        d = Store(ROOT).load("settings", DEFAULTS)
    assert d["name"] == "v1"
    assert lg.warned("settings.json", "checksum mismatch", ".bak"), lg.lines


def test_truncated_falls_back_to_bak():
    s = Store(ROOT)
    s.save("settings", doc(1))
    s.save("settings", doc(2))
    write(s.path("settings"), read(s.path("settings"))[:-5])
    with Logs() as lg:
        d = Store(ROOT).load("settings", DEFAULTS)
    assert d["name"] == "v1"
    assert lg.warned("settings.json", "truncated"), lg.lines


def test_garbage_header_and_trailing_junk():
    s = Store(ROOT)
    s.save("settings", doc(1))
    s.save("settings", doc(2))
    write(s.path("settings"), b"\x00\xff garbage\n{}")
    assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v1"
    write(s.path("settings"), doc_bytes(doc(5), 5) + b"junk")
    assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v1"
    # a header claiming a huge body must not try to allocate it
    write(s.path("settings"), b"B1 9 1 00000000 999999999\n{}")
    assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v1"


def test_crc_ok_but_not_json_or_not_object():
    s = Store(ROOT)
    s.save("settings", doc(1))
    for body in (b"{not json", b"[1, 2]"):
        write(s.path("settings"), b"B1 7 1 %08x %d\n" % (crc32(body), len(body)) + body)
        with Logs() as lg:
            d = Store(ROOT).load("settings", DEFAULTS)
        assert d == DEFAULTS, d  # the .json was the only copy
        assert lg.warned("settings.json", "defaults"), lg.lines


def test_all_copies_bad_gives_defaults_and_logs_each():
    s = Store(ROOT)
    s.save("settings", doc(1))
    s.save("settings", doc(2))
    write(s.path("settings"), b"")
    b = bytearray(read(s.path("settings", ".bak")))
    b[-2] ^= 0x40
    write(s.path("settings", ".bak"), b)
    with Logs() as lg:
        d = Store(ROOT).load("settings", DEFAULTS)
    assert d == DEFAULTS
    assert lg.warned("settings.json", "settings.bak", "checksum mismatch", "defaults"), lg.lines


def test_save_after_bad_json_keeps_good_bak():
    # A corrupt current copy is dropped, not rotated over the good backup.
    s = Store(ROOT)
    s.save("settings", doc(1))
    s.save("settings", doc(2))
    write(s.path("settings"), b"B1 2 1 0")
    s2 = Store(ROOT)
    assert s2.load("settings", DEFAULTS)["name"] == "v1"
    s2.save("settings", doc(3))
    assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v3"
    assert read(s2.path("settings", ".bak")) == doc_bytes(doc(1), 1)


def test_save_without_load_after_bad_json_keeps_good_bak():
    s = Store(ROOT)
    s.save("settings", doc(1))
    s.save("settings", doc(2))
    write(s.path("settings"), b"B1 2 1 0")
    Store(ROOT).save("settings", doc(3))  # a reboot that saves before loading
    assert read(s.path("settings", ".bak")) == doc_bytes(doc(1), 1)
    assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v3"


def test_no_memory_to_read_is_not_a_bad_file():
    # A load that runs out of memory raises: it neither falls back to the older .bak (stale
    # settings) nor marks the good copy bad (the next save would drop it instead of keeping it).
    s = Store(ROOT)
    s.save("settings", doc(1))
    s.save("settings", doc(2))

    class NoMemory:
        @staticmethod
        def load(f):
            raise MemoryError("memory allocation failed")

    real = store_mod.json
    store_mod.json = NoMemory
    try:
        s.load("settings", DEFAULTS)
        assert False, "the load should have run out of memory"
    except MemoryError:
        pass
    finally:
        store_mod.json = real
    s.save("settings", doc(3))
    assert read(s.path("settings", ".bak")) == doc_bytes(doc(2), 2)
    assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v3"


def _old_and_new(s):
    s.save("settings", doc(1))
    s.save("settings", doc(2))  # .json = v2 (seq 2), .bak = v1 (seq 1)
    return doc_bytes(doc(3), 3)  # what a save of v3 writes into .tmp


def test_power_cut_tmp_partly_written():
    s = Store(ROOT)
    new = _old_and_new(s)
    for cut in (0, 1, 10, len(new) // 2, len(new) - 1):
        write(s.path("settings", ".tmp"), new[:cut])
        with Logs() as lg:
            assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v2"
        assert not lg.warnings(), lg.lines  # an interrupted .tmp is normal: info, not warn


def test_power_cut_tmp_complete_not_renamed():
    s = Store(ROOT)
    write(s.path("settings", ".tmp"), _old_and_new(s))
    s2 = Store(ROOT)
    with Logs() as lg:
        assert s2.load("settings", DEFAULTS)["name"] == "v3"
    assert lg.warned("interrupted"), lg.lines
    # load finished the save: the next save cannot overwrite the only copy of v3
    assert read(s2.path("settings")) == doc_bytes(doc(3), 3)
    assert not exists(s2.path("settings", ".tmp"))
    s2.save("settings", doc(4))
    assert read(s2.path("settings")) == doc_bytes(doc(4), 4)
    assert read(s2.path("settings", ".bak")) == doc_bytes(doc(3), 3)


def test_power_cut_after_rename_to_bak():
    s = Store(ROOT)
    new = _old_and_new(s)
    os.remove(s.path("settings", ".bak"))
    os.rename(s.path("settings"), s.path("settings", ".bak"))
    write(s.path("settings", ".tmp"), new)
    s2 = Store(ROOT)
    assert s2.load("settings", DEFAULTS)["name"] == "v3"
    assert read(s2.path("settings")) == new
    assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v3"
    # seq keeps counting from the newest copy found
    s2.save("settings", doc(4))
    assert read(s2.path("settings")) == doc_bytes(doc(4), 4)


def test_only_bak_left():
    s = Store(ROOT)
    _old_and_new(s)
    os.remove(s.path("settings"))
    with Logs() as lg:
        assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v1"
    assert lg.warned("settings.json", "missing", ".bak"), lg.lines


def test_power_cut_at_every_step_of_save():
    _cut_every_step(False)


def test_power_cut_at_every_step_of_save_on_fat():
    _cut_every_step(True)  # FAT cannot rename over a file


def _cut_every_step(fat):
    # Whatever step the power dies at, a reboot loads the old or the new copy; the new one as
    # soon as its .tmp was complete. And the reboot's next saves work.
    k = 0
    while True:
        d = "run%d" % k
        s = Store(d)
        s.save("cfg", doc(1))
        s.save("cfg", doc(2))
        pw = Power(k, fat)
        powered(store_mod, pw)
        try:
            s.save("cfg", doc(3))
            done = True
        except Cut:
            done = False
        finally:
            unpowered(store_mod)
        want = "v3" if (d + "/cfg.tmp") in pw.closed else "v2"
        s2 = Store(d)
        got = s2.load("cfg", DEFAULTS)["name"]
        assert got == want, (k, got, want)
        # the rebooted charger saves again, and is cut again while writing: still no loss
        pw = Power(1, fat)
        powered(store_mod, pw)
        try:
            s2.save("cfg", doc(4))
        except Cut:
            pass
        finally:
            unpowered(store_mod)
        assert Store(d).load("cfg", DEFAULTS)["name"] == want, k
        s3 = Store(d)
        s3.load("cfg", DEFAULTS)
        s3.save("cfg", doc(5))
        assert Store(d).load("cfg", DEFAULTS)["name"] == "v5"
        if done:
            break
        k += 1
    assert k >= 5, k  # open, header, body, remove .bak, two renames: each step was cut


def test_newer_version_ignored():
    s = Store(ROOT)
    s.save("settings", {"name": "from v2 firmware", "brightness": 1}, version=2)
    with Logs() as lg:
        d = Store(ROOT).load("settings", DEFAULTS, version=1)
    assert d == DEFAULTS
    assert lg.warned("settings.json", "version 2", "newer"), lg.lines
    # the same firmware (or newer) reads it
    assert Store(ROOT).load("settings", DEFAULTS, version=2)["name"] == "from v2 firmware"
    assert Store(ROOT).load("settings", DEFAULTS, version=3)["name"] == "from v2 firmware"
    # saving after a rollback continues the seq, so the rolled-back write is the newest
    s2 = Store(ROOT)
    s2.load("settings", DEFAULTS)
    s2.save("settings", doc(7))
    assert Store(ROOT).load("settings", DEFAULTS)["name"] == "v7"


def test_remove_and_names_independent():
    s = Store(ROOT)
    s.save("a", {"x": 1})
    s.save("a", {"x": 2})
    s.save("b", {"y": 1})
    j = s.journal("a", 10)
    j.append({"m": 1})
    s.remove("a")
    for ext in (".json", ".bak", ".tmp", ".log"):
        assert not exists(s.path("a", ext)), ext
    assert s.load("a", {"x": 0}) == {"x": 0}
    assert s.load("b", {"y": 0}) == {"y": 1}
    s.save("a", {"x": 3})
    assert read(s.path("a")) == doc_bytes({"x": 3}, 1)


def test_journal_lives_in_root():
    s = Store(ROOT)
    j = s.journal("txq", 10)
    j.append({"a": 1})
    assert exists(ROOT + "/txq.log")
    assert [o for _, o in s.journal("txq", 10).pending()] == [{"a": 1}]


def test_power_cut_at_every_step_of_remove():
    # A power cut during remove() boots either the document as it was or none of it, never an
    # older copy (its .bak, or a journal's finished rewrite): a session's document removed as
    # its stop was journaled came back as an earlier checkpoint of that session.
    k = 0
    while True:
        d = "rm%d" % k
        s = Store(d)
        for v in (1, 2, 3):
            s.save("cfg", doc(v))
        j = s.journal("cfg", 10)
        j.append({"m": 1})
        # a journal rewrite cut before its rename, left over (dropped at the journal's open
        # while the journal is there): an older record
        s.journal("old", 10).append({"m": 0})
        os.rename(s.path("old", ".log"), s.path("cfg", ".log.tmp"))
        pw = Power(k)
        powered(store_mod, pw)
        try:
            s.remove("cfg")
            done = True
        except Cut:
            done = False
        finally:
            unpowered(store_mod)
        got = Store(d).load("cfg", DEFAULTS)["name"]
        assert got in ("v3", ""), (k, got)
        got = [o for _, o in Store(d).journal("cfg", 10).pending()]
        assert got in ([{"m": 1}], []), (k, got)
        if done:
            break
        k += 1
    assert k >= 4, k
