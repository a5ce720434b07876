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
