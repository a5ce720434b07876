# The local authorization list on flash: 1,000 tags in a small heap, Full and Differential
# updates (all or nothing), versions, bounds, and updates cut short by a power cut.
# heapsize: 64wK
import asyncio
import gc
import os
from binascii import crc32

from store import Store
from ocpp_client import listupdate
from ocpp_client.locallist import LocalList

ROOT = "ll_store"


def _load(n):
    # The list as the feature loads it, at boot too (ocpp_client/authorization.py): an update a
    # power cut left finished, or dropped.
    ll = LocalList(Store(ROOT), n)
    if ll.unfinished:
        listupdate.recover(ll, True)
    return ll


def _entries(n, prefix="TAG", status="Accepted"):
    for i in range(n):
        yield {"idTag": "%s%05d" % (prefix, i), "idTagInfo": {"status": status,
                                                             "parentIdTag": "FAMILY%d" % (i % 7)}}


def test_full_update_of_1000_tags_and_lookup_in_a_small_heap():
    ll = _load(1000)
    assert listupdate.update(ll, 1, "Full", _entries(1000)) == "Accepted"
    assert ll.version == 1 and ll.count == 1000
    gc.collect()
    before = gc.mem_alloc()
    info = ll.lookup("tag00777")  # CiString: any case
    gc.collect()
    assert info == {"status": "Accepted", "parentIdTag": "FAMILY0"}
    assert gc.mem_alloc() - before < 2048, "a lookup must not load the list"
    assert ll.lookup("NOPE") is None
    again = _load(1000)  # survives a reboot
    assert again.version == 1 and again.lookup("TAG00999")["parentIdTag"] == "FAMILY5"


def test_over_the_maximum_fails_and_keeps_the_old_list():
    ll = _load(10)
    assert listupdate.update(ll, 1, "Full", _entries(5)) == "Accepted"
    assert listupdate.update(ll, 2, "Full", _entries(11, "NEW")) == "Failed"
    assert ll.version == 1 and ll.lookup("TAG00004") is not None and ll.lookup("NEW00000") is None
    assert listupdate.update(ll, 3, "Differential", _entries(6, "MORE")) == "Failed"
    assert ll.version == 1 and ll.count == 5
    # nothing of the failed update is on the list, before or after a reboot
    for l2 in (ll, _load(10)):
        assert all(l2.lookup("MORE%05d" % i) is None for i in range(6))
        assert all(l2.lookup("TAG%05d" % i) is not None for i in range(5))
        assert l2.lookup("NEW00000") is None
    assert sorted(os.listdir(ROOT)) == ["ll", "locallist.json"]


