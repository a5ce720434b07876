# (Host side only: MicroPython code, on the path of the target tests and of the emulated ESP32.)
# A small register-level MFRC522 with an ISO/IEC 14443-3 type A card, for on-target tests of
# rfid.mfrc522: SPI address bytes, registers, the FIFO, SoftReset and Transceive, and a card
# that answers WUPA/REQA, anticollision and select per cascade level, and HLTA.
from rfid.mfrc522 import crc_a


def _with_crc(b):
    c = crc_a(b, len(b))
    return bytes(b) + bytes([c & 0xFF, c >> 8])


class Card:
    def __init__(self, uid):
        self.uid = bytes(uid)
        self.state = "idle"  # idle, ready (level k), active, halt
        self.level = 0

    def levels(self):
        u = self.uid
        if len(u) == 4:
            return [u]
        if len(u) == 7:
            return [b"\x88" + u[:3], u[3:]]
        return [b"\x88" + u[:3], b"\x88" + u[3:6], u[6:]]

    def atqa(self):
        return {4: b"\x04\x00", 7: b"\x44\x00", 10: b"\x84\x00"}[len(self.uid)]

    def answer(self, frame, bits):
        # -> bytes the card sends back, or None (silence)
        if bits == 7 and len(frame) == 1:
            if frame[0] == 0x52 or (frame[0] == 0x26 and self.state == "idle"):
                self.state, self.level = "ready", 0
                return self.atqa()
            return None
        if self.state == "halt" or self.state == "idle":
            return None
        if frame[:2] == b"\x50\x00" and len(frame) == 4:
            if crc_a(frame, 4) == 0:
                self.state = "halt"
            return None
        lv = self.levels()
        sel = (0x93, 0x95, 0x97)
        if len(frame) >= 2 and frame[0] in sel and sel.index(frame[0]) == self.level:
            cl = lv[self.level]
            bcc = cl[0] ^ cl[1] ^ cl[2] ^ cl[3]
            if frame[1] == 0x20 and len(frame) == 2:
                return cl + bytes([bcc])
            if frame[1] == 0x70 and len(frame) == 9 and crc_a(frame, 9) == 0:
                if frame[2:7] != cl + bytes([bcc]):
                    return None
                last = self.level == len(lv) - 1
                self.level += 1
                if last:
                    self.state = "active"
                sak = ({4: 0x08, 7: 0x00, 10: 0x20}[len(self.uid)]) if last else 0x04
                return _with_crc(bytes([sak]))
        return None


class Mfrc522Emu:
    # The bus object the driver takes: write_readinto(w, r) is one CS-framed SPI transaction.
    def __init__(self, version=0x92):
        self.version = version
        self.cards = []
        self.dead = False  # SPI lines floating: every read is 0x00
        self.corrupt_next = 0  # answers received with a parity error
        self.transactions = 0
        self.reset()

    def reset(self):
        self.regs = bytearray(0x40)
        self.regs[0x37] = self.version
        self.regs[0x01] = 0x20  # RcvOff
        self.fifo = bytearray()

    def write_readinto(self, w, r):
        self.transactions += 1
        for i in range(len(r)):
            r[i] = 0
        if self.dead:
            return
        i = 0
        while i < len(w) - 1:
            a = w[i]
            reg = (a >> 1) & 0x3F
            if a & 0x80:
                r[i + 1] = self._read(reg)
            else:
                self._write(reg, w[i + 1])
                i += 1  # a write is address + value
            i += 1

    def _read(self, reg):
        if reg == 0x09:
            if not self.fifo:
                return 0
            b = self.fifo[0]
            self.fifo = self.fifo[1:]
            return b
        if reg == 0x0A:
            return len(self.fifo)
        return self.regs[reg]

    def _write(self, reg, v):
        if reg == 0x01:
            cmd = v & 0x0F
            if cmd == 0x0F:
                self.reset()
                return
            self.regs[0x01] = v
            return
        if reg == 0x04:  # ComIrqReg: Set1 (bit 7) sets the marked bits, else clears them
            if v & 0x80:
                self.regs[4] |= v & 0x7F
            else:
                self.regs[4] &= ~v & 0x7F
            return
        if reg == 0x09:
            self.fifo.append(v)
            return
        if reg == 0x0A:
            if v & 0x80:
                self.fifo = bytearray()
            return
        self.regs[reg] = v
        if reg == 0x0D and v & 0x80 and self.regs[0x01] & 0x0F == 0x0C:
            self._transceive()

    def _transceive(self):
        frame = bytes(self.fifo)
        self.fifo = bytearray()
        bits = self.regs[0x0D] & 0x07
        answers = []
        for c in self.cards:
            a = c.answer(frame, bits)
            if a is not None:
                answers.append(a)
        self.regs[0x06] = 0
        if not answers:
            self.regs[0x04] |= 0x01  # TimerIRq
            return
        if len(answers) > 1 and any(a != answers[0] for a in answers):
            self.regs[0x06] |= 0x08  # CollErr
        if self.corrupt_next:
            self.corrupt_next -= 1
            self.regs[0x06] |= 0x02  # ParityErr
        self.fifo = bytearray(answers[0])
        self.regs[0x04] |= 0x30  # RxIRq, IdleIRq
