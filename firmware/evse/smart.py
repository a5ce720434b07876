# OCPP 1.6 Smart Charging on the charger: the installed charging profiles, and what they allow.
# SetChargingProfile / ClearChargingProfile change the set; limit_at() gives the current limit
# for the pilot, next_change() when to look again (the caller sleeps until then, no polling),
# composite_schedule() answers GetCompositeSchedule (evse/composite.py, loaded for the call,
# awaited: a long one yields to the event loop).
# Pure logic: times are passed in (unix s UTC).
#
# Rules (OCPP 1.6 3.13 and 5.16, shared/OCPP16.md):
# - within one purpose, the highest stackLevel that applies at t wins; a profile applies while t
#   is within validFrom/validTo and within its schedule's duration, so when it ends the next
#   lower level takes over;
# - TxProfile (only during a transaction) wins over TxDefaultProfile; a TxDefaultProfile on the
#   connector wins over one on connector 0 (which is for every connector);
# - ChargePointMaxProfile (connector 0) caps the result: limit = min(max, tx) at every instant;
# - W <-> A at 230 V x the installation's phases, never the profile's numberPhases (profile.py);
# - connector 0's composite is the charge point's total: its connectors' limits summed, capped;
# - same chargingProfileId, or same connector + purpose + stackLevel, replaces.
#
# Persistence: one store document per connector ("smart0", "smart1") with that connector's
# ChargePointMaxProfile / TxDefaultProfile lists, saved only when a profile is set or cleared.
# TxProfiles live in RAM only: they end with their transaction, and every reboot ends it.
# Loaded on use: evse/limits.py imports this module (and profile.py) only while a profile is
# installed or asked about, and drops both when none is left.
import clock
import log
from evse import profile as pf
from evse.profile import CONN, ID, PURPOSE, STACK, TX, TX_DEFAULT, CP_MAX, KEY_PER_DECIAMP

_TAG = "smart"
# Advertised as MaxChargingProfilesInstalled: with MAX_PERIODS, bounds RAM to a few KB.
MAX_PROFILES = const(10)
_SCAN = const(400)  # edges next_change() looks at before answering "look again then"


def _doc(cid):
    return "smart%d" % cid


def min_segment(a, b):
    # Segments (key, phases, unit, tenths); None = no limit. On a tie the first one stays.
    if a is None:
        return b
    if b is None or a[0] <= b[0]:
        return a
    return b


