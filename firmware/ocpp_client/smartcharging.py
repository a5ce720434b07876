# Feature: smart charging. SetChargingProfile, ClearChargingProfile, GetCompositeSchedule on the
# installed profiles (evse/smart.py), which evse/limits.py loads on use (need()) and drops once
# none is left (release()); the limit they set reaches the connector through it.
import log

_TAG = "ocpp"


def attach(s):
    lim = s.limits
    conn = s.connector

    def tx_id():
        # The running transaction's id; -1 while it has none from the CSMS yet (its
        # StartTransaction queued offline or awaiting an answer): still the active transaction a
        # TxProfile is for. None: no transaction.
        tx = s.feature("transactions")
        t = tx.tx_id_now() if tx is not None else None
        return -1 if t is None and conn.session_ref is not None else t

    async def set_profile(p):
        if lim is None:
            return {"status": "NotSupported"}
        t = tx_id()
        q = s.queue
        want = p["csChargingProfiles"].get("transactionId")
        if t == -1 and want is not None and q is not None and (
                want == q.gone or want in q.ids.values()):
            # The running session's id is not known yet (a TxProfile for it is taken), but it
            # is not that of a session that ended (late for it, a CSMS's race): not for this one.
            log.info(_TAG, "SetChargingProfile rejected: transaction %d has ended", want)
            return {"status": "Rejected"}
        try:
            st, why = lim.need().set_profile(p, tx_id=t)
        finally:
            lim.release()  # rejected with none installed: out of the heap again
        if why:
            log.info(_TAG, "SetChargingProfile rejected: %s", why)
        return {"status": st}

    async def clear_profile(p):
        pid = p.get("id")
        cid = p.get("connectorId")
        st = "Unknown"
        # A remote start's TxProfile waiting for its session (evse/limits.py) was set by the
        # CSMS as much as the installed ones (1.6 5.5): a match is discarded, its start stays.
        w = lim.pending if lim is not None else None
        if w and (pid == w[1][0] if pid is not None else (  # (profile.py's ID, STACK)
                cid in (None, 1) and p.get("chargingProfilePurpose") in (None, "TxProfile")
                and p.get("stackLevel") in (None, w[1][5]))):
            lim.drop("cleared by the CSMS")
            st = "Accepted"
        if lim is None or lim.smart is None:
            return {"status": st}  # no profile installed: none (else) matches
        try:
            if lim.smart.clear(pid, cid, p.get("chargingProfilePurpose"),
                               p.get("stackLevel")) == "Accepted":
                st = "Accepted"
        finally:
            lim.release()
        return {"status": st}

    async def composite(p):
        cid = p["connectorId"]
        if lim is None or cid not in (0, 1):
            return {"status": "Rejected"}
        try:
            sched = await lim.need().composite_schedule(
                cid, p["duration"], p.get("chargingRateUnit"), None, lim.tx_start(),
                cap=conn.config.get("BorneMaxCurrent"))
        except ValueError as e:
            log.info(_TAG, "GetCompositeSchedule rejected: %s", e)
            return {"status": "Rejected"}
        finally:
            lim.release()  # asked with none installed: loaded for this answer only
        if sched is None:
            return {"status": "Rejected"}
        return {"status": "Accepted", "connectorId": cid,
                "scheduleStart": sched["startSchedule"], "chargingSchedule": sched}

    return {"SetChargingProfile": set_profile, "ClearChargingProfile": clear_profile,
            "GetCompositeSchedule": composite}
