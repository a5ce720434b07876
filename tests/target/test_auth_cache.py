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


async def test_a_tag_cached_in_lower_case_decides_the_cards_tap_offline():
    # idTags are CiString20: a CSMS may name a card in lower case (a remote start, its
    # records), the reader reads the UID in upper case. The cache missed it offline.
    a = _auth("ac_case")
    a.remember("04a1b2c3", INFO)
    assert await a.authorize("04A1B2C3", False) == ("Accepted", "FLEET01")
    assert a.cache_entry("04A1b2C3") is not None


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


class _List:
    # The local list as Auth reads it (ocpp_client/locallist.py: lookup()).
    def __init__(self, entries):
        self.entries = entries

    def lookup(self, id_tag):
        return self.entries.get(id_tag)


def test_an_answer_contradicting_the_list_in_use_is_a_conflict_and_the_list_wins():
    # 1.6 3.5.2 LocalListConflict; a list not in use (LocalAuthListEnabled false) contradicts
    # nothing and keeps no tag out of the cache.
    store = Store("ac_conflict")
    a = Auth(store, Config(store), _List({"LISTED": {"status": "Accepted"},
                                          "BARRED": {"status": "Blocked"}}))
    told = []
    a.conflict = told.append
    a.remember("LISTED", {"status": "Accepted"})
    a.remember("LISTED", {"status": "ConcurrentTx"})  # says nothing of the tag's validity
    a.remember("OTHER", {"status": "Blocked"})
    # Accepted with an expiryDate past (a CSMS's now + its cache window, a clock ahead): the
    # CSMS accepts the tag as the list does (expiryDate is when it leaves the cache, 1.6 7.15)
    a.remember("LISTED", {"status": "Accepted", "expiryDate": "2001-01-01T00:00:00Z"})
    assert told == []
    a.remember("LISTED", {"status": "Blocked"})
    a.remember("BARRED", {"status": "Accepted"})
    assert told == ["LISTED", "BARRED"]
    assert a.cache_entry("LISTED") is None and a.cache_entry("OTHER") is not None
    a.config.set("LocalAuthListEnabled", "false")
    a.remember("LISTED", {"status": "Blocked"})
    assert told == ["LISTED", "BARRED"]
    assert a.cache_entry("LISTED")[0] == {"status": "Blocked"}


async def test_a_callerror_to_authorize_refuses_and_no_answer_decides_offline():
    from ocpp_client.errors import CallError, CallTimeout

    store = Store("ac_callerror")
    a = Auth(store, Config(store))
    a.config.set("AllowOfflineTxForUnknownId", "true")
    why = []

    async def remote(id_tag):
        raise why[0]

    a.remote = remote
    why.append(CallError("InternalError"))
    assert await a.authorize("04A1B2C3", True) == ("Invalid", None)
    why[0] = CallTimeout("Authorize")
    assert await a.authorize("04A1B2C3", True) == ("Accepted", None)  # unknown, offline


async def test_offline_without_local_authorize_offline_a_cached_tag_is_unknown():
    # 1.6 3.4: the cache may not authorize it, so AllowOfflineTxForUnknownId decides; a refusal
    # the cache holds still refuses.
    store = Store("ac_unknown")
    a = Auth(store, Config(store))
    a.remember("04A1B2C3", {"status": "Accepted"})
    a.remember("DEADBEEF", {"status": "Blocked"})
    a.config.set("LocalAuthorizeOffline", "false")
    assert await a.authorize("04A1B2C3", False) == ("Invalid", None)
    a.config.set("AllowOfflineTxForUnknownId", "true")
    assert await a.authorize("04A1B2C3", False) == ("Accepted", None)
    assert await a.authorize("DEADBEEF", False) == ("Blocked", None)


async def test_concurrent_tx_does_not_replace_the_cached_status_of_the_card():
    # 1.6 3.5.1 / 7.25: ConcurrentTx says the card is in a transaction elsewhere now, nothing
    # of the card itself: the next offline tap, that transaction over, is decided as before.
    a = _auth("ac_concurrent")
    a.remember("04A1B2C3", INFO)
    a.remember("04A1B2C3", {"status": "ConcurrentTx"})  # tapped while charging elsewhere
    assert a.cache_entry("04A1B2C3")[0] == INFO
    assert await a.authorize("04A1B2C3", False) == ("Accepted", "FLEET01")
    a.remember("0BADCAFE", {"status": "ConcurrentTx"})  # a card never cached: still unknown
    assert a.cache_entry("0BADCAFE") is None
    a.config.set("AllowOfflineTxForUnknownId", "true")
    assert await a.authorize("0BADCAFE", False) == ("Accepted", None)


async def test_an_authorize_answer_without_a_readable_id_tag_info_refuses_and_keeps_the_cache():
    # 1.6 6.3: Authorize.conf's idTagInfo (with its status) is required. One that is not an
    # object with a status gives no verdict: the tap is refused (the CSMS is there), never a
    # crash of the tap's task (no red flash), and the cached entry is not touched.
    a = _auth("ac_unreadable")
    a.remember("04A1B2C3", INFO)
    answers = ["Accepted", {}, {"parentIdTag": "FLEET01"}, None]

    async def remote(id_tag):
        return answers.pop(0)

    a.remote = remote
    with Logs():
        for _ in range(4):
            assert await a.authorize("0BADCAFE", True) == ("Invalid", None)
    a.config.set("LocalPreAuthorize", "false")
    answers.append({})
    with Logs():
        assert await a.authorize("04A1B2C3", True) == ("Invalid", None)
    assert a.cache_entry("04A1B2C3")[0] == INFO
    assert a.cache_entry("0BADCAFE") is None


async def test_an_id_tag_info_without_a_status_changes_neither_the_cache_nor_the_list():
    # A StopTransaction.conf's idTagInfo goes to the cache as it is (transactions.py); one
    # without the status 1.6 requires in it ({}, a CSMS's empty object; an expiryDate or a
    # parentIdTag alone) says nothing of the card. It replaced the card's Accepted entry with an
    # empty one (its next offline tap refused: "Invalid"), and against the list in use it was
    # reported as a LocalListConflict.
    a = _auth("ac_nostatus")
    a.remember("04A1B2C3", INFO)
    for info in ({}, {"expiryDate": "2099-01-01T00:00:00Z"}, {"parentIdTag": "X"}):
        a.remember("04A1B2C3", info)
        a.remember("0BADCAFE", info)
    assert a.cache_entry("04A1B2C3")[0] == INFO
    assert a.cache_entry("0BADCAFE") is None
    assert await a.authorize("04A1B2C3", False) == ("Accepted", "FLEET01")
    store = Store("ac_nostatus_list")
    a = Auth(store, Config(store), _List({"LISTED": {"status": "Accepted"}}))
    told = []
    a.conflict = told.append
    a.remember("LISTED", {})
    a.remember("LISTED", {"expiryDate": "2099-01-01T00:00:00Z"})
    assert told == []
