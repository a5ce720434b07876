# The application: builds every part from the board and runs them on one asyncio loop.
import asyncio
import gc
import sys

# The qstr pool of 1,280 names: MicroPython grows its table of interned names in pools of twice
# the last one's entries (..., 640, 1,280), and the boot interns its ~1,260th name late in
# _build (the OCPP client's features; with .mpy files their names and the resident modules'
# str constants, which build.py makes qstrs), when the heap is scattered with module data and
# has no such block in one piece (its MemoryError says "allocating 1280 bytes"). So the
# block is taken here, while the heap is whole, at its top end (a filler below it for the
# moment: the GC allocates first-fit from the bottom, so the hole it leaves is the last one
# small objects fill), and given up in _build just before the names cross the step: the pool
# opens in that hole. Its size: a header of 6 words, then a word, a 2-byte hash and a length
# byte per entry (14,128 bytes on a 64-bit port: 442 blocks of 32; 8,984 on an ESP32).
def _take_room():
    w = 8 if sys.maxsize > 0xFFFFFFFF else 4
    pool = 6 * w + 1280 * (w + 3)
    gc.collect()
    n = gc.mem_free() - pool - 12288
    fill = None
    while n > 0 and fill is None:
        try:
            fill = bytearray(n)
        except MemoryError:
            n -= 4096
    try:
        return bytearray(pool)
    except MemoryError:
        return None


_room = _take_room()
del _take_room
# The filler freed now, from the module's shallow frame: collected from inside a deeper call
# later, a stale copy of its address in the C stack (the GC scans the stack conservatively)
# could keep all of it.
gc.collect()

import board as board_mod
import clock
import log
import supervisor

# The parts _build() makes, loaded now (CODE_HEAP counts them); their classes are named in
# _build() only: a name here holds a slot of this module's globals for good (a package's import
# binds the package alone).
import store
import eventlog
import settings
import evse.connector
import evse.limits
import ocpp_client.config
import ocpp_client.client
import led.status
import peripherals

gc.collect()
# Heap held once the modules above are loaded: bytecode under the unix port or from .mpy files,
# which a frozen ESP32 build keeps in flash instead (the memory benchmark reports the split).
CODE_HEAP = gc.mem_alloc()


def _hotspot(*args):
    from hotspot.claim import Hotspot

    return Hotspot(*args)


def _tls_reserve(settings):
    # For a wss:// CSMS, the TLS context's block (one ~3 KB allocation) taken while the heap is
    # whole: the first context is made in its place (security.tls_context's `keep` list gives it
    # up just before), where a session's fragmented heap may have no such block left. The block
    # is a context itself, unconfigured: the size of the one to come on any port (3,104 bytes
    # here, one GC block more than the 3,072-byte buffer that stood for it).
    if settings.get("csms_url", "").startswith("wss://"):
        import tls

        try:
            return [None, tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)]
        except MemoryError:
            pass
    return []


# Free heap below which claim mode is not even loaded for a press: it would refuse to open and
# its module would hold ~10 KB the charging features need while it waits (hotspot/room.py says
# what it wants beside charging; at least this on any port).
_CLAIM_FLOOR = const(32768)


class _Setup:
    # The setup button of a claimed charger: hotspot/claim.py (claim mode, its login guard) is in
    # the heap only from a press (or the console's @hotspot) until claim mode is over (closed,
    # nothing pending: Hotspot.run() returns); then the object and its module go and this takes
    # the button back. The hotspot runs as its own supervised task and takes the button
    # meanwhile (station.py keeps the home Wi-Fi either way). With no memory to load it, the
    # press is kept and claim mode loads once memory frees. An unclaimed charger's hotspot
    # (`h`, made at boot) is handed over so once it is claimed and closed (Hotspot.claimed()).
    def __init__(self, board, make, h=None):
        self._board = board
        self._make = make
        self.h = h
        self._press = None  # a press waiting for memory (ms)
        if h is None:
            self._tel(False)

    def _tel(self, refused):
        # the hotspot's telemetry while it is not loaded (its ssid is its own: hotspot/claim.py)
        self._board.telemetry("hotspot", {"open": False, "claim": "idle", "error": None,
                                          "claimed": True, "refused": refused})

    @property
    def open(self):  # for the status light
        return self.h is not None and self.h.open

    def load(self):
        # -> True once the hotspot is built and its task started; False: no memory (logged);
        # None: it cannot load (a damaged file, logged): the charger runs on without it.
        free = supervisor.heap_free()
        need = _CLAIM_FLOOR
        try:
            need = max(need, supervisor.rare("hotspot.room", "need",
                                             self._board.hotspot_options())[1])
            if free < need:
                raise MemoryError
            h = self._make()
        except MemoryError:
            if self._press is None:
                log.warn("app", "claim mode refused: no memory to load it (%d bytes free, it "
                         "needs %d); it opens once memory frees", free, need)
                self._tel(True)
            return False
        except Exception as e:
            log.exc("app", "claim mode cannot load", e)
            return None
        h.ends = True
        self.h = h
        supervisor.start("hotspot", self._run)
        return True

    async def _run(self):
        # The hotspot's task (restarted by the supervisor if it fails): over once its run()
        # returns.
        await self.h.run()
        self.h = None
        self._board.on_button = self.button
        supervisor.drop("hotspot.claim")  # (its package stays, as close_ap() leaves it)
        self._tel(False)
        log.info("app", "claim mode over: out of the heap until the setup button")

    def button(self, ms):
        if self.h is None:
            waiting = self._press is not None
            ok = self.load()
            if ok is None:
                return
            if not ok:
                if not waiting:
                    try:
                        asyncio.create_task(self._retry())
                    except MemoryError:  # not even that: the next press tries again
                        return
                self._press = ms
                return
        self.h.button(ms)

    async def _retry(self):
        while self.h is None:
            await asyncio.sleep_ms(2000)
            gc.collect()
            self.button(self._press)
        self._press = None


