# Feature: authorization. Decides a tap (auth.py: the local list, the cache, the CSMS's Authorize)
# for the connector, and answers ClearCache, GetLocalListVersion and SendLocalList (the list on
# flash: locallist.py; a SendLocalList too long for RAM arrives as a stream, spooled.py).
from ocpp_client.auth import Auth
from ocpp_client.locallist import LocalList, TooLong

_AUTH_TIMEOUT_MS = const(8000)  # a tap waits this long for the CSMS before deciding offline


class Authorization(Auth):
    def __init__(self, s):
        cfg = s.config
        super().__init__(s.store, cfg, LocalList(s.store, cfg.get("LocalAuthListMaxLength")))
        self.s = s
        self.remote = self._remote
        s.connector.set_authorizer(self.authorize_now)

    async def authorize_now(self, id_tag):
        # -> (status, parent_id_tag): the CSMS asked while it is there, else decided offline.
        return await self.authorize(id_tag, self.s.online())

    async def _remote(self, id_tag):
        conf = await self.s.rpc.call("Authorize", {"idTag": id_tag}, _AUTH_TIMEOUT_MS)
        return conf.get("idTagInfo") or {"status": "Invalid"}

    async def clear_cache_h(self, p):
        return {"status": self.clear_cache()}

    async def list_version(self, p):
        local = self.local
        return {"listVersion": local.version if local.count or local.version else 0}

    async def send_list(self, p):
        # The entries are a list, or a generator reading them from flash (a message too long for
        # RAM): counted as they stream past, never len()'d.
        entries = _at_most(p.get("localAuthorizationList") or (),
                           self.config.get("SendLocalListMaxLength"))
        return {"status": await self.local.apply(p["listVersion"], p["updateType"], entries)}


def _at_most(entries, limit):
    # The entries, failing the update (TooLong: it keeps the old list) past `limit` of them.
    n = 0
    for e in entries:
        n += 1
        if n > limit:
            raise TooLong("more than SendLocalListMaxLength (%d) entries" % limit)
        yield e


def attach(s):
    a = s.features["authorization"] = Authorization(s)
    return {"ClearCache": a.clear_cache_h, "GetLocalListVersion": a.list_version,
            "SendLocalList": a.send_list}
