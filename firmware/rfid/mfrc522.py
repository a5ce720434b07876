# NXP MFRC522 driver (datasheet MFRC522 rev 3.9), register level over SPI, with the ISO/IEC
# 14443-3 type A card activation done here: WUPA, anticollision and select for cascade levels
# 1-3 (4-, 7- and 10-byte UIDs), BCC and CRC_A checks, HLTA.
#
# The bus: an object with write_readinto(wbuf, rbuf) doing one SPI transaction with chip select
# held for its length (the board wraps machine.SPI and the CS pin). SPI address byte (datasheet
# 8.1.2.3): bit 7 = 1 read / 0 write, bits 6-1 the register address, bit 0 = 0.
#
# Polling uses WUPA rather than REQA so a card left in the field (halted after its last read)
# answers every poll and the reader task can tell a held card from a new presentation.
# Several cards in the field at once (a bit collision during anticollision) are reported as
# an error for that poll: a charger takes one card at a time.
import asyncio
import time

# registers
_COMMAND = const(0x01)
_COM_IRQ = const(0x04)
_ERROR = const(0x06)
_FIFO_DATA = const(0x09)
_FIFO_LEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BIT_FRAMING = const(0x0D)
_COLL = const(0x0E)
_MODE = const(0x11)
_TX_MODE = const(0x12)
_RX_MODE = const(0x13)
_TX_CONTROL = const(0x14)
_TX_ASK = const(0x15)
_T_MODE = const(0x2A)
_T_PRESCALER = const(0x2B)
_T_RELOAD_H = const(0x2C)
_T_RELOAD_L = const(0x2D)
_VERSION = const(0x37)
# commands
_IDLE = const(0x00)
_TRANSCEIVE = const(0x0C)
_SOFT_RESET = const(0x0F)
# ISO/IEC 14443-3
WUPA = const(0x52)
REQA = const(0x26)
_SEL = (0x93, 0x95, 0x97)
_CT = const(0x88)  # cascade tag
VERSIONS = {0x91: "1.0", 0x92: "2.0", 0x88: "FM17522", 0x12: "clone"}


class Mfrc522Error(Exception):
    pass


class NoCard(Mfrc522Error):
    pass


def crc_a(buf, n):
    # ISO/IEC 14443-3 CRC_A of buf[:n]: CRC-16/CCITT reflected (poly 0x8408), preset 0x6363,
    # sent low byte first. Annex B: 00 00 -> A0 1E; HLTA 50 00 -> 57 CD.
    c = 0x6363
    i = 0
    while i < n:
        c ^= buf[i]
        k = 0
        while k < 8:
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
            k += 1
        i += 1
    return c


