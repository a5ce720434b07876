# Feature: authorization. Decides a tap (auth.py: the local list, the cache, the CSMS's Authorize)
# for the connector, and answers ClearCache, GetLocalListVersion and SendLocalList (the list on
# flash: locallist.py, its updates listupdate.py; a SendLocalList too long for RAM arrives as a
# stream, spooled.py).
# Attached at the first tap (client.feature()) or CALL of it and kept where the bytecode is in the
# heap (.mpy files): a tap or a GetLocalListVersion in a fragmented heap must not depend on
# loading its modules (tests/test_low_memory.py answers the CSMS under a squeeze), nor a list
# update once the first one loaded its modules and reader (attach). Frozen or in a ROMFS image it is transient (features.py): held
# from a tap or CALL to its end, then out of the heap with the modules OWN names; its state is
# on flash (the cache, the list), read again at the next load.
import sys

import asyncio
from ocpp_client import features
from ocpp_client.errors import CallTimeout
from ocpp_client.locallist import LocalList
from supervisor import wake

import log

# The modules this feature loads: dropped with it when it is transient (features.unload); the
# others that load store.wipe drop it after their use too.
OWN = ("ocpp_client.auth", "ocpp_client.locallist", "ocpp_client.listupdate",
       "ocpp_client.spooled", "ocpp_client.jsonstream", "store.wipe")
# Free heap (bytes, after a collection) a SendLocalList update needs beyond its message: the
# entries stream from RAM or flash into at most 7 open files (listupdate.py _spread; on the
# charger's LittleFS ~240 bytes each, its object and cache) plus a merge's portion; measured
# ~5.8 KB on LittleFS under the unix port (64-bit objects: `borne bench local-list`). Below it
# the update is answered Failed before it starts, the list as it was.
ROOM = 8 * 1024
# Its largest allocations of its own: the open files' lists, a Differential merge's two lists
# (listupdate.py _PORTION), a parsed entry; 272 bytes at most each on a 64-bit port (the entries
# were parsed once already, in the heap as it is: a spooled message's pass 1, or the frame). A
# 1,000-tag Full and Differential update go through with no free block of 512 bytes left. Probed
# as _BLOCKS blocks of _BLOCK: with one, a block freed by chance under a squeeze let it start
# (1 run in 6 of test_low_memory.py); at 90 % of the budget, after a session, 2 are found.
_BLOCK = const(512)
_BLOCKS = const(2)
_LATE = const(3)  # late Authorize answers waited for at once (rpc.late_to): taps in a row
_AUTH_TIMEOUT_MS = const(7000)  # a tap waits this long (from the tap, a busy link included)
# for the CSMS before deciding offline (_remote: whatever the link does): with the reader and
# the relay, a listed tag charges within 9 s of the tap (tests/test_dead_waits.py)


