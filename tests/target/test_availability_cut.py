# ChangeAvailability (1.6 5.2) across a power cut: a change Scheduled for the session running
# is in force after the boot once that session is over, whatever step the cut came at.
from evse.connector import Connector
from ocpp_client.config import Config
from store import Store
from test_oom import Boom, Events, World, _polls


class _Cut(Exception):
    pass


def _charging(root):
    st = Store(root)
    w = World(Boom())
    c = Connector(w, st, Events(st, Boom()), Config(st))
    c.settle_ms = 0
    w.ev = "B"
    _polls(c, 4)
    assert c.remote_start("A-1") == "Accepted"
    _polls(c, 4)
    w.ev = "C"
    _polls(c, 10)
    assert c.session is not None and w.relay
    return st, w, c


def _boot(root):
    st = Store(root)
    return Connector(World(Boom()), st, Events(st, Boom()), Config(st))


def test_a_change_scheduled_for_a_session_is_in_force_after_a_cut_as_it_ends():
    # The session ends (its StopTransaction journaled, its document gone), and the power goes
    # before the change it waited for is saved: the boot finds no session, and the change
    # scheduled. It must be in force (Unavailable, no session starts), not kept for the next
    # session's end: the CSMS was told Scheduled, the transaction is over.
    st, w, c = _charging("av_cut")
    assert c.change_availability(False) == "Scheduled"
    save = Store.save

    def cut(self, name, data, version=1):
        if name == "availability":
            raise _Cut()
        return save(self, name, data, version)

    Store.save = cut
    try:
        c.remote_stop(lambda ref: True)
        raise AssertionError("no cut")
    except _Cut:
        pass
    finally:
        Store.save = save
    assert st.load("availability", {}).get("scheduled") is False  # the cut came here
    c2 = _boot("av_cut")
    assert not c2.operative and c2.status_of(1)[0] == "Unavailable", c2.status_of(1)
    assert _boot("av_cut").status_of(1)[0] == "Unavailable"  # and saved so


def test_a_cut_as_a_reserved_connector_goes_unavailable_keeps_one_or_the_other():
    # ChangeAvailability(Inoperative) on a reserved connector ends the reservation (1.6 5.13).
    # It was ended and saved before the change was: a cut in between booted the connector
    # Available without its reservation (the CSMS, unanswered, never heard either). A cut at
    # either save boots it Reserved (nothing changed) or Unavailable, its reservation over.
    import clock

    for doc, want in (("availability", "Reserved"), ("reservations", "Unavailable")):
        root = "av_res_" + doc
        c = _boot(root)
        assert c.reserving().reserve(1, clock.now() + 3600, "OWNER", None, 5,
                                     "Available") == "Accepted"
        save = Store.save
        dead = []

        def cut(self, name, data, version=1):
            if name == doc or dead:  # the power gone: no later save lands either
                dead.append(name)
                raise _Cut()
            return save(self, name, data, version)

        Store.save = cut
        try:
            c.change_availability(False)
            raise AssertionError("no cut")
        except _Cut:
            pass
        finally:
            Store.save = save
        c2 = _boot(root)
        assert c2.status_of(1)[0] == want, (doc, c2.status_of(1))
        if want == "Unavailable":
            assert c2.reservations is None, c2.reservations.all()
            c3 = _boot(root)
            assert c3.reservations is None and c3.status_of(1)[0] == "Unavailable"
            assert c3.change_availability(True) == "Accepted"
            assert c3.status_of(1)[0] == "Available"  # the reservation is over for good
