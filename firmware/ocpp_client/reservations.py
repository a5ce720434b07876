# Feature: reservations. ReserveNow and CancelReservation on evse/reservation.py; the connector
# follows the change itself (it listens to the reservations).
import clock


def attach(s):
    resv = s.reservations
    conn = s.connector

    async def reserve(p):
        if resv is None:
            return {"status": "Rejected"}
        try:
            expiry = clock.parse_iso(p["expiryDate"])
        except ValueError:
            return {"status": "Rejected"}
        cid = p["connectorId"]
        status = conn.status_of(cid if cid in (0, 1) else 1)[0]
        return {"status": resv.reserve(cid, expiry, p["idTag"], p.get("parentIdTag"),
                                       p["reservationId"], status)}

    async def cancel(p):
        if resv is None:
            return {"status": "Rejected"}
        return {"status": resv.cancel(p["reservationId"])}

    return {"ReserveNow": reserve, "CancelReservation": cancel}
