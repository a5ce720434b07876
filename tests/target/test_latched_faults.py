# The latched faults (safety.LATCHED): an RCD trip, a welded contact and a contactor whose
# auxiliary contact disagrees end the session and keep the relay open for the rest of the
# plug-in, whatever their input reads meanwhile; they clear only once the EV is unplugged and the
# inputs read sound for unlatch_ms (or at a restart). On the real connector state machine, the
# physical side simulated (test_connector_props.World).
import asyncio
import time

from store import Store
from test_connector_props import World, _boot, _plugged_asking, _settle


class Stops:
    # A listener: the sessions' stop reasons and the statuses of connector 1, in order.
    def __init__(self):
        self.reasons = []
        self.statuses = []

    def on_tx_stop(self, s, reason):
        self.reasons.append(reason)

    def on_status(self, cid, status, code):
        if cid == 1:
            self.statuses.append((status, code))


def _charging(w, name):
    c, cfg = _boot(w, Store(name))
    cfg.set("BorneFreeCharging", "true")
    stops = Stops()
    c.listen(stops)
    return c, cfg, stops


async def _steps(w, c, ms, closes=None):
    # Polls every 20 ms (the connector's period) for `ms`; -> the relay's closes meanwhile.
    n = 0
    last = w.relay
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(20)
        c.step()
        if w.relay and not last:
            n += 1
        last = w.relay
    return n


async def _blip_restarts_the_wait(w, c, fault, ms):
    # Unplugged (unlatch_ms 300): the input `fault` (World's rcd, weld) sound for `ms`, faulty
    # for one reading, sound again: the latch holds 200 ms later (the wait started again), and
    # 250 ms after that has cleared, if nothing else holds it.
    setattr(w, fault, False)
    await _steps(w, c, ms)
    setattr(w, fault, True)
    c.step()
    setattr(w, fault, False)
    await _steps(w, c, 200)
    assert fault in c.faults, "cleared without unlatch_ms of sound readings in a row"
    await _steps(w, c, 250)


async def test_an_rcd_that_releases_does_not_reclose_the_relay_within_the_plug_in():
    # A 6 mA DC module releases once the opening stopped the fault current: the relay used to
    # close again 40 ms later, into the same earth fault, without limit.
    w = World()
    c, cfg, stops = _charging(w, "rcd")
    c.unlatch_ms = 300
    await _plugged_asking(w, c)
    assert w.relay, "setup: charging"
    w.rcd = True
    c.step()
    assert not w.relay, "one poll after the trip: open"
    assert stops.reasons == ["Other"], "the session ends at the trip: %s" % stops.reasons
    assert c.session is None
    w.rcd = False  # the module's output is healthy again
    assert await _steps(w, c, 400) == 0, "relay reclosed after the RCD released"
    assert c.status_of(1) == ("Faulted", "GroundFailure"), c.status_of(1)
    # The EV pauses and asks again, same plug-in: still nothing.
    w.ev = "B"
    await _settle(c)
    w.ev = "C"
    assert await _steps(w, c, 400) == 0, "relay reclosed when the EV asked again"
    assert c.can_start() is False and c.remote_start("A-REMOTE") == "Rejected"
    assert c.status_of(1) == ("Faulted", "GroundFailure")
    # Unplugged with the RCD still tripped: the latch holds.
    w.rcd = True
    w.ev = "A"
    await _steps(w, c, 500)
    assert "rcd" in c.faults, "cleared while the RCD still reads tripped"
    # Healthy and unplugged, but only briefly: a new trip restarts the wait.
    await _blip_restarts_the_wait(w, c, "rcd", 150)
    assert not c.faults and c.status_of(1) == ("Available", "NoError"), (c.faults,
                                                                           c.status_of(1))
    # The next plug-in charges again.
    await _plugged_asking(w, c)
    assert w.relay and c.session is not None, "a new plug-in after the clear charges"
    assert ("Faulted", "GroundFailure") in stops.statuses


async def test_a_contactor_whose_feedback_disagrees_closes_once_and_stays_open():
    # The auxiliary contact reads open with the coil energized (PowerSwitchFailure): the fault
    # used to clear as soon as the relay was open, and the relay closed again (chatter).
    class AuxBroken(World):
        def relay_feedback(self):
            return False

    w = AuxBroken()
    c, cfg, stops = _charging(w, "aux")
    await _plugged_asking(w, c)
    closes = 1 if w.relay else 0
    assert closes == 1, "setup: charging"
    closes += await _steps(w, c, 1500)
    assert closes == 1, "the contactor closed %d times after PowerSwitchFailure" % closes
    assert c.faults.get("relay") == "PowerSwitchFailure", c.faults
    assert c.status_of(1) == ("Faulted", "PowerSwitchFailure")
    assert stops.reasons == ["Other"] and c.session is None, stops.reasons
    statuses = [s for s, _ in stops.statuses]
    assert statuses.count("Charging") == 1, "status flipping: %s" % statuses


async def test_a_welded_contact_stays_latched_until_unplugged_with_a_sustained_open_feedback():
    w = World()
    c, cfg, stops = _charging(w, "weld")
    c.unlatch_ms = 300
    await _plugged_asking(w, c)
    assert w.relay
    w.weld = True
    w.ev = "B"  # the EV stops asking: the relay opens, the contact stays closed
    await _settle(c)
    await _steps(w, c, 300)
    assert "weld" in c.faults, c.faults
    assert c.status_of(1) == ("Faulted", "PowerSwitchFailure")
    assert stops.reasons == ["Other"] and c.session is None, "the session ends at the weld"
    w.weld = False  # the contact bounces open for one reading
    c.step()
    w.weld = True
    c.step()
    assert "weld" in c.faults, "one open reading cleared the weld"
    # Open for good now, the EV still plugged and asking: the latch holds, the relay stays open.
    w.weld = False
    w.ev = "C"
    assert await _steps(w, c, 500) == 0, "relay closed again after a weld"
    assert "weld" in c.faults and c.session is None
    # Unplugged: a closed reading in the wait restarts it; unlatch_ms of open readings clears.
    w.ev = "A"
    await _blip_restarts_the_wait(w, c, "weld", 200)
    assert not c.faults, c.faults
    await _plugged_asking(w, c)
    assert w.relay, "a new plug-in after the clear charges"


async def test_a_restart_starts_with_no_latch():
    # The explicit clear: Reset restarts the charger; the faults are the inputs' again (a weld
    # still there is seen again at the first readings, _FEEDBACK_MS after the start).
    w = World()
    c, cfg, stops = _charging(w, "restart")
    await _plugged_asking(w, c)
    w.rcd = True
    c.step()
    w.rcd = False
    await _steps(w, c, 100)
    assert "rcd" in c.faults and not w.relay
    c, cfg = _boot(w, Store("restart"))
    await _plugged_asking(w, c)
    assert w.relay and not c.faults, "after the restart a sound charger charges"
