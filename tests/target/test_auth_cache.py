# The authorization cache (ocpp_client/auth.py): every idTagInfo the CSMS gives is remembered
# and decides a tap offline; it survives a reboot; it holds at most 64 tags, a full bucket
# forgetting its least recently used; ClearCache empties it. It is never in RAM whole: 64 cached
# tags with expiry and parent took ~15 KB of heap when it was one document.
import gc

import clock
from mphelp import Logs
from ocpp_client import auth
from ocpp_client.auth import Auth
from ocpp_client.config import Config
from store import Store

PER_BUCKET = 8  # auth.py _PER_BUCKET (a const: not a module attribute)
INFO = {"status": "Accepted", "expiryDate": "2099-01-01T00:00:00.000Z", "parentIdTag": "FLEET01"}


def _auth(root):
    store = Store(root)
    return Auth(store, Config(store))


def _fill(a, n, prefix="04A1B2"):
    for i in range(n):
        a.remember("%s%04X" % (prefix, i), dict(INFO, parentIdTag="FLEET%03d" % i))


async def test_a_remembered_tag_decides_a_tap_offline_after_a_reboot():
    a = _auth("ac_reboot")
    a.remember("04A1B2C3", INFO)
    a.remember("DEADBEEF", {"status": "Blocked"})
    a = _auth("ac_reboot")  # power cut: a new object on the same flash
    assert await a.authorize("04A1B2C3", False) == ("Accepted", "FLEET01")
    assert await a.authorize("DEADBEEF", False) == ("Blocked", None)
    assert await a.authorize("0BADCAFE", False) == ("Invalid", None)


def test_sixty_four_cached_tags_hold_no_heap_and_a_lookup_lets_its_bucket_go():
    a = _auth("ac_heap")
    _fill(a, 64)
    store = Store("ac_heap")
    cfg = Config(store)
    a = None
    gc.collect()
    before = gc.mem_alloc()
    a = Auth(store, cfg)  # (as one document, such a cache held ~28 KB here: a 64-bit port)
    gc.collect()
    held = gc.mem_alloc() - before
    assert held < 256, "the cache's object holds %d bytes" % held
    assert a.cache_entry("04A1B20011")[0]["parentIdTag"] == "FLEET017"
    gc.collect()
    assert gc.mem_alloc() - before < 256, "a lookup kept %d bytes" % (gc.mem_alloc() - before)


def test_a_full_bucket_forgets_the_tag_it_was_told_of_longest_ago():
    a = _auth("ac_lru")
    t0 = clock.now()
    tags = []
    i = 0
    while len(tags) < PER_BUCKET + 1:  # tags of one bucket
        tag = "CAFE%04X" % i
        if auth._doc(tag) == "authc0":
            tags.append(tag)
        i += 1
    for n, tag in enumerate(tags[:-1]):  # the bucket full, a second apart
        clock.set_utc(t0 + n, "test")
        a.remember(tag, INFO)
    clock.set_utc(t0 + 100, "test")
    a.remember(tags[0], dict(INFO, parentIdTag="NEW"))  # told again: now the newest
    a.remember(tags[-1], INFO)  # one more: the bucket forgets one
    kept = [t for t in tags if a.cache_entry(t) is not None]
    assert len(kept) == PER_BUCKET and tags[0] in kept and tags[-1] in kept, kept
    assert tags[1] not in kept  # told of longest ago


def test_clear_cache_empties_every_bucket():
    a = _auth("ac_clear")
    _fill(a, 20)
    assert a.clear_cache() == "Accepted"
    assert all(a.cache_entry("04A1B2%04X" % i) is None for i in range(20))
    a.config.set("AuthorizationCacheEnabled", "false")
    assert a.clear_cache() == "Rejected"  # disabled and empty: nothing to clear
    a.config.set("AuthorizationCacheEnabled", "true")
    assert a.clear_cache() == "Accepted"


def test_the_cache_of_earlier_firmware_moves_into_the_buckets_once():
    store = Store("ac_old")
    old = {}
    for i in range(70):  # earlier firmware's one document: {tag: [idTagInfo, last_used]}
        old["04A1B2%04X" % i] = [{"status": "Accepted"}, 1700000000 + i]
    store.save("authcache", old)
    old = None
    with Logs() as logs:
        a = Auth(store, Config(store))
    assert logs.said("moved into"), logs.lines
    kept = [i for i in range(70) if a.cache_entry("04A1B2%04X" % i) is not None]
    assert 0 < len(kept) <= 64 and 69 in kept, kept  # the most recent of each bucket stay
    assert store.load("authcache", None) is None  # the old document is gone
