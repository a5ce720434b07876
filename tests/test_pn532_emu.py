"""The host's PN532 emulator answers the frames of the PN532 User Manual (UM0701-02) byte for
byte (the firmware's driver is tested against it in tests/target/test_emulators.py)."""

from __future__ import annotations

from borne.sim.pn532_emu import ACK, SYNTAX_ERROR, Pn532Emulator, frame

H = bytes.fromhex
WAKE = b"\x55\x55" + bytes(14)
SAM = H("0000ff05fbd414011401" + "0200")
GET_FW = H("0000ff02fed4022a00")
LIST = H("0000ff04fcd44a0100e100")


def awake() -> Pn532Emulator:
    e = Pn532Emulator()
    assert e.feed(WAKE + SAM) == ACK + H("0000ff02fed5151600")
    return e


def test_frame_builder_matches_the_manual() -> None:
    assert frame(0xD5, H("0332010607")) == H("0000ff06fad50332010607e800")
    assert frame(0xD4, H("02")) == GET_FW


def test_asleep_until_woken_and_samconfiguration_first() -> None:
    e = Pn532Emulator()
    assert e.feed(GET_FW) == b""  # no 0x55 yet: asleep
    assert e.feed(WAKE + GET_FW) == b""  # awake, but LowVbat: only SAMConfiguration
    assert e.feed(SAM) == ACK + H("0000ff02fed5151600")
    assert e.feed(GET_FW) == ACK + H("0000ff06fad50332010607e800")


def test_inlistpassivetarget_for_4_7_10_byte_uids() -> None:
    e = awake()
    assert e.feed(LIST) == ACK + frame(0xD5, H("4b00"))
    e.present(H("922e5832"))  # the manual's MIFARE Classic 1K example
    assert e.feed(LIST) == ACK + H("0000ff0cf4d54b0101000408" + "04922e5832" + "8400")
    e.present(H("04112233445566"))
    assert e.feed(LIST) == ACK + frame(0xD5, H("4b010100440007") + H("04112233445566"))
    e.present(H("04112233445566778899"))
    out = e.feed(LIST)
    assert out.startswith(ACK) and H("04112233445566778899") + H("0578807002") in out


def test_bad_checksums_are_ignored_nack_repeats_unknown_is_a_syntax_error() -> None:
    e = awake()
    bad_dcs = GET_FW[:-2] + b"\x2b\x00"
    bad_lcs = H("0000ff02ffd4022a00")
    assert e.feed(bad_dcs) == b"" and e.feed(bad_lcs) == b""
    first = e.feed(GET_FW)
    assert e.feed(H("0000ffff0000")) == first[len(ACK):]  # NACK: the last response again
    assert e.feed(frame(0xD4, H("7e"))) == ACK + SYNTAX_ERROR
    # split across reads, with noise before it
    assert e.feed(b"\x13\x37\x00") == b""
    assert e.feed(GET_FW[1:5]) == b""
    assert e.feed(GET_FW[5:]) == first


def test_down_is_silent_and_coming_back_is_a_power_up() -> None:
    e = awake()
    e.set_down(True)
    assert e.feed(GET_FW) == b""
    e.set_down(False)
    assert e.feed(GET_FW) == b""  # asleep again
    assert e.feed(WAKE + SAM).startswith(ACK)