class Authorization:
    # The list's CALLs need the list only; a tap, an idTagInfo to remember and ClearCache load
    # the decision (auth.py: the rules and the cache) at their first use. Frozen, a list update
    # (the reference workload's data peak) thus holds ~0.45 KB less.
    def __init__(self, s):
        self.s = s
        local = self.local = LocalList(s.store, s.config.get("LocalAuthListMaxLength"))
        if local.unfinished:
            from ocpp_client import listupdate

            listupdate.recover(local, True)
        self._a = None
        self._ms = _AUTH_TIMEOUT_MS  # the Authorize being decided: how long it waits

    def _auth(self):
        a = self._a
        if a is None:
            from ocpp_client.auth import Auth

            s = self.s
            a = Auth(s.store, s.config, self.local)
            a.remote = self._remote
            a.memo = s  # (s.cached: what transactions.py need not remember again)
            a.conflict = self._conflict
            self._a = a
        return a

    # Without the memory to load the decision, a tap is refused and an idTagInfo not cached, as
    # when the feature itself cannot load (features.load); ClearCache answers InternalError.
    async def authorize_now(self, id_tag, ms=0):
        # -> (status, parent_id_tag): the CSMS asked while it is there, else decided offline.
        # ms: the wait for the CSMS (0: a tap's, _AUTH_TIMEOUT_MS).
        try:
            a = self._auth()
        except MemoryError:
            log.warn("ocpp", "no memory to decide tag %s: refused", id_tag)
            return "Invalid", None
        # A CALL of ours just went unanswered (rpc.quiet): decided offline now, not after the
        # Authorize's own timeout again, until the CSMS is heard from or the link dropped.
        s = self.s
        self._ms = ms or _AUTH_TIMEOUT_MS
        return await a.authorize(id_tag, s.online() and not s.rpc.quiet)

    def remember(self, id_tag, info):
        try:
            a = self._auth()
        except MemoryError:
            log.warn("ocpp", "no memory for the authorization cache: %s not cached", id_tag)
            return
        a.remember(id_tag, info)

    def cache_entry(self, id_tag):
        return self._auth().cache_entry(id_tag)

    def clear_cache(self):
        return self._auth().clear_cache()

    def _conflict(self, id_tag):
        # 1.6 3.5.2: connector 0's status goes to the CSMS again, errorCode LocalListConflict,
        # once per conflict; its next report (the next accepted list update: send_list) says
        # NoError again.
        s = self.s
        log.warn("ocpp", "the CSMS contradicts the local list on %s: LocalListConflict", id_tag)
        s.on_status(0, s.connector.status_of(0)[0], "LocalListConflict")

    async def _remote(self, id_tag):
        # The tap waits self._ms at most, whatever the link does: the Authorize runs in a task
        # of its own, since its write, its turn come late on a congested link, may take up to
        # 5 s more (rpc.py's floor: a tap waited ~12 s). What the CSMS answers after the tap
        # was decided still goes into the cache (_ask).
        box = [asyncio.current_task(), None]
        asyncio.create_task(_ask(self.s, id_tag, self._ms, box))
        try:
            await asyncio.sleep_ms(self._ms)  # until _ask wakes it
        finally:
            box[0] = None  # (a tap cancelled meanwhile: never woken from another sleep)
        r = box[1]
        if r is None:
            raise CallTimeout("Authorize")
        if isinstance(r, Exception):
            raise r
        return r

    async def clear_cache_h(self, p):
        return {"status": self.clear_cache()}

    async def list_version(self, p):
        # 1.6 (TC_042_1/2_CS): -1 while the list is not in use, 0 while it is empty (whatever
        # version its last update carried). The stored version stays what a Differential
        # update is checked against (listupdate.py: VersionMismatch at <= it).
        if not self.s.config.get("LocalAuthListEnabled"):
            return {"listVersion": -1}
        local = self.local
        return {"listVersion": local.version if local.count else 0}

    async def send_list(self, p):
        # The entries are a list, or a generator reading them from flash (a message too long for
        # RAM): counted as they stream past, never len()'d.
        if not self.s.config.get("LocalAuthListEnabled"):
            # The list not in use (GetLocalListVersion: -1): NotSupported, as OCTT TC_043_1_CS
            # has it, the list kept as it was. Accepted, the CSMS took for in force a list no
            # tap consulted.
            return {"status": "NotSupported"}
        local = self.local
        from ocpp_client import listupdate  # (in the heap before its room is looked for)
        from supervisor import code_in_heap

        if code_in_heap() and "ocpp_client.spooled" not in sys.modules:
            try:  # the reader of long lists with the first list, short or not: kept (attach)
                from ocpp_client import spooled  # noqa: F401
            except MemoryError:
                pass

        if p["updateType"] == "Full" or p["listVersion"] > local.version:
            from supervisor import heap_room

            ok, free = heap_room(ROOM, _BLOCK, _BLOCKS)
            if not ok:
                log.warn("ocpp", "SendLocalList (version %d) refused: %d bytes of heap free, "
                         "an update needs %d with %d blocks of %d; Failed, the list stays as "
                         "it was", p["listVersion"], free, ROOM, _BLOCKS, _BLOCK)
                return {"status": "Failed"}
        entries = _at_most(p.get("localAuthorizationList") or (),
                           self.s.config.get("SendLocalListMaxLength"))
        st = await listupdate.apply(local, p["listVersion"], p["updateType"], entries)
        s = self.s
        if st == "Accepted" and "LocalListConflict" in (s._sent[0] or ()):
            s.on_status(0, *s.connector.status_of(0))  # the list updated: conflict over
        return {"status": st}


