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
from peripherals import Peripherals


async def _main():
    b = board_mod.Board()
    store = Store(b.flash_root)
    events = EventLog(store)
    events.add("boot")
    settings = Settings(store, b.provisioning())
    config = Config(store)
    await b.start()
    connector = Connector(b, events)
    ocpp = OcppClient(settings, config, b, connector, events)
    light = StatusLight(b, connector, ocpp, settings.get("led_brightness", 80))
    dev = Peripherals(b, settings, connector, light)  # RFID reader, meter, buzzer
    connector.meter = dev.meter  # readings for sessions: dev.meter.latest / energy_wh()
    log.info("app", "borne up on %s", board_mod.NAME)
    if getattr(b, "diag", False):
        import heapwatch

        asyncio.create_task(heapwatch.run(b))
    await asyncio.gather(connector.run(), ocpp.run(), light.run(), *dev.tasks())


def run():
    asyncio.run(_main())
