# On-target tests for rfid.pn532 (and link.Link under it): frames byte for byte as UM0701-02
# shows them, and the faults a UART line has: noise, short reads, bad checksums, a frame cut
# off mid-way, a chip that does not answer.
import asyncio
from errno import ETIMEDOUT

from link import Link
from rfid import pn532
from rfid.pn532 import Pn532, Hsu, Pn532Error
from rfid.pn532_i2c import I2c
from fakewire import Wire, MiniPn532, pn532_frame, ACK, NACK

H = bytes.fromhex


def chip(chunk=64):
    c = MiniPn532()
    w = Wire(c, chunk)
    return c, w, Pn532(Hsu(Link(w, baud=115200)))


def test_command_frames_match_the_manual():
    buf = bytearray(32)
    # UM0701-02 7.2.2: GetFirmwareVersion
    n = pn532.frame(buf, 0x02)
    assert bytes(buf[:n]) == H("0000ff02fed4022a00")
    # 7.2.10: SAMConfiguration, normal mode, timeout 0x14 (1 s), IRQ used
    n = pn532.frame(buf, 0x14, b"\x01\x14\x01")
    assert bytes(buf[:n]) == H("0000ff05fbd41401140102" + "00")
    # 7.3.5: InListPassiveTarget, MaxTg 1, BrTy 106 kbps type A
    n = pn532.frame(buf, 0x4A, b"\x01\x00")
    assert bytes(buf[:n]) == H("0000ff04fcd44a0100e100")
    # 7.3.1: RFConfiguration, MaxRetries
    n = pn532.frame(buf, 0x32, b"\x05\xff\x01\x01")
    assert bytes(buf[:n]) == H("0000ff06fad43205ff0101f400")


async def test_documented_responses_parse():
    # Responses exactly as printed in UM0701-02: the firmware version, and the
    # InListPassiveTarget example with a MIFARE Classic 1K (UID 92 2E 58 32).
    replies = {
        H("0000ff02fed4022a00"): ACK + H("0000ff06fad50332010607e800"),
        H("0000ff04fcd44a0100e100"): ACK + H("0000ff0cf4d54b0101000408" + "04922e5832" + "8400"),
    }
    w = Wire(lambda b: replies.get(b, b""))
    d = Pn532(Hsu(Link(w, baud=115200)))
    assert await d.firmware_version() == (0x32, 1, 6, 7)
    uid = bytearray(10)
    assert await d.poll(uid) == 4
    assert bytes(uid[:4]) == H("922e5832")


async def test_init_wakes_the_chip_and_sends_samconfiguration_first():
    c, w, d = chip()
    assert await d.init() == "1.6"
    assert w.written.startswith(b"\x55\x55\x00\x00")
    assert c.commands == [0x14, 0x02, 0x32]
    assert c.bad_frames == 0


async def test_uids_of_4_7_and_10_bytes():
    c, w, d = chip()
    await d.init()
    uid = bytearray(10)
    assert await d.poll(uid) == 0
    for u in (H("04a2b3c4"), H("04112233445566"), H("04112233445566778899")):
        c.uid = u
        assert await d.poll(uid) == len(u)
        assert bytes(uid[: len(u)]) == u


async def test_noise_and_false_start_codes_are_skipped():
    c, w, d = chip()
    await d.init()
    c.uid = H("04a2b3c4")
    uid = bytearray(10)
    # garbage, a lone 00, a false start code with a bad length checksum, then the real frames
    for junk in (b"\xff\x13\x37", b"\x00\x00\x00", b"\x00\xff\x05\x05\xaa", b"\x55" * 20):
        w.noise = junk
        assert await d.poll(uid) == 4
    assert bytes(uid[:4]) == H("04a2b3c4")
    assert d.noise > 0


async def test_short_reads_of_one_byte():
    c, w, d = chip(chunk=1)
    await d.init()
    c.uid = H("04112233445566778899")
    uid = bytearray(10)
    assert await d.poll(uid) == 10


async def test_bad_data_checksum_is_answered_with_a_nack():
    c, w, d = chip()
    await d.init()
    c.uid = H("04a2b3c4")
    c.corrupt_next = 1
    uid = bytearray(10)
    assert await d.poll(uid) == 4
    assert c.nacks == 1
    assert w.written.endswith(NACK)


