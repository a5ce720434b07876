# An EV that does not follow a lower offer (IEC 61851-1: within 5 s): the connector compares
# the meter's phase currents with the offer and opens the relay once the EV draws more than the
# offer + 10 % (at least + 1 A) follow_ms after the outputs last changed; the EV may charge again
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
