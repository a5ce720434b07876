# The application: builds every part from the board and runs them on one asyncio loop.
import asyncio

import board as board_mod
import log
from store import Store
from eventlog import EventLog
from settings import Settings
from evse.connector import Connector
from ocpp_client.config import Config
from ocpp_client.client import OcppClient
from led.status import StatusLight


async def _main():
    b = board_mod.Board()
    store = Store(b.flash_root)
    events = EventLog(store)
    events.add("boot")
    prov = b.provisioning()
    settings = Settings(store, prov)
    config = Config(store)
    await b.start()
    connector = Connector(b, events)
    ocpp = OcppClient(settings, config, b, connector, events)
    # Claim mode and the home Wi-Fi (hotspot/); its import is skipped on boards without a radio.
    hotspot = None
    if b.wlan() is not None:
        from hotspot.claim import Hotspot

        hotspot = Hotspot(b, store, settings, prov, ocpp, connector, events)
    del prov
    light = StatusLight(b, connector, ocpp, hotspot=hotspot)
    log.info("app", "borne up on %s", board_mod.NAME)
    if getattr(b, "diag", False):
        import heapwatch

        asyncio.create_task(heapwatch.run(b))
    tasks = [connector.run(), ocpp.run(), light.run()]
    if hotspot:
        tasks.append(hotspot.run())
    await asyncio.gather(*tasks)


def run():
    asyncio.run(_main())
