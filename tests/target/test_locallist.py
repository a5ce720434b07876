# The local authorization list on flash: 1,000 tags in a small heap, Full and Differential
# updates, versions, bounds, and a Full update cut short by a power cut.
# heapsize: 64wK
import gc
import os

from store import Store
from ocpp_client.locallist import LocalList

ROOT = "ll_store"


def _entries(n, prefix="TAG", status="Accepted"):
    for i in range(n):
        yield {"idTag": "%s%05d" % (prefix, i), "idTagInfo": {"status": status,
                                                             "parentIdTag": "FAMILY%d" % (i % 7)}}


def test_full_update_of_1000_tags_and_lookup_in_a_small_heap():
    ll = LocalList(Store(ROOT), 1000)
    assert ll.update(1, "Full", _entries(1000)) == "Accepted"
    assert ll.version == 1 and ll.count == 1000
    gc.collect()
    before = gc.mem_alloc()
    info = ll.lookup("tag00777")  # CiString: any case
    gc.collect()
    assert info == {"status": "Accepted", "parentIdTag": "FAMILY0"}
    assert gc.mem_alloc() - before < 2048, "a lookup must not load the list"
    assert ll.lookup("NOPE") is None
    again = LocalList(Store(ROOT), 1000)  # survives a reboot
    assert again.version == 1 and again.lookup("TAG00999")["parentIdTag"] == "FAMILY5"


def test_over_the_maximum_fails_and_keeps_the_old_list():
    ll = LocalList(Store(ROOT), 10)
    assert ll.update(1, "Full", _entries(5)) == "Accepted"
    assert ll.update(2, "Full", _entries(11, "NEW")) == "Failed"
    assert ll.version == 1 and ll.lookup("TAG00004") is not None and ll.lookup("NEW00000") is None
    assert ll.update(3, "Differential", _entries(6, "MORE")) == "Failed"
    assert ll.version == 1


def test_differential_adds_updates_deletes_and_checks_the_version():
    ll = LocalList(Store(ROOT), 1000)
    ll.update(5, "Full", _entries(3))
    assert ll.update(5, "Differential", []) == "VersionMismatch"
    assert ll.update(4, "Differential", []) == "VersionMismatch"
    res = ll.update(6, "Differential", [
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
    ll.update(1, "Full", _entries(3, "OLD"))
    # The state a power cut leaves after the new folder is complete, before the swap.
    orig = ll._recover
    ll._recover = lambda: None
    ll.update(2, "Full", _entries(3, "NEW"))
    ll._recover = orig
    assert "ll.new" in os.listdir(ROOT)
    after = LocalList(Store(ROOT), 100)
    assert after.version == 2 and after.lookup("NEW00002") is not None
    assert after.lookup("OLD00000") is None
    assert "ll.new" not in os.listdir(ROOT) and "ll.old" not in os.listdir(ROOT)


def test_full_update_cut_while_writing_keeps_the_old_list():
    st = Store(ROOT)
    ll = LocalList(st, 100)
    ll.update(1, "Full", _entries(3, "OLD"))
    os.mkdir(ROOT + "/ll.new")  # a half-written new list, without its "done" mark
    with open(ROOT + "/ll.new/00", "wb") as f:
        f.write(b"NEW00000\t{\"sta")
    after = LocalList(Store(ROOT), 100)
    assert after.version == 1 and after.lookup("OLD00001") is not None
    assert after.lookup("NEW00000") is None
