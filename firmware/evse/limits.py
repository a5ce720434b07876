# Smart charging on the charger: holds the installed profiles (evse/smart.py, evse/profile.py)
# only while there are any, and applies their limit to the connector as time passes. It sleeps
# until the limit next changes (or a profile or session changes), never polls.
#
# Loaded on use, like an OCPP feature (ocpp_client/features.py, fwboot.py): the profiles' modules
# are imported at boot only when the flash holds a profile, else by the first SetChargingProfile,
# GetCompositeSchedule or remote start with a TxProfile (need()); once no profile is left
# (cleared, expired, its transaction ended) they are dropped again (release(): supervisor.drop),
# and nothing limits the connector, which is what an empty set of profiles means.
#
# A RemoteStartTransaction's TxProfile (OCPP 1.6 5.11) belongs to the session that remote start
# begins, and to no other: expect() checks it and holds it (parsed: a tuple) while the start waits
# for its authorization and the plug; the connector's session of that remote start installs it
# as it starts (on_tx_start: the pilot's first offer is already the profile's, with
# or without StartTransaction.conf; the transactionId that comes with it changes nothing here),
# and it ends with that session (end_tx). While it waits it counts as installed (Smart.held):
# a SetChargingProfile that would leave it no room is Rejected, not it. A start that never
# becomes that session (no plug within ConnectionTimeOut, the idTag refused, the connector
# unavailable, another start or session first) discards it (on_start_dropped, on_tx_start): it
# never limits anyone else. A ClearChargingProfile that matches it discards it too (drop()).
import asyncio

import clock
import log
from supervisor import code_in_heap, rare, wake

# Where the bytecode is in the heap (.mpy files), the profiles' modules stay loaded while a
# TxProfile waits for its session, which must not need a load in a heap the wait fragmented. Out
# of it (frozen, a ROMFS image: a load makes small objects only) they leave meanwhile, unless
# other profiles are installed: the start's Authorize (the authorization feature, ~2 KB) then
# does not find them loaded, and the session's start loads them again (_apply).
_HOLD = code_in_heap()

_TAG = const("smart")

_MAX_SLEEP_S = const(60)  # re-check at least this often: the clock may be set meanwhile
_DOCS = const(("smart0", "smart1"))  # evse/smart.py's documents (connector 0, connector 1)


