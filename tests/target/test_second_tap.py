# On-target test: a second card tapped while another card's tap is being decided (its Authorize
# on a slow link) is ignored, one tap decided at a time, and the log says so: its holder sees no
# signal, and without the line nothing told a technician why that card did nothing.
import asyncio

from mphelp import Logs, until
from store import Store
from eventlog import EventLog
from ocpp_client.config import Config
from evse.connector import Connector
from test_connector_props import World


async def test_a_card_tapped_while_another_is_authorized_is_ignored_and_logged():
    w = World()
    store = Store("flash/second_tap")
    c = Connector(w, store, EventLog(store, 20), Config(store))
    answer = asyncio.Event()
    asked = []

    async def slow(tag):
        asked.append(tag)
        await answer.wait()
        return ("Accepted", None)

    c.authorizer = slow
    with Logs() as logs:
        c.on_tag("04A1B2C3")
        await until(lambda: c.authorizing, "the first tap's authorization")
        c.on_tag("0BADCAFE")
        await asyncio.sleep_ms(20)
        assert asked == ["04A1B2C3"], asked
        assert logs.said("0BADCAFE", "ignored", "another card's authorization")
        answer.set()
        await until(lambda: not c.authorizing, "the first tap decided")
    assert c.pending is not None and c.pending[0] == "04A1B2C3", c.pending
