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