def _amps(s):
    # Segment -> amps per phase rounded down to 0.1 A (never above the limit), or None.
    if s is None:
        return None
    return (s[0] // KEY_PER_DECIAMP) / 10


class Smart:
    def __init__(self, store, connectors=1, phases=3):
        self.store = store
        self.n = connectors
        self.phases = phases if phases in (1, 2, 3) else 3  # installed (settings `phases`)
        self.listeners = []  # objects with on_profiles(): after any change, a sleeper re-evaluates
        # 1 while a remote start's TxProfile waits for its session (evse/limits.py sets it): it
        # counts as installed, its room is kept.
        self.held = 0
        self._p = []
        for c in range(connectors + 1):
            d = store.load(_doc(c), {"p": []})["p"]
            for p in d if isinstance(d, list) else ():
                p = pf.loaded(p, c)
                if p is not None:
                    self._p.append(p)
                else:
                    log.warn(_TAG, "%s: dropped a malformed profile", _doc(c))

    # -- changing the set -----------------------------------------------------------------------

    def set_profile(self, req, tx_id=None, now=None):
        # SetChargingProfile.req -> ("Accepted", None) or ("Rejected", reason). tx_id: the active
        # transaction on req's connector (None without one; TxProfiles need it). Nothing changes
        # when Rejected.
        p, why = self.parse(req, tx_id, now)
        if p is None:
            log.warn(_TAG, "SetChargingProfile rejected: %s", why)
            return "Rejected", why
        return self.install(p)

    def parse(self, req, tx_id=None, now=None):
        # SetChargingProfile.req -> (profile, None) for install(), or (None, reason); checked
        # against the set's connectors, nothing changed. The parser loads for the call only.
        from supervisor import rare

        return rare("evse.profparse", "parse", req, self.n, tx_id,
                    clock.now() if now is None else now)

    def parse_remote(self, prof):
        # A RemoteStartTransaction's chargingProfile -> parse()'s answer (profparse.remote).
        # Refused too when it would not fit beside the profiles installed now: accepted, it
        # would be dropped at its session's start.
        from supervisor import rare

        p, why = rare("evse.profparse", "remote", prof, self.n, clock.now())
        if p is not None and len(self._split(p)[0]) >= MAX_PROFILES:
            return None, "already %d profiles installed" % len(self._p)
        return p, why

    def _split(self, p):
        # -> (the profiles p leaves in place, those it replaces: same id, or same connector,
        # purpose and stackLevel).
        keep = []
        gone = []
        for q in self._p:
            if q[ID] == p[ID] or (q[CONN] == p[CONN] and q[PURPOSE] == p[PURPOSE]
                                  and q[STACK] == p[STACK]):
                gone.append(q)
            else:
                keep.append(q)
        return keep, gone

    def install(self, p):
        # A parsed profile into the set, replacing its namesakes -> ("Accepted", None) or
        # ("Rejected", reason), nothing changed then.
        keep, gone = self._split(p)
        if len(keep) + self.held >= MAX_PROFILES:
            why = "already %d profiles installed" % (len(keep) + self.held)
            log.warn(_TAG, "SetChargingProfile rejected: %s", why)
            return "Rejected", why
        keep.append(p)
        conns = [p[CONN]]
        for q in gone:
            if q[CONN] not in conns:
                conns.append(q[CONN])
        if not self._commit(keep, conns, p[PURPOSE] != TX or gone):
            return "Rejected", "storage failed"
        log.info(_TAG, "profile %d (%s, stack %d) on connector %d%s", p[ID],
                 pf.PURPOSES[p[PURPOSE]], p[STACK], p[CONN], ", replacing" if gone else "")
        return "Accepted", None

    def clear(self, id=None, connector=None, purpose=None, stack=None):
        # ClearChargingProfile.req (1.6 5.5): "either a specific charging profile (denoted by
        # id) or a selection" matching connectorId, chargingProfilePurpose and stackLevel: with
        # an id, that profile whatever the other fields say (none cleared when no profile has
        # it); without, the given filters combine with AND; none = every profile.
        # -> "Accepted" when at least one profile was removed, else "Unknown".
        if id is not None:
            connector = purpose = stack = None
        if purpose is not None:
            if purpose not in pf.PURPOSES:
                return "Unknown"
            purpose = pf.PURPOSES.index(purpose)
        keep = []
        conns = []
        for q in self._p:
            if ((id is None or q[ID] == id) and (connector is None or q[CONN] == connector)
                    and (purpose is None or q[PURPOSE] == purpose)
                    and (stack is None or q[STACK] == stack)):
                if q[CONN] not in conns:
                    conns.append(q[CONN])
            else:
                keep.append(q)
        if not conns:
            return "Unknown"
        n = len(self._p) - len(keep)
        if not self._commit(keep, conns, True):
            # The profiles stay in force; the CSMS may try again.
            return "Unknown"
        log.info(_TAG, "cleared %d profile(s)", n)
        return "Accepted"

    def end_tx(self, connector):
        # The transaction on connector ended: its TxProfiles cease to be valid (RAM only).
        keep = [q for q in self._p if not (q[PURPOSE] == TX and q[CONN] == connector)]
        if len(keep) != len(self._p):
            self._p = keep
            self._changed()

    def expire(self, now=None):
        # Drop profiles that can never apply again (validTo passed, absolute schedule over).
        # -> how many were dropped.
        if now is None:
            now = clock.now()
        keep = []
        conns = []
        for q in self._p:
            if pf.dead(q, now):
                if q[CONN] not in conns:
                    conns.append(q[CONN])
            else:
                keep.append(q)
        n = len(self._p) - len(keep)
        if n:
            # A failed save only means the dead profile comes back after a reboot, to be
            # dropped again; it cannot apply meanwhile.
            self._commit(keep, conns, True)
            log.info(_TAG, "%d expired profile(s) dropped", n)
        return n

    def _commit(self, new, conns, persist):
        # Install `new` as the set; save the documents of the connectors in conns. On a flash
        # failure the old set is restored (in RAM and, as far as possible, on flash).
        old = self._p
        self._p = new
        if persist:
            done = []
            try:
                for c in conns:
                    self._save(c)
                    done.append(c)
            except (OSError, TypeError) as e:
                log.exc(_TAG, "saving profiles", e)
                self._p = old
                for c in done:
                    try:
                        self._save(c)
                    except (OSError, TypeError):
                        pass
                return False
        self._changed()
        return True

    def _save(self, c):
        self.store.save(_doc(c), {"p": [q for q in self._p if q[CONN] == c and q[PURPOSE] != TX]})

    def listen(self, obj):
        self.listeners.append(obj)

    def _changed(self):
        for lst in self.listeners:
            lst.on_profiles()

    def installed(self):
        # -> how many profiles are installed (evse/limits.py drops this module at 0).
        return len(self._p)

    def profiles(self, connector=None):
        # -> [(id, connector, purpose name, stackLevel)] for logs, tests and diagnostics.
        return [(q[ID], q[CONN], pf.PURPOSES[q[PURPOSE]], q[STACK]) for q in self._p
                if connector is None or q[CONN] == connector]

    # -- what the profiles allow --------------------------------------------------------------

    def _best(self, t, purpose, cid, anchor):
        # The segment of the highest-stack profile of purpose on connector cid applying at t.
        top = None
        for q in self._p:
            if q[PURPOSE] == purpose and q[CONN] == cid and (top is None or q[STACK] > top[STACK]):
                off = pf.offset(q, t, anchor)
                if off >= 0:
                    top = q
                    at = off
        return None if top is None else pf.seg(top, at, self.phases)

    def _tx_seg(self, t, cid, anchor, with_tx):
        # The TxProfile's segment on connector cid at t, else the TxDefaultProfile's.
        s = self._best(t, TX, cid, anchor) if with_tx else None
        if s is None:
            s = self._best(t, TX_DEFAULT, cid, anchor)
            if s is None:
                s = self._best(t, TX_DEFAULT, 0, anchor)
        return s

    def segment_at(self, t, cid, anchor, with_tx):
        # The limit segment at t on connector cid. cid 0: the charge point's total (1.6 5.7,
        # "the total expected energy flow"), every connector's limit summed and capped by the
        # ChargePointMaxProfile; a sum is a bare key (unit -1, converted for the answer). One
        # transaction anchor serves all: this charger has one connector (limits.py).
        cap = self._best(t, CP_MAX, 0, anchor)
        if cid:
            return min_segment(cap, self._tx_seg(t, cid, anchor, with_tx))
        tot = None
        for c in range(1, self.n + 1):
            s = min_segment(cap, self._tx_seg(t, c, anchor, with_tx))
            if s is None:
                return None  # a connector nothing limits: neither is the total
            tot = s if tot is None else (tot[0] + s[0], 0, -1, 0)
        return min_segment(cap, tot)

    def edge_after(self, t, cid, anchor, with_tx):
        # The first time after t at which segment_at() may change, or None.
        best = None
        for q in self._p:
            pu = q[PURPOSE]
            if pu == TX and not with_tx:
                continue
            if cid and pu != CP_MAX and q[CONN] != cid and (pu == TX or q[CONN] != 0):
                continue  # another connector's, and not a TxDefaultProfile for all
            e = pf.next_edge(q, t, anchor)
            if e is not None and (best is None or e < best):
                best = e
        return best

    def limit_at(self, now, connector=1, tx_start=None):
        # -> the limit in A per phase at now (W converted at 230 V x the installed phases;
        # rounded down to 0.1 A), or None when no profile limits the connector. tx_start: when
        # the running transaction started (relative schedules count from it; None = no
        # transaction: TxProfiles are ignored and relative schedules show their first period).
        return _amps(self.segment_at(now, connector, tx_start, tx_start is not None))

    def lowest(self, connector=1, with_tx=False):
        # -> the lowest limit in A any profile that may limit the connector imposes at any time,
        # or None: what evse/limits.py offers while the clock is not trusted, which no schedule
        # can be read at (an ESP32 without RTC after a power cut, offline, says 2000-01-01).
        low = None
        for q in self._p:
            if q[CONN] in (0, connector) and (with_tx or q[PURPOSE] != TX):
                low = min_segment(low, pf.lowest(q, self.phases))
        return _amps(low)

    def next_change(self, now, connector=1, tx_start=None, until=None):
        # -> the first time after now when limit_at() gives another value, or None if it never
        # changes. When nothing changes within _SCAN edges (a steady recurring schedule), or
        # up to until (the caller looks again then anyway: the walk stays short, it runs in one
        # turn of the event loop), it answers the last edge looked at: not a change, a time to
        # look again. Call again after any set/clear (listeners) and when a transaction starts
        # or ends.
        with_tx = tx_start is not None
        v = _amps(self.segment_at(now, connector, tx_start, with_tx))
        t = now
        for _ in range(_SCAN):
            t = self.edge_after(t, connector, tx_start, with_tx)
            if t is None:
                return None
            if _amps(self.segment_at(t, connector, tx_start, with_tx)) != v or (
                    until is not None and t >= until):
                return t
        return t

    def composite_schedule(self, connector, duration, unit=None, now=None, tx_start=None,
                           cap=None):
        # GetCompositeSchedule's answer (evse/composite.py, loaded for the call only): a
        # coroutine -> the schedule dict, or None when nothing applies; ValueError for a
        # request to reject.
        from supervisor import rare

        return rare("evse.composite", "schedule", self, connector, duration, unit,
                    clock.now() if now is None else now, tx_start, cap)