class Limits:
    def __init__(self, connector, store):
        self.connector = connector
        self.store = store
        self.smart = None  # evse.smart.Smart while a profile is installed, else None
        # A remote start's TxProfile waiting for its session, (idTag, profile, the session's
        # ref once it started), else False; the loop waits for it (_run).
        self.pending = False
        # The loop sleeps (_napper: its task) until the limit may change; a change of profiles
        # or sessions wakes it (kick()): no task and no Event waiter beside it.
        self._napper = None
        self._kicked = False
        self.active = None  # the loop runs (supervised: _run); None until app.py's run()
        # The clock's steps since the running session started (tx_start()).
        self._shift = 0
        connector.listen(self)
        clock.listeners.append(self.on_clock)
        for d in _DOCS:
            if store.load(d, {"p": []})["p"]:
                self.need()
                self.release()  # none of them loaded (malformed): out again
                break

    def need(self):
        # -> the profiles (evse.smart.Smart), loaded first when none is installed.
        sm = self.smart
        if sm is None:
            try:
                from evse.smart import Smart

                st = self.connector.config.settings
                sm = Smart(self.store, 1, st.get("phases") if st else 3)
            except MemoryError:
                _drop()  # half loaded: out again, the next need() tries anew
                raise
            sm.listen(self)
            self.smart = sm
        sm.held = 1 if self.pending else 0  # a remote start's TxProfile keeps its room
        self._start()  # (a no-op while the loop runs)
        return sm

    def release(self):
        # After a change: when no profile is left, the profiles and their modules leave the heap
        # (the next need() imports them again) and the task lifts the limit.
        sm = self.smart
        if sm is not None and not sm.installed() and not (_HOLD and self.pending):
            self.smart = None
            sm = None
            _drop()
            self.kick()

    def expect(self, id_tag, prof):
        # A RemoteStartTransaction's chargingProfile (a TxProfile), checked now, while the CSMS
        # can still be told no, and held for the session of that remote start. -> None, or why
        # it cannot be used (the remote start is refused). MemoryError: nothing held or loaded.
        if self.pending:
            return "another remote start's TxProfile is pending"
        try:
            if self.smart is None:
                # No profile installed, none to fit beside: parsed first, and the parser out of
                # the heap before the profiles' module loads to hold it (the two at once were
                # the reference workload's peak: no block for the parser at 144wK).
                p, why = rare("evse.profparse", "remote", prof, 1, clock.now())
                if p is None:
                    _drop()  # (evse.profile, which the parser imported)
                else:
                    self.need()
            else:
                p, why = self.need().parse_remote(prof)
        except MemoryError:
            self.release()
            if self.smart is None:
                _drop()  # (evse.profile, which the parser imported)
            raise
        self.pending = (id_tag, p, None) if p is not None else False
        self.release()
        return why

    def drop(self, why):
        # The remote start's TxProfile will have no session: discarded, the profiles released
        # when nothing else holds them.
        p = self.pending
        if p:
            self.pending = False
            log.info(_TAG, "TxProfile %d of the remote start for %s discarded: %s", p[1][0],
                     p[0], why)
            self.release()

    # listener interface (the smart-charging profiles, the connector)
    def on_profiles(self):
        self.kick()

    def on_start_dropped(self, id_tag, source, why):
        # A start waiting for its plug (or its authorization) will not happen.
        p = self.pending
        if p and p[2] is None and source == "remote" and p[0] == id_tag:
            self.drop(why)
        if why == "flash full":  # refused after on_tx_start (connrare.refuse_start): its
            self.on_tx_stop(None, why)  # TxProfile, installed already, goes with it

    def on_clock(self, step, source):
        # The clock was set: the schedules are read anew at the new time (_apply), but the
        # running transaction is no older for it (tx_start()).
        self._shift += step
        self.kick()

    def tx_start(self):
        # When the running session started, on the clock as set now, or None: what relative
        # schedules count from (1.6 3.13.3). The session's own record keeps the time its clock
        # said then (its StartTransaction's); a clock corrected since (an ESP32 without RTC set
        # from 2000-01-01 mid-session) must not age or rejuvenate the transaction.
        t = self.connector.session_start
        return None if t is None else t + self._shift

    def on_tx_start(self, s):
        self._shift = 0
        p = self.pending
        if p:
            if s["src"] == "remote" and s["tag"] == p[0]:
                self.pending = (p[0], p[1], s["ref"])  # its session: installed by _apply()
            else:
                self.drop("another session started")
        self.kick()
        if self.smart is not None or self.pending:
            # Now, not a loop turn later: the session's first offer is already limited.
            self._apply()

    def on_tx_stop(self, s, reason):
        if self.smart is not None:
            self.smart.end_tx(1)  # a TxProfile lives as long as its transaction
            self.release()
        self.kick()

    async def run(self):
        # app.py's task: returns at once. The loop (_run) runs only while profiles are loaded
        # (need() starts it; it ends once none is left): no task, no frame without any.
        self.active = False
        self._start()

    def _start(self):
        if self.active is False and (self.smart is not None or self.pending):
            from supervisor import start

            self.active = True
            try:
                start("limits", self._run)
            except MemoryError:
                self.active = False  # the next need() tries again; a session start applies it

    def kick(self, *_):
        # Something changed: the loop applies the limit now.
        self._kicked = True
        t = self._napper
        if t is not None:
            self._napper = None
            wake(t)

    async def _run(self):
        while True:
            self._kicked = False
            wait = self._apply()
            if wait is None:
                if self.smart is None and not self.pending:
                    self.active = False  # no profile: nothing changes until one is set (need())
                    return
                wait = _MAX_SLEEP_S  # a TxProfile waiting for its session (on_tx_start kicks)
            if self._kicked:
                continue  # (a change while applying)
            self._napper = asyncio.current_task()
            try:
                await asyncio.sleep(wait)
            finally:
                self._napper = None

    def _apply(self):
        # The limit in force now onto the connector -> seconds until it may change, or None
        # without profiles. The profiles are never held across the task's sleep.
        c = self.connector
        sm = self.smart
        p = self.pending
        if p and p[2] is not None:
            if p[2] == c.session_ref:
                try:
                    sm = self.need()
                    sm.held = 0  # the room kept for it
                    ok = sm.install(p[1])[0] == "Accepted"
                except MemoryError:
                    ok = False
                if not ok:
                    # Never above the CSMS's limit: nothing offered until it is in.
                    c.set_limit(0)
                    return 1
            self.pending = False  # in, or its session ended first
            self.release()
            sm = self.smart
        start = self.tx_start()
        if sm is not None:
            if not clock.trusted():
                # No date to read a schedule at: the lowest limit the profiles could impose,
                # never none (a site's grid cap must hold offline after a power cut) until the
                # clock is set (kick).
                c.set_limit(sm.lowest(1, start is not None))
                return _MAX_SLEEP_S
            now = clock.now()
            if sm.expire(now):
                self.release()
                sm = self.smart
        if sm is None:
            c.set_limit(None)
            return None
        c.set_limit(sm.limit_at(now, 1, start))
        nxt = sm.next_change(now, 1, start, now + _MAX_SLEEP_S)
        return _MAX_SLEEP_S if nxt is None else max(1, min(_MAX_SLEEP_S, nxt - now))


def _drop():
    from supervisor import drop

    drop("evse.smart", "evse.profile")
