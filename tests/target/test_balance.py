# On-target tests for load balancing: evse.balance (house load per phase, the headroom's
# hysteresis) and supply.Supply's decisions (trusted readings, fallback) on fakes, with made-up
# times; the simulation tests (tests/test_load_balance.py) drive it end to end.
import asyncio
import time

from evse import balance, offer
from evse.balance import Headroom
from supply import Bus, Shared, Supply
from mphelp import Logs


def near(a, b):
    return abs(a - b) < 1e-6


def test_house_is_grid_minus_own_per_phase():
    out = [0.0, 0.0, 0.0]
    assert balance.house([31.0, 20.0, 16.0], [16.0, 16.0, 16.0], (0, 1, 2), out)
    assert out == [15.0, 4.0, 0.0]
    assert offer.headroom(25, out) == 10  # the fullest phase counts
    # nothing drawn by the charger
    assert balance.house([12.0, 3.0, 0.5], None, (0, 1, 2), out) and out == [12.0, 3.0, 0.5]
    # a reading ~0.1 s apart may make the house look negative: never more than the fuse
    assert balance.house([10.0, 10.0, 10.0], [16.0, 16.0, 16.0], (0, 1, 2), out)
    assert out == [0, 0, 0]
    # a grid current missing: no figure
    assert not balance.house([10.0, None, 10.0], None, (0, 1, 2), out)


def test_phase_rotation_maps_the_chargers_phases_to_the_grids():
    assert balance.rotation("0.RST,1.RST") == (0, 1, 2)
    assert balance.rotation("0.RST,1.STR") == (1, 2, 0)
    assert balance.rotation("1.TSR") == (2, 1, 0)
    assert balance.rotation("0.RST,1.Unknown") is None
    assert balance.rotation("1.NotApplicable") is None
    assert balance.rotation("0.RST") is None
    assert balance.rotation(None) is None
    out = [0.0, 0.0, 0.0]
    # a single-phase EV (16 A on its L1) wired to the grid's L2 (S)
    assert balance.house([5.0, 20.0, 5.0], [16.0, 0.0, 0.0], (1, 2, 0), out)
    assert out == [5.0, 4.0, 5.0]
    # wiring unknown: only the smallest own current comes off each phase (safe side)
    assert balance.house([5.0, 20.0, 5.0], [16.0, 0.0, 0.0], None, out)
    assert out == [5.0, 20.0, 5.0]
    assert balance.house([21.0, 22.0, 23.0], [16.0, 16.0, 16.0], None, out)
    assert out == [5.0, 6.0, 7.0]
    # an own current unknown (None: an S0 meter) counts 0: the house looks fuller
    assert balance.house([21.0, 22.0, 23.0], [None, None, None], (0, 1, 2), out)
    assert out == [21.0, 22.0, 23.0]


def test_a_drop_is_followed_at_once_a_rise_only_after_it_held():
    h = Headroom(6, rise_ms=5000)
    assert h.update(0, 20.0) == 20.0  # the first reading is taken as it is
    assert h.update(1000, 10.0) == 10.0  # drop: at once
    assert h.update(2000, 18.0) == 10.0  # rise: not yet
    assert h.update(4000, 15.0) == 10.0
    assert h.update(6000, 19.0) == 10.0
    assert h.update(7000, 17.0) == 15.0  # held 5 s: the smallest figure seen meanwhile
    # a dip during a rise restarts it
    assert h.update(8000, 20.0) == 15.0
    assert h.update(9000, 15.0) == 15.0
    assert h.update(13500, 20.0) == 15.0
    assert h.update(18500, 20.0) == 20.0
    # less than a whole amp more is not worth a PWM change
    for t in range(19000, 40000, 1000):
        assert h.update(t, 20.9) == 20.0


def test_a_pause_ends_only_at_seven_amps():
    h = Headroom(6, rise_ms=5000)
    h.update(0, 16.0)
    assert h.update(1000, 3.0) == 3.0
    assert offer.paused(offer.offer(32, None, h.value))
    for t in range(2000, 20000, 1000):
        assert h.update(t, 6.9) == 3.0, t  # 6 A would do, but it would flap: 7 A needed
    assert h.update(21000, 7.0) == 3.0
    assert h.update(25000, 8.0) == 3.0
    assert h.update(26000, 9.0) == 7.0
    assert not offer.paused(offer.offer(32, None, h.value))


