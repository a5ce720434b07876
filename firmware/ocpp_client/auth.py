# Authorization of idTags: the local authorization list, the authorization cache, and the CSMS.
# Follows LocalPreAuthorize, LocalAuthorizeOffline, AllowOfflineTxForUnknownId and
# AuthorizationCacheEnabled. The cache is bounded and persisted (written when an entry changes).
import clock
import log

_TAG = "auth"
_CACHE = "authcache"
_CACHE_MAX = const(64)


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
        self.cache = store.load(_CACHE, {})  # id_tag -> [idTagInfo, last_used]
        self.remote = None  # async fn(id_tag) -> idTagInfo; raises when offline
        self.memo = None  # object whose .cached the last (id_tag, info) remembered goes to

    def _local_info(self, id_tag):
        if self.local is not None and self.config.get("LocalAuthListEnabled"):
            info = self.local.lookup(id_tag)
            if info is not None:
                return info
        if self.config.get("AuthorizationCacheEnabled"):
            e = self.cache.get(id_tag)
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
            except Exception as e:
                log.warn(_TAG, "Authorize failed (%s): deciding offline", type(e).__name__)
            else:
                self.remember(id_tag, info)
                st = info.get("status", "Invalid")
                if st == "Accepted" and not _valid(info, now):
                    st = "Expired"
                return st, info.get("parentIdTag")
        # Offline.
        info = self._local_info(id_tag)
        if info is not None:
            if self.config.get("LocalAuthorizeOffline") and _valid(info, now):
                return "Accepted", info.get("parentIdTag")
            st = info.get("status", "Invalid")
            return ("Expired" if st == "Accepted" else st), info.get("parentIdTag")
        if self.config.get("AllowOfflineTxForUnknownId"):
            log.info(_TAG, "%s unknown, accepted offline (AllowOfflineTxForUnknownId)", id_tag)
            return "Accepted", None
        return "Invalid", None

    def remember(self, id_tag, info):
        # Every idTagInfo the CSMS sends updates the cache (Authorize, Start/StopTransaction).
        if not self.config.get("AuthorizationCacheEnabled") or not isinstance(info, dict):
            return
        if self.local is not None and self.local.lookup(id_tag) is not None:
            return  # the local list wins; the cache does not shadow it
        entry = {k: info[k] for k in ("status", "expiryDate", "parentIdTag") if k in info}
        old = self.cache.get(id_tag)
        if not old or old[0] != entry:
            self.cache[id_tag] = [entry, clock.now()]
            if len(self.cache) > _CACHE_MAX:
                oldest = min(self.cache, key=lambda k: self.cache[k][1])
                del self.cache[oldest]
            self.store.save(_CACHE, self.cache)
        if self.memo is not None:
            self.memo.cached = (id_tag, info)

    def clear_cache(self):
        if not self.config.get("AuthorizationCacheEnabled") and not self.cache:
            return "Rejected"
        self.cache = {}
        self.store.save(_CACHE, self.cache)
        if self.memo is not None:
            self.memo.cached = None
        return "Accepted"
