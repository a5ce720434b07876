"""A PN532 NFC controller on its HSU (UART) link, answering frames as the NXP PN532 User Manual
(UM0701-02 rev 02, firmware V1.6) specifies, with an ISO/IEC 14443 type A card that the
simulation holds to its antenna.

What it does, byte for byte (section numbers of UM0701-02):

- 6.2.1 frames: normal information frames ``00 00 FF LEN LCS TFI PD.. DCS 00``; a frame whose
  LCS or DCS is wrong, or whose TFI is not D4, is ignored (no ACK: the host times out and sends it
  again). A valid command is acknowledged at once with ``00 00 FF 00 FF 00``, then answered.
  A host NACK ``00 00 FF FF 00 00`` makes it send its last response again; a host ACK aborts.
- 6.2.1.5: an unknown command or bad parameters get the syntax error frame
  ``00 00 FF 01 FF 7F 81 00``.
- Power-up (PN532 C106, AN10609 "LowVbat"): the chip starts asleep. On HSU it wakes on a 0x55
  byte, and SAMConfiguration must be the first command: anything else is ignored until then.
- Commands: GetFirmwareVersion (7.2.2: IC 0x32, Ver 1, Rev 6, Support 7), SAMConfiguration
  (7.2.10), RFConfiguration (7.3.1), InListPassiveTarget (7.3.5, 106 kbps type A: NbTg, Tg,
  SENS_RES, SEL_RES, NFCIDLength, NFCID1, and the ATS for an ISO/IEC 14443-4 card), InRelease
  (7.3.11), InDeselect (7.3.10).

`down` makes it silent (a dead or unplugged reader); bringing it back is a power-up (LowVbat
again), so the driver must initialise it anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("borne.sim.pn532")

ACK = bytes.fromhex("0000ff00ff00")
NACK = bytes.fromhex("0000ffff0000")
SYNTAX_ERROR = bytes.fromhex("0000ff01ff7f8100")
FIRMWARE = bytes([0x32, 0x01, 0x06, 0x07])  # PN532, V1.6, ISO18092 + ISO14443 A and B

TFI_HOST = 0xD4
TFI_PN532 = 0xD5


def frame(tfi: int, data: bytes) -> bytes:
    """A normal information frame (UM0701-02 6.2.1.1) with TFI and data PD0..PDn."""
    body = bytes([tfi]) + data
    ln = len(body)
    if ln > 255:
        raise ValueError("normal frames carry at most 255 bytes")
    dcs = (-sum(body)) & 0xFF
    return bytes([0x00, 0x00, 0xFF, ln, (-ln) & 0xFF]) + body + bytes([dcs, 0x00])


def target_data(uid: bytes) -> bytes:
    """InListPassiveTarget data for one 106 kbps type A target: Tg, SENS_RES, SEL_RES,
    NFCIDLength, NFCID1, [ATS]. The SENS_RES (ATQA) UID-size bits say single (4 bytes), double
    (7) or triple (10) size; SEL_RES (SAK) says MIFARE Classic 1K (0x08), Ultralight (0x00) or an
    ISO/IEC 14443-4 card (0x20, which has an ATS)."""
    if len(uid) == 4:
        sens, sel, ats = b"\x00\x04", 0x08, b""
    elif len(uid) == 7:
        sens, sel, ats = b"\x00\x44", 0x00, b""
    elif len(uid) == 10:
        sens, sel, ats = b"\x00\x84", 0x20, bytes.fromhex("0578807002")
    else:
        raise ValueError("ISO/IEC 14443 type A UIDs are 4, 7 or 10 bytes")
    return bytes([0x01]) + sens + bytes([sel, len(uid)]) + uid + ats


@dataclass
class Pn532Emulator:
    presentation_s: float = 1.0  # how long a `tap` holds the card to the reader
    down: bool = False
    # fn(bytes) -> bytes applied to what the reader sends (line noise), or None
    line_noise: Callable[[bytes], bytes] | None = None
    awake: bool = False  # woken by 0x55 on HSU since power-up
    low_vbat: bool = True  # until the first SAMConfiguration
    commands: list[int] = field(default_factory=list)  # command codes answered, for tests
    _card: bytes | None = None
    _card_until: float = 0.0
    _rx: bytearray = field(default_factory=bytearray)
    _last: bytes = b""
    _writer: asyncio.StreamWriter | None = None

    # -- the simulation's side -----------------------------------------------------------
    def present(self, uid: bytes, seconds: float | None = None) -> None:
        """Hold a card with this UID to the antenna for `seconds` (then it is taken away)."""
        target_data(uid)  # checks the length
        self._card = uid
        self._card_until = time.monotonic() + (self.presentation_s if seconds is None else seconds)

    def remove(self) -> None:
        """Take the card away."""
        self._card = None

    def card(self) -> bytes | None:
        if self._card is not None and time.monotonic() >= self._card_until:
            self._card = None
        return self._card

    def set_down(self, down: bool) -> None:
        if self.down and not down:
            self.power_up()
        self.down = down

    def power_up(self) -> None:
        self.awake = False
        self.low_vbat = True
        self._rx.clear()
        self._last = b""

    # -- the host's side: bytes in, bytes out -----------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Bytes from the host; returns the bytes the PN532 sends back."""
        if self.down:
            return b""
        if not self.awake:
            i = data.find(0x55)
            if i < 0:
                return b""  # asleep: only the HSU wake-up byte gets through
            self.awake = True
            data = data[i:]
        self._rx += data
        out = bytearray()
        while True:
            reply = self._one_frame()
            if reply is None:
                break
            out += reply
        return bytes(out)

    def _one_frame(self) -> bytes | None:
        """Parse one frame from the front of _rx; None when more bytes are needed."""
        rx = self._rx
        start = rx.find(b"\x00\xff")
        if start < 0:
            # Keep a trailing 00 that may begin a start code; drop the rest (wake-up, noise).
            del rx[: len(rx) - 1 if rx[-1:] == b"\x00" else len(rx)]
            return None
        del rx[:start]
        if len(rx) < 4:
            return None
        ln, lcs = rx[2], rx[3]
        if ln == 0x00 and lcs == 0xFF:  # host ACK: abort (nothing is ever pending here)
            del rx[:4]
            return b""
        if ln == 0xFF and lcs == 0x00:  # host NACK: send the last response again
            del rx[:4]
            return self._last
        if (ln + lcs) & 0xFF or ln == 0:
            del rx[:2]  # not a frame: look for the next start code
            return b""
        if len(rx) < 4 + ln + 1:
            return None
        body = bytes(rx[4 : 4 + ln])
        dcs = rx[4 + ln]
        del rx[: 4 + ln + 1]
        if (sum(body) + dcs) & 0xFF or body[0] != TFI_HOST or ln < 2:
            log.debug("PN532: frame with a bad checksum or TFI ignored")
            return b""
        cmd, params = body[1], body[2:]
        if self.low_vbat and cmd != 0x14:
            return b""  # LowVbat: only SAMConfiguration wakes the chip up
        resp = self._execute(cmd, params)
        self._last = resp
        return ACK + resp

    def _execute(self, cmd: int, p: bytes) -> bytes:
        self.commands.append(cmd)
        if cmd == 0x02 and not p:  # GetFirmwareVersion
            return frame(TFI_PN532, bytes([0x03]) + FIRMWARE)
        if cmd == 0x14 and 1 <= len(p) <= 3 and 1 <= p[0] <= 4:  # SAMConfiguration
            self.low_vbat = False
            return frame(TFI_PN532, b"\x15")
        if cmd == 0x32 and p:  # RFConfiguration
            return frame(TFI_PN532, b"\x33")
        if cmd == 0x4A and len(p) >= 2 and 1 <= p[0] <= 2:  # InListPassiveTarget
            uid = self.card()
            if p[1] != 0x00 or uid is None:  # only 106 kbps type A cards here
                return frame(TFI_PN532, b"\x4b\x00")
            return frame(TFI_PN532, b"\x4b\x01" + target_data(uid))
        if cmd in (0x52, 0x44) and len(p) == 1:  # InRelease, InDeselect
            return frame(TFI_PN532, bytes([cmd + 1, 0x00]))
        return SYNTAX_ERROR

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The agent's UART to the reader (one at a time; a new agent is a power-up)."""
        if self._writer is not None:
            self._writer.close()
        self._writer = writer
        self.power_up()
        try:
            while data := await reader.read(512):
                out = self.feed(data)
                if out and self.line_noise is not None:
                    out = self.line_noise(out)  # a noisy line (borne chaos): bytes changed
                if out:
                    writer.write(out)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            if self._writer is writer:
                self._writer = None
            with contextlib.suppress(Exception):
                writer.close()