def _console(*args):
    # The console's task: one Console across restarts; out of the heap once it finds no console
    # attached (its run() returns: the simulation's agent, a line at its end).
    one = []

    async def run():
        if not one:
            from console import Console

            one.append(Console(*args))
        await one[0].run()
        one.clear()
        from supervisor import drop

        drop("console")

    return run


async def _build():
    # Builds every part; -> the (name, fn) of the long-lived tasks.
    from store import Store
    from eventlog import EventLog
    from settings import Settings
    from evse.connector import Connector
    from evse.limits import Limits
    from ocpp_client.config import Config
    from ocpp_client.client import OcppClient
    from led.status import StatusLight
    from peripherals import Peripherals

    b = board_mod.Board()
    clock.rtc_hook = b.set_rtc  # network time also sets the board's hardware clock
    supervisor.growth = b.heap_growth  # the room checks count what the heap can still add
    store = Store(b.flash_root)
    from diag import agentlog

    agentlog.install(store.root)  # from here on, log lines reach flash too
    events = EventLog(store)
    events.add("boot")
    prov = b.provisioning()
    settings = Settings(store, prov)
    tls = _tls_reserve(settings)
    config = Config(store, settings)  # keys that are settings read and write them there
    await b.start()
    # Smart charging and reservations load on use (evse/limits.py, Connector.reserving()): at
    # boot only when the flash holds a profile or a reservation.
    connector = Connector(b, store, events, config)
    limits = Limits(connector, store)
    global _room
    # The qstr pool's block (see the top): its names cross the step in here. The garbage goes
    # first, so that the objects made until then find room below the hole, not in it.
    gc.collect()
    _room = None
    ocpp = OcppClient(settings=settings, config=config, board=b, connector=connector,
                      events=events, store=store, limits=limits, tls=tls)
    del tls
    # Claim mode and the home Wi-Fi: skipped on boards without a radio. station.py joins the
    # home Wi-Fi (once claimed); claim mode (hotspot/) runs on an unclaimed charger, and on a
    # claimed one from a press of the setup button (_Setup).
    hotspot = station = None
    if b.wlan() is not None:
        claimed = settings.is_claimed()
        if not claimed or settings.get("wifi_ssid"):
            from station import Station

            station = Station(b.wlan(), settings, ocpp.wake)
        hotspot = _Setup(b, lambda: _hotspot(b, store, settings, b.provisioning(), ocpp,
                                          connector, events, station),
                         None if claimed else _hotspot(b, store, settings, prov, ocpp,
                                                       connector, events, station))
        if claimed:
            b.on_button = hotspot.button
    del prov
    light = StatusLight(b, connector, ocpp, config.get("LightIntensity"), hotspot=hotspot,
                        blinks=config.get("BlinkRepeat"))
    config.listen(light)  # LightIntensity (the LED brightness) and BlinkRepeat, from the cloud
    dev = Peripherals(b, settings, connector, light)  # RFID reader, meter, buzzer
    # Meter readings feed sessions and MeterValues (meter.latest / energy_wh()).
    connector.meter = dev.meter
    connector.feedback = dev.tag_feedback  # fn(accepted): the LED flash + buzzer at the charger
    ocpp.meter = dev.meter
    ocpp.reader = dev.rfid  # for tag learning
    ocpp.restart_tune = dev.buzzer.restart
    # MQTT (mqtt/): the owner's broker and Home Assistant; mqtt/keys.py and the feature load
    # once one is set (now, a key's change or the claim).
    from ocpp_client import config as config_mod

    config_mod.MQTT_DEPS = (b, settings, config, connector, ocpp, events, store)
    if settings.get("mqtt_url"):
        from mqtt import keys as mqtt_keys

        mqtt_keys.changed()
    log.info("app", "borne up on %s", board_mod.NAME)
    if getattr(b, "diag", False):
        import heapwatch

        asyncio.create_task(heapwatch.run(b, code=CODE_HEAP))
    if getattr(b, "stallwatch", False):
        import stallwatch  # the loop's longest stall, for `borne bench mqtt-stall`

        asyncio.create_task(stallwatch.run(b))
    # Every long-lived task is supervised (supervisor.py, started by _main): a MemoryError or a
    # bug in one is logged and the task restarted after a backoff; the connector's own poll
    # never ends on one (it opens the relay and polls on), and its restart would open the relay
    # first.
    tasks = [("connector", connector.run), ("ocpp", ocpp.run), ("light", light.run),
             ("limits", limits.run)]
    tasks.extend(dev.tasks())
    if station is not None:
        tasks.append(("wifi", station.run))
    if hotspot is not None and hotspot.h is not None:
        tasks.append(("hotspot", hotspot._run))
    # The serial maintenance console (console.py): `borne monitor` and `borne deploy` use it.
    tasks.append(("console", _console(b, settings, connector, hotspot)))
    return tasks


async def _main():
    # The main task: builds the agent (its frame gone once built), then keeps its tasks for
    # ever (supervisor.keep(): restarts any that fails). The boot-only functions leave the
    # globals then, and with them their code where it is in the heap (.mpy: ~1 KB).
    global _build, _tls_reserve
    tasks = await _build()
    del _build, _tls_reserve
    await supervisor.keep(tasks)


def run():
    asyncio.run(_main())
