# On-target tests for meter.modbus (Modbus RTU master) and meter.maps (register decoding):
# frames and CRCs from the Modbus specifications as fixed vectors, and line faults.
import asyncio
from errno import ETIMEDOUT

from link import Link
from meter.modbus import Master, crc16, ModbusError
from meter import maps
from meter.meter import ModbusMeter
from fakewire import Wire, MiniModbus, rtu

H = bytes.fromhex


def bus(dev=None, chunk=64, timeout_ms=60, retries=2):
    dev = dev or MiniModbus()
    w = Wire(dev, chunk)
    return dev, w, Master(Link(w, baud=115200, bits_per_char=11), timeout_ms, retries)


def test_crc16_vectors():
    # CRC-16/MODBUS check value, and the read request of the Modbus over Serial Line spec
    assert crc16(b"123456789", 9) == 0x4B37
    b = H("01030000000a")
    assert crc16(b, 6) == 0xCDC5  # sent as C5 CD
    b = H("018402")
    assert crc16(b, 3) == 0xC1C2  # the exception response 01 84 02 C2 C1


def test_request_frames():
    _, _, m = bus()
    assert bytes(m.request(1, 3, 0x0000, 10)) == H("01030000000ac5cd")
    assert bytes(m.request(1, 4, 0x0000, 2)) == H("01040000000271cb")
    assert bytes(m.request(1, 4, 0x000C, 2)) == H("0104000c0002b1c8")


async def test_read_returns_register_bytes():
    dev, w, m = bus()
    dev.set(0, [0x4366, 0x0000, 0x1234])
    n = await m.read(1, 4, 0, 3)
    assert n == 6 and bytes(m.rx[3:9]) == H("436600001234")
    assert bytes(w.written[:6]) == H("010400000003") and len(w.written) == 8


async def test_exception_responses():
    dev, w, m = bus(MiniModbus(only=4))
    dev.set(0, [1, 2])
    for fc, start, code in ((3, 0, 1), (4, 0x100, 2)):
        try:
            await m.read(1, fc, start, 2)
        except ModbusError as e:
            assert e.code == code
        else:
            raise AssertionError("no exception")
    assert len(dev.requests) == 2, "exceptions are not retried"
    dev.busy_next = 1  # server busy: retried
    assert await m.read(1, 4, 0, 2) == 4
    assert m.exceptions == 3


async def test_documented_exception_frame():
    w = Wire(lambda b: H("018402c2c1"))
    m = Master(Link(w, baud=115200), 50, 0)
    try:
        await m.read(1, 4, 0, 2)
    except ModbusError as e:
        assert e.code == 2
    else:
        raise AssertionError("no exception")


async def test_crc_error_is_retried():
    dev, w, m = bus()
    dev.set(0, [7, 8])
    dev.corrupt_next = 1
    assert await m.read(1, 4, 0, 2) == 4
    assert m.crc_errors == 1 and len(dev.requests) == 2
    dev.corrupt_next = 3
    try:
        await m.read(1, 4, 0, 2)
    except ModbusError as e:
        assert "CRC" in str(e) and e.code is None, e
    else:
        raise AssertionError("three bad CRCs must fail")


async def test_noise_before_the_answer_and_wrong_address():
    dev, w, m = bus()
    dev.set(0, [7, 8])
    dev.garbage = b"\xff\x00\x13"
    assert await m.read(1, 4, 0, 2) == 4  # noise: retried after the line goes quiet
    dev.wrong_addr_next = 1
    assert await m.read(1, 4, 0, 2) == 4
    assert m.bad_frames == 2


async def test_short_reads_and_timeout_mid_frame():
    dev, w, m = bus(chunk=1)
    dev.set(0, list(range(40)))
    assert await m.read(1, 3, 0, 40) == 80
    assert bytes(m.rx[3:7]) == H("00000001")
    dev.truncate_next = 1
    assert await m.read(1, 3, 0, 40) == 80
    assert m.timeouts == 1


