# emulators: host
# On-target driver tests against the host's emulators (the same ones the simulator serves):
# the PN532 emulator written from UM0701-02, and pymodbus RTU servers with each meter's map.
import asyncio
from errno import ETIMEDOUT

from link import Link
from rfid.pn532 import Pn532, Hsu
from rfid.reader import Reader
from meter import maps
from meter.meter import Meter, ModbusMeter
from meter.modbus import Master
import emu
from mphelp import until


def reader_driver():
    return Pn532(Hsu(Link(emu.pn532(), baud=115200)))


async def test_pn532_init_and_uids():
    d = reader_driver()
    assert await d.init() == "1.6"
    assert await d.firmware_version() == (0x32, 1, 6, 7)
    uid = bytearray(10)
    assert await d.poll(uid) == 0
    for hexuid in ("04a2b3c4", "04112233445566", "04112233445566778899"):
        emu.ctl("tap %s 0.5" % hexuid)
        n = await d.poll(uid)
        assert bytes(uid[:n]).hex() == hexuid


async def test_pn532_emulator_needs_the_wake_up_and_samconfiguration():
    d = reader_driver()
    try:
        await d.firmware_version()  # asleep (LowVbat): no ACK
    except OSError as e:  # a timeout (link.timeout)
        assert e.errno == ETIMEDOUT, e
    else:
        raise AssertionError("answered before the wake-up")
    assert await d.init() == "1.6"


async def test_reader_down_and_back():
    fails = []
    tags = []
    emu.ctl("untap")
    r = Reader(reader_driver(), tags.append, on_failure=fails.append, poll_ms=20, retry_ms=50)
    t = asyncio.create_task(r.run())
    try:
        await until(lambda: r.ready, "init")
        emu.ctl("tap 04a2b3c4 0.3")
        await until(lambda: tags == ["04A2B3C4"], "the tag")
        emu.ctl("reader down")
        await until(lambda: fails == [True], "ReaderFailure")
        emu.ctl("reader up")
        await until(lambda: fails == [True, False], "re-initialised")
        emu.ctl("tap 04112233445566 0.3")
        await until(lambda: tags == ["04A2B3C4", "04112233445566"], "a tag after recovery")
    finally:
        t.cancel()


def meter_source(model, timeout_ms=200, retries=2):
    link = Link(emu.meter(model), baud=115200, bits_per_char=11)
    return ModbusMeter(Master(link, timeout_ms, retries), model)


RES = {"sdm630": 2, "sdm120": 2, "abb_b23": 10, "em340": 100}


async def test_every_meter_map_against_pymodbus():
    emu.ctl("flow 16")
    for model in RES:
        v = [None] * maps.NVALUES
        src = meter_source(model)
        emu.ctl("energy 1234567.8")  # (rising 3 Wh/s from here with 16 A on three phases)
        await src.read(v)
        phases = 1 if model == "sdm120" else 3
        assert -RES[model] <= v[maps.E] - 1234567.8 <= RES[model] + 2, (model, v[maps.E])
        assert abs(v[maps.V1] - 230) < 0.1 and abs(v[maps.F] - 50) < 0.01, (model, v)
        assert abs(v[maps.I1] - 16) < 0.01, (model, v)
        assert abs(v[maps.P] - phases * 230 * 16) < 1, (model, v)
        if phases == 1:
            assert v[maps.V3] == 0.0 and v[maps.I3] == 0.0
        else:
            assert abs(v[maps.I3] - 16) < 0.01
    emu.ctl("flow 0")


async def test_line_faults_against_pymodbus():
    src = meter_source("abb_b23")
    m = src.m
    v = [None] * maps.NVALUES
    emu.ctl("meter abb_b23 corrupt 1")
    await src.read(v)
    assert m.crc_errors == 1
    emu.ctl("meter abb_b23 garbage ff0013377f")
    await src.read(v)
    assert m.bad_frames + m.crc_errors >= 2
    emu.ctl("meter abb_b23 down")
    try:
        await src.read(v)
    except OSError as e:  # a timeout (link.timeout)
        assert e.errno == ETIMEDOUT, e
    else:
        raise AssertionError("a silent meter answered")
    emu.ctl("meter abb_b23 up")
    await src.read(v)
    assert v[maps.V1] is not None


async def test_meter_task_rejects_nonsense_from_pymodbus():
    emu.ctl("energy 50000")
    fails = []
    mt = Meter(meter_source("sdm630"), on_failure=fails.append)
    assert await mt.poll()
    for kind in ("backwards", "negative", "megawatt"):
        emu.ctl("meter sdm630 nonsense " + kind)
        assert not await mt.poll()
    assert fails == [True] and mt.latest["energy_wh"] == 50000
    emu.ctl("meter sdm630 nonsense off")
    assert await mt.poll()
    assert fails == [True, False]

