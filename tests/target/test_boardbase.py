# On-target tests of the board contract (boardbase.py): a board missing a required member fails
# when it is built, naming what is missing; the optional members have their defaults.
import asyncio

from boardbase import BoardBase
from fakeboard import FakeBoard


class Half(BoardBase):
    NAME = "half"

    def pilot_mv(self):
        return 12000


def test_missing_members_fail_at_start_with_their_names():
    try:
        Half()
    except NotImplementedError as e:
        msg = str(e)
    else:
        raise AssertionError("a board without set_relay() was built")
    assert "board half lacks" in msg, msg
    for name in ("flash_root", "set_relay", "rcd_tripped", "reset"):
        assert name in msg, msg
    assert "pilot_mv" not in msg, msg


def test_defaults():
    b = FakeBoard()
    assert isinstance(b.edge, asyncio.ThreadSafeFlag)
    assert b.on_button is None
    assert b.route("csms.example", 443) == ("csms.example", 443)
    assert b.rfid_stream() is None and b.rfid_driver() is None
    assert b.meter_stream(9600, "E") is None and b.meter_pulses() is None
    assert b.wlan() is None and b.hotspot_options() == {}
    assert b.ntp_server() is None
    b.telemetry("x", 1)
    b.led_state("00ff00", "solid", 80)
    b.set_rtc(1767225600)
