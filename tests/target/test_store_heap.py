# The store, the journal and the event log in a small heap: the charger's ~100 KB heap also
# holds TLS, the OCPP client and the drivers, so persistence must get by with a fraction.
# heapsize: 48wK
import gc

from store import Store
from eventlog import EventLog

SETTINGS = {
    "cp_id": "BORNE-0001", "serial": "SN123456", "model": "borne-22", "vendor": "borne",
    "csms_url": "wss://csms.example.com/ocpp/BORNE-0001", "security_profile": 2,
    "auth_key": "k" * 40, "ca_pem": "-----BEGIN CERTIFICATE-----\n" + "A" * 1800, "name": "Garage",
}


def test_store_in_small_heap():
    gc.collect()
    s = Store("flash")
    for i in range(20):
        d = dict(SETTINGS)
        d["name"] = "Garage %d" % i
        s.save("settings", d)
        got = Store("flash").load("settings", SETTINGS)
        assert got["name"] == "Garage %d" % i and got["ca_pem"] == SETTINGS["ca_pem"]
        gc.collect()


def test_a_document_saves_in_a_heap_with_no_block_of_its_length():
    # A claim's settings (with the CA's PEM: ~2 KB of JSON) saved while the heap is fragmented:
    # every free block of 1 KB or more taken, the save still goes through (the body streams
    # from json.dump to flash; it was once built whole, then copied to bytes).
    s = Store("flash")
    d = dict(SETTINGS)
    gc.collect()
    held = None
    try:
        while True:
            held = (held, bytearray(992))  # 1 KB with its objects
    except MemoryError:
        pass
    try:
        s.save("settings", d)
    finally:
        held = None
    gc.collect()
    assert Store("flash").load("settings", {})["ca_pem"] == SETTINGS["ca_pem"]


def test_journal_and_eventlog_in_small_heap():
    s = Store("flash")
    q = s.journal("txq", 50)
    for i in range(120):
        q.append({"action": "MeterValues", "transactionId": 7, "wh": 1000 + i})
        if i % 4 == 3:
            q.ack(q.last_seq() - 1)
    assert len(q) == sum(1 for _ in q.pending())
    ev = EventLog(s)  # 200 events: the file is far bigger than what is held in RAM at once
    for i in range(450):
        ev.add("meter", wh=i, tag="04A1B2C3D4E5F6")
    gc.collect()
    free = gc.mem_free()
    r = ev.recent(20)
    assert [e["wh"] for e in r] == list(range(449, 429, -1))
    ev2 = EventLog(Store("flash"))
    assert len(ev2) == 200
    assert [e["wh"] for e in ev2.recent(50)][-1] == 400
    assert free > 8000, free


def test_a_queued_record_is_read_back_without_a_second_block_of_its_length():
    # The session delivers the queue one record at a time, each read from its line on flash (a
    # MeterValues line is ~0.4 KB): in a heap short of memory, with one free block that long
    # and no other (tests/test_low_memory.py's squeeze), a record still parses. Its JSON is
    # read where it lies in the line, not copied into a second block of its length first (the
    # copy failed there: the queue stalled for as long as the squeeze lasted).
    s = Store("flash")
    q = s.journal("txq_view", 10)
    sv = [{"v": "%d.5" % (1000 + i), "u": "Wh"} for i in range(5)]
    rec = {"a": "MeterValues", "r": "s1", "p": {"t": "2026-12-07T04:00:00Z", "v": sv}}
    q.append({"a": "Heartbeat"})
    q.append(rec)
    it = q.pending()
    assert next(it)[1] == {"a": "Heartbeat"}  # (the reader's file and frames made)
    gc.collect()
    held = spare = None
    for n in (320, 160):  # every free block of 160 bytes or more taken, a few small ones left
        k = 0
        try:
            while True:
                held = (held, bytearray(n - 32))  # (32: the objects)
                k += 1
                if k % 8 == 0:
                    spare = (spare, bytearray(8))
        except MemoryError:
            pass
    spare = None
    first = held
    try:
        held = held[0]  # gives one block of 320 bytes back: the line's
        first = None
        got = next(it)[1]
    finally:
        held = first = None
        it.close()
    gc.collect()
    assert got == rec, got
