# Feature: smart charging. SetChargingProfile, ClearChargingProfile, GetCompositeSchedule on the
# installed profiles (evse/smart.py); the limit they set reaches the connector through
# evse/limits.py.
import log

_TAG = "ocpp"


def attach(s):
    smart = s.smart
    conn = s.connector

    def tx_id():
        tx = s.feature("transactions")
        return tx.tx_id_now() if tx is not None else None

    async def set_profile(p):
        if smart is None:
            return {"status": "NotSupported"}
        st, why = smart.set_profile(p, tx_id=tx_id())
        if why:
            log.info(_TAG, "SetChargingProfile rejected: %s", why)
        return {"status": st}

    async def clear_profile(p):
        if smart is None:
            return {"status": "Unknown"}
        return {"status": smart.clear(p.get("id"), p.get("connectorId"),
                                      p.get("chargingProfilePurpose"), p.get("stackLevel"))}

    async def composite(p):
        cid = p["connectorId"]
        if smart is None or cid not in (0, 1):
            return {"status": "Rejected"}
        try:
            sched = smart.composite_schedule(cid, p["duration"], p.get("chargingRateUnit"),
                                             None, conn.session_start, cap=conn.hw_limit_a)
        except ValueError as e:
            log.info(_TAG, "GetCompositeSchedule rejected: %s", e)
            return {"status": "Rejected"}
        if sched is None:
            return {"status": "Rejected"}
        return {"status": "Accepted", "connectorId": cid,
                "scheduleStart": sched["startSchedule"], "chargingSchedule": sched}

    return {"SetChargingProfile": set_profile, "ClearChargingProfile": clear_profile,
            "GetCompositeSchedule": composite}