class Mfrc522:
    def __init__(self, bus, timeout_ms=30):
        self.bus = bus
        self.timeout_ms = timeout_ms
        self._w = bytearray(2)
        self._r = bytearray(2)
        self.buf = bytearray(16)  # frame to send / received
        self.firmware = None
        self.collisions = 0

    # -- registers -----------------------------------------------------------------------
    def read(self, reg):
        w = self._w
        w[0] = 0x80 | (reg << 1)
        w[1] = 0
        self.bus.write_readinto(w, self._r)
        return self._r[1]

    def write(self, reg, val):
        w = self._w
        w[0] = (reg << 1) & 0x7E
        w[1] = val
        self.bus.write_readinto(w, self._r)

    def set_bits(self, reg, mask):
        self.write(reg, self.read(reg) | mask)

    def clear_bits(self, reg, mask):
        self.write(reg, self.read(reg) & ~mask)

    # -- set-up --------------------------------------------------------------------------
    async def init(self):
        self.write(_COMMAND, _SOFT_RESET)
        await asyncio.sleep_ms(50)  # oscillator start-up after a soft reset
        if self.read(_COMMAND) & 0x10:  # PowerDown still set: the chip is not running
            raise Mfrc522Error("no answer after soft reset")
        v = self.read(_VERSION)
        if v not in VERSIONS:
            raise Mfrc522Error("not an MFRC522 (version %02x)" % v)
        # timer: TAuto, prescaler 0x0A9 -> 40 kHz, reload 1000 -> 25 ms receive timeout
        self.write(_T_MODE, 0x80)
        self.write(_T_PRESCALER, 0xA9)
        self.write(_T_RELOAD_H, 0x03)
        self.write(_T_RELOAD_L, 0xE8)
        self.write(_TX_ASK, 0x40)  # 100 % ASK modulation
        self.write(_MODE, 0x3D)  # CRC preset 6363h (CRC_A)
        self.write(_TX_MODE, 0x00)  # CRC computed here, not by the chip
        self.write(_RX_MODE, 0x00)
        self.set_bits(_TX_CONTROL, 0x03)  # antenna on (Tx1RFEn, Tx2RFEn)
        self.firmware = VERSIONS[v]
        return self.firmware

    # -- one exchange with a card --------------------------------------------------------
    async def transceive(self, n, last_bits=0):
        # Sends buf[:n] (the last byte with last_bits bits, 0 = all 8) and returns the number
        # of bytes received into buf. NoCard on the chip's timer timeout; Mfrc522Error on a
        # collision or a line error.
        self.write(_COMMAND, _IDLE)
        self.write(_COM_IRQ, 0x7F)  # clear every interrupt request bit
        self.write(_FIFO_LEVEL, 0x80)  # flush the FIFO
        buf = self.buf
        for i in range(n):
            self.write(_FIFO_DATA, buf[i])
        self.write(_BIT_FRAMING, last_bits & 0x07)
        self.write(_COMMAND, _TRANSCEIVE)
        self.set_bits(_BIT_FRAMING, 0x80)  # StartSend
        t0 = time.ticks_ms()
        while True:
            irq = self.read(_COM_IRQ)
            if irq & 0x30:  # RxIRq or IdleIRq
                break
            if irq & 0x01:  # TimerIRq: nobody answered
                self.clear_bits(_BIT_FRAMING, 0x80)
                raise NoCard()
            if time.ticks_diff(time.ticks_ms(), t0) > self.timeout_ms:
                raise Mfrc522Error("the MFRC522 does not finish its command")
            await asyncio.sleep_ms(1)
        self.clear_bits(_BIT_FRAMING, 0x80)
        err = self.read(_ERROR)
        if err & 0x08:
            self.collisions += 1
            raise Mfrc522Error("collision: more than one card in the field")
        if err & 0x13:  # BufferOvfl, ParityErr, ProtocolErr
            raise Mfrc522Error("line error %02x" % err)
        k = self.read(_FIFO_LEVEL) & 0x7F
        if k > len(buf):
            raise Mfrc522Error("answer too long")
        for i in range(k):
            buf[i] = self.read(_FIFO_DATA)
        return k

    # -- ISO/IEC 14443-3 type A activation ----------------------------------------------
    async def poll(self, uid):
        # WUPA, then anticollision + select per cascade level. Copies the UID into uid and
        # returns its length (4, 7, 10), or 0 when no card answered. A card that answers the
        # WUPA and is gone before its UID is read (pulled away, at the edge of the field) is no
        # card either, not a reader error (three of those in a row reported a ReaderFailure).
        # One try around it all: no extra call (and its generator) per poll.
        buf = self.buf
        buf[0] = WUPA
        self.clear_bits(_COLL, 0x80)  # ValuesAfterColl = 0: bits after a collision read 0
        try:
            if await self.transceive(1, 7) != 2:  # ATQA
                raise Mfrc522Error("bad ATQA")
            n = 0
            for level in range(3):
                sel = _SEL[level]
                buf[0] = sel
                buf[1] = 0x20  # NVB: 2 bytes, no UID bits known
                if await self.transceive(2) != 5:
                    raise Mfrc522Error("bad anticollision answer")
                if buf[0] ^ buf[1] ^ buf[2] ^ buf[3] != buf[4]:
                    raise Mfrc522Error("BCC mismatch")
                # keep CLn for the UID before the buffer is reused
                c0, c1, c2, c3, bcc = buf[0], buf[1], buf[2], buf[3], buf[4]
                buf[0] = sel
                buf[1] = 0x70  # NVB: 7 bytes, the whole UID CLn
                buf[2], buf[3], buf[4], buf[5], buf[6] = c0, c1, c2, c3, bcc
                c = crc_a(buf, 7)
                buf[7] = c & 0xFF
                buf[8] = c >> 8
                if await self.transceive(9) != 3:
                    raise Mfrc522Error("bad SAK")
                if crc_a(buf, 3) != 0:  # the CRC of data + its CRC is 0 when it is right
                    raise Mfrc522Error("SAK CRC_A mismatch")
                sak = buf[0]
                if sak & 0x04:  # UID not complete: CLn starts with the cascade tag
                    if c0 != _CT or level == 2:
                        raise Mfrc522Error("bad cascade")
                    uid[n], uid[n + 1], uid[n + 2] = c1, c2, c3
                    n += 3
                    continue
                uid[n], uid[n + 1], uid[n + 2], uid[n + 3] = c0, c1, c2, c3
                n += 4
                await self._halt()
                return n
            raise Mfrc522Error("UID longer than three cascade levels")
        except NoCard:
            return 0

    async def _halt(self):
        # HLTA (50 00 + CRC_A): the card does not answer; a timeout is success.
        buf = self.buf
        buf[0] = 0x50
        buf[1] = 0x00
        c = crc_a(buf, 2)
        buf[2] = c & 0xFF
        buf[3] = c >> 8
        try:
            await self.transceive(4)
        except NoCard:
            pass
