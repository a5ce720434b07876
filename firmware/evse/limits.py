# Smart charging on the charger: holds the installed profiles (evse/smart.py, evse/profile.py)
# only while there are any, and applies their limit to the connector as time passes. It sleeps
# until the limit next changes (or a profile or session changes), never polls.
#
# Loaded on use, like an OCPP feature (ocpp_client/features.py, fwboot.py): the profiles' modules
# are imported at boot only when the flash holds a profile, else by the first SetChargingProfile,
# GetCompositeSchedule or remote start with a TxProfile (need()); once no profile is left
# (cleared, expired, its transaction ended) they are dropped again (release(): supervisor.drop),
# and nothing limits the connector, which is what an empty set of profiles means.
import asyncio

import clock

_MAX_SLEEP_S = const(60)  # re-check at least this often: the clock may be set meanwhile
_DOCS = ("smart0", "smart1")  # evse/smart.py's documents (connector 0, connector 1)


class Limits:
    def __init__(self, connector, store):
        self.connector = connector
        self.store = store
        self.smart = None  # evse.smart.Smart while a profile is installed, else None
        self.pending = False  # a remote start's TxProfile waits for its transaction: kept loaded
        self.wake = asyncio.Event()
        connector.listen(self)
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

                sm = Smart(self.store)
            except MemoryError:
                _drop()  # half loaded: out again, the next need() tries anew
                raise
            sm.listen(self)
            self.smart = sm
        return sm

    def release(self):
        # After a change: when no profile is left, the profiles and their modules leave the heap
        # (the next need() imports them again) and the task lifts the limit.
        sm = self.smart
        if sm is not None and not self.pending and not sm.installed():
            self.smart = None
            sm = None
            _drop()
            self.wake.set()

    # listener interface (the smart-charging profiles, the connector)
    def on_profiles(self):
        self.wake.set()

    def on_tx_start(self, s):
        self.wake.set()

    def on_tx_stop(self, s, reason):
        if self.smart is not None:
            self.smart.end_tx(1)  # a TxProfile lives as long as its transaction
            self.release()
        self.wake.set()

    async def run(self):
        while True:
            self.wake.clear()
            wait = self._apply()
            if wait is None:
                await self.wake.wait()  # no profile: nothing changes until one is set
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

    def _apply(self):
        # The limit in force now onto the connector -> seconds until it may change, or None
        # without profiles. The profiles are never held across the task's sleep.
        c = self.connector
        sm = self.smart
        if sm is not None:
            now = clock.now()
            if sm.expire(now):
                self.release()
                sm = self.smart
        if sm is None:
            c.set_limit(None)
            return None
        start = c.session_start
        c.set_limit(sm.limit_at(now, 1, start))
        nxt = sm.next_change(now, 1, start)
        return _MAX_SLEEP_S if nxt is None else max(1, min(_MAX_SLEEP_S, nxt - now))


def _drop():
    from supervisor import drop

    drop("evse.smart", "evse.profile")
