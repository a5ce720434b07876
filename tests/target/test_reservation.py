# On-target tests for evse.reservation: ReserveNow / CancelReservation (OCPP 1.6 5.13, 5.3).
import clock
from store import Store
from evse.reservation import Reservations
from mphelp import Logs

ROOT = "flash"
T = clock.parse_iso("2026-03-02T10:00:00Z")
EXP = clock.iso(T + 1800)


def fresh(connectors=1, zero_ok=False):
    return Reservations(Store(ROOT), connectors, zero_ok)


def test_accepted_and_only_the_tag_or_its_parent_may_start():
    r = fresh()
    assert r.reserve(1, EXP, "TAG-A", "GROUP1", 11, "Available", T) == "Accepted"
    assert r.reserved(1)
    got = r.applying(1)
    assert got == {"connectorId": 1, "reservationId": 11, "expiryDate": T + 1800,
                   "idTag": "TAG-A", "parentIdTag": "GROUP1"}, got
    assert r.may_start("TAG-A")
    assert r.may_start("tag-a")  # idTags are case-insensitive (CiString20)
    assert r.may_start("TAG-B", "GROUP1")  # same parentIdTag
    assert r.may_start("TAG-B", "group1")
    assert not r.may_start("TAG-B")
    assert not r.may_start("TAG-B", "GROUP2")
    assert r.take(1, "TAG-B", "GROUP2") is None  # refused: the reservation stays
    assert r.reserved(1)
    assert r.take(1, "TAG-B", "GROUP1") == 11  # into StartTransaction's reservationId
    assert not r.reserved(1) and r.may_start("ANY")
    assert r.take(1, "TAG-A") is None  # used up
    assert Reservations(Store(ROOT)).all() == []


def test_without_parent_only_the_tag():
    r = fresh()
    assert r.reserve(1, EXP, "TAG-A", None, 12, "Available", T) == "Accepted"
    assert not r.may_start("TAG-B", None)
    assert not r.may_start("TAG-B", "G")  # no parent in the reservation: nothing matches it
    assert r.may_start("TAG-A", "G")


def test_answers_for_connector_states():
    for status, want in (("Faulted", "Faulted"), ("Unavailable", "Unavailable"),
                         ("Preparing", "Occupied"), ("Charging", "Occupied"),
                         ("SuspendedEV", "Occupied"), ("SuspendedEVSE", "Occupied"),
                         ("Finishing", "Occupied"), ("Available", "Accepted")):
        r = Reservations(Store("r" + status), 1)
        assert r.reserve(1, EXP, "TAG", None, 1, status, T) == want, status
        assert r.reserved(1) == (want == "Accepted")


def test_rejected_cases_and_nothing_stored():
    r = fresh()
    cases = (
        (0, EXP, "TAG"),  # connector 0 while ReserveConnectorZeroSupported is off
        (2, EXP, "TAG"),  # no such connector
        (-1, EXP, "TAG"),
        (1, clock.iso(T - 1), "TAG"),  # already expired
        (1, clock.iso(T), "TAG"),
        (1, "soon", "TAG"),
        (1, EXP, ""),
        (1, EXP, None),
    )
    for cid, exp, tag in cases:
        with Logs() as lg:
            assert r.reserve(cid, exp, tag, None, 5, "Available", T) == "Rejected", cid
        assert lg.warned("ReserveNow", "rejected"), lg.lines
    assert r.all() == []
    assert Reservations(Store(ROOT)).all() == []


def test_replace_same_id_and_occupied_by_another():
    r = fresh()
    assert r.reserve(1, EXP, "TAG-A", None, 20, "Available", T) == "Accepted"
    # The connector now shows Reserved: another reservation is Occupied ...
    assert r.reserve(1, EXP, "TAG-B", None, 21, "Reserved", T) == "Occupied"
    assert r.reserve(1, EXP, "TAG-B", None, 21, "Available", T) == "Occupied"
    # ... the same reservationId replaces (new tag, new expiry)
    later = clock.iso(T + 7200)
    assert r.reserve(1, later, "TAG-B", None, 20, "Reserved", T) == "Accepted"
    assert r.all() == [{"connectorId": 1, "reservationId": 20, "expiryDate": T + 7200,
                        "idTag": "TAG-B", "parentIdTag": None}]
    assert not r.may_start("TAG-A") and r.may_start("TAG-B")
    # Its driver plugged in (Preparing): the same reservationId is still replaced (an extended
    # expiry), another one is Occupied.
    assert r.reserve(1, EXP, "TAG-C", None, 22, "Preparing", T) == "Occupied"
    assert r.reserve(1, clock.iso(T + 9000), "TAG-B", None, 20, "Preparing", T) == "Accepted"
    assert r.applying(1)["expiryDate"] == T + 9000


