# Feature: reservations. ReserveNow and CancelReservation on evse/reservation.py, which the
# connector loads on use (reserving()) and drops once no reservation is left; the connector
# follows the change itself (it listens to the reservations).
import clock


def attach(s):
    conn = s.connector

    async def reserve(p):
        try:
            expiry = clock.parse_iso(p["expiryDate"])
        except ValueError:
            return {"status": "Rejected"}
        cid = p["connectorId"]
        status = conn.status_of(cid if cid in (0, 1) else 1)[0]
        try:
            return {"status": conn.reserving().reserve(cid, expiry, p["idTag"],
                                                       p.get("parentIdTag"), p["reservationId"],
                                                       status)}
        finally:
            conn.release_reservations()  # refused with none held: out of the heap again

    async def cancel(p):
        resv = conn.reservations
        if resv is None:
            return {"status": "Rejected"}  # nothing is reserved: not one of ours
        return {"status": resv.cancel(p["reservationId"])}

    return {"ReserveNow": reserve, "CancelReservation": cancel}
