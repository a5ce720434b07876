# Test doubles for drivers (MicroPython): a UART-like raw stream whose far end is a device
# model, with byte-level faults: noise, short reads, silence, truncated frames.
class Wire:
    # write() hands the bytes to device(bytes) -> reply bytes; readinto() gives them back in
    # chunks of at most `chunk` bytes (short reads), like machine.UART(timeout=0).
    def __init__(self, device, chunk=64):
        self.device = device
        self.chunk = chunk
        self.inq = bytearray()
        self.written = bytearray()
        self.noise = b""  # sent before the next reply, once

    def write(self, b):
        b = bytes(b)
        self.written += b
        out = self.device(b)
        if out:
            if self.noise:
                out = self.noise + out
                self.noise = b""
            self.inq += out
        return len(b)

    def readinto(self, buf, n=None):
        if n is None:
            n = len(buf)
        k = min(n, self.chunk, len(self.inq))
        if not k:
            return None
        for i in range(k):
            buf[i] = self.inq[i]
        self.inq = self.inq[k:]
        return k


def pn532_frame(data, tfi=0xD5):
    body = bytes([tfi]) + data
    ln = len(body)
    return bytes([0, 0, 0xFF, ln, (-ln) & 0xFF]) + body + bytes([(-sum(body)) & 0xFF, 0])


ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"


class MiniPn532:
    # A small PN532 model for fault injection (the full emulator is host_tools' pn532_emu).
    # Checks every frame the host sends (LCS, DCS, TFI) and records the commands.
    def __init__(self):
        self.uid = None
        self.commands = []
        self.bad_frames = 0
        self.silent = False  # a reader that stopped answering
        self.low_vbat = True
        self.ignore_next = 0  # commands to drop without an ACK
        self.corrupt_next = 0  # responses to send with a wrong DCS (then right on NACK)
        self.truncate_next = 0  # responses cut in half (a timeout mid-frame)
        self.nacks = 0
        self.aborts = 0
        self.last = b""
        self.raw = {}  # command -> response data to send instead

    def __call__(self, b):
        if self.silent:
            return b""
        if b.startswith(b"\x55"):
            b = b.lstrip(b"\x55").lstrip(b"\x00")
            if not b:
                return b""
        if b == NACK:
            self.nacks += 1
            return self.last
        if b == ACK:
            self.aborts += 1
            return b""
        if b[:3] != b"\x00\x00\xff":
            self.bad_frames += 1
            return b""
        ln, lcs = b[3], b[4]
        body = b[5 : 5 + ln]
        if (ln + lcs) & 0xFF or (sum(body) + b[5 + ln]) & 0xFF or body[0] != 0xD4:
            self.bad_frames += 1
            return b""
        cmd, p = body[1], body[2:]
        if self.ignore_next:
            self.ignore_next -= 1
            return b""
        if self.low_vbat and cmd != 0x14:
            return b""
        self.commands.append(cmd)
        resp = pn532_frame(self.answer(cmd, p))
        self.last = resp
        if self.corrupt_next:
            self.corrupt_next -= 1
            resp = resp[:-2] + bytes([(resp[-2] + 1) & 0xFF, 0])
        if self.truncate_next:
            self.truncate_next -= 1
            resp = resp[: len(resp) // 2]
        return ACK + resp

    def answer(self, cmd, p):
        if cmd in self.raw:
            return self.raw[cmd]
        if cmd == 0x14:
            self.low_vbat = False
            return b"\x15"
        if cmd == 0x02:
            return b"\x03\x32\x01\x06\x07"
        if cmd == 0x32:
            return b"\x33"
        if cmd == 0x4A:
            if self.uid is None:
                return b"\x4b\x00"
            n = len(self.uid)
            sens = {4: b"\x00\x04", 7: b"\x00\x44", 10: b"\x00\x84"}[n]
            sak = {4: 0x08, 7: 0x00, 10: 0x20}[n]
            ats = b"\x05\x78\x80\x70\x02" if n == 10 else b""
            return b"\x4b\x01\x01" + sens + bytes([sak, n]) + self.uid + ats
        return None

    def power_cycle(self):
        self.low_vbat = True
        self.silent = False


def crc16(b):
    c = 0xFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return c


def rtu(b):
    c = crc16(b)
    return bytes(b) + bytes([c & 0xFF, c >> 8])


class MiniModbus:
    # A Modbus RTU server model: registers by address (same for functions 3 and 4 unless
    # `only` names one), with fault injection.
    def __init__(self, addr=1, only=None):
        self.addr = addr
        self.only = only
        self.regs = {}
        self.requests = []
        self.bad_requests = 0
        self.silent = False
        self.corrupt_next = 0
        self.truncate_next = 0
        self.wrong_addr_next = 0
        self.busy_next = 0
        self.garbage = b""

    def set(self, start, words):
        for i, w in enumerate(words):
            self.regs[start + i] = w

    def __call__(self, b):
        if len(b) != 8 or crc16(b[:6]) != b[6] | b[7] << 8:
            self.bad_requests += 1
            return b""
        if self.silent or b[0] != self.addr:
            return b""
        fc, start, count = b[1], b[2] << 8 | b[3], b[4] << 8 | b[5]
        self.requests.append((fc, start, count))
        if self.busy_next:
            self.busy_next -= 1
            out = rtu(bytes([self.addr, fc | 0x80, 6]))
        elif fc not in (3, 4) or (self.only and fc != self.only):
            out = rtu(bytes([self.addr, fc | 0x80, 1]))
        elif any(start + i not in self.regs for i in range(count)):
            out = rtu(bytes([self.addr, fc | 0x80, 2]))
        else:
            data = bytearray()
            for i in range(count):
                w = self.regs[start + i]
                data.append(w >> 8)
                data.append(w & 0xFF)
            out = rtu(bytes([self.addr, fc, 2 * count]) + data)
        if self.wrong_addr_next:
            self.wrong_addr_next -= 1
            out = rtu(bytes([self.addr + 1]) + out[1:-2])
        if self.corrupt_next:
            self.corrupt_next -= 1
            out = out[:-1] + bytes([out[-1] ^ 0xFF])
        if self.truncate_next:
            self.truncate_next -= 1
            out = out[: len(out) // 2]
        if self.garbage:
            out = self.garbage + out
            self.garbage = b""
        return out
