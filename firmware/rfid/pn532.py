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
# board that wires the PN532 to I2C). A transport has wake(), begin(), flush(),
# send_now(buf, n, off=0), take(buf, off, n) (what has arrived, without waiting) and wait_ms(n).
#
# An exchange allocates nothing: call() and poll() hand out a link.Looped whose generator, made
# once, runs every exchange (a coroutine per call would be a new heap object each time); frames
# are read by a synchronous scanner over what has arrived, sleeping only while bytes are missing.
# Only a failure allocates (its exception).
import asyncio
import time

from link import Looped, ret, timeout

ACK = const(-1)
NACK = const(-2)

_CMD_GET_FIRMWARE_VERSION = const(0x02)
_CMD_SAM_CONFIGURATION = const(0x14)
_CMD_RF_CONFIGURATION = const(0x32)
_CMD_IN_LIST_PASSIVE_TARGET = const(0x4A)
_CMD_IN_RELEASE = const(0x52)

_TFI_HOST = const(0xD4)
_TFI_PN532 = const(0xD5)
_TFI_ERROR = const(0x7F)
_RX = const(96)  # largest response accepted: a 10-byte UID plus an ATS fits with room
_TX = const(32)
_ACK_MS = const(30)  # the PN532 ACKs within ~1 ms; generous for slow UARTs and the sim
_WAKE = const(b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
_ACK_FRAME = const(b"\x00\x00\xff\x00\xff\x00")
_NACK_FRAME = const(b"\x00\x00\xff\xff\x00\x00")
_POLL_PARAMS = const(b"\x01\x00")  # InListPassiveTarget: MaxTg 1, BrTy 0x00 (106 kbps type A)

# what reading a frame ends with, besides ACK, NACK and the frame's length (> 0)
_TIMEOUT = const(-3)
_BADSUM = const(-4)  # a bad data checksum: ask again with a NACK
_CORRUPT = const(-5)  # a bad data checksum three times
_EXTENDED = const(-6)  # an extended frame (never sent for our commands)
_TOO_LONG = const(-7)


class Pn532Error(Exception):
    pass


def frame(buf, cmd, params=b""):
    # Builds a host -> PN532 normal information frame in buf; returns its length.
    # (Its work is split with _put_params to keep each frame under ~11 slots of locals and
    # stack, over which MicroPython allocates the frame on the heap at every call.)
    n = len(params)
    buf[0] = 0x00
    buf[1] = 0x00
    buf[2] = 0xFF
    buf[3] = n + 2  # LEN: TFI, command code, parameters
    buf[4] = (-(n + 2)) & 0xFF
    buf[5] = _TFI_HOST
    buf[6] = cmd
    s = _TFI_HOST + cmd + _put_params(buf, params, n)
    buf[7 + n] = (-s) & 0xFF
    buf[8 + n] = 0x00
    return 9 + n


def _put_params(buf, params, n):
    # Copies the parameters into buf[7:]; -> their sum (for the data checksum).
    s = 0
    i = 0
    while i < n:
        b = params[i]
        buf[7 + i] = b
        s += b
        i += 1
    return s


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

    def send_now(self, buf, n, off=0):
        return self.link.send_now(buf, n, off)

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
        # the exchange asked for
        self._cmd = 0
        self._params = b""
        self._timeout_ms = 0
        self._uid = None  # poll(): where the UID goes
        self._bad_len = 0  # the LEN of a frame too long to take
        self._op = Looped(self._exchanges, 0, 4, 7, 10)  # UID lengths, data lengths

    # -- frames ------------------------------------------------------------------------
    # A frame is read by the exchange's generator: it scans for the start code 00 FF, checks
    # LEN/LCS (a bad pair is noise: it scans on) and the DCS (a bad one: _BADSUM, the response
    # is asked for again with a NACK), reading what has arrived and sleeping only while bytes
    # are missing. The helpers keep their frames small: MicroPython heap-allocates a frame of
    # more than ~11 slots of locals and stack at every call.
    def _length(self, ln, lcs):
        # -> ACK, NACK, the frame's LEN, 0 for a bad LEN/LCS pair (noise), or an error code.
        if ln == 0x00 and lcs == 0xFF:
            return ACK
        if ln == 0xFF and lcs == 0x00:
            return NACK
        if ln == 0xFF and lcs == 0xFF:
            return _EXTENDED
        if (ln + lcs) & 0xFF or ln == 0:
            self.noise += 2
            return 0
        if ln + 2 > _RX:
            self._bad_len = ln
            return _TOO_LONG
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
            return _BADSUM
        self.rx_len = ln
        return ln

    def _error(self, r):
        # The exception for a frame that is not taken.
        if r == _CORRUPT:
            return Pn532Error("response corrupted three times")
        if r == _BADSUM:
            return Pn532Error("bad data checksum")
        if r == _EXTENDED:
            return Pn532Error("unexpected extended frame")  # never sent for our commands
        return Pn532Error("frame of %d bytes is too long" % self._bad_len)

    # -- exchanges ---------------------------------------------------------------------
    def call(self, cmd, params=b"", timeout_ms=100):
        # Sends a command, waits for its ACK and response: `await pn532.call(...)` gives the
        # number of data bytes after the response code (in rx[2:]). Retries on a missing ACK,
        # noise or a timeout; asks for a corrupted response again with a NACK.
        self._cmd = cmd
        self._params = params
        self._timeout_ms = timeout_ms
        self._uid = None
        return self._op.begin()

    def _exchanges(self):
        # Every exchange, one pass of the loop each (see link.Looped): yields None while it
        # waits, then ret(value) or the exception.
        t = self.t
        tx = self.tx
        rx = self.rx
        while True:
            n = frame(tx, self._cmd, self._params)
            res = timeout("no answer") if self.retries < 0 else None
            for _ in range(self.retries + 1):
                t.flush()
                k = t.send_now(tx, n)
                while k < n:  # (a socket with a full buffer; a UART takes the frame at once)
                    yield from asyncio.sleep_ms(1)
                    k += t.send_now(tx, n, k)
                # The ACK, then the response (a corrupted one asked for again with a NACK).
                acked = False
                nacks = 0
                deadline = time.ticks_add(time.ticks_ms(), _ACK_MS)
                while True:
                    t.begin()
                    state = 0  # 0: looking for 00 FF, 1: LEN LCS, 2: TFI..PDn DCS postamble
                    have = 0
                    want = 2
                    r = 0
                    while not r:
                        if have < want:
                            have += t.take(rx, have, want - have)
                            if have < want:
                                left = time.ticks_diff(deadline, time.ticks_ms())
                                if left <= 0:
                                    r = _TIMEOUT
                                    break
                                yield from asyncio.sleep_ms(min(left, t.wait_ms(want - have)))
                                continue
                        if state == 0:
                            if rx[0] == 0x00 and rx[1] == 0xFF:
                                state = 1
                                have = 0
                            else:
                                # keep the last byte: a start code split over two reads is found
                                rx[0] = rx[1]
                                have = 1
                                self.noise += 1
                        elif state == 1:
                            r = self._length(rx[0], rx[1])
                            if r > 0:  # TFI..PDn, DCS, postamble
                                state = 2
                                have = 0
                                want = r + 2
                                r = 0
                            elif not r:  # a false start code in noise: scan on
                                state = 0
                                have = 0
                        else:
                            r = self._check(want - 2)
                    if not acked:
                        if r != ACK:
                            break
                        acked = True
                        deadline = time.ticks_add(time.ticks_ms(), self._timeout_ms)
                        continue
                    if r != _BADSUM:
                        break
                    k = t.send_now(_NACK_FRAME, 6)  # "send your last answer again"
                    while k < 6:
                        yield from asyncio.sleep_ms(1)
                        k += t.send_now(_NACK_FRAME, 6, k)
                    nacks += 1
                    if nacks == 3:
                        r = _CORRUPT
                        break
                if not acked and r >= NACK:
                    res = Pn532Error("expected an ACK")
                    continue
                if r == _TIMEOUT:
                    res = timeout("no complete frame from the PN532")
                    k = t.send_now(_ACK_FRAME, 6)  # abort whatever the chip may still be doing
                    while k < 6:
                        yield from asyncio.sleep_ms(1)
                        k += t.send_now(_ACK_FRAME, 6, k)
                    continue
                if r < NACK:
                    res = self._error(r)
                    continue
                if rx[0] == _TFI_ERROR:
                    res = Pn532Error("the PN532 answered a syntax error frame")
                    break
                if r < 2 or rx[0] != _TFI_PN532 or rx[1] != self._cmd + 1:
                    res = Pn532Error("unexpected response %02x %02x" % (rx[0], rx[1]))
                    continue
                res = ret(r - 2) if self._uid is None else self._target(r - 2)
                break
            yield res

    # -- commands ----------------------------------------------------------------------
    async def init(self):
        # Wake the chip, leave LowVbat with SAMConfiguration (normal mode, 1 s timeout, IRQ),
        # check it is a PN532, and make passive polls return at once when no card is there.
        await self.t.wake()
        await self.call(_CMD_SAM_CONFIGURATION, b"\x01\x14\x01")
        n = await self.call(_CMD_GET_FIRMWARE_VERSION)
        rx = self.rx
        if n != 4 or rx[2] != 0x32:
            raise Pn532Error("not a PN532 (IC %02x)" % (rx[2] if n else 0))
        self.firmware = "%d.%d" % (rx[3], rx[4])
        # RFConfiguration item 5 (MaxRetries): MxRtyATR 0xFF, MxRtyPSL 1,
        # MxRtyPassiveActivation 1 (one try, then NbTg = 0).
        await self.call(_CMD_RF_CONFIGURATION, b"\x05\xff\x01\x01")
        return self.firmware

    async def firmware_version(self):
        n = await self.call(_CMD_GET_FIRMWARE_VERSION)
        if n != 4:
            raise Pn532Error("bad GetFirmwareVersion answer")
        rx = self.rx
        return rx[2], rx[3], rx[4], rx[5]

    def poll(self, uid):
        # One ISO/IEC 14443 type A passive poll (InListPassiveTarget, MaxTg 1, BrTy 0x00 =
        # 106 kbps type A): `await pn532.poll(uid)` copies the UID into uid (a bytearray of
        # 10) and gives its length (4, 7 or 10), or 0 when no card answered.
        self.call(_CMD_IN_LIST_PASSIVE_TARGET, _POLL_PARAMS, 150)
        self._uid = uid
        return self._op

    def _target(self, n):
        # InListPassiveTarget's answer (n data bytes): NbTg, then Tg, SENS_RES (2), SEL_RES,
        # NFCIDLength, NFCID1..n, [ATSLength, ATS...] (UM0701-02 7.3.5). -> ret(UID length), or
        # the error.
        rx = self.rx
        if n < 1:
            return Pn532Error("empty InListPassiveTarget answer")
        if rx[2] == 0:
            return ret(0)
        if rx[2] != 1 or n < 6:
            return Pn532Error("bad InListPassiveTarget answer")
        k = rx[7]
        if k not in (4, 7, 10) or n < 6 + k:
            return Pn532Error("bad UID length %d" % k)
        if rx[6] & 0x04:  # SEL_RES
            return Pn532Error("UID not complete (cascade bit set in SEL_RES)")
        _copy(self._uid, 0, rx, 8, k)
        return ret(k)


def _copy(dst, do, src, so, n):
    n += so
    while so < n:
        dst[do] = src[so]
        do += 1
        so += 1