async def test_silent_meter_times_out():
    dev, w, m = bus(retries=1)
    dev.silent = True
    try:
        await m.read(1, 4, 0, 2)
    except OSError as e:  # a timeout (link.timeout)
        assert e.errno == ETIMEDOUT, e
    else:
        raise AssertionError("no timeout")
    assert m.timeouts == 2
    dev.silent = False
    dev.set(0, [1, 2])
    assert await m.read(1, 4, 0, 2) == 4  # and it comes back


def test_decode_types():
    d = maps.decode
    assert d(H("43660000"), 0, maps.F32) == 230.0
    assert d(H("bfc00000"), 0, maps.F32) == -1.5
    assert abs(d(H("4640e6b6"), 0, maps.F32) - 12345.678) < 0.001
    assert d(H("7fc00000"), 0, maps.F32) is None  # NaN
    assert d(H("7f800000"), 0, maps.F32) is None  # infinity
    assert 0 < d(H("000116c2"), 0, maps.F32) < 1e-39  # denormal
    assert d(H("00000000"), 0, maps.F32) == 0.0
    assert d(H("0001e240"), 0, maps.U32) == 123456
    assert d(H("fffffffe"), 0, maps.S32) == -2
    assert d(H("e2400001"), 0, maps.S32L) == 123456  # low word first
    assert d(H("fffeffff"), 0, maps.S32L) == -2
    assert d(H("01f4"), 0, maps.U16) == 500
    assert d(H("fff6"), 0, maps.S16) == -10
    assert d(H("000000000012d687"), 0, maps.U64) == 1234567


def f32(v):
    import struct

    hi, lo = struct.unpack(">HH", struct.pack(">f", v))
    return [hi, lo]


def s32l(v):
    v &= 0xFFFFFFFF
    return [v & 0xFFFF, v >> 16]


def u32(v):
    return [v >> 16, v & 0xFFFF]


async def read_model(model, dev):
    w = Wire(dev)
    src = ModbusMeter(Master(Link(w, baud=115200), 60, 0), model)
    v = [None] * maps.NVALUES
    await src.read(v)
    return v


async def test_sdm630_map():
    dev = MiniModbus(only=4)
    dev.set(0x0000, f32(231.5) + f32(229.0) + f32(230.2) + f32(16.0) + f32(15.5) + f32(0.0))
    for a in range(0x34, 0x4A, 2):
        dev.set(a, f32(0.0))
    dev.set(0x0034, f32(7400.0))
    dev.set(0x0046, f32(49.98))
    dev.set(0x0048, f32(1234.567))
    v = await read_model("sdm630", dev)
    assert v[maps.V1] == 231.5 and v[maps.I2] == 15.5 and v[maps.P] == 7400.0
    assert abs(v[maps.F] - 49.98) < 0.001 and v[maps.E] == 1234567
    assert dev.requests == [(4, 0x0000, 12), (4, 0x0034, 22)]


async def test_sdm120_map():
    dev = MiniModbus(only=4)
    for a in range(0, 14, 2):
        dev.set(a, f32(0.0))
    dev.set(0x0000, f32(230.0))
    dev.set(0x0006, f32(10.0))
    dev.set(0x000C, f32(2300.0))
    dev.set(0x0046, f32(50.0) + f32(12.5))
    v = await read_model("sdm120", dev)
    assert (v[maps.V1], v[maps.I1], v[maps.P], v[maps.E]) == (230.0, 10.0, 2300.0, 12500)
    assert v[maps.V2] == v[maps.I3] == 0.0


async def test_abb_b23_map():
    dev = MiniModbus(only=3)
    dev.set(0x5000, [0, 0, 0x0001, 0xE240])  # 123456 x 0.01 kWh
    dev.set(0x5B00, [0] * 45)
    dev.set(0x5B00, u32(2305) + u32(2298) + u32(2301))
    dev.set(0x5B0C, u32(1600) + u32(1550) + u32(0))
    dev.set(0x5B14, [0xFFFF, 0xFF9C])  # -100 x 0.01 W: signed
    dev.set(0x5B2C, [4998])
    v = await read_model("abb_b23", dev)
    assert v[maps.E] == 1234560
    assert abs(v[maps.V1] - 230.5) < 1e-3 and abs(v[maps.I1] - 16.0) < 1e-3
    assert abs(v[maps.P] + 1.0) < 1e-3 and abs(v[maps.F] - 49.98) < 1e-3
    assert dev.requests == [(3, 0x5000, 4), (3, 0x5B00, 45)]


