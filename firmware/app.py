# The application: builds every part from the board and runs them on one asyncio loop.
import asyncio
import gc

import board as board_mod
import clock
import log
from store import Store
from eventlog import EventLog
from settings import Settings
from evse.connector import Connector
from evse.limits import Limits
from evse.reservation import Reservations
from evse.smart import Smart
from ocpp_client.config import Config
from ocpp_client.client import OcppClient
from led.status import StatusLight
from peripherals import Peripherals
from supervisor import supervise

gc.collect()
# Heap held once the modules above are loaded: bytecode under the unix port or from .mpy files,
# which a frozen ESP32 build keeps in flash instead (the memory benchmark reports the split).
CODE_HEAP = gc.mem_alloc()


async def _main():
    b = board_mod.Board()
    clock.rtc_hook = b.set_rtc  # network time also sets the board's hardware clock
    store = Store(b.flash_root)
    from diag import agentlog

    agentlog.install(store.root)  # from here on, log lines reach flash too
    events = EventLog(store)
    events.add("boot")
    prov = b.provisioning()
    settings = Settings(store, prov)
    if settings.get("csms_url", "").startswith("wss://"):
        from supervisor import reserve_tls

        reserve_tls()  # the TLS context's block, while the heap is whole
    config = Config(store, settings)  # keys that are settings read and write them there
    await b.start()
    reservations = Reservations(store, zero_ok=config.get("ReserveConnectorZeroSupported"))
    connector = Connector(b, store, events, config, reservations=reservations)
    smart = Smart(store)
    limits = Limits(connector, smart)
    ocpp = OcppClient(settings=settings, config=config, board=b, connector=connector,
                      events=events, store=store, smart=smart, reservations=reservations)
    # Claim mode and the home Wi-Fi (hotspot/); its import is skipped on boards without a radio.
    hotspot = None
    if b.wlan() is not None:
        from hotspot.claim import Hotspot

        hotspot = Hotspot(b, store, settings, prov, ocpp, connector, events)
    del prov
    light = StatusLight(b, connector, ocpp, config.get("LightIntensity"), hotspot=hotspot)
    config.listen(light)  # LightIntensity: the app's LED brightness, from the cloud
    dev = Peripherals(b, settings, connector, light)  # RFID reader, meter, buzzer
    # Meter readings feed sessions and MeterValues (meter.latest / energy_wh()).
    connector.use(meter=dev.meter, feedback=dev.tag_feedback)
    ocpp.use(meter=dev.meter, reader=dev.rfid, restart_tune=dev.buzzer.restart)
    # MQTT (mqtt/): the owner's broker and Home Assistant; the feature loads once one is set.
    from mqtt import keys as mqtt_keys

    mqtt_keys.attach(b, settings, config, connector, ocpp, events, store)
    log.info("app", "borne up on %s", board_mod.NAME)
    if getattr(b, "diag", False):
        import heapwatch

        asyncio.create_task(heapwatch.run(b, code=CODE_HEAP))
    if getattr(b, "stallwatch", False):
        import stallwatch  # the loop's longest stall, for `borne bench mqtt-stall`

        asyncio.create_task(stallwatch.run(b))
    # Every long-lived task is supervised (supervisor.py): a MemoryError or a bug in one is
    # logged and the task restarted after a backoff; the connector's own poll never ends on one
    # (it opens the relay and polls on), and its restart would open the relay first.
    tasks = [("connector", connector.run), ("ocpp", ocpp.run), ("light", light.run),
             ("limits", limits.run)]
    tasks.extend(dev.tasks())
    if hotspot:
        tasks.append(("hotspot", hotspot.run))
    # The serial maintenance console (console.py): `borne monitor` and `borne deploy` use it.
    from console import Console

    tasks.append(("console", Console(b, settings, connector, hotspot).run))
    await asyncio.gather(*[supervise(name, fn) for name, fn in tasks])


def run():
    asyncio.run(_main())