def test_connector_zero():
    r = fresh(zero_ok=True)
    assert r.reserve(0, EXP, "TAG-Z", "G", 30, "Available", T) == "Accepted"
    # One connector: a reservation for "any connector" holds connector 1.
    assert r.reserved(1) and not r.may_start("OTHER", None, 1)
    assert r.may_start("TAG-Z", None, 1)
    assert r.reserve(1, EXP, "TAG-B", None, 31, "Reserved", T) == "Occupied"
    assert r.take(1, "X", "G") == 30
    assert r.all() == []
    # Two connectors: a connector-0 reservation does not hold connector 1 while connector 2
    # is still free for its tag.
    r2 = Reservations(Store("two"), 2, True)
    assert r2.reserve(0, EXP, "TAG-Z", None, 40, "Available", T) == "Accepted"
    assert r2.may_start("OTHER", None, 1)
    assert r2.reserve(2, EXP, "TAG-C", None, 41, "Available", T) == "Accepted"
    assert not r2.may_start("OTHER", None, 1)  # 2 is reserved now: 1 is kept for TAG-Z
    assert r2.may_start("TAG-Z", None, 1)


def test_cancel():
    r = fresh()
    assert r.cancel(50) == "Rejected"
    assert r.reserve(1, EXP, "TAG", None, 50, "Available", T) == "Accepted"
    assert r.cancel(51) == "Rejected"
    assert r.cancel(50) == "Accepted"
    assert not r.reserved(1)
    assert r.cancel(50) == "Rejected"
    assert Reservations(Store(ROOT)).all() == []


def test_expiry():
    r = fresh(2)
    assert r.reserve(1, clock.iso(T + 600), "A", None, 60, "Available", T) == "Accepted"
    assert r.reserve(2, clock.iso(T + 900), "B", None, 61, "Available", T) == "Accepted"
    assert r.next_expiry() == T + 600
    assert r.expired(T + 599) == []
    assert r.expired(T + 600) == [(1, 60)]
    assert not r.reserved(1) and r.reserved(2)
    assert r.next_expiry() == T + 900
    assert Reservations(Store(ROOT), 2).expired(T + 600) == []  # already gone on flash too
    assert r.expired(T + 10000) == [(2, 61)]
    assert r.next_expiry() is None


def test_persisted_across_reload_and_listeners():
    r = fresh()
    heard = []
    class Ear:
        def on_reservation(self, cid, res):
            heard.append((cid, res and res["reservationId"]))

    r.listen(Ear())
    assert r.reserve(1, EXP, "TAG", "P", 70, "Available", T) == "Accepted"
    again = Reservations(Store(ROOT))
    assert again.all() == r.all()
    assert not again.may_start("X") and again.may_start("Y", "P")
    assert r.cancel(70) == "Accepted"
    assert heard == [(1, 70), (1, None)]


def test_malformed_document_on_flash():
    st = Store(ROOT)
    st.save("reservations", {"r": [[1, 5, T + 60, "A", None], [9, 6, T, "B", None],
                                   ["1", 7, T, "C", None], [1, 8, "soon", "D", None], "x"]})
    with Logs() as lg:
        r = Reservations(Store(ROOT))
    assert [x["reservationId"] for x in r.all()] == [5]
    assert lg.warned("malformed")
    st.save("reservations", {"r": 3})
    assert Reservations(Store(ROOT)).all() == []


class _Cut(Exception):
    pass


def test_a_reservation_a_session_used_as_the_power_went_holds_nothing_after_the_boot():
    # connector._start(): the session's document, its StartTransaction (with reservationId),
    # then the reservation's end are saved. The power goes before that last save: the boot
    # ends the session (its StartTransaction told the CSMS the reservation was used), and the
    # reservation must not hold the connector on (shown Reserved, every other card refused
    # until its expiry, for a reservation the CSMS saw used).
    from evse.connector import Connector
    from ocpp_client.config import Config
    from test_oom import Boom, Events, World, _polls

    st = Store("rcut")
    w = World(Boom())
    c = Connector(w, st, Events(st, Boom()), Config(st))
    c.settle_ms = 0
    now = clock.now()
    assert c.reserving().reserve(1, now + 1800, "TAG-A", None, 21, "Available", now) == "Accepted"
    save = Store.save

    def cut(self, name, data, version=1):
        if name == "reservations":
            raise _Cut()
        return save(self, name, data, version)

    Store.save = cut
    try:
        w.ev = "B"
        _polls(c, 4)
        assert c.remote_start("TAG-A") == "Accepted"
        _polls(c, 4)
        w.ev = "C"
        _polls(c, 10)
        raise AssertionError("no cut")
    except _Cut:
        pass
    finally:
        Store.save = save
    assert st.load("session", {}).get("res") == 21  # the session started on it
    c2 = Connector(World(Boom()), Store("rcut"), Events(st, Boom()), Config(st))
    assert [s["res"] for s in c2.interrupted] == [21]
    assert c2.reservations is None or not c2.reservations.reserved(1)
    assert Reservations(Store("rcut")).all() == []