async def test_timeout_mid_frame_then_recovery():
    c, w, d = chip()
    await d.init()
    c.uid = H("04a2b3c4")
    c.truncate_next = 1  # half a frame, then silence: the driver gives up, aborts, retries
    uid = bytearray(10)
    assert await d.poll(uid) == 4
    assert c.aborts == 1
    assert c.commands.count(0x4A) == 2


async def test_missing_ack_is_retried_then_reported():
    c, w, d = chip()
    await d.init()
    c.ignore_next = 1
    assert await d.firmware_version() == (0x32, 1, 6, 7)
    c.silent = True
    try:
        await d.firmware_version()
    except OSError as e:  # a timeout (link.timeout)
        assert e.errno == ETIMEDOUT, e
    else:
        raise AssertionError("a silent chip must time out")


async def test_syntax_error_frame_is_an_error():
    c, w, d = chip()
    await d.init()
    w.device = lambda b: ACK + H("0000ff01ff7f8100")
    try:
        await d.firmware_version()
    except Pn532Error as e:
        assert "syntax" in str(e)
    else:
        raise AssertionError("the error frame must raise")


async def test_bad_answers_are_rejected():
    c, w, d = chip()
    await d.init()
    uid = bytearray(10)
    for data in (b"\x4b\x01\x01\x00\x04\x08\x05\x01\x02\x03\x04\x05",  # UID of 5 bytes
                 b"\x4b\x01\x01\x00\x04\x04\x04\x01\x02\x03\x04",  # cascade bit: incomplete
                 b"\x4b\x01\x01\x00\x04\x08\x07\x01\x02\x03"):  # shorter than it says
        c.raw[0x4A] = data
        try:
            await d.poll(uid)
        except Pn532Error:
            pass
        else:
            raise AssertionError("accepted %s" % data)


async def test_chip_in_lowvbat_ignores_everything_but_samconfiguration():
    c, w, d = chip()
    try:
        await d.firmware_version()  # not initialised: no answer
    except OSError as e:  # a timeout (link.timeout)
        assert e.errno == ETIMEDOUT, e
    else:
        raise AssertionError("LowVbat answered")
    assert await d.init() == "1.6"


class FakeI2c:
    # PN532 on I2C: writes are frames; each read is a status byte (RDY) then the pending frame.
    def __init__(self, c):
        self.c = c
        self.pending = []
        self.not_ready = 0
        self.addrs = set()

    def writeto(self, addr, b):
        self.addrs.add(addr)
        out = self.c(bytes(b))
        if out.startswith(ACK):
            self.pending.append(ACK)
            out = out[len(ACK):]
        if out:
            self.pending.append(out)

    def readfrom_into(self, addr, buf):
        self.addrs.add(addr)
        if not self.pending or self.not_ready:
            self.not_ready = max(0, self.not_ready - 1)
            buf[0] = 0x00
            return
        buf[0] = 0x01
        if len(buf) == 1:
            return
        f = self.pending.pop(0)
        for i in range(len(buf) - 1):
            buf[1 + i] = f[i] if i < len(f) else 0
        return


async def test_i2c_framing():
    c = MiniPn532()
    bus = FakeI2c(c)
    d = Pn532(I2c(bus))
    c.low_vbat = False  # I2C wakes the chip on its address
    assert await d.init() == "1.6"
    assert bus.addrs == {0x24}
    c.uid = H("04112233445566")
    bus.not_ready = 3
    uid = bytearray(10)
    assert await d.poll(uid) == 7
    assert bytes(uid[:7]) == H("04112233445566")


async def test_a_cancelled_poll_leaves_the_driver_usable():
    c, w, d = chip()
    await d.init()
    c.uid = H("04a2b3c4")
    uid = bytearray(10)
    c.silent = True
    try:
        await asyncio.wait_for_ms(d.poll(uid), 10)  # cancelled while it waits for the ACK
    except asyncio.TimeoutError:
        pass
    else:
        raise AssertionError("a silent chip answered")
    c.silent = False
    assert await d.poll(uid) == 4
    assert await asyncio.create_task(d.poll(uid)) == 4  # an exchange as a task of its own
    assert await d.firmware_version() == (0x32, 1, 6, 7)
