# On-target tests for the status light (led.patterns, led.status), its back ends (WS2812, RGB
# PWM) and the buzzer.
import asyncio
import time

from led import patterns
from led.status import StatusLight
from led.ws2812 import Ws2812
from led.rgbpwm import RgbPwm
from led.buzzer import Buzzer, ACCEPTED, REJECTED
from fakeboard import FakeBoard


class Board(FakeBoard):
    def __init__(self):
        super().__init__()
        self.leds = []
        self.states = []
        self.tones = []

    def led(self, r, g, b):
        self.leds.append((r, g, b))

    def led_state(self, color, pattern, brightness):
        self.states.append((color, pattern, brightness))

    def tone(self, freq_hz, ms):
        self.tones.append((freq_hz, ms, time.ticks_ms()))


class Conn:
    held = False

    def __init__(self, status="Available"):
        self.status = status

    def status_of(self, cid):
        return self.status, "NoError"


class Link:
    connected = True


def test_every_required_look_exists():
    for name in ("available", "preparing", "charging", "suspended", "reserved", "faulted",
                 "offline", "claim", "update", "tag_accepted", "tag_rejected"):
        color, anim = patterns.LOOKS[name]
        assert len(color) == 6 and anim in ("solid", "breathe", "fast_breathe", "slow_blink",
                                            "fast_blink")
    assert patterns.LOOKS["charging"][1] == "breathe", "charging is animated"


def test_levels():
    assert patterns.level("solid", 12345) == 255
    assert patterns.level("off", 0) == 0
    assert patterns.level("fast_blink", 0) == 255 and patterns.level("fast_blink", 250) == 0
    assert patterns.level("slow_blink", 999) == 255 and patterns.level("slow_blink", 1000) == 0
    lv = [patterns.level("breathe", t) for t in range(0, 3000, 50)]
    assert min(lv) >= 16 and max(lv) >= 250 and lv[0] == min(lv)
    assert patterns.next_change_ms("solid", 0) is None
    assert patterns.next_change_ms("fast_blink", 150) == 50
    assert patterns.next_change_ms("breathe", 7, 50) == 50


def test_brightness_scaling():
    assert patterns.scaled(255, 255, 100) == 255
    assert patterns.scaled(255, 255, 0) == 0
    assert patterns.scaled(255, 255, 50) == 63  # perceptual: half as bright looking
    assert patterns.scaled(255, 255, 10) >= 1  # low settings are still lit


def appearance(status, online):
    # (colour, animation) a StatusLight shows for connector 1's status and the link state.
    link = Link()
    link.connected = online
    look = StatusLight(Board(), Conn(status), link).look(time.ticks_ms())
    return look[1], look[2]


def test_appearance_of_statuses():
    assert appearance("Available", True) == ("00ff00", "solid")
    assert appearance("Available", False) == patterns.LOOKS["offline"]
    assert appearance("Charging", True)[1] == "breathe"
    assert appearance("Bogus", True) == patterns.LOOKS["faulted"]


class Hotspot:
    open = True


def test_look_priority():
    c = Conn("Unavailable")
    s = StatusLight(Board(), c, Link())
    now = time.ticks_ms()
    assert s.look(now)[0] == "unavailable"
    s.set_mode("update")
    assert s.look(now)[0] == "update"
    s.tag_feedback(False)
    assert s.look(now)[0] == "tag_rejected"
    assert s.look(time.ticks_add(now, 2000))[0] == "update", "feedback is transient"
    c.status = "Faulted"
    assert s.look(now)[0] == "faulted", "a mode never hides a fault"
    s.set_mode(None)
    c.status = "SuspendedEVSE"
    assert s.look(now)[0] == "suspended"


def test_claim_look_stands_in_for_an_idle_connector_only():
    # The setup hotspot open: the owner sees claim mode on an idle connector, and a session or a
    # fault (the safety signal) as they are.
    c = Conn("Available")
    s = StatusLight(Board(), c, Link(), hotspot=Hotspot())
    now = time.ticks_ms()
    for status in ("Available", "Preparing", "Reserved", "Unavailable"):
        c.status = status
        assert s.look(now)[0] == "claim", status
    for status, name in (("Charging", "charging"), ("SuspendedEV", "suspended"),
                         ("Finishing", "finishing"), ("Faulted", "faulted")):
        c.status = status
        assert s.look(now)[0] == name, status
    try:
        s.set_mode("disco")
    except ValueError:
        pass
    else:
        raise AssertionError("unknown mode accepted")
    assert s.set_brightness(250) == 100 and s.set_brightness(-4) == 0


