# NXP PN532 driver, byte for byte as the PN532 User Manual (UM0701-02 rev 02, firmware V1.6)
# describes, over HSU (UART, through a link.Link) or I2C (a machine.I2C-like bus object).
#
# Frames (UM0701-02 6.2.1):
#   normal information frame  00 00 FF LEN LCS TFI PD0..PDn DCS 00
#                             LEN = bytes in TFI..PDn; LEN + LCS = 0 (mod 256);
#                             TFI = D4 host->PN532, D5 PN532->host; TFI + PD0..PDn + DCS = 0
#   extended information frame 00 00 FF FF FF LENM LENL LCS TFI PD.. DCS 00
#   ACK                       00 00 FF 00 FF 00
#   NACK                      00 00 FF FF 00 00   (host -> PN532: "send your last answer again")
#   error (syntax) frame      00 00 FF 01 FF 7F 81 00
# Dialogue (6.2.2): host sends a command; the PN532 answers an ACK at once, then the response
# (command code + 1). A host ACK aborts the command in progress. The preamble before 00 FF may
# be missing or preceded by noise: the reader scans for the start code and resynchronises.
#
# Power-up (PN532 C106 starts in LowVbat mode, UM0701-02 7.2.10 / AN10609): on HSU the host sends
# 0x55 0x55 and zeros to wake the chip, then SAMConfiguration must be the first command.
# The transport: Hsu below (the UART), or rfid.pn532_i2c.I2c (kept apart: imported only by a
# board that wires the PN532 to I2C). A transport has wake(), begin(), flush(), send_now(),
# send(), take(buf, off, n) (what has arrived, without waiting) and wait_ms(n).
import asyncio
import time

ACK = const(-1)
NACK = const(-2)

CMD_GET_FIRMWARE_VERSION = const(0x02)
CMD_SAM_CONFIGURATION = const(0x14)
CMD_RF_CONFIGURATION = const(0x32)
CMD_IN_LIST_PASSIVE_TARGET = const(0x4A)
CMD_IN_RELEASE = const(0x52)

_TFI_HOST = const(0xD4)
_TFI_PN532 = const(0xD5)
_TFI_ERROR = const(0x7F)
_RX = const(96)  # largest response accepted: a 10-byte UID plus an ATS fits with room
_TX = const(32)
_ACK_MS = const(30)  # the PN532 ACKs within ~1 ms; generous for slow UARTs and the sim
_WAKE = b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
_ACK_FRAME = b"\x00\x00\xff\x00\xff\x00"
_NACK_FRAME = b"\x00\x00\xff\xff\x00\x00"


class Pn532Error(Exception):
    pass


class Pn532Timeout(Pn532Error):
    pass


class _BadChecksum(Pn532Error):
    pass


def frame(buf, cmd, params=b""):
    # Builds a host -> PN532 normal information frame in buf; returns its length.
    n = len(params)
    ln = n + 2  # TFI, command code, parameters
    buf[0] = 0x00
    buf[1] = 0x00
    buf[2] = 0xFF
    buf[3] = ln
    buf[4] = (-ln) & 0xFF
    buf[5] = _TFI_HOST
    buf[6] = cmd
    s = _TFI_HOST + cmd
    for i in range(n):
        b = params[i]
        buf[7 + i] = b
        s += b
    buf[7 + n] = (-s) & 0xFF
    buf[8 + n] = 0x00
    return 9 + n


class Hsu:
    # HSU (high speed UART, 115200 8N1 by default) through a link.Link.
    def __init__(self, link):
        self.link = link

    async def wake(self):
        await self.link.send(_WAKE)
        await asyncio.sleep_ms(2)

    def begin(self):
        pass

    def flush(self):
        return self.link.discard()

    def send_now(self, buf, n):
        return self.link.send_now(buf, n)

    async def send(self, buf, n):
        await self.link.send(buf, n)

    def take(self, buf, off, n):
        return self.link.take(buf, off, n)

    def wait_ms(self, n):
        return self.link.wire_ms(n)


