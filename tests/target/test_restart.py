# On-target tests for a restart asked while the charger waits for a plug-in (OCPP Reset, the
# console's restart and maintenance boot: Connector.stop_for): no session starts before it, so
# the restart never cuts off a transaction the CSMS has just booked.
from store import Store
from eventlog import EventLog
from ocpp_client.config import Config
from evse.connector import Connector
from fakeboard import FakeBoard

_A = (12000, 12000)  # pilot state A: no EV
_B = (9000, 9000)  # B: an EV plugged in


def _connector():
    b = FakeBoard()
    store = Store("flash")
    c = Connector(b, store, EventLog(store, 20), Config(store))
    c.settle_ms = 0
    return b, c


def _polls(c, n=6):
    for _ in range(n):
        c.poll()


def test_a_reset_drops_a_remote_start_waiting_for_the_plug_and_starts_nothing_after():
    b, c = _connector()
    b.cp = _A
    _polls(c)
    assert c.remote_start("REMOTE-1") == "Accepted"
    assert c.pending is not None, "authorized, waiting for the EV"
    assert not c.stop_for("SoftReset"), "no session was running"
    assert c.pending is None, "the waiting start is dropped at the reset"
    b.cp = _B  # the driver plugs in while the charger restarts
    _polls(c)
    assert c.session is None and not b.relay, "no session, relay open until the restart"
    assert c.remote_start("REMOTE-2") == "Rejected", "nothing starts before the restart"