def test_figures_that_may_only_lower_and_the_fallback():
    h = Headroom(6, rise_ms=5000)
    # until a trusted reading: the fallback stays, an untrusted figure may only lower it
    assert h.value == 6
    assert h.update(0, 20.0, may_rise=False) == 6
    assert h.update(100, 4.0, may_rise=False) == 4.0
    h = Headroom(6, rise_ms=5000)
    assert h.update(0, 20.0) == 20.0
    assert h.update(1000, 30.0, may_rise=False) == 20.0
    assert h.update(2000, 12.0, may_rise=False) == 12.0
    # an untrusted figure neither starts nor ends a rise
    assert h.update(3000, 16.0) == 12.0
    assert h.update(4000, 30.0, may_rise=False) == 12.0
    assert h.update(8000, 16.0) == 16.0
    # the meter goes silent: the fallback at once...
    assert h.update(9000, 6, fixed=True) == 6
    # ...and from a pause the fallback comes back after the rise time, without the 7 A margin
    assert h.update(10000, 2.0) == 2.0
    assert h.update(11000, 6, fixed=True) == 2.0
    assert h.update(16000, 6, fixed=True) == 6
    # readings again: a rise like any other
    assert h.update(17000, 20.0) == 6
    assert h.update(22000, 20.0) == 20.0


def test_ticks_wrap_does_not_stall_a_rise():
    h = Headroom(6, rise_ms=5000)
    h.update(0, 10.0)
    t0 = time.ticks_add(0, -2000)  # just before the tick counter wraps
    assert h.update(t0, 20.0) == 10.0
    assert h.update(time.ticks_add(t0, 5000), 20.0) == 20.0


# -- supply.Supply on fakes ---------------------------------------------------------------------


class FakeConfig:
    def __init__(self):
        self.listeners = []
        self.rot = "0.RST,1.RST"

    def listen(self, obj):
        self.listeners.append(obj)

    def get(self, key):
        if key == "ConnectorPhaseRotation":
            return self.rot
        raise KeyError(key)


class FakeConnector:
    def __init__(self):
        self.config = FakeConfig()
        self.relay = False
        self.offer_a = 16
        self.headroom_a = None
        self.changed = time.ticks_add(time.ticks_ms(), -60000)

    def set_headroom(self, a):
        self.headroom_a = a

    def output_ms(self):
        return self.changed


class FakeMeter:
    def __init__(self, cur):
        self.latest = {"current_a": list(cur), "ok": True}
        self.failed = False
        self.ok = True
        self.polls = 0

    async def poll(self):
        self.polls += 1
        await asyncio.sleep_ms(5)
        return self.ok


def _supply(grid=(31.0, 31.0, 31.0), own=(16.0, 16.0, 16.0)):
    c = FakeConnector()
    bus = Bus()
    g = FakeMeter(grid)
    m = FakeMeter(own)
    s = Supply(c, g, bus, own=m, fuse_a=25, fallback_a=6)
    return c, bus, g, m, s


def test_supply_headroom_from_the_two_meters():
    c, bus, g, m, s = _supply()
    assert c.headroom_a == 6  # before any reading
    c.relay = True
    s.update(0, True)
    assert c.headroom_a == 10  # 25 - (31 - 16)
    # relay open: the charger draws nothing, whatever its meter last said
    c.relay = False
    g.latest["current_a"] = [15.0, 15.0, 15.0]
    s.update(1000, True)
    assert c.headroom_a == 10
    s.update(7000, True)
    assert c.headroom_a == 10  # a rise must hold: 1000 -> 7000 is one figure, the next counts
    s.update(8000, True)
    assert near(s.raw, 10) and c.headroom_a == 10
    g.latest["current_a"] = [5.0, 5.0, 5.0]
    s.update(9000, True)
    s.update(14000, True)
    assert c.headroom_a == 20
    assert s.loads == [5.0, 5.0, 5.0]


def test_supply_untrusted_reading_takes_the_draw_at_the_offer():
    c, bus, g, m, s = _supply(grid=(21.0, 21.0, 21.0), own=(0.0, 0.0, 0.0))
    c.relay = True
    s.update(0, True)
    assert c.headroom_a == 4  # trusted: 25 - 21 (the charger drew nothing when read)
    # The relay just closed: its meter (read before the EV drew) says 0 A, the grid already sees
    # the EV's 16 A. Taken at its upper bound (the offer) the house is 5 A, not 21 A: no
    # spurious pause, and no rise from it either.
    s.head.value = 16
    c.changed = time.ticks_ms()
    bus.read_ms = time.ticks_ms()
    s.update(1000, True)
    assert c.headroom_a == 16
    # a real spike in the same moment still lowers it
    g.latest["current_a"] = [40.0, 40.0, 40.0]
    s.update(1100, True)
    assert c.headroom_a == 1  # 25 - (40 - 16)