async def test_em340_map():
    dev = MiniModbus()
    dev.set(0x0000, [0] * 18)
    dev.set(0x0000, s32l(2312) + s32l(2300) + s32l(2299))
    dev.set(0x000C, s32l(16000) + s32l(15990) + s32l(16010))
    dev.set(0x0028, [0] * 14)
    dev.set(0x0028, s32l(110400))
    dev.set(0x0033, [500])
    dev.set(0x0034, s32l(123456))  # kWh x 10
    v = await read_model("em340", dev)
    assert abs(v[maps.V1] - 231.2) < 1e-3 and abs(v[maps.I3] - 16.01) < 1e-3
    assert abs(v[maps.P] - 11040.0) < 1e-2 and abs(v[maps.F] - 50.0) < 1e-3
    assert v[maps.E] == 12345600


async def test_nan_register_is_an_error():
    dev = MiniModbus(only=4)
    dev.set(0x0000, [0x7FC0, 0] * 6)
    dev.set(0x0034, [0] * 22)
    try:
        await read_model("sdm630", dev)
    except ValueError as e:
        assert "not a number" in str(e)
    else:
        raise AssertionError("NaN accepted")


def test_unknown_model():
    try:
        ModbusMeter(None, "acme9000")
    except ValueError as e:
        assert "sdm630" in str(e)
    else:
        raise AssertionError("unknown model accepted")


async def test_unchanged_registers_give_the_same_values_changed_ones_new():
    # A poll decodes only the values whose register bytes changed (a float is a heap object):
    # the others are the same objects as before, and every value is still right.
    dev = MiniModbus(only=4)
    dev.set(0x0000, f32(231.5) + f32(229.0) + f32(230.2) + f32(16.0) + f32(15.5) + f32(0.0))
    for a in range(0x34, 0x4A, 2):
        dev.set(a, f32(0.0))
    dev.set(0x0034, f32(7400.0))
    dev.set(0x0046, f32(49.98))
    dev.set(0x0048, f32(1234.567))
    src = ModbusMeter(Master(Link(Wire(dev), baud=115200), 60, 0), "sdm630")
    v1 = [None] * maps.NVALUES
    await src.read(v1)
    v2 = [None] * maps.NVALUES
    await src.read(v2)
    assert all(a is b for a, b in zip(v1, v2)), "unchanged registers: the same objects"
    dev.set(0x0002, f32(-0.0))  # V2: to -0.0, sign only
    dev.set(0x0008, f32(15.75))  # I2
    dev.set(0x0048, f32(1234.625))  # the energy register
    await src.read(v2)
    assert v2[maps.I2] == 15.75 and v2[maps.E] == 1234625 and str(v2[maps.V2]) == "-0.0"
    for k in range(maps.NVALUES):
        if k not in (maps.V2, maps.I2, maps.E):
            assert v2[k] is v1[k], k
    dev.set(0x0008, f32(16.0))  # back to a value it had: decoded again, equal
    await src.read(v2)
    assert v2[maps.I2] == 16.0


async def test_a_cancelled_read_leaves_the_master_usable():
    dev, w, m = bus(timeout_ms=200)
    dev.set(0, [1, 2])
    dev.silent = True
    try:
        await asyncio.wait_for_ms(m.read(1, 4, 0, 2), 20)  # cancelled while waiting
    except asyncio.TimeoutError:
        pass
    else:
        raise AssertionError("a silent meter answered")
    dev.silent = False
    assert await m.read(1, 4, 0, 2) == 4
    assert bytes(m.rx[3:7]) == H("00010002")
    # and the exchange runs as a task of its own too
    assert await asyncio.create_task(m.read(1, 4, 0, 2)) == 4
