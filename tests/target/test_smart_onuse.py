# On-target tests: smart charging (evse/smart.py, evse/profile.py) and reservations
# (evse/reservation.py) are in the heap only while a profile or a reservation exists. A charger
# with none holds neither module; one set loads it, the last one gone drops it (out of
# sys.modules, every reference released: the heap comes back), a reboot finds the persisted ones
# and loads them again, and the limit a profile sets still reaches the pilot throughout.
import asyncio
import gc
import sys

import clock
import evse
from store import Store
from eventlog import EventLog
from ocpp_client.config import Config
from evse.connector import Connector
from evse.limits import Limits
from mphelp import Logs
from test_connector_props import World

SMART = ("evse.smart", "evse.profile")


def boot(root):
    # The charger after a power-up on the flash at root (app.py's order).
    store = Store(root)
    w = World()
    c = Connector(w, store, EventLog(store, 20), Config(store))
    c.settle_ms = 0
    lim = Limits(c, store)
    return w, c, lim


def loaded(*names):
    return [n for n in names if n in sys.modules or hasattr(evse, n.split(".")[1])]


def prof(pid, purpose, limit, **kw):
    cp = {"chargingProfileId": pid, "stackLevel": 0, "chargingProfilePurpose": purpose,
          "chargingProfileKind": "Relative",
          "chargingSchedule": {"chargingRateUnit": "A",
                               "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}
    for k in kw:
        cp[k] = kw[k]
    return {"connectorId": 1 if purpose != "ChargePointMaxProfile" else 0,
            "csChargingProfiles": cp}


def set_profile(lim, req, tx_id=None):
    # What ocpp_client/smartcharging.py does for SetChargingProfile.
    try:
        return lim.need().set_profile(req, tx_id)[0]
    finally:
        lim.release()


def test_without_profiles_nothing_of_smart_charging_is_loaded():
    _, c, lim = boot("none")
    assert lim.smart is None and loaded(*SMART) == []
    lim._apply()
    assert c.limit_a is None


def test_a_profile_loads_it_its_clearing_drops_it_and_frees_the_heap():
    _, c, lim = boot("flash")
    assert set_profile(lim, prof(1, "TxDefaultProfile", 10)) == "Accepted"
    assert loaded(*SMART) == list(SMART)
    lim._apply()
    assert c.limit_a == 10 and c.offer_a <= 10  # the pilot never offers above the profile
    # Persisted: after a reboot the profile is found on flash, loaded, and limits at once.
    _, c2, lim2 = boot("flash")
    assert lim2.smart is not None and lim2.smart.installed() == 1
    lim2._apply()
    assert c2.limit_a == 10
    del c2, lim2
    # Cleared: no profile left, the modules go and the limit is lifted.
    assert lim.smart.clear() == "Accepted"
    lim.release()
    assert lim.smart is None and loaded(*SMART) == []
    lim._apply()
    assert c.limit_a is None
    # The next boot finds nothing to load.
    _, _, lim3 = boot("flash")
    assert lim3.smart is None and loaded(*SMART) == []


def test_dropping_releases_every_reference():
    # Set and cleared again and again: the heap comes back each time (nothing but the names,
    # qstrs, which are never freed, stays from the first time; no function, class or profile).
    _, c, lim = boot("flash")

    def cycle():
        assert set_profile(lim, prof(1, "TxDefaultProfile", 10)) == "Accepted"
        lim._apply()
        assert c.limit_a == 10
        lim.smart.clear()
        lim.release()
        lim._apply()
        assert c.limit_a is None and loaded(*SMART) == []

    with Logs():
        cycle()  # the names are interned, the store's bookkeeping made
        gc.collect()
        base = gc.mem_alloc()
        assert set_profile(lim, prof(1, "TxDefaultProfile", 10)) == "Accepted"
        gc.collect()
        held = gc.mem_alloc() - base
        lim.smart.clear()
        lim.release()
        for _ in range(3):
            cycle()
    gc.collect()
    left = gc.mem_alloc() - base
    assert held > 4000 and left < 256, (held, left)


def test_a_rejected_profile_or_a_question_leaves_nothing_loaded():
    _, c, lim = boot("flash")
    assert set_profile(lim, prof(1, "TxProfile", 10)) == "Rejected"  # no transaction
    assert lim.smart is None and loaded(*SMART) == []
    try:
        s = asyncio.run(lim.need().composite_schedule(
            1, 600, cap=c.config.get("BorneMaxCurrent")))
    finally:
        lim.release()
    assert s["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": c.config.get("BorneMaxCurrent")}]
    assert lim.smart is None and loaded(*SMART) == []


def test_the_transaction_end_drops_its_txprofile_and_the_modules():
    _, c, lim = boot("flash")
    assert set_profile(lim, prof(3, "TxProfile", 8), tx_id=42) == "Accepted"
    assert lim.smart.installed() == 1
    lim.on_tx_stop(None, "Local")
    assert lim.smart is None and loaded(*SMART) == []
    lim._apply()
    assert c.limit_a is None


def test_an_expired_profile_found_at_boot_is_dropped_with_the_modules():
    _, _, lim = boot("flash")
    now = clock.now()
    with Logs():
        st, _ = lim.need().set_profile(
            prof(4, "TxDefaultProfile", 12, validTo=clock.iso(now + 60)), None, now - 3600)
    assert st == "Accepted"
    # A reboot after validTo: the document holds the profile, which can never apply again.
    _, c, lim = boot("flash")
    assert lim.smart is not None
    lim.smart.expire(now + 120)
    lim.release()
    assert lim.smart is None and loaded(*SMART) == []
    lim._apply()
    assert c.limit_a is None


def test_a_malformed_document_loads_nothing_for_long():
    Store("bad").save("smart1", {"p": [[1, 2, 3]]})
    with Logs() as logs:
        _, _, lim = boot("bad")
    assert logs.warned("malformed")
    assert lim.smart is None and loaded(*SMART) == []


async def _settle(c):
    for _ in range(4):  # the pilot's debounce needs three equal readings
        await asyncio.sleep_ms(0)
        c.step()


async def test_reservations_load_when_made_and_drop_when_used_or_cancelled():
    w, c, _ = boot("resv")
    assert c.reservations is None and loaded("evse.reservation") == []
    exp = clock.now() + 3600
    assert c.reserving().reserve(1, exp, "OWNER", None, 5, "Available") == "Accepted"
    assert loaded("evse.reservation") == ["evse.reservation"]
    assert c.status_of(1)[0] == "Reserved"
    # Persisted: a reboot finds it and the connector is Reserved again.
    w, c, _ = boot("resv")
    assert c.reservations is not None and c.status_of(1)[0] == "Reserved"
    assert c.reservations.cancel(5) == "Accepted"
    assert c.reservations is None and loaded("evse.reservation") == []
    assert c.status_of(1)[0] == "Available"
    # Used: the reserving tag starts a session; the reservation ends and the module goes.
    assert c.reserving().reserve(1, exp, "OWNER", None, 6, "Available") == "Accepted"
    c.authorizer = lambda tag: None
    c.remote_start("OWNER")
    w.ev = "B"
    await _settle(c)
    assert c.session is not None and c.session["res"] == 6
    assert c.reservations is None and loaded("evse.reservation") == []
    # Nothing on flash any more: the next boot loads nothing.
    _, c, _ = boot("resv")
    assert c.reservations is None and loaded("evse.reservation") == []


class Scarce(Store):
    # A store whose next load of one document runs out of memory (the heap is full just then).
    fail = None

    def load(self, name, defaults, version=1):
        if name == self.fail:
            self.fail = None
            raise MemoryError("memory allocation failed")
        return Store.load(self, name, defaults, version)


def test_no_memory_to_load_leaves_nothing_half_loaded_and_the_next_use_loads():
    store = Scarce("scarce")
    w = World()
    c = Connector(w, store, EventLog(store, 20), Config(store))
    lim = Limits(c, store)
    store.fail = "smart1"  # evse.smart imported, its object not built
    try:
        lim.need()
        assert False, "no MemoryError"
    except MemoryError:
        pass
    assert lim.smart is None and loaded(*SMART) == []
    assert set_profile(lim, prof(1, "TxDefaultProfile", 10)) == "Accepted"  # memory again
    lim._apply()
    assert c.limit_a == 10
    store.fail = "reservations"
    try:
        c.reserving()
        assert False, "no MemoryError"
    except MemoryError:
        pass
    assert c.reservations is None and loaded("evse.reservation") == []
    assert c.reserving().reserve(1, clock.now() + 60, "T", None, 1, "Available") == "Accepted"



def test_a_remote_starts_txprofile_keeps_the_profiles_loaded_until_its_transaction():
    # ocpp_client/transactions.py loads them when the RemoteStartTransaction comes (refused
    # there if memory lacks) and installs the TxProfile once the transaction has its id: a
    # ClearChargingProfile meanwhile must not drop them.
    _, _, lim = boot("pending")
    lim.need()
    lim.pending = True
    assert set_profile(lim, prof(2, "TxDefaultProfile", 12)) == "Accepted"
    lim.smart.clear()
    lim.release()
    assert lim.smart is not None and loaded(*SMART) == list(SMART)
    lim.pending = False  # the transaction's id came: TxProfile installed (or not), then
    lim.release()
    assert lim.smart is None and loaded(*SMART) == []


def test_a_remote_starts_txprofile_limits_its_session_from_the_first_offer_and_no_other():
    # ocpp_client/transactions.py hands the RemoteStartTransaction's TxProfile over (expect())
    # before the connector starts anything: with the EV already asking, the session starts
    # inside remote_start() and the pilot's very first duty is already the profile's 10 A.
    from evse import pilot

    w, c, lim = boot("txprof")
    duties = []

    def set_pwm(d):
        duties.append(d)
        w.duty = d

    w.set_pwm = set_pwm
    w.ev = "C"
    for _ in range(4):
        c.step()
    assert c.session is None and duties == [100]
    tx = prof(7, "TxProfile", 10)["csChargingProfiles"]
    assert lim.expect("R1", tx) is None and loaded(*SMART) == list(SMART)
    assert lim.expect("R2", tx)  # one at a time
    assert c.remote_start("R1") == "Accepted"
    assert c.session_tag == "R1" and c.limit_a == 10
    assert duties == [100, pilot.duty_for(10)], duties
    assert lim.pending is False and lim.smart.profiles() == [(7, 1, "TxProfile", 0)]
    assert c.remote_stop(lambda ref: True) == "Accepted"  # it ends with its session, and the
    # modules leave the heap
    lim._apply()
    assert lim.smart is None and loaded(*SMART) == [] and c.limit_a is None
    # Held for a remote start that never starts: dropped with it, nothing left for the next one.
    w.ev = "A"
    for _ in range(4):
        c.step()
    for drop in (lambda: c.remote_refused("R3"), lambda: c.change_availability(False)):
        c.change_availability(True)
        with Logs() as lg:
            assert lim.expect("R3", tx) is None
            assert c.remote_start("R3") == "Accepted" and c.pending is not None
            drop()
        assert lg.said("TxProfile 7 of the remote start for R3 discarded"), lg.lines
        assert lim.pending is False and lim.smart is None and loaded(*SMART) == []


def test_no_memory_to_install_a_remote_starts_txprofile_offers_nothing_until_it_is_in():
    from evse import pilot

    w, c, lim = boot("txprof-oom")
    w.ev = "C"
    for _ in range(4):
        c.step()
    assert lim.expect("R1", prof(7, "TxProfile", 10)["csChargingProfiles"]) is None
    sm = lim.smart
    real = sm.install

    def scarce(p):
        raise MemoryError("memory allocation failed")

    sm.install = scarce
    assert c.remote_start("R1") == "Accepted" and c.session_tag == "R1"
    assert c.limit_a == 0 and w.duty == 100 and not w.relay  # never the full offer meanwhile
    assert lim._apply() == 1 and c.limit_a == 0  # the task tries again a second later
    sm.install = real
    lim._apply()
    assert c.limit_a == 10 and w.duty == pilot.duty_for(10) and lim.pending is False


def test_out_of_the_heap_a_pending_txprofile_holds_no_module_its_session_loads_them():
    # Frozen or in a ROMFS image (supervisor.code_in_heap() False: limits._HOLD) a load makes
    # small objects only: while the remote start waits for its Authorize (the authorization
    # feature loaded then) the TxProfile is held parsed, the modules out; the session's start
    # loads them and its first offer is already the profile's. No memory to load them then:
    # nothing offered until they are in.
    from evse import limits, pilot

    saved = limits._HOLD
    limits._HOLD = False
    try:
        w, c, lim = boot("txprof-out")
        w.ev = "C"
        for _ in range(4):
            c.step()
        tx = prof(7, "TxProfile", 10)["csChargingProfiles"]
        assert lim.expect("R1", tx) is None and lim.pending and lim.smart is None
        assert loaded(*SMART) == []
        assert lim.expect("R2", tx)  # still one at a time
        assert c.remote_start("R1") == "Accepted" and c.session_tag == "R1" and c.limit_a == 10
        assert w.duty == pilot.duty_for(10)
        assert lim.pending is False and lim.smart.profiles() == [(7, 1, "TxProfile", 0)]
        assert c.remote_stop(lambda ref: True) == "Accepted"
        lim._apply()
        assert lim.smart is None and loaded(*SMART) == []

        w.ev = "A"
        for _ in range(4):
            c.step()
        assert lim.expect("R3", tx) is None and loaded(*SMART) == []

        def scarce():
            raise MemoryError("memory allocation failed")

        lim.need = scarce
        w.ev = "C"
        assert c.remote_start("R3") == "Accepted"
        for _ in range(4):
            c.step()
        assert c.session_tag == "R3" and c.limit_a == 0 and not w.relay
        assert lim._apply() == 1 and c.limit_a == 0  # the task tries again a second later
        del lim.need
        lim._apply()
        assert c.limit_a == 10 and lim.pending is False and loaded(*SMART) == list(SMART)
    finally:
        limits._HOLD = saved


async def test_the_loop_runs_only_while_profiles_are_loaded():
    # app.py's limits task returns at once without profiles: no task, no frame; a profile
    # starts the loop (supervised), the last one gone ends it, the limit lifted.
    import supervisor

    kept = supervisor._kept
    _, c, lim = boot("loop")
    await lim.run()
    assert lim.active is False and lim.smart is None
    try:
        assert set_profile(lim, prof(1, "TxDefaultProfile", 10)) == "Accepted"
        assert lim.active is True
        await asyncio.sleep_ms(20)
        assert c.limit_a == 10
        assert lim.smart.clear() == "Accepted"
        lim.release()
        await asyncio.sleep_ms(20)
        assert lim.active is False and c.limit_a is None and loaded(*SMART) == []
    finally:
        supervisor._kept = kept


class Watching(Store):
    # Notes whether the profiles' parser is in the heap when evse/smart.py's Smart loads.
    parser_in = None

    def load(self, name, defaults, version=1):
        if name == "smart0":
            self.parser_in = "evse.profparse" in sys.modules
        return Store.load(self, name, defaults, version)


def test_a_remote_starts_txprofile_is_parsed_before_the_profiles_load():
    # With no profile installed the parser (evse/profparse.py) leaves the heap before the
    # profiles' module loads to hold the TxProfile: the two at once were the reference
    # workload's peak, where the parser found no block (issue 12). A refused one leaves
    # nothing loaded.
    store = Watching("parsefirst")
    c = Connector(World(), store, EventLog(store, 20), Config(store))
    lim = Limits(c, store)
    store.parser_in = None
    tx = prof(7, "TxProfile", 10)["csChargingProfiles"]
    with Logs():
        assert "stackLevel" in lim.expect("R0", dict(tx, stackLevel=99))
        assert lim.pending is False and lim.smart is None and store.parser_in is None
        assert loaded(*SMART) == [] and "evse.profparse" not in sys.modules
        assert lim.expect("R1", tx) is None
    assert store.parser_in is False and lim.pending[1][0] == 7
    assert loaded(*SMART) == list(SMART) and "evse.profparse" not in sys.modules


def test_a_remote_starts_txprofile_is_refused_when_it_would_not_fit():
    # 10 profiles installed (MaxChargingProfilesInstalled): a remote start's TxProfile would be
    # dropped at its session's start, so the CSMS hears no (transactions.py: Rejected) at once.
    _, _, lim = boot("full")
    with Logs():
        for i in range(10):
            r = prof(i + 1, "TxDefaultProfile", 6 + i, stackLevel=i // 2)
            r["connectorId"] = i % 2
            assert set_profile(lim, r) == "Accepted"
        tx = prof(20, "TxProfile", 10)["csChargingProfiles"]
        assert "10 profiles" in lim.expect("R1", tx)
        assert lim.pending is False and lim.smart.installed() == 10
        # one replacing an installed profile (same id) takes no room
        assert lim.expect("R1", dict(tx, chargingProfileId=4)) is None and lim.pending


async def test_with_the_clock_unset_the_lowest_limit_holds_until_it_is_set():
    # An ESP32 without RTC after a power cut, offline: the clock says 2000-01-01 and no dated
    # schedule can be read. The lowest limit the profiles could impose holds (never none: the
    # site's grid cap must not vanish) until the clock is set, which wakes the loop at once.
    import supervisor

    kept = supervisor._kept
    _, c, lim = boot("unset")
    await lim.run()
    real = clock.now()
    saved = clock._off, clock._source
    try:
        with Logs():
            assert set_profile(lim, dated(1, "ChargePointMaxProfile", real, [16])) == "Accepted"
            # 20 A now, 8 A from 10 days on
            assert set_profile(lim, dated(2, "TxDefaultProfile", real, [20, 8])) == "Accepted"
        await _turns()
        assert c.limit_a == 16
        # the power cut: unset, 60 s past the ESP32's epoch
        clock._source = None
        clock._off = 946684860 - (clock.now() - clock._off)
        assert not clock.trusted()
        lim.kick()
        await _turns()
        assert c.limit_a == 8  # the TxDefault's second period: the lowest any time allows
        with Logs():
            clock.set_utc(real)  # the CSMS's time (BootNotification): no wait of a minute
        await _turns()
        assert c.limit_a == 16
        lim.smart.clear()
        lim.release()
        await _turns()
        assert lim.active is False
    finally:
        clock._off, clock._source = saved
        supervisor._kept = kept


def dated(pid, purpose, now, limits):
    # An Absolute profile from an hour before now, one period of 10 days per limit.
    cp = prof(pid, purpose, 0, chargingProfileKind="Absolute")
    sch = cp["csChargingProfiles"]["chargingSchedule"]
    sch["startSchedule"] = clock.iso(now - 3600)
    sch["chargingSchedulePeriod"] = [{"startPeriod": i * 10 * 86400, "limit": a}
                                     for i, a in enumerate(limits)]
    return cp


async def _turns():
    # The loop's turns after a kick (it sleeps between them, woken by kick()).
    for _ in range(3):
        await asyncio.sleep_ms(0)
