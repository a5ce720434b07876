# OCPP 1.6 Reservation profile (5.13 ReserveNow, 5.3 CancelReservation) as a pure state object:
# which connector is held for which idTag until when. The connector state machine shows
# Reserved while a reservation holds, asks may_start() before a session starts, and take()s the
# reservationId into StartTransaction. Persisted (one small store document), saved only when a
# reservation is made, used, cancelled or expires.
#
# Connector 0 means "any connector" and is accepted only when ReserveConnectorZeroSupported is
# on. The spec wants at least one connector kept for its idTag: with one connector (borne)
# that is connector 1; with more, this object can only count connectors reserved here (which
# other connectors are occupied is the connector state machine's knowledge).
import clock
import log

_TAG = "reserve"
_DOC = "reservations"
# OCPP statuses that make a connector Occupied for ReserveNow: someone is plugged in or charging.
_OCCUPIED = ("Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing")
# Fields of a reservation record (a list, compact in RAM and on flash).
_CID = const(0)
_RID = const(1)
_EXP = const(2)
_TAG_ = const(3)
_PARENT = const(4)


def _same(a, b):
    # idTags are CiString20: compared without regard to case.
    return a is not None and b is not None and a.upper() == b.upper()


class Reservations:
    def __init__(self, store, connectors=1, zero_ok=False):
        self.store = store
        self.n = connectors
        self.zero_ok = zero_ok  # the ReserveConnectorZeroSupported configuration key
        self.listeners = []  # objects with on_reservation(connector_id, reservation or None)
        self._r = []
        rs = store.load(_DOC, {"r": []})["r"]
        for r in rs if isinstance(rs, list) else ():
            if (isinstance(r, list) and len(r) == 5 and type(r[_CID]) is int
                    and 0 <= r[_CID] <= connectors and type(r[_EXP]) is int):
                self._r.append(r)
            else:
                log.warn(_TAG, "dropped a malformed reservation")

    def _find_id(self, rid):
        for r in self._r:
            if r[_RID] == rid:
                return r
        return None

    def _on(self, cid):
        for r in self._r:
            if r[_CID] == cid:
                return r
        return None

    def _save(self, new):
        # -> True when `new` is now the set, in RAM and on flash.
        try:
            self.store.save(_DOC, {"r": new})
        except OSError as e:
            log.exc(_TAG, "saving reservations", e)
            return False
        self._r = new
        return True

    def listen(self, obj):
        self.listeners.append(obj)

    def _tell(self, cid, r):
        for lst in self.listeners:
            lst.on_reservation(cid, None if r is None else self.info(r))

    def reserve(self, connector_id, expiry, id_tag, parent_id_tag, reservation_id,
                connector_status, now=None):
        # ReserveNow.req -> "Accepted" / "Faulted" / "Occupied" / "Rejected" / "Unavailable".
        # expiry: the expiryDate (ISO string or unix s). connector_status: the OCPP status of
        # the connector asked for (for connector 0: of the charge point, which for one connector
        # is connector 1's). A reservation with the same reservationId is replaced.
        if now is None:
            now = clock.now()
        cid = connector_id
        why = None
        if type(cid) is not int or cid < 0 or cid > self.n:
            why = "unknown connector %r" % (cid,)
        elif cid == 0 and not self.zero_ok:
            why = "connector 0 reservations not supported"
        elif not id_tag or not isinstance(id_tag, str):
            why = "no idTag"
        else:
            if isinstance(expiry, str):
                try:
                    expiry = clock.parse_iso(expiry)
                except ValueError:
                    expiry = None
            if type(expiry) is not int:
                why = "bad expiryDate"
            elif expiry <= now:
                why = "expiryDate already passed"
        if why:
            log.warn(_TAG, "ReserveNow %r rejected: %s", reservation_id, why)
            return "Rejected"
        st = "Accepted"
        old = self._find_id(reservation_id)
        if connector_status == "Faulted":
            st = "Faulted"
        elif connector_status == "Unavailable":
            st = "Unavailable"
        elif connector_status in _OCCUPIED and (old is None or connector_status != "Preparing"):
            # (Preparing with this reservation held: its own driver plugged in or tapped; the
            # same reservationId is replaced all the same, 1.6 5.13: an extended expiry holds)
            st = "Occupied"
        else:
            # Held by another reservation: its own on that connector, or (one connector) one
            # for connector 0 / connector 1 holding the same single connector.
            for r in self._r:
                if r[_RID] != reservation_id and (r[_CID] == cid or self.n == 1):
                    st = "Occupied"
                    break
            if st == "Accepted" and connector_status == "Reserved" and old is None:
                st = "Occupied"  # shown Reserved for a reservation this object does not hold
        if st != "Accepted":
            log.info(_TAG, "ReserveNow %r on connector %d: %s", reservation_id, cid, st)
            return st
        new = [r for r in self._r if r is not old]
        rec = [cid, reservation_id, expiry, id_tag, parent_id_tag or None]
        new.append(rec)
        if not self._save(new):
            return "Rejected"
        log.info(_TAG, "reservation %r on connector %d until %s%s", reservation_id, cid,
                 clock.iso(expiry), " (replaces)" if old else "")
        if old is not None and old[_CID] != cid:
            self._tell(old[_CID], None)
        self._tell(cid, rec)
        return "Accepted"

    def cancel(self, reservation_id):
        # CancelReservation.req -> "Accepted" (it existed and is gone) or "Rejected".
        r = self._find_id(reservation_id)
        if r is None or not self._save([x for x in self._r if x is not r]):
            return "Rejected"
        log.info(_TAG, "reservation %r cancelled", reservation_id)
        self._tell(r[_CID], None)
        return "Accepted"

    def end(self, connector_id, why):
        # The connector can no longer honour the reservation that holds it: it went Unavailable
        # or Faulted (1.6 5.13: the reservation is terminated then). Dropped and said.
        a = self.applying(connector_id)
        if a is None:
            return
        r = self._find_id(a["reservationId"])
        keep = [x for x in self._r if x is not r]
        if not self._save(keep):
            self._r = keep  # ended in RAM; the flash copy ends the same way after a reboot
        log.info(_TAG, "reservation %r ended: connector %s", r[_RID], why)
        self._tell(r[_CID], None)

    def applying(self, connector_id=1):
        # The reservation that holds connector_id (its own, else a connector-0 one when the
        # charge point has a single connector or every other connector is reserved here), or
        # None. As a dict for the caller: connectorId, reservationId, expiryDate, idTag,
        # parentIdTag.
        r = self._on(connector_id)
        if r is None and connector_id != 0:
            z = self._on(0)
            if z is not None:
                others = 0
                for c in range(1, self.n + 1):
                    if c != connector_id and self._on(c) is None:
                        others += 1
                if others == 0:
                    r = z
        return None if r is None else self.info(r)

    def reserved(self, connector_id=1):
        # True when the connector should show Reserved (while otherwise Available).
        return self.applying(connector_id) is not None

    def may_start(self, id_tag, parent_id_tag=None, connector_id=1):
        # May this idTag start a session on connector_id? Yes when no reservation holds it, or
        # the tag is the reserving one, or its parentIdTag (from the local list, cache or
        # Authorize.conf) equals the reservation's parentIdTag.
        r = self.applying(connector_id)
        if r is None:
            return True
        return _same(id_tag, r["idTag"]) or _same(parent_id_tag, r["parentIdTag"])

    def take(self, connector_id, id_tag, parent_id_tag=None):
        # A session starts for id_tag: the reservation holding the connector ends (it was used).
        # -> its reservationId for StartTransaction, or None when no reservation applied (or
        # the tag may not use it: check may_start first; the reservation then stays).
        r = self.applying(connector_id)
        if r is None or not self.may_start(id_tag, parent_id_tag, connector_id):
            return None
        rec = self._find_id(r["reservationId"])
        keep = [x for x in self._r if x is not rec]
        if not self._save(keep):
            self._r = keep  # used all the same: the session is starting
        log.info(_TAG, "reservation %r used", r["reservationId"])
        self._tell(rec[_CID], None)
        return r["reservationId"]

    def used(self, rid):
        # At boot: reservation rid started a session the power cut ended before take() saved
        # its end (connrare.init): gone, unsaid (its StartTransaction says it was used).
        r = self._find_id(rid)
        if r is not None:
            keep = [x for x in self._r if x is not r]
            if not self._save(keep):
                self._r = keep  # the flash copy goes the same way at the next boot
            log.info(_TAG, "reservation %r used by the session a power cut ended", rid)

    def expired(self, now=None):
        # Drop reservations whose expiryDate has come. -> [(connector_id, reservation_id)] so the
        # caller can show the connectors Available again.
        if now is None:
            now = clock.now()
        gone = [r for r in self._r if r[_EXP] <= now]
        if not gone:
            return []
        keep = [r for r in self._r if r[_EXP] > now]
        if not self._save(keep):
            self._r = keep  # stays expired in RAM; the flash copy expires again after a reboot
        out = []
        for r in gone:
            log.info(_TAG, "reservation %r expired", r[_RID])
            self._tell(r[_CID], None)
            out.append((r[_CID], r[_RID]))
        return out

    def next_expiry(self):
        # -> the earliest expiryDate (unix s), or None: when to call expired() next.
        e = None
        for r in self._r:
            if e is None or r[_EXP] < e:
                e = r[_EXP]
        return e

    def info(self, r):
        return {"connectorId": r[_CID], "reservationId": r[_RID], "expiryDate": r[_EXP],
                "idTag": r[_TAG_], "parentIdTag": r[_PARENT]}

    def all(self):
        return [self.info(r) for r in self._r]
