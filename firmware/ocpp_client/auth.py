# Authorization of idTags: the local authorization list, the authorization cache, and the CSMS.
# Follows LocalPreAuthorize, LocalAuthorizeOffline, AllowOfflineTxForUnknownId and
# AuthorizationCacheEnabled. The cache is bounded and persisted (written when an entry changes).
#
# The cache is never in RAM whole: 64 tags with expiry and parent took ~15 KB of heap (32-bit),
# for good where the feature is kept, at every tap where it is transient. Its tags are spread
# over _BUCKETS documents by a hash of the tag; a lookup or an update loads the one document of
# its tag (at most _PER_BUCKET entries, ~2 KB) and lets it go. A full bucket forgets the tag the
# CSMS told of longest ago (64 tags in all).
from binascii import crc32

import clock
import log
from ocpp_client.errors import CallError

_TAG = const("auth")
_OLD_CACHE = const("authcache")  # earlier firmware's one document: spread into buckets once
_BUCKETS = const(8)
_PER_BUCKET = const(8)


def _bucket(i):
    # The document of bucket i: {id_tag: [idTagInfo, last_used]}.
    return "authc%d" % i


def docs():
    # Every document of the cache: the buckets and earlier firmware's one (a factory reset wipes
    # them: hotspot/reset.py).
    return tuple(_bucket(i) for i in range(_BUCKETS)) + (_OLD_CACHE,)


def _doc(id_tag):
    # The document of a tag's bucket. Tags are CiString20: the cache keys them in upper case,
    # as the reader reads a card's UID and the local list keys it.
    return _bucket(crc32(id_tag.upper().encode()) % _BUCKETS)


def _migrate(store):
    # The cache as earlier firmware kept it (one document, up to 64 tags), spread into the
    # buckets once, each keeping its most recently used. Loaded whole this one time: without
    # the memory for it, it is dropped (a cache; the CSMS answers again).
    import os

    try:
        os.stat(store.path(_OLD_CACHE))
    except OSError:
        return
    try:
        old = store.load(_OLD_CACHE, {})
        for i in range(_BUCKETS):
            doc = _bucket(i)
            b = store.load(doc, {})
            for tag in old:
                if _doc(tag) == doc and isinstance(old[tag], list) and tag.upper() not in b:
                    b[tag.upper()] = old[tag]
            while len(b) > _PER_BUCKET:
                del b[min(b, key=lambda k: b[k][1])]
            if b:
                store.save(doc, b)
        log.info(_TAG, "authorization cache of %d tags moved into %d buckets", len(old), _BUCKETS)
    except Exception as e:  # no memory for it whole, a malformed entry
        log.warn(_TAG, "old authorization cache dropped: %s", type(e).__name__)
    old = None
    store.remove(_OLD_CACHE)


def _valid(info, now):
    # An idTagInfo that lets a session start now.
    if info.get("status") != "Accepted":
        return False
    exp = info.get("expiryDate")
    if exp:
        try:
            return clock.parse_iso(exp) > now
        except ValueError:
            return False
    return True