def test_differential_adds_updates_deletes_and_checks_the_version():
    ll = _load(1000)
    listupdate.update(ll, 5, "Full", _entries(3))
    assert listupdate.update(ll, 5, "Differential", []) == "VersionMismatch"
    assert listupdate.update(ll, 4, "Differential", []) == "VersionMismatch"
    res = listupdate.update(ll, 6, "Differential", [
        {"idTag": "TAG00000", "idTagInfo": {"status": "Blocked"}},
        {"idTag": "TAG00001"},  # no idTagInfo: removed
        {"idTag": "GUEST", "idTagInfo": {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00Z"}},
    ])
    assert res == "Accepted" and ll.version == 6 and ll.count == 3
    assert ll.lookup("TAG00000") == {"status": "Blocked"}
    assert ll.lookup("TAG00001") is None
    assert ll.lookup("guest")["expiryDate"] == "2030-01-01T00:00:00Z"


def test_full_update_cut_between_its_renames_is_finished_at_boot():
    st = Store(ROOT)
    ll = LocalList(st, 100)
    listupdate.update(ll, 1, "Full", _entries(3, "OLD"))
    # The state a power cut leaves after the new folder is complete, before the swap.
    orig = listupdate.recover
    listupdate.recover = lambda ll, boot=False: None
    listupdate.update(ll, 2, "Full", _entries(3, "NEW"))
    listupdate.recover = orig
    assert "ll.new" in os.listdir(ROOT)
    after = _load(100)
    assert after.version == 2 and after.lookup("NEW00002") is not None
    assert after.lookup("OLD00000") is None
    assert "ll.new" not in os.listdir(ROOT) and "ll.old" not in os.listdir(ROOT)


def test_full_update_cut_while_writing_keeps_the_old_list():
    st = Store(ROOT)
    ll = LocalList(st, 100)
    listupdate.update(ll, 1, "Full", _entries(3, "OLD"))
    os.mkdir(ROOT + "/ll.new")  # a half-written new list, without its "done" mark
    with open(ROOT + "/ll.new/00", "wb") as f:
        f.write(b"NEW00000\t{\"sta")
    after = _load(100)
    assert after.version == 1 and after.lookup("OLD00001") is not None
    assert after.lookup("NEW00000") is None


def test_differential_of_1000_changes_in_a_small_heap():
    ll = _load(1000)
    assert listupdate.update(ll, 1, "Full", _entries(600)) == "Accepted"

    def changes():
        for i in range(400):
            yield {"idTag": "ADD%05d" % i, "idTagInfo": {"status": "Accepted"}}
        for i in range(500):
            yield {"idTag": "TAG%05d" % i, "idTagInfo": {"status": "Blocked"}}
        for i in range(500, 600):
            yield {"idTag": "tag%05d" % i}  # removed (any case)

    gc.collect()
    assert listupdate.update(ll, 2, "Differential", changes()) == "Accepted"
    assert ll.version == 2 and ll.count == 900
    assert ll.lookup("ADD00399") == {"status": "Accepted"}
    assert ll.lookup("TAG00123") == {"status": "Blocked"}
    assert ll.lookup("TAG00555") is None
    assert _load(1000).count == 900


def _same_bucket(n, b=0):
    # n tags that all land in bucket b
    out = []
    i = 0
    while len(out) < n:
        t = "B%06d" % i
        if crc32(t.encode()) % 32 == b:
            out.append(t)
        i += 1
    return out


def test_a_bucket_with_more_changes_than_fit_in_ram_is_merged_in_order():
    tags = _same_bucket(150)  # ~6 KB of change lines for one bucket: several portions
    ll = _load(1000)
    listupdate.update(ll, 1, "Full", [{"idTag": tags[0], "idTagInfo": {"status": "Accepted"}}])

    def changes():
        # Streamed, as from a spooled message: the test's own data need not sit in this
        # small heap (a list of 150 entries made the margin depend on the checkout's path).
        for i, t in enumerate(tags):
            if i == 3:
                yield {"idTag": tags[140], "idTagInfo": {"status": "Blocked"}}  # early, again
            yield {"idTag": t, "idTagInfo": {"status": "Accepted", "parentIdTag": "P" * 20}}
        yield {"idTag": tags[5]}  # added early, removed last
        yield {"idTag": tags[0], "idTagInfo": {"status": "Expired"}}

    assert listupdate.update(ll, 2, "Differential", changes()) == "Accepted"
    assert ll.count == 149
    assert ll.lookup(tags[140])["status"] == "Accepted"
    assert ll.lookup(tags[5]) is None
    assert ll.lookup(tags[0]) == {"status": "Expired"}
    with open(ROOT + "/ll/00", "rb") as f:
        assert sum(1 for _ in f) == 149


def test_differential_cut_before_or_after_its_done_mark():
    ll = _load(100)
    listupdate.update(ll, 1, "Full", _entries(3, "OLD"))
    # after the mark, before (or during) moving the buckets in: finished at boot
    orig = listupdate.recover
    listupdate.recover = lambda ll, boot=False: None
    listupdate.update(ll, 2, "Differential", _entries(20, "NEW"))
    listupdate.recover = orig
    names = os.listdir(ROOT + "/ll.new")
    assert "done" in names
    first = [n for n in names if len(n) == 2][0]
    os.rename(ROOT + "/ll.new/" + first, ROOT + "/ll/" + first)  # one already moved
    after = _load(100)
    assert after.version == 2 and after.count == 23
    assert all(after.lookup("NEW%05d" % i) is not None for i in range(20))
    assert after.lookup("OLD00002") is not None
    assert "ll.new" not in os.listdir(ROOT)
    # before the mark: dropped at boot, the list as it was
    os.mkdir(ROOT + "/ll.new")
    with open(ROOT + "/ll.new/07.c", "wb") as f:
        f.write(b"OLD00000\t\n")
    again = _load(100)
    assert again.version == 2 and again.lookup("OLD00000") is not None
    assert "ll.new" not in os.listdir(ROOT)


def test_a_tag_that_would_break_the_lines_fails_the_update():
    ll = _load(100)
    listupdate.update(ll, 1, "Full", _entries(3))
    bad = [{"idTag": "A\tB", "idTagInfo": {"status": "Accepted"}}]
    assert listupdate.update(ll, 2, "Full", bad) == "Failed"
    assert listupdate.update(ll, 2, "Differential", [{"idTag": "X\nY"}]) == "Failed"
    assert ll.version == 1 and ll.lookup("TAG00002") is not None


class FastClock:
    # Each reading 7 ms later than the one before.
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        self.t += 7
        return self.t

    def ticks_diff(self, a, b):
        return a - b


async def test_apply_lets_other_tasks_run_between_slices():
    ll = _load(1000)
    turns = [0]

    async def other():
        while True:
            turns[0] += 1
            await asyncio.sleep_ms(0)

    t = asyncio.create_task(other())
    real = listupdate.time
    listupdate.time = FastClock()
    try:
        assert await listupdate.apply(ll, 1, "Full", _entries(200)) == "Accepted"
        n = turns[0]
        assert n >= 50, n
        assert await listupdate.apply(ll, 2, "Differential", _entries(50, "D")) == "Accepted"
        assert turns[0] > n
    finally:
        listupdate.time = real
        t.cancel()
    assert ll.count == 250