class Pn532:
    def __init__(self, transport, retries=2):
        self.t = transport
        self.retries = retries
        self.tx = bytearray(_TX)
        self.rx = bytearray(_RX)  # last frame: rx[0] = TFI, rx[1] = response code, rx[2:] data
        self.rx_len = 0
        self.noise = 0  # bytes skipped while looking for a start code, bad checksums
        self.firmware = None

    # -- frames ------------------------------------------------------------------------
    async def read_frame(self, deadline):
        # -> ACK, NACK, or the length of TFI..PDn (in rx[0:]); raises Pn532Timeout.
        # Scans for the start code 00 FF, checks LEN/LCS (a bad one is noise: scan on) and DCS
        # (a bad one raises _BadChecksum, so the caller can ask again with a NACK).
        # One coroutine, reading what has arrived and sleeping only while bytes are missing.
        rx = self.rx
        t = self.t
        t.begin()
        state = 0  # 0: looking for 00 FF, 1: LEN LCS, 2: TFI..PDn DCS postamble
        have = 0
        want = 2
        while True:
            if have < want:
                have += t.take(rx, have, want - have)
                if have < want:
                    left = time.ticks_diff(deadline, time.ticks_ms())
                    if left <= 0:
                        raise Pn532Timeout("no complete frame from the PN532")
                    await asyncio.sleep_ms(min(left, t.wait_ms(want - have)))
                    continue
            if state == 0:
                if rx[0] == 0x00 and rx[1] == 0xFF:
                    state, have = 1, 0
                else:
                    # keep the last byte: a start code split over two reads is still found
                    rx[0] = rx[1]
                    have = 1
                    self.noise += 1
                continue
            if state == 1:
                r = self._length(rx[0], rx[1])
                if r == 0:
                    state, have, want = 0, 0, 2  # a false start code in noise: scan on
                elif r < 0:
                    return r  # ACK or NACK
                else:
                    state, have, want = 2, 0, r + 2  # TFI..PDn, DCS, postamble
                continue
            return self._check(want - 2)

    def _length(self, ln, lcs):
        # -> ACK, NACK, the frame's LEN, or 0 for a bad LEN/LCS pair.
        if ln == 0x00 and lcs == 0xFF:
            return ACK
        if ln == 0xFF and lcs == 0x00:
            return NACK
        if ln == 0xFF and lcs == 0xFF:
            raise Pn532Error("unexpected extended frame")  # never sent for our commands
        if (ln + lcs) & 0xFF or ln == 0:
            self.noise += 2
            return 0
        if ln + 2 > _RX:
            raise Pn532Error("frame of %d bytes is too long" % ln)
        return ln

    def _check(self, ln):
        rx = self.rx
        s = 0
        i = 0
        while i <= ln:
            s += rx[i]
            i += 1
        if s & 0xFF:
            self.noise += 1
            raise _BadChecksum("bad data checksum")
        self.rx_len = ln
        return ln

    async def _send_raw(self, b):
        await self.t.send(b, len(b))

    async def call(self, cmd, params=b"", timeout_ms=100):
        # Sends a command, waits for its ACK and response; -> number of data bytes after the
        # response code (in rx[2:]). Retries on a missing ACK, noise or a timeout; asks for a
        # corrupted response again with a NACK.
        n = frame(self.tx, cmd, params)
        last = None
        for _ in range(self.retries + 1):
            self.t.flush()
            if self.t.send_now(self.tx, n) < n:
                await self.t.send(self.tx, n)
            try:
                r = await self.read_frame(time.ticks_add(time.ticks_ms(), _ACK_MS))
                if r != ACK:
                    raise Pn532Error("expected an ACK")
                deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
                for _ in range(3):
                    try:
                        r = await self.read_frame(deadline)
                        break
                    except _BadChecksum:
                        await self._send_raw(_NACK_FRAME)
                else:
                    raise Pn532Error("response corrupted three times")
            except Pn532Timeout as e:
                last = e
                await self._send_raw(_ACK_FRAME)  # abort whatever the chip may still be doing
                continue
            except Pn532Error as e:
                last = e
                continue
            rx = self.rx
            if rx[0] == _TFI_ERROR:
                raise Pn532Error("the PN532 answered a syntax error frame")
            if r < 2 or rx[0] != _TFI_PN532 or rx[1] != cmd + 1:
                last = Pn532Error("unexpected response %02x %02x" % (rx[0], rx[1]))
                continue
            return r - 2
        raise last if last else Pn532Timeout("no answer")

    # -- commands ----------------------------------------------------------------------
    async def init(self):
        # Wake the chip, leave LowVbat with SAMConfiguration (normal mode, 1 s timeout, IRQ),
        # check it is a PN532, and make passive polls return at once when no card is there.
        await self.t.wake()
        await self.call(CMD_SAM_CONFIGURATION, b"\x01\x14\x01")
        n = await self.call(CMD_GET_FIRMWARE_VERSION)
        rx = self.rx
        if n != 4 or rx[2] != 0x32:
            raise Pn532Error("not a PN532 (IC %02x)" % (rx[2] if n else 0))
        self.firmware = "%d.%d" % (rx[3], rx[4])
        # RFConfiguration item 5 (MaxRetries): MxRtyATR 0xFF, MxRtyPSL 1,
        # MxRtyPassiveActivation 1 (one try, then NbTg = 0).
        await self.call(CMD_RF_CONFIGURATION, b"\x05\xff\x01\x01")
        return self.firmware

    async def firmware_version(self):
        n = await self.call(CMD_GET_FIRMWARE_VERSION)
        if n != 4:
            raise Pn532Error("bad GetFirmwareVersion answer")
        rx = self.rx
        return rx[2], rx[3], rx[4], rx[5]

    async def poll(self, uid):
        # One ISO/IEC 14443 type A passive poll (InListPassiveTarget, MaxTg 1, BrTy 0x00 =
        # 106 kbps type A). Copies the UID into uid (a bytearray of 10) and returns its length
        # (4, 7 or 10), or 0 when no card answered.
        # Response data: NbTg, then Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1..n,
        # [ATSLength, ATS...] (UM0701-02 7.3.5).
        n = await self.call(CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00", timeout_ms=150)
        rx = self.rx
        if n < 1:
            raise Pn532Error("empty InListPassiveTarget answer")
        if rx[2] == 0:
            return 0
        if rx[2] != 1 or n < 6:
            raise Pn532Error("bad InListPassiveTarget answer")
        sak = rx[6]
        k = rx[7]
        if k not in (4, 7, 10) or n < 6 + k:
            raise Pn532Error("bad UID length %d" % k)
        if sak & 0x04:
            raise Pn532Error("UID not complete (cascade bit set in SEL_RES)")
        for i in range(k):
            uid[i] = rx[8 + i]
        return k