def test_a_refused_tag_blinks_blink_repeat_times():
    # OCPP BlinkRepeat: the red feedback lasts that many fast blinks, each a whole period.
    s = StatusLight(Board(), Conn("Available"), Link(), blinks=2)
    p = patterns.period("fast_blink")
    now = time.ticks_ms()
    s.tag_feedback(False)
    assert s.look(time.ticks_add(now, 2 * p - 50))[0] == "tag_rejected"
    assert s.look(time.ticks_add(now, 2 * p + 50))[0] == "available"
    s.on_config("BlinkRepeat", 5)
    now = time.ticks_ms()
    s.tag_feedback(False)
    assert s.look(time.ticks_add(now, 5 * p - 50))[0] == "tag_rejected"
    assert s.look(time.ticks_add(now, 5 * p + 50))[0] == "available"
    s.on_config("BlinkRepeat", 0)
    s.tag_feedback(False)
    assert s.look(time.ticks_ms())[0] == "available", "no blink asked for, none shown"
    s.tag_feedback(True)
    assert s.look(time.ticks_ms())[0] == "tag_accepted", "an acceptance shows all the same"


async def test_animation_never_blocks_and_state_reports_meaning():
    b = Board()
    c = Conn("Charging")
    s = StatusLight(b, c, Link(), brightness=60)
    gaps = []

    async def ticker():
        last = time.ticks_ms()
        for _ in range(60):
            await asyncio.sleep_ms(5)
            now = time.ticks_ms()
            gaps.append(time.ticks_diff(now, last))
            last = now

    t = asyncio.create_task(s.run())
    await ticker()
    assert b.states[0] == ("0000ff", "breathe", 60)
    assert max(gaps) < 40, gaps  # the light's task yields between frames
    n = s.frames
    assert n >= 4, "breathing draws frames"
    s.set_brightness(20)
    c.status = "Available"
    await asyncio.sleep_ms(250)
    assert b.states[-1] == ("00ff00", "solid", 20)
    n = s.frames
    await asyncio.sleep_ms(300)
    assert s.frames == n, "a solid look is drawn once"
    t.cancel()


class Np:
    def __init__(self, n):
        self.px = [(9, 9, 9)] * n
        self.writes = 0

    def __len__(self):
        return len(self.px)

    def __setitem__(self, i, v):
        self.px[i] = v

    def write(self):
        self.writes += 1


def test_ws2812_back_end():
    np = Np(12)
    w = Ws2812(np)
    assert w.show(0, 0, 255)
    assert np.px == [(0, 0, 255)] * 12 and np.writes == 1
    assert not w.show(0, 0, 255), "no write for the same colour"
    w.off()
    assert np.px[5] == (0, 0, 0) and np.writes == 2


class Pwm:
    def __init__(self):
        self.duty = None

    def duty_u16(self, d):
        self.duty = d


def test_rgb_pwm_back_end():
    r, g, b = Pwm(), Pwm(), Pwm()
    led = RgbPwm(r, g, b)
    led.show(255, 128, 0)
    assert (r.duty, g.duty, b.duty) == (65535, 128 * 257, 0)
    ca = RgbPwm(r, g, b, common_anode=True)
    ca.show(255, 0, 0)
    assert (r.duty, g.duty, b.duty) == (0, 65535, 65535)


async def test_buzzer_plays_without_blocking_and_a_new_tune_replaces_the_old():
    b = Board()
    z = Buzzer(b)
    t0 = time.ticks_ms()
    z.play(ACCEPTED)
    assert time.ticks_diff(time.ticks_ms(), t0) < 5, "play() returns at once"
    await asyncio.sleep_ms(300)
    hz = [ACCEPTED[i] * 20 for i in range(0, len(ACCEPTED), 2)]  # (Hz / 20, ms / 5) byte pairs
    assert [f for f, _, _ in b.tones] == [f for f in hz if f]
    b.tones.clear()
    z.play(REJECTED)
    await asyncio.sleep_ms(10)
    z.click()
    await asyncio.sleep_ms(100)
    assert [f for f, _, _ in b.tones] == [700, 4000], b.tones
    for fn in (z.tag_read, z.restart):
        fn()
    await asyncio.sleep_ms(400)
    assert z.played >= 3


async def test_an_authorisations_answer_is_a_flash_and_a_tune():
    # Connector.feedback is the buzzer's feedback(): the light shows the answer, the tune plays.
    b = Board()
    light = StatusLight(b, Conn("Preparing"), Link())
    z = Buzzer(b, light=light)
    z.feedback(False)
    assert light.look(time.ticks_ms())[0] == "tag_rejected"
    await asyncio.sleep_ms(20)
    assert [f for f, _, _ in b.tones] == [700], b.tones
    z.feedback(True)
    assert light.look(time.ticks_ms())[0] == "tag_accepted"
    await asyncio.sleep_ms(20)
    assert [f for f, _, _ in b.tones][-1] == 2000, b.tones
    Buzzer(b).feedback(True)  # no light: the tune alone