class Auth:
    def __init__(self, store, config, local_list=None):
        self.store = store
        self.config = config
        self.local = local_list  # object with .lookup(id_tag) -> idTagInfo or None
        _migrate(store)
        self.remote = None  # async fn(id_tag) -> idTagInfo; raises when offline
        self.memo = None  # object whose .cached the last (id_tag, info) remembered goes to
        self.conflict = None  # fn(id_tag): the CSMS contradicted the local list

    def _local_info(self, id_tag):
        if self.local is not None and self.config.get("LocalAuthListEnabled"):
            info = self.local.lookup(id_tag)
            if info is not None:
                return info
        if self.config.get("AuthorizationCacheEnabled"):
            e = self.cache_entry(id_tag)
            if e:
                return e[0]
        return None

    async def authorize(self, id_tag, online):
        # -> (status, parent_id_tag)
        now = clock.now()
        info = self._local_info(id_tag)
        if info is not None and _valid(info, now) and (
            self.config.get("LocalPreAuthorize") or not online
        ):
            if online or self.config.get("LocalAuthorizeOffline"):
                log.info(_TAG, "%s accepted locally", id_tag)
                return "Accepted", info.get("parentIdTag")
        if online and self.remote is not None:
            try:
                info = await self.remote(id_tag)
            except CallError as e:
                # The CSMS is there and did not authorize the tag: refused, never decided as
                # offline (AllowOfflineTxForUnknownId would let any card charge).
                log.warn(_TAG, "Authorize answered %s: %s refused", e.code, id_tag)
                return "Invalid", None
            except Exception as e:  # no answer (a dead link, a timeout): decided offline
                log.warn(_TAG, "Authorize failed (%s): deciding offline", type(e).__name__)
            else:
                if not isinstance(info, dict) or "status" not in info:
                    # Not the idTagInfo 1.6 requires: no verdict, not authorized, not cached.
                    log.warn(_TAG, "Authorize answer without idTagInfo: %s refused", id_tag)
                    return "Invalid", None
                self.remember(id_tag, info)
                # The CSMS's verdict as it is: expiryDate is when the tag leaves the cache
                # (1.6 7.15), not a verdict (one in the past, or a clock ahead, refused a card
                # the CSMS accepted); the cache's entry is then expired for offline taps.
                return info.get("status", "Invalid"), info.get("parentIdTag")
        # Offline.
        info = self._local_info(id_tag)
        if info is not None and not _valid(info, now):
            st = info.get("status", "Invalid")
            return ("Expired" if st == "Accepted" else st), info.get("parentIdTag")
        if info is not None and self.config.get("LocalAuthorizeOffline"):
            return "Accepted", info.get("parentIdTag")
        # Unknown, or valid where the list and cache may not authorize (LocalAuthorizeOffline
        # false): what 1.6 3.4 calls "unknown".
        if self.config.get("AllowOfflineTxForUnknownId"):
            log.info(_TAG, "%s unknown, accepted offline (AllowOfflineTxForUnknownId)", id_tag)
            return "Accepted", None
        return "Invalid", None

    def remember(self, id_tag, info):
        # Every idTagInfo the CSMS sends updates the cache (Authorize, Start/StopTransaction);
        # one that contradicts the tag's entry in the list in use is a LocalListConflict
        # (1.6 3.5.2: told to the CSMS by self.conflict(id_tag)). ConcurrentTx says nothing
        # of the tag's validity (1.6 3.5.1: a transaction in progress elsewhere): no conflict,
        # and the cached entry stays (kept, it refused the card's next offline tap for good).
        if not isinstance(info, dict) or "status" not in info:
            # (1.6 requires the status: {} or a lone expiryDate says nothing of the tag; taken
            # for one, it emptied the card's cached entry or raised a false LocalListConflict)
            return
        now = clock.now()
        listed = self.local.lookup(id_tag) if (
            self.local is not None and self.config.get("LocalAuthListEnabled")) else None
        if info.get("status") == "ConcurrentTx":
            pass
        elif listed is not None:  # the list wins; the cache does not shadow it
            # (the answer's status as it is: its expiryDate is the cache's, not a verdict)
            if self.conflict is not None and _valid(listed, now) != (
                    info.get("status") == "Accepted"):
                self.conflict(id_tag)
        elif not self.config.get("AuthorizationCacheEnabled"):
            return
        else:
            entry = {k: info[k] for k in ("status", "expiryDate", "parentIdTag") if k in info}
            doc = _doc(id_tag)
            b = self.store.load(doc, {})
            key = id_tag.upper()
            old = b.get(key)
            if not old or old[0] != entry:
                b[key] = [entry, now]
                if len(b) > _PER_BUCKET:
                    del b[min(b, key=lambda k: b[k][1])]
                try:  # best effort: the flash full or failing loses the entry, not the tap
                    self.store.save(doc, b)
                except OSError as e:
                    log.exc(_TAG, "cache of %s" % id_tag, e)
        if self.memo is not None:  # (the list's answer too: one conflict reported once)
            self.memo.cached = (id_tag, info)

    def cache_entry(self, id_tag):
        # -> the cache's [idTagInfo, last_used] of a tag, or None.
        return self.store.load(_doc(id_tag), {}).get(id_tag.upper())

    def clear_cache(self):
        st = self.store
        had = False
        for i in range(_BUCKETS):
            doc = _bucket(i)
            if st.load(doc, {}):
                had = True
                st.remove(doc)
        if not had and not self.config.get("AuthorizationCacheEnabled"):
            return "Rejected"
        if self.memo is not None:
            self.memo.cached = None
        return "Accepted"
