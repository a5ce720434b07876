# On-target test: the accepted signal of a tap (tune and LED flash) tells the owner "charging
# starts". With the EV plugged in, the session starts at the tap: the signal comes once its
# StartTransaction is journaled (a power cut right after it then ends that session, billed), and
# a start the flash refuses is heard as a refusal only, not as an accepted tune cut short by one.
import asyncio

from mphelp import until
from store import Store
from eventlog import EventLog
from ocpp_client.config import Config
from evse.connector import Connector
from test_connector_props import World, _plugged_asking


class Journal:
    # The transactions feature as the connector sees it: where a start is journaled.
    def __init__(self, order, full=False):
        self.order = order
        self.full = full

    def on_tx_starting(self):
        if self.full:
            raise OSError(28)  # ENOSPC: the StartTransaction does not reach the flash

    def on_tx_start(self, s):
        self.order.append("journaled")


async def _tap(name, full=False):
    w = World()
    store = Store("flash/" + name)
    c = Connector(w, store, EventLog(store, 20), Config(store))
    c.settle_ms = 0
    order = []
    c.listen(Journal(order, full))
    c.feedback = lambda ok: order.append("accepted" if ok else "refused")

    async def allow(tag):
        await asyncio.sleep_ms(0)
        return ("Accepted", None)

    c.authorizer = allow
    await _plugged_asking(w, c)
    c.on_tag("04A1B2C3")
    await until(lambda: order, "the tap's signal")
    await asyncio.sleep_ms(20)
    return c, order


async def test_the_accepted_signal_follows_the_start_on_flash():
    c, order = await _tap("tap_signal")
    assert c.session is not None and c.session["tag"] == "04A1B2C3"
    assert order == ["journaled", "accepted"], order


async def test_a_start_the_flash_refuses_is_signalled_refused_only():
    c, order = await _tap("tap_signal_full", full=True)
    assert c.session is None
    assert order == ["refused"], order