async def _ask(s, id_tag, ms, box):
    # A tap's Authorize: its idTagInfo (or why none) to the tap while it waits (box[0]), else to
    # the cache (_late), as one that comes after the CALL's own timeout (rpc.late_to).
    rpc = s.rpc
    was = rpc.timed_out
    try:
        r = (await rpc.call("Authorize", {"idTag": id_tag}, ms)).get("idTagInfo") or {
            "status": "Invalid"}
    except Exception as e:
        r = e
        if rpc.timed_out != was:  # sent, not answered in time: its answer may come yet
            lt = rpc.late_to or []
            if len(lt) >= _LATE:
                del lt[0]
            lt.append((rpc.timed_out, lambda m: _late(s, id_tag, m)))
            rpc.late_to = lt
    t = box[0]
    if t is not None:
        box[1] = r
        wake(t)
    elif not isinstance(r, Exception):
        _late(s, id_tag, r)


def _late(s, id_tag, info):
    # An Authorize answered after its tap was decided (offline: a roaming hub may take 10 s):
    # the cache takes its idTagInfo all the same (1.6 3.5.1: every idTagInfo received updates
    # it), or the card's next tap is decided offline again without what the CSMS said. No
    # session starts from it: the owner saw the tap decided. info: an idTagInfo, or the late
    # answer's frame (rpc.late_to).
    try:
        if isinstance(info, list):
            info = info[2] if info[0] == 3 and len(info) == 3 else None
            info = info.get("idTagInfo") if isinstance(info, dict) else None
        if not isinstance(info, dict) or "status" not in info:
            return
        log.info("ocpp", "Authorize of %s answered late (%s): cached", id_tag, info["status"])
        a = s.feature("authorization")
        try:
            if a is not None:
                a.remember(id_tag, info)
        finally:
            features.release(s, s.rpc.handlers, "authorization")
    except Exception as e:  # (no memory for it: not cached, as for a tap)
        log.exc("ocpp", "late Authorize", e)


def _at_most(entries, limit):
    # The entries, failing the update (TooLong: it keeps the old list) past `limit` of them.
    n = 0
    for e in entries:
        n += 1
        if n > limit:
            from ocpp_client.listupdate import TooLong  # (loaded: the update runs)

            raise TooLong("more than SendLocalListMaxLength (%d) entries" % limit)
        yield e


def attach(s):
    # Where the feature is kept (code in the heap), the list's updates (listupdate.py) and the
    # reader of a SendLocalList too long for RAM (spooled.py, jsonstream.py) stay once loaded:
    # loaded at each such message, in a heap a session has fragmented, the reader's code found
    # no block (1,168 bytes) with 40 KB free, and a list update was Failed for good. They load
    # with the feature when a CALL of it attaches it (as before a squeeze: a list's answer then
    # needs no load, tests/test_low_memory.py), but not for a tap (the connector deciding one:
    # ~11 KB of a 64-bit heap that the sessions before a first list have no use for, the
    # reference workload's tightest steps); the first list loads them then (send_list). With no
    # room for them now, they load with the first list. Where the feature is transient, a load
    # makes small objects only: a tap or a remember() does without them; the update loads its
    # module, and rpc.py the reader, for the list that needs them.
    from supervisor import code_in_heap

    if code_in_heap() and not getattr(s.connector, "authorizing", False):
        try:
            from ocpp_client import listupdate, spooled  # noqa: F401
        except MemoryError:
            pass

    a = s.features["authorization"] = Authorization(s)
    if code_in_heap():
        a._auth()  # kept, like the feature: a tap under a squeeze loads nothing
    return {"ClearCache": a.clear_cache_h, "GetLocalListVersion": a.list_version,
            "SendLocalList": a.send_list}
