# Answers to the CSMS's calls (Core and Remote Trigger). Each handler gets the request payload,
# already checked for shape, and returns the .conf payload. Work that must follow the .conf
# (a reboot, a triggered message, an authorization) goes to Client.after().
import log

_TAG = "ocpp"
_TRIGGERABLE = ("BootNotification", "DiagnosticsStatusNotification",
                "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StatusNotification")


def build(c):
    conn = c.connector
    cfg = c.config

    async def remote_start(p):
        cid = p.get("connectorId", 1)
        if cid != 1:
            return {"status": "Rejected"}  # one connector; 0 is not a connector to charge on
        prof = p.get("chargingProfile")
        if prof is not None and prof.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}
        id_tag = p["idTag"]
        authorize = cfg.get("AuthorizeRemoteTxRequests")
        st = conn.remote_start(id_tag, authorized=not authorize)
        if st == "Accepted" and authorize:
            c.after(("authorize_remote", id_tag))
        if st == "Accepted" and prof is not None:
            c.tx_profile = prof  # installed once the transaction has its id
        return {"status": st}

    async def remote_stop(p):
        tid = p["transactionId"]
        return {"status": conn.remote_stop(lambda s: c.txq.tx_id(s["ref"]) == tid)}

    async def reset(p):
        c.after(("reset", p["type"]))
        return {"status": "Accepted"}

    async def change_availability(p):
        cid = p["connectorId"]
        if cid not in (0, 1):
            return {"status": "Rejected"}
        return {"status": conn.change_availability(p["type"] == "Operative")}

    async def unlock(p):
        if p["connectorId"] != 1:
            return {"status": "NotSupported"}
        return {"status": conn.unlock()}

    async def get_configuration(p):
        keys = p.get("key")
        if keys and len(keys) > cfg.get("GetConfigurationMaxKeys"):
            keys = keys[: cfg.get("GetConfigurationMaxKeys")]
        known, unknown = cfg.entries(keys)
        out = {"configurationKey": known}
        if unknown:
            out["unknownKey"] = unknown
        return out

    async def change_configuration(p):
        return {"status": cfg.set(p["key"], p["value"])}

    async def clear_cache(p):
        return {"status": c.auth.clear_cache()}

    async def data_transfer(p):
        return c.data_transfer(p)

    async def trigger(p):
        what = p["requestedMessage"]
        cid = p.get("connectorId")
        if what not in _TRIGGERABLE:
            return {"status": "NotImplemented"}
        if cid is not None and cid not in (0, 1):
            return {"status": "Rejected"}
        if what == "BootNotification" and c.registration == "Accepted":
            return {"status": "Rejected"}
        c.after(("trigger", what, cid))
        return {"status": "Accepted"}

    smart = c.smart
    resv = c.reservations

    async def set_profile(p):
        if smart is None:
            return {"status": "NotSupported"}
        s = conn.session
        tid = c.txq.tx_id(s["ref"]) if s else None
        st, why = smart.set_profile(p, tx_id=tid)
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
        s = conn.session
        try:
            sched = smart.composite_schedule(cid, p["duration"], p.get("chargingRateUnit"),
                                             None, s["start"] if s else None,
                                             cap=conn._hw_limit())
        except ValueError as e:
            log.info(_TAG, "GetCompositeSchedule rejected: %s", e)
            return {"status": "Rejected"}
        if sched is None:
            return {"status": "Rejected"}
        return {"status": "Accepted", "connectorId": cid,
                "scheduleStart": sched["startSchedule"], "chargingSchedule": sched}

    async def reserve(p):
        if resv is None:
            return {"status": "Rejected"}
        import clock

        try:
            expiry = clock.parse_iso(p["expiryDate"])
        except ValueError:
            return {"status": "Rejected"}
        cid = p["connectorId"]
        status = conn.status_of(cid if cid in (0, 1) else 1)[0]
        st = resv.reserve(cid, expiry, p["idTag"], p.get("parentIdTag"), p["reservationId"],
                          status)
        conn._apply()
        return {"status": st}

    async def cancel_reservation(p):
        if resv is None:
            return {"status": "Rejected"}
        st = resv.cancel(p["reservationId"])
        conn._apply()
        return {"status": st}

    local = c.auth.local

    async def list_version(p):
        if local is None:
            return {"listVersion": -1}
        return {"listVersion": local.version if local.count or local.version else 0}

    async def send_list(p):
        if local is None:
            return {"status": "NotSupported"}
        # The entries are a list, or a generator reading them from flash (a message too long for
        # RAM): counted as they stream past, never len()'d.
        entries = _at_most(p.get("localAuthorizationList") or (),
                           cfg.get("SendLocalListMaxLength"))
        return {"status": await local.apply(p["listVersion"], p["updateType"], entries)}

    return {
        "GetLocalListVersion": list_version,
        "SendLocalList": send_list,
        "SetChargingProfile": set_profile,
        "ClearChargingProfile": clear_profile,
        "GetCompositeSchedule": composite,
        "ReserveNow": reserve,
        "CancelReservation": cancel_reservation,
        "RemoteStartTransaction": remote_start,
        "RemoteStopTransaction": remote_stop,
        "Reset": reset,
        "ChangeAvailability": change_availability,
        "UnlockConnector": unlock,
        "GetConfiguration": get_configuration,
        "ChangeConfiguration": change_configuration,
        "ClearCache": clear_cache,
        "DataTransfer": data_transfer,
        "TriggerMessage": trigger,
    }


def _at_most(entries, limit):
    # The entries, failing the update (TooLong: it keeps the old list) past `limit` of them.
    from ocpp_client.locallist import TooLong

    n = 0
    for e in entries:
        n += 1
        if n > limit:
            raise TooLong("more than SendLocalListMaxLength (%d) entries" % limit)
        yield e


# Actions of OCPP 1.6 we know but do not support (yet): NotSupported, not NotImplemented.
UNSUPPORTED = ("GetDiagnostics", "UpdateFirmware")  # until a feature registers a handler


def log_unsupported(action):
    log.info(_TAG, "%s is not supported", action)
