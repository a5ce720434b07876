# The peripherals' set-up (peripherals.py): which RFID reader, which meter, the RS-485 bus and the
# grid meter, built from what the board offers and the settings. Run once at boot: loaded for it
# and out of the heap again after (the callbacks the devices keep are made by peripherals.py's
# cb, the tag feedback is the buzzer's, so nothing here stays referenced once app.py has taken
# the devices from the Devices it got).
import log

_TAG = "periph"


class Devices:
    # What the set-up built (peripherals.Peripherals() says what each is).
    def __init__(self):
        self.buzzer = None
        self.rfid = None
        self.meter = None
        self.supply = None
        self.tag_feedback = None
        self._tasks = []

    def tasks(self):
        return self._tasks


def build(board, settings, connector, light, cb):
    from led.buzzer import Buzzer

    p = Devices()
    p.buzzer = Buzzer(board, light=light)
    p.tag_feedback = p.buzzer.feedback
    p._master = None  # the RS-485 bus's one Modbus master, while setting up
    # Load balancing: a grid meter shares the RS-485 bus, so every meter on it takes turns.
    grid = settings.get("grid_meter_model", "")
    p._bus = None
    if grid:
        from supply import Bus

        p._bus = Bus()
    try:
        drv = _rfid_driver(board)
    except (ValueError, OSError) as e:
        # A reader the board cannot build (an unknown kind in its provisioning, a dead bus):
        # reported as the reader's fault; the charger runs on without it.
        log.error(_TAG, "RFID reader: %s", e)
        connector.device_fault("ReaderFailure", True)
        drv = None
    if drv is not None:
        from rfid.reader import Reader

        p.rfid = Reader(
            drv,
            connector.on_tag,
            on_failure=cb(connector, "ReaderFailure"),
            buzzer=p.buzzer,
            confirm=2,  # a UID read twice in a row: line noise never makes a tag
        )
        p._tasks.append(("rfid", p.rfid.run))
    else:
        log.info(_TAG, "no RFID reader on this board")
    p.meter = _meter(p, board, settings, connector, cb)
    if p.meter:
        p._tasks.append(("meter", p.meter.run))
    if grid:
        p.supply = _supply(p, board, settings, connector, grid, cb)
        if p.supply:
            p._tasks.append(("supply", p.supply.run))
    del p._master
    del p._bus
    return p


def _rfid_driver(board):
    # A board may build its reader itself (rfid_driver(): an MFRC522 on SPI, a PN532 on
    # I2C); otherwise a PN532 on the UART that rfid_stream() gives.
    drv = board.rfid_driver()
    if drv is not None:
        return drv
    s = board.rfid_stream()
    if s is None:
        return None
    from link import Link
    from rfid.pn532 import Pn532, Hsu

    return Pn532(Hsu(Link(s, baud=115200)))

def _meter(p, board, settings, connector, cb):
    from meter.meter import Meter

    model = settings.get("meter_model", "sdm630")
    if model == "pulse":
        pulses = board.meter_pulses()
        if pulses is None:
            log.warn(_TAG, "meter model is pulse but the board has no S0 input")
            return None
        from meter.pulse import PulseMeter

        source = PulseMeter(pulses, settings.get("meter_wh_per_pulse", 1.0), settings.store)
    else:
        master = _modbus(p, board, settings)
        if master is None:
            log.info(_TAG, "no meter on this board")
            return None
        from meter.meter import ModbusMeter

        try:
            source = ModbusMeter(master, model, settings.get("meter_addr", 1))
        except ValueError as e:
            log.error(_TAG, "%s", e)
            connector.device_fault("PowerMeterFailure", True)
            return None
        if p._bus is not None:
            from supply import Shared

            source = Shared(p._bus, source)
    log.info(_TAG, "meter: %s", model)
    return Meter(
        source,
        # the circuit's rating (the installer's limit): plausibility limits
        max_current_a=connector.config.get("BorneMaxCurrent"),
        phases=settings.get("phases", 3),
        on_failure=cb(connector, "PowerMeterFailure"),
        publish=board.telemetry,
    )

def _modbus(p, board, settings):
    # The RS-485 bus: one link and one Modbus master for every meter on it.
    if p._master is None:
        # The line settings are the installation's: 8 data bits, parity "E" (the Eastron/ABB/
        # Carlo Gavazzi default: 11 bits a character), "N" or "O", 1 stop bit.
        baud = settings.get("meter_baud", 9600)
        parity = settings.get("meter_parity", "E")
        if parity not in ("N", "E", "O"):
            log.error(_TAG, "meter parity %r: one of N, E, O; using E", parity)
            parity = "E"
        s = board.meter_stream(baud, parity)
        if s is None:
            return None
        from link import Link
        from meter.modbus import Master

        p._master = Master(Link(s, baud=baud, bits_per_char=10 if parity == "N" else 11))
    return p._master

def _supply(p, board, settings, connector, model, cb):
    # The grid meter and the load-balancing task. Without a working set-up the offer stays
    # at the fallback and the failure is reported: no headroom known is not "no limit".
    from meter.meter import Meter, ModbusMeter
    from supply import Supply

    fallback = settings.get("grid_fallback_a", 6)
    fuse = settings.get("main_fuse_a", 25)
    master = _modbus(p, board, settings)
    try:
        if master is None:
            raise ValueError("no RS-485 bus on this board")
        source = ModbusMeter(master, model, settings.get("grid_meter_addr", 2))
    except ValueError as e:
        log.error(_TAG, "grid meter: %s; offer capped at the fallback %d A", e, fallback)
        connector.set_headroom(fallback)
        connector.device_fault("GridMeterFailure", True)
        return None
    if p.meter is None or not p._bus.shared:
        log.warn(_TAG, "the charger's own current is not measured: it counts as house load")
    grid = Meter(
        source,
        max_current_a=2 * fuse,  # plausibility only: an overload must still be seen
        phases=source.map["phases"],
        on_failure=cb(connector, "GridMeterFailure"),
        publish=cb(board, "grid"),
    )
    log.info(_TAG, "grid meter: %s at address %d, main fuse %d A", model, source.addr, fuse)
    return Supply(connector, grid, p._bus, own=p.meter, fuse_a=fuse, fallback_a=fallback,
                  publish=board.telemetry)
