# An EV that does not follow a lower offer (IEC 61851-1: within 5 s): the connector compares
# the meter's phase currents with the offer and opens the relay once the EV draws more than the
# highest offer of the last follow_ms + 10 % (at least + 1 A), the relay closed that long (an
# offer that keeps moving puts nothing off); the EV may charge again
# once it stops asking (B) and asks anew (C). On the real connector, the physics simulated.
import asyncio
import time

from store import Store
from test_connector_props import World, _boot, _plugged_asking, _settle


class Meter:
    # The meter task's face the connector reads: energy_wh() and `latest`.
    def __init__(self):
        self.latest = {"ok": True, "current_a": [0.0, 0.0, 0.0], "energy_wh": 0}

    def energy_wh(self):
        return 0

    def draw(self, amps):
        self.latest["current_a"] = [amps, amps, amps]


async def _polls(c, ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(20)
        c.step()


async def _charging_at_32():
    w = World()
    c, cfg = _boot(w, Store("over"))
    c.meter = m = Meter()
    c.follow_ms = 300
    cfg.set("BorneFreeCharging", "true")
    await _plugged_asking(w, c)
    assert w.relay and c.offer_a == 32
    m.draw(32.0)
    return w, c, m


async def test_an_ev_that_ignores_a_lower_offer_is_cut_off_until_it_asks_anew():
    w, c, m = await _charging_at_32()
    await _polls(c, 400)
    assert w.relay, "32 A on a 32 A offer is no overdraw"
    c.set_headroom(16)  # the house needs the current: 16 A offered
    assert w.relay and w.duty < 30
    await _polls(c, 200)
    assert w.relay, "the EV has follow_ms to follow"
    await _polls(c, 300)
    assert not w.relay, "32 A drawn on a 16 A offer for follow_ms: relay still closed"
    assert c.session is not None and c.status_of(1) == ("SuspendedEVSE", "NoError")
    m.draw(0.0)
    await _polls(c, 200)
    assert not w.relay, "nothing closes while the EV still asks (C) after the cut"
    w.ev = "B"
    await _settle(c)
    w.ev = "C"
    await _settle(c)
    assert w.relay, "the EV asked anew: it charges again"


async def test_an_ev_that_follows_the_offer_within_the_tolerance_charges_on():
    w, c, m = await _charging_at_32()
    c.set_headroom(16)
    m.draw(17.5)  # 16 A + 10 % = 17.6 A
    await _polls(c, 600)
    assert w.relay and not c.overdrawn
    c.set_headroom(6)
    m.draw(6.9)  # 6 A + 1 A
    await _polls(c, 600)
    assert w.relay, "within 1 A of a 6 A offer"
    m.draw(7.2)
    await _polls(c, 100)
    assert not w.relay, "7.2 A on a 6 A offer"


async def test_an_offer_that_keeps_moving_does_not_put_off_the_cut():
    # The house load moves the headroom every 0.8 follow_ms while the EV draws 32 A whatever the
    # pilot says: each change must not give the EV a new follow_ms (it was never cut off).
    w, c, m = await _charging_at_32()
    c.follow_ms = 500
    h = 16.0
    t0 = time.ticks_ms()
    while w.relay and time.ticks_diff(time.ticks_ms(), t0) < 4000:
        c.set_headroom(h)
        h = 15.5 if h == 16.0 else 16.0
        await _polls(c, 400)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert not w.relay, "32 A drawn on a ~16 A offer for 8 x follow_ms: relay still closed"
    assert 500 <= took <= 1400, "cut %d ms after the offer fell (follow_ms 500)" % took


async def test_each_lower_offer_has_its_follow_time_and_a_higher_one_counts_at_once():
    # The threshold is the highest offer in force during the last follow_ms: a second drop
    # soon after a first gives the EV its whole follow_ms for it, and a rise counts at once.
    w, c, m = await _charging_at_32()
    c.set_headroom(30)
    m.draw(30.0)
    await _polls(c, 240)
    c.set_headroom(10)  # 0.8 follow_ms after the first drop
    await _polls(c, 160)  # the EV follows the second drop after half its follow_ms
    m.draw(10.5)
    await _polls(c, 400)
    assert w.relay and not c.overdrawn, "cut before the EV had follow_ms to follow 10 A"
    c.set_headroom(None)  # 32 A offered again: the EV may draw it at once
    m.draw(32.0)
    await _polls(c, 100)
    assert w.relay and not c.overdrawn, "cut for drawing a higher offer"
    c.set_headroom(16)
    await _polls(c, 600)
    assert not w.relay, "32 A on a 16 A offer for 2 x follow_ms: relay still closed"