def test_supply_fallback_when_the_grid_meter_is_silent():
    c, bus, g, m, s = _supply()
    c.relay = True
    s.update(0, True)
    assert c.headroom_a == 10
    # one failed poll (a reading rejected as implausible, say): the last figure holds a while
    s.update(1000, False)
    s.update(2900, False)
    assert c.headroom_a == 10
    with Logs() as logs:
        s.update(3100, False)  # 3 s without a good reading
    assert c.headroom_a == 6 and s.raw is None
    assert logs.said("fallback")
    s.update(4000, True)
    assert c.headroom_a == 6  # back: a rise like any other
    s.update(9000, True)
    assert c.headroom_a == 10


def test_supply_follows_a_changed_phase_rotation():
    c, bus, g, m, s = _supply(grid=(5.0, 20.0, 5.0), own=(16.0, 0.0, 0.0))
    c.relay = True
    s.update(0, True)
    assert c.headroom_a == 5  # RST: the grid's L2 carries 20 A of house
    s.on_config("ConnectorPhaseRotation", "0.RST,1.STR")  # the EV's L1 is the grid's L2
    s.update(1000, True)
    s.update(6000, True)
    assert c.headroom_a == 20


async def _bus_never_overlaps():
    # Two meters on one bus: the charger's (Shared) and the grid's (Supply.step) never poll at
    # the same time, and the grid's turn comes right after each charger read.
    bus = Bus()
    log = []
    active = [0]

    class Src:
        async def read(self, out):
            active[0] += 1
            log.append(active[0])
            await asyncio.sleep_ms(20)
            active[0] -= 1

    class Grid(FakeMeter):
        async def poll(self):
            active[0] += 1
            log.append(-active[0])
            await asyncio.sleep_ms(15)
            active[0] -= 1
            return True

    c = FakeConnector()
    shared = Shared(bus, Src())
    g = Grid((1.0, 1.0, 1.0))
    s = Supply(c, g, bus, own=None, fuse_a=25, fallback_a=6, period_ms=100)
    task = asyncio.create_task(s.run())

    async def charger():
        for _ in range(10):
            await shared.read(None)
            await asyncio.sleep_ms(1)  # the next poll almost at once: contention

    await charger()
    await asyncio.sleep_ms(50)
    task.cancel()
    return log, g


def test_shared_bus_takes_turns():
    log, g = asyncio.run(_bus_never_overlaps())
    assert all(abs(x) == 1 for x in log), log  # never two polls at once
    assert log.count(1) == 10 and log.count(-1) >= 9, log  # a grid turn after (nearly) each read


# -- the connector's side -----------------------------------------------------------------------


def test_connector_offer_is_the_minimum_and_pauses_below_six_amps():
    from store import Store
    from test_connector_props import World, _boot, _settle

    async def run():
        w = World()
        c, cfg = _boot(w, Store("balance_conn"))
        cfg.set("BorneFreeCharging", "true")
        w.ev = "B"
        await _settle(c)
        w.ev = "C"
        await _settle(c)
        assert w.relay and c.offer_a == 32
        c.set_headroom(10)
        assert c.offer_a == 10 and w.relay and abs(w.duty - 10 / 0.6) < 0.01
        c.set_limit(8)
        assert c.offer_a == 8  # smart charging tighter than the supply
        c.set_headroom(3)  # at once: no poll of the connector needed
        assert not w.relay and w.duty == 100
        assert c.status_of(1) == ("SuspendedEVSE", "NoError")
        c.set_limit(None)
        c.set_headroom(20.5)
        await _settle(c)
        assert w.relay and c.offer_a == 20.5
        # the grid meter fails: reported, not a fault; charging goes on
        c.device_fault("GridMeterFailure", True)
        assert w.relay and c.status_of(1) == ("Charging", "OtherError")
        assert c.vendor_error(1, "Charging", "OtherError") == "GridMeterFailure"
        assert "GridMeterFailure" in c.device_faults
        c.device_fault("GridMeterFailure", False)
        assert c.status_of(1) == ("Charging", "NoError")
        assert c.vendor_error(1, "Charging", "NoError") is None

    asyncio.run(run())
