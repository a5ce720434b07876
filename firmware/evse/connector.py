# The connector state machine: the single owner of plug state, authorization, session, relay and
# OCPP status. Nothing else in the firmware calls board.set_relay().
#
# Safety invariant (DESIGN.md section 8): safety.py states it and watches the pilot. Every input
# goes through _apply(), which opens the relay first, before anything is reported.
import asyncio
import gc
import os
import time

import clock
import log
from evse import offer, pilot, safety
from supervisor import wake

_TAG = const("evse")
_POLL_MS = const(20)
_FEEDBACK_MS = const(250)  # contactor + auxiliary contact settle time before we judge feedback
_CHECKPOINT_S = const(60)  # session meter checkpoint: one flash write a minute while charging
_SETTLE_MS = const(100)  # pilot settling after a PWM change before the diode check counts
_SESSION_DOC = const("session")
_STOPPING_DOC = const("stopping")  # a stopped session waiting for its final meter reading
_AVAIL_DOC = const("availability")
# The installer's limit (cable, breaker) in A, a configuration key: the most any offer can be.
_MAX_KEY = const("BorneMaxCurrent")
_OOM_HOLD_MS = const(2000)  # the relay stays open this long after a MemoryError in the poll
# Latched faults (safety.LATCHED): they clear only with the EV unplugged (pilot A), the RCD input
# healthy and the contactor's feedback reading open, all together this long; or by a restart.
_UNLATCH_MS = const(3000)
# An EV must follow a lower offer within 5 s (IEC 61851-1): one that draws more than the highest
# offer in force during the last 5 s + 10 % (at least + 1 A) on any phase, the relay closed that
# long, gets the relay opened until it stops asking (pilot out of C/D). A lower offer counts 5 s
# after it, a higher one at once: an offer that keeps moving puts nothing off.
_FOLLOW_MS = const(5000)
_SLICES = const(6)  # the highest offer is kept per slice of follow_ms / 5, the last 6 of them


def _drop_reservations():
    from supervisor import drop

    drop("evse.reservation")


def _session_view(c):
    # The running session as the simulation's state shows it.
    s = c.session
    if s is None:
        return None
    return {"tag": s["tag"], "start": clock.iso(s["start"]), "meter_start": s["meter_start"],
            "transaction_id": s.get("tx")}


def _rare(name, *args):
    # A seldom-run path (evse/connrare.py: the set-up at boot, the power-cut recovery,
    # ChangeAvailability, the owner's controls, most device faults): loaded for the call, out of
    # the heap after it. A MemoryError loading it reaches the caller, nothing changed.
    from supervisor import rare

    return rare("evse.connrare", name, *args)


def _task(name, *args):
    # The coroutine of a task at a session's edge (evse/conntask.py: a tap's decision, a stop's
    # final reading), its module out of the heap again once the task ends. With the code in the
    # heap it stays once loaded, as a tap's decision does (ocpp_client/authorization.py): a tap
    # after a squeeze had fragmented the heap found no block for it, and was lost.
    from supervisor import code_in_heap, rare

    if code_in_heap():
        from evse import conntask

        return getattr(conntask, name)(*args)
    return rare("evse.conntask", name, *args)


class Connector:
    # Inputs: the board's pilot/feedback/RCD (polled and on edges), tags, OCPP commands,
    # reservation changes (it listens to them; the reservations are loaded on use: reserving()).
    # Outputs: relay + pilot PWM (here only), events to the objects given to listen(), each
    # called if it has the method (the listener convention of the firmware):
    #   on_status(cid, status, error_code), on_tx_starting() (raises OSError: no start yet),
    #   on_tx_start(session), on_tx_stop(session, reason),
    #   on_start_dropped(id_tag, source, why): an authorized start (source "tag", "remote")
    #   will not become a session (ConnectionTimeOut, refused, unavailable, another start)
    # An OSError raised from one counts only from the transactions feature (its StartTransaction
    # or StopTransaction not on flash: the start refused, the stop held: _emit); any other's is
    # logged like any failure, or a start it refused could be one whose StartTransaction is
    # journaled already (limits.py listens before the transactions feature).
    # The session dict an event carries is the listener's to read, never to change.
    def __init__(self, board, store, events, config, meter=None):
        self.board = board
        self.store = store
        self.events = events
        self.config = config  # OCPP Config: ConnectionTimeOut, StopTransactionOn..., vendor keys
        self.meter = meter
        self.listeners = []
        # async fn(id_tag) -> (status, parent_id_tag): how a tap is decided (the OCPP client
        # sets it: clientrare.py)
        self.authorizer = None
        self.feedback = None  # fn(accepted): LED flash + buzzer at the charger (app.py sets it)
        self.cp = "A"
        self._watch = safety.PilotWatch()
        self._low_mv = board.pilot_low_mv  # bound once: the poll allocates no method object
        self._oom_at = None  # ticks_ms of the last MemoryError in the poll (relay held open)
        self._napper = None  # run()'s task while it pauses between polls (_edges wakes it)
        self._edged = False  # an edge came during a poll: the next one now
        self.oom_hold_ms = _OOM_HOLD_MS
        self.unlatch_ms = _UNLATCH_MS
        self.follow_ms = _FOLLOW_MS
        self._over_a = None  # the current above which the EV overdraws the cached offer
        self._over_hi = [0] * _SLICES  # the highest _over_a per slice (_check_draw)
        self._hi_i = 0  # the running slice
        self.overdrawn = False  # the EV ignored the offer: relay open until it leaves C/D
        self._sound_at = None  # ticks_ms since a latched fault's inputs all read healthy
        self._burst = 0
        self.oom_count = 0  # MemoryErrors the poll survived (fail safe: relay opened)
        self._duty_offer = None  # the offer the cached duty below is for
        self._duty_val = 100
        self.relay = False
        self._relay_at = time.ticks_ms()
        self._pwm_at = self._hi_at = self._relay_at
        self._duty = None  # nothing on the wire known: the first _apply() drives the PWM
        self.settle_ms = _SETTLE_MS
        self.faults = {}  # kind -> error code
        self.reader_failed = False
        self.device_faults = ()
        self.last_tag = None
        self.offer_a = self.config.get(_MAX_KEY)
        self.limit_a = None  # smart-charging limit, None = no limit
        self.headroom_a = None  # what the main fuse leaves per phase (supply.py), None = no limit
        self.grid_failed = False  # the supply-side meter is silent: headroom at its fallback
        self.owner_paused = False  # the owner's pause (mqtt/): the offer is 0 while it holds
        self.owner_limit_a = None  # the owner's current limit (mqtt/), None = none
        self.session = None  # dict, persisted; see _new_session
        self.pending = None  # (id_tag, parent, deadline_ms, remote) authorized, waiting for plug
        self.finishing = False
        # A stop not on flash yet (held in RAM, owed: _journal_stop): no new user until it is,
        # and the CSMS has no StopTransaction yet: Finishing, not Available (1.6 4.9).
        self.stop_held = False
        self.restarting = False  # stop_for(): a restart comes, no session starts before it
        self.unmetered = False  # a start waits for the meter's first reading (step() tries it)
        # evse.reservation.Reservations while one is held (or found on flash), else None: the
        # module is out of the heap and nothing is reserved.
        self.reservations = None
        self.operative = True  # the CSMS's ChangeAvailability (persisted)
        self.held = False  # hold(): a firmware update installs, nothing starts (not persisted)
        self._scheduled = None
        self.cp_wide = False  # connector 0 Unavailable too: made inoperative as a whole
        self._status = {0: None, 1: None}
        self._vendor = None  # connector 1's vendorErrorCode last reported (vendor_error)
        self.authorizing = False  # a tap being decided (conntask.py; authorization.attach reads it)
        self._checkpoint_ms = 0  # time.ticks_ms of the last checkpoint (or the start)
        # Sessions the last power cut left unfinished (stopped, waiting for the final reading;
        # still open: PowerLoss), ended by the client at boot (take_interrupted()).
        self.interrupted = []
        self.finishing_stops = 0
        self.power_cut_stops = ()  # take_interrupted()'s answer, kept for this boot
        # From the flash: reservations, availability, the sessions a power cut left open.
        _rare("init", self, store)

    # -- wiring ------------------------------------------------------------------------------
    def listen(self, obj):
        self.listeners.append(obj)

    # -- reservations, loaded on use (like an OCPP feature: ocpp_client/features.py) ----------
    def reserving(self):
        # -> the reservations (evse.reservation.Reservations), loaded first if none is held.
        r = self.reservations
        if r is None:
            try:
                from evse.reservation import Reservations

                r = Reservations(self.store,
                                 zero_ok=self.config.get("ReserveConnectorZeroSupported"))
            except MemoryError:
                _drop_reservations()  # half loaded: out again, the next use tries anew
                raise
            r.listen(self)
            self.reservations = r
        return r

    def release_reservations(self):
        # When no reservation is left, the object and its module leave the heap (supervisor.drop).
        r = self.reservations
        if r is not None and r.next_expiry() is None:
            self.reservations = None
            r = None
            _drop_reservations()

    def on_reservation(self, cid, r):
        # A reservation was made, cancelled, taken or expired: the status follows at once.
        if r is None:
            self.release_reservations()  # the last one ended: out of the heap
            self._try_start()  # a free-charging EV it held back starts now
        self._apply()

    # -- read-only views ---------------------------------------------------------------------
    @property
    def session_ref(self):
        s = self.session
        return s["ref"] if s else None

    @property
    def session_start(self):
        # Unix seconds the running session started, or None.
        s = self.session
        return s["start"] if s else None

    @property
    def session_start_ms(self):
        # Unix milliseconds the running session started (its StartTransaction's time), or None.
        s = self.session
        return (s["start_ms"] if "start_ms" in s else s["start"] * 1000) if s else None

    @property
    def session_tag(self):
        s = self.session
        return s["tag"] if s else None

    def energy_wh(self):
        m = self.meter
        if m is None:
            return None
        return m.energy_wh()

    def status_of(self, cid):
        st = self._status.get(cid)
        return st if st else self._compute_status(cid)

    def _emit(self, name, *args):
        # A listener's failure (a MemoryError included) is its own: logged, the others and the
        # connector go on. -> the OSError the transactions feature raised (the one listener
        # with on_tx_starting), or None: its record not on flash. Another's (limits.py writing
        # the offer: an ESP32's LEDC error) refused a start whose StartTransaction was journaled.
        err = None
        for lst in self.listeners:
            try:
                fn = getattr(lst, name, None)
                if fn is not None:
                    fn(*args)
            except Exception as e:
                log.exc(_TAG, "listener %s" % name, e)
                if isinstance(e, OSError) and hasattr(lst, "on_tx_starting"):
                    err = e
        return err

    # -- the safety core ---------------------------------------------------------------------
    def relay_allowed(self):
        if self._oom_at is not None:
            # Held open after a MemoryError in the poll (_fail_safe): no relay chatter while the
            # heap is exhausted; the first complete poll after the hold decides afresh.
            if time.ticks_diff(time.ticks_ms(), self._oom_at) < self.oom_hold_ms:
                return False
            self._oom_at = None
        if self.overdrawn or self._duty is None:  # (None: a PWM write failed, _apply retries it)
            return False
        return safety.relay_allowed(self.cp, self.session, self._available(), self.faults,
                                    self.offer_a, self._watch.diode_verified)

    def _apply(self):
        want = self.relay_allowed()
        if want != self.relay:
            # Opening is never delayed; closing only happens when every condition holds.
            self.board.set_relay(want)
            self.relay = want
            self._relay_at = time.ticks_ms()
            log.info(_TAG, "relay %s", "closed" if want else "open")
        duty = self._duty_for() if self.offering() else 100
        if duty != self._duty:
            if duty == 100 or self._duty is None or self._duty == 100:
                self._watch.diode_verified = False  # PWM (re)starts: the diode is checked again
            # Recorded once on the wire: a write that fails (MemoryError) may have left a higher
            # offer there. The relay opens, and stays open (relay_allowed) until the next
            # _apply() has written the duty anew and the diode is checked again.
            self._duty = None
            try:
                self.board.set_pwm(duty)
            except Exception:
                self._fail_safe()
                raise
            self._duty = duty
            self._pwm_at = time.ticks_ms()
        self._report()

    def _duty_for(self):
        # pilot.duty_for() of the offer, computed when the offer changes: a duty is a float
        # (an allocation), the poll asks for it every 20 ms.
        a = self.offer_a
        if a != self._duty_offer:
            self._duty_val = pilot.duty_for(a)
            self._duty_offer = a
            self._over_a = o = a + (a / 10 if a > 10 else 1)  # (a float: computed once, here)
            if o > self._over_hi[self._hi_i]:
                self._over_hi[self._hi_i] = o  # a higher offer counts at once (_check_draw)
        return self._duty_val

    def _fail_safe(self):
        # No memory somewhere in the poll or a decision: whatever the step left half done, the
        # relay opens now, allocating nothing (board.set_relay(False) must not allocate either),
        # and stays open for _OOM_HOLD_MS. Already open, it stays open: never a close from here.
        self.board.set_relay(False)
        self.relay = False
        self._relay_at = self._oom_at = time.ticks_ms()
        self.oom_count += 1

    def _available(self):
        # Operative (the CSMS's word) and not held by a firmware update (hold()).
        return self.operative and not self.held

    def offering(self):
        # The pilot offers offer_a (PWM runs), whether the EV takes it or not: Current.Offered.
        return safety.offering(self.session, self._available(), self.faults, self.offer_a)

    def _compute_offer(self):
        a = offer.offer(self.config.get(_MAX_KEY), self.limit_a, self.headroom_a)
        if self.owner_paused:
            return 0
        if self.owner_limit_a is not None and a > self.owner_limit_a:
            a = offer.offer(self.owner_limit_a)  # rounded and floored at 6 A like the others
        return a

    def set_limit(self, amps):
        # From smart charging: None = no limit. Below 6 A the offer pauses (SuspendedEVSE).
        self.limit_a = amps
        self.offer_a = self._compute_offer()
        self._apply()

    def set_headroom(self, amps):
        # From load balancing (supply.py): the supply's per-phase headroom, None = no limit. The
        # hysteresis is the caller's; a drop reaches the pilot (or opens the relay) here at once.
        if amps == self.headroom_a:
            return
        self.headroom_a = amps
        self.offer_a = self._compute_offer()
        self._apply()

    def output_ms(self):
        # When the relay or the pilot's offer last changed (time.ticks_ms): the EV's draw may
        # still be moving for a while after it.
        if time.ticks_diff(self._pwm_at, self._relay_at) > 0:
            return self._pwm_at
        return self._relay_at

    # -- faults ----------------------------------------------------------------------------
    def _set_fault(self, kind, on):
        if on and kind not in self.faults:
            self.faults[kind] = safety.FAULT_CODES[kind]
            self._apply()  # relay opens before the fault is reported or logged
            self._sound_at = None
            log.warn(_TAG, "fault %s (%s)", kind, self.faults[kind])
            self.events.add("fault", what=kind)
            self._report()
            if self.reservations is not None:
                self.reservations.end(1, "faulted")
            if kind in safety.LATCHED:
                # No reclosing within this plug-in (a 6 mA DC RCD module releases as soon as the
                # opening stopped the fault current): the session ends. 1.6's EmergencyStop
                # means the button; the fault itself went out as Faulted just before.
                self._stop("Other")
        elif not on and kind in self.faults:
            del self.faults[kind]
            log.info(_TAG, "fault %s cleared", kind)
            self.events.add("fault_cleared", what=kind)
            self._apply()
            self._try_start()  # a free-charging EV plugged in meanwhile: no replug needed

    def device_fault(self, code, active):
        # A peripheral fault from the drivers (OCPP ChargePointErrorCode). A failed meter opens
        # the relay here first (no energy may flow that cannot be measured); a failed reader is
        # reported but charging by remote start goes on (connrare.py: the rest of it).
        if code == "PowerMeterFailure":
            self._set_fault("meter", active)
        _rare("device_fault", self, code, active)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self):
        # Never ends: a MemoryError (or a bug) in a step opens the relay (_fail_safe) and the
        # poll goes on; app.py restarts this task should it end anyway, and a restart opens the
        # relay first.
        b = self.board
        b.set_relay(False)
        self.relay = False
        b.set_pwm(100)
        self._duty = 100
        edges = None
        try:
            self._apply()
            # The pause between polls is a plain sleep (asyncio's preallocated singleton) that
            # an edge ends at once (_edges); without the memory for that task, polls alone.
            try:
                edges = asyncio.create_task(self._edges())
            except MemoryError:
                pass
            while True:
                if not self._edged:
                    self._napper = asyncio.current_task()
                    try:
                        await asyncio.sleep_ms(_POLL_MS)
                    finally:
                        self._napper = None
                self._edged = False
                self.poll()
        finally:
            self._fail_safe()  # ended anyway (cancelled, a bug): nobody watches the inputs
            if edges is not None:
                edges.cancel()

    async def _edges(self):
        # The board's edges (a ThreadSafeFlag an interrupt sets) wake run() out of its pause:
        # one waiter for good, where a wait_for_ms at each pause made a task, two coroutines and
        # a TimeoutError 50 times a second. An edge during a poll makes the next one at once.
        flag = self.board.edge
        while True:
            await flag.wait()
            t = self._napper
            if t is None:
                self._edged = True
            else:
                self._napper = None
                wake(t)

    def poll(self):
        # One look at the inputs (step()), failing safe: a MemoryError (or a bug) anywhere in
        # it, whatever it left half done, opens the relay (_fail_safe) and is logged once per
        # burst. -> True if the step completed.
        try:
            self.step()
            self._burst = 0
            return True
        except Exception as e:
            self._fail_safe()
            gc.collect()
            if not self._burst:  # once per burst: a log line needs memory too
                try:
                    log.exc(_TAG, "poll failed: relay opened", e)
                except MemoryError:
                    pass
            self._burst += 1
            return False

    def step(self):
        b = self.board
        # RCD first: it is the most urgent input. Latched: its release clears nothing here.
        rcd = b.rcd_tripped()
        if rcd:
            self._set_fault("rcd", True)
        # The low plateau is only meaningful once PWM has run a little (ADC and filter settle).
        pwm_on = (self._duty is not None and self._duty < 100
                  and time.ticks_diff(time.ticks_ms(), self._pwm_at) >= self.settle_ms)
        w = self._watch
        st = w.feed(b.pilot_mv(), self._low_mv, pwm_on, "diode" in self.faults)
        if st != self.cp:
            prev, self.cp = self.cp, st
            if st not in ("C", "D"):
                self.overdrawn = False  # the EV asks anew: it may try again
                if self.relay:
                    self._apply()  # EV stopped asking or left: open before anything else
            log.info(_TAG, "pilot %s -> %s", prev, st)
            b.telemetry("cp", st)
            self._on_pilot(prev, st)
        self._set_fault("pilot", w.pilot_fault)
        self._set_fault("diode", w.diode_fault)
        fb = b.relay_feedback()
        self._check_feedback(fb)
        self._check_latched(rcd, fb)
        self._check_timeouts()
        if self.unmetered and self.energy_wh() is not None:
            self.unmetered = False
            self._try_start()
        self._apply()

    def _check_feedback(self, fb):
        # Both faults latch (safety.LATCHED, _check_latched): one reading of the auxiliary
        # contact that agrees again proves nothing (a welded contact's bounce).
        if time.ticks_diff(time.ticks_ms(), self._relay_at) < _FEEDBACK_MS:
            return
        if fb and not self.relay:
            self._set_fault("weld", True)
        elif not fb and self.relay and not self._watch.leaving:
            # (While the pilot reads out of C/D, a board's pilot-loss interrupt may have opened
            # the contactor before the debounced state follows, which then opens the relay
            # here: not a relay failure. Still open with the pilot back in C/D is one.)
            self._set_fault("relay", True)

    def _check_latched(self, rcd, fb):
        # A latched fault clears once the EV is unplugged and the inputs read sound (RCD healthy,
        # feedback open: the relay is open while any fault holds) for unlatch_ms without a break.
        f = self.faults
        if not ("rcd" in f or "weld" in f or "relay" in f):
            return
        if self.cp != "A" or rcd or fb:
            self._sound_at = None
        elif self._sound_at is None:
            self._sound_at = time.ticks_ms()
        elif time.ticks_diff(time.ticks_ms(), self._sound_at) >= self.unlatch_ms:
            for k in safety.LATCHED:
                self._set_fault(k, False)

    def _check_timeouts(self):
        p = self.pending
        if p and time.ticks_diff(time.ticks_ms(), p[2]) > 0:
            log.info(_TAG, "no EV plugged within ConnectionTimeOut: authorization dropped")
            self._drop_pending("ConnectionTimeOut")
            self.events.add("connection_timeout")
        s = self.session
        if s and self.relay and self.meter is not None:
            cap = s.get("cap_wh")  # a refused tag's allowance (connrare.deauthorize)
            if cap is not None and (self.energy_wh() or 0) >= cap:
                del s["cap_wh"]
                s["auth"] = False
                log.info(_TAG, "MaxEnergyOnInvalidId reached: energy delivery stopped")
                self._apply()
            self._check_draw()
            # ticks, not clock.now(): the poll allocates nothing while charging steadily
            if time.ticks_diff(time.ticks_ms(), self._checkpoint_ms) >= _CHECKPOINT_S * 1000:
                self._checkpoint(clock.now())
        r = self.reservations
        if r is not None and r.next_expiry() is not None and r.next_expiry() <= clock.now():
            for cid, rid in r.expired():
                log.info(_TAG, "reservation %d expired", rid)
                self.events.add("reservation_expired", id=rid)

    def _check_draw(self):
        # The EV's draw against the highest offer in force during the last follow_ms (+ 10 %:
        # _over_a), once the relay has been closed that long. Kept per slice of follow_ms / 5,
        # the last _SLICES: a lower offer counts follow_ms (to a slice more) after it, however
        # often it moves. (Comparisons of floats only: nothing allocated per poll.)
        now = time.ticks_ms()
        lim = self._over_a
        hi = self._over_hi
        if lim is None:
            return
        if time.ticks_diff(now, self._hi_at) >= self.follow_ms // (_SLICES - 1):
            self._hi_at = now
            self._hi_i = i = (self._hi_i + 1) % _SLICES
            hi[i] = lim
        if time.ticks_diff(now, self._relay_at) < self.follow_ms:
            return
        for o in hi:
            if o > lim:
                lim = o
        L = getattr(self.meter, "latest", None)
        if L is None or not L.get("ok"):
            return  # (a failed meter is a fault of its own)
        for i in L.get("current_a") or ():
            if i is not None and i > lim:
                self.overdrawn = True
                self._apply()  # open first
                log.warn(_TAG, "EV draws %s A, offer %s A: relay opened until it stops asking",
                         i, self.offer_a)
                self._event("overdraw")
                return

    def _checkpoint(self, now):
        # Not written when the register has not moved since the last one (SuspendedEV: flash
        # wear for nothing). The flash full or failing: logged (once a checkpoint, a minute),
        # charging goes on; the journaled MeterValues carry the register and time as well.
        e = self.energy_wh()
        s = self.session
        if e is not None and s:
            self._checkpoint_ms = time.ticks_ms()
            if e == s["last_wh"]:
                return
            s["last_wh"] = e
            s["last_t"] = now
            s["last_ms"] = clock.now_ms()
            try:
                self.store.save(_SESSION_DOC, s)
            except OSError as ex:
                log.exc(_TAG, "session checkpoint", ex)

    def _on_pilot(self, prev, st):
        if st == "A":
            self.finishing = False
            if prev != "A":
                self._event("unplugged")
            s = self.session
            if s and not s.get("stopped"):
                if self.config.get("StopTransactionOnEVSideDisconnect"):
                    self._stop("EVDisconnected")
        elif prev == "A" and st in ("B", "C", "D"):
            self._event("plugged")
            self._try_start()

    def _event(self, name):
        # A line of the event log, which needs memory: without it, the line is left out and
        # what the charge needs next still happens.
        try:
            self.events.add(name)
        except MemoryError:
            pass

    # -- sessions --------------------------------------------------------------------------
    def _may_start(self, id_tag, parent):
        r = self.reservations
        return r is None or not r.reserved(1) or r.may_start(id_tag, parent, 1)

    def can_start(self):
        # Not before the sessions a power cut interrupted are ended (the client does it at boot,
        # after one meter reading): their documents must not be mistaken for a new one's.
        return (self.session is None and self._available() and not self.faults
                and not self.interrupted and not self.restarting)

    def _try_start(self):
        # (not before the last stop's final reading is journaled: conntask.finish_stop tries
        # again then)
        if (self.session is not None or self.cp not in ("B", "C", "D") or self.finishing
                or self.finishing_stops):
            return
        if not self.can_start():
            return
        if self.meter is not None and self.energy_wh() is None:
            # No reading yet (a boot, the meter silent): a session's meterStart must be its
            # register, never 0, or the whole register is billed. The start waits for it.
            self.unmetered = True
            return
        p = self.pending
        if p:
            self.pending = None
            self._start(p[0], p[1], p[3])
        elif self.config.get("BorneFreeCharging"):
            tag = self.config.get("BorneFreeChargingIdTag")
            if self._may_start(tag, None):
                self._start(tag, None, "free")

    def _start(self, id_tag, parent, source):
        now_ms = clock.now_ms()
        now = now_ms // 1000
        e = self.energy_wh()
        r = self.reservations
        res = r.applying(1) if r is not None else None  # taken once the start is on flash
        res = res["reservationId"] if res and r.may_start(id_tag, parent, 1) else None
        s = {
            "open": True,
            # Unique across boots: one offline after a power cut counts from 2000-01-01, and a
            # start at a fixed delay after boot has the same second and ms each time; two
            # sessions under one ref share their StopTransaction's bookkeeping (transactions.py).
            "ref": "%d-%d" % (now, int.from_bytes(os.urandom(3), "big")),
            "tag": id_tag,
            "parent": parent,
            "auth": True,
            "src": source,
            "start": now,
            "start_ms": now_ms,
            "meter_start": e if e is not None else 0,
            "last_wh": e if e is not None else 0,
            "last_t": now,
            "last_ms": now_ms,
            "res": res,
        }
        try:  # Room for the keys a session gains (tx, by, the stop's four) taken now: a stop in
            # a heap with no larger block for its dict opened the relay, then failed to end the
            # session (deleted slots are reused, the table never shrinks).
            for i in range(8):
                s[i] = 0
        except MemoryError:
            pass
        for i in range(8):
            s.pop(i, None)
        # Persist before telling anyone: after a power cut this record ends the session. The
        # relay closes only once it and the StartTransaction are on flash (meanwhile the PWM
        # has not run, the diode is unchecked: no close): the flash full or failing (or no memory
        # for the StartTransaction) refuses the start (connrare.refuse_start: the refused tap's
        # signal, a log line, the CSMS told).
        # A stop held in RAM goes to flash first (on_tx_starting): its session's document is
        # the one this would replace, and it must outlive a power cut until then.
        ex = self._emit("on_tx_starting")
        if ex is not None:
            return _rare("refuse_start", self, s, ex, False)
        try:
            self.store.save(_SESSION_DOC, s)
        except OSError as ex:
            return _rare("refuse_start", self, s, ex)
        self.session = s
        self._checkpoint_ms = time.ticks_ms()
        ex = self._emit("on_tx_start", s)  # first: the StartTransaction's journal
        if ex is not None:
            self.session = None  # (first: should the module not load, no session either)
            return _rare("refuse_start", self, s, ex)
        if res is not None:
            r.take(1, id_tag, parent)
        try:  # lines that need memory: without it they are left out, the session goes on
            log.info(_TAG, "session %s started for %s (%s)", s["ref"], id_tag, source)
            self.events.add("session_start", tag=id_tag, src=source)
        except MemoryError:
            pass
        self._apply()

    def _stop(self, reason):
        s = self.session
        if s is None or s.get("stopped"):
            return False
        s["stopped"] = reason
        self._apply()  # relay open first
        e = self.energy_wh()
        if e is None:
            # The meter failing: its last good reading, which MeterValues may have carried
            # already (the session's checkpoint can be a minute older).
            L = getattr(self.meter, "latest", None)
            e = L["energy_wh"] if L else None
        last = s.get("last_wh", s["meter_start"])
        s["meter_stop"] = e if e is not None and e >= last else last
        s["stop_ms"] = clock.now_ms()
        s["stop_t"] = s["stop_ms"] // 1000
        self.session = None
        self.finishing = self.cp in ("B", "C", "D")
        m = self.meter
        if (m is not None and hasattr(m, "fresh") and not self.finishing_stops
                and self._save_stopping(s)):
            # The register is read once more now that no current flows, so meterStop is exact,
            # not up to one poll old. The stop is on flash meanwhile: a power cut still ends the
            # session with this reason.
            self.store.remove(_SESSION_DOC)
            self.finishing_stops += 1
            try:
                asyncio.create_task(_task("finish_stop", self, s, reason))
            except MemoryError:
                # No memory for the task (or its code, conntask.py): the stop is journaled now,
                # at the last reading.
                gc.collect()
                self._journal_stop(s, reason, _STOPPING_DOC)
                self.finishing_stops -= 1
        else:
            self._journal_stop(s, reason, _SESSION_DOC)
        if self._scheduled is not None:
            self._set_operative(self._scheduled)
        self._apply()
        return True

    def _save_stopping(self, s):
        # -> False without the memory or the flash (full, failing) to write it: the stop is
        # journaled at once instead, at the last reading (not lost, nor left to the next boot).
        try:
            self.store.save(_STOPPING_DOC, s)
            return True
        except MemoryError:
            gc.collect()
        except OSError as e:
            log.exc(_TAG, "stopping document", e)
        return False

    def _journal_stop(self, s, reason, doc):
        # The listeners (the StopTransaction's journal) first: a MemoryError in the log line or
        # the event log after them loses nothing of the bill. The session's document (doc)
        # goes once the stop is on flash; kept in RAM instead (flash full, no memory) or owed
        # (no memory to hold it either: transactions.py tries it again), it stays until the
        # transactions feature journals it (connrare.stop_journaled) or the next boot ends the
        # session from it.
        # (stop_held: until connrare.stop_journaled; should that fail, until the next stop)
        self.stop_held = self._emit("on_tx_stop", s, reason) is not None
        if not self.stop_held:
            self.store.remove(doc)
        try:
            log.info(_TAG, "session %s stopped: %s", s["ref"], reason)
            self.events.add("session_stop", reason=reason, wh=s["meter_stop"] - s["meter_start"])
        except MemoryError:
            pass

    # -- commands ----------------------------------------------------------------------------
    def on_tag(self, id_tag):
        # A card at the reader (one call per presentation; idTag = upper-case hex UID). Same
        # card (or same parent, decided after authorization) stops; otherwise it authorizes a
        # new session.
        self.last_tag = id_tag
        log.info(_TAG, "tag %s presented at connector 1", id_tag)
        self.board.telemetry("tag", id_tag)
        s = self.session
        if s and not s.get("stopped") and id_tag.upper() == s["tag"].upper():
            # (idTags are CiString20: a remote start's may be the same UID in lower case)
            self._stop("Local")
            return
        if self.authorizing:
            # one tap decided at a time: the owner of this card sees no signal, the log says why
            log.info(_TAG, "tag %s ignored: another card's authorization is under way", id_tag)
            return
        if self.authorizer is None:
            return
        # Decided in conntask.authorize_tag(): without the memory for it, the tap is lost, as
        # without the memory for its task (the next one tries again).
        asyncio.create_task(_task("authorize_tag", self, id_tag))

    def _feedback(self, accepted):
        if self.feedback is not None:
            self.feedback(accepted)

    def _authorized(self, id_tag, parent, source):
        # -> False when no session can start now.
        if not self.can_start():
            return False
        timeout = self.config.get("ConnectionTimeOut")
        self._drop_pending("another start")  # the last authorization wins
        self.finishing = False  # an idTag again after a stop: Finishing -> Preparing (1.6 4.9)
        self.pending = (id_tag, parent, time.ticks_add(time.ticks_ms(), timeout * 1000), source)
        self._try_start()
        self._apply()
        return True

    def _drop_pending(self, why):
        p = self.pending
        if p is not None:
            self.pending = None
            self._emit("on_start_dropped", p[0], p[3], why)

    def remote_start(self, id_tag, authorized=True):
        # RemoteStartTransaction: the OCPP client has checked the request (and authorized the
        # tag if AuthorizeRemoteTxRequests). Returns "Accepted" or "Rejected".
        if not self.can_start() or self.pending is not None:
            return "Rejected"
        if not self._may_start(id_tag, None):
            return "Rejected"
        if authorized:
            self._authorized(id_tag, None, "remote")
        return "Accepted"

    def remote_authorized(self, id_tag, parent):
        # The CSMS accepted the tag of a RemoteStartTransaction (AuthorizeRemoteTxRequests).
        # A reservation for another tag taken meanwhile holds the connector (1.6 5.12).
        if not self._may_start(id_tag, parent) or not self._authorized(id_tag, parent, "remote"):
            self._emit("on_start_dropped", id_tag, "remote", "cannot start now")

    def remote_refused(self, id_tag):
        # ... or refused it: the remote start waiting for the plug is dropped.
        p = self.pending
        if p is not None and p[0] == id_tag:
            self.pending = None
        self._emit("on_start_dropped", id_tag, "remote", "idTag refused")

    def remote_stop(self, tx_match):
        # tx_match(session ref): is the running session the one the CSMS names?
        s = self.session
        if s is None or s.get("stopped") or not tx_match(s["ref"]):
            return "Rejected"
        self._stop("Remote")
        return "Accepted"

    def stop_for(self, reason):
        # Reset, reboot: end the session with this reason, and start none before the restart (a
        # start authorized for the next plug-in is dropped, a tap or remote start meanwhile is
        # refused: the restart would cut it off). True if one was running.
        self.restarting = True
        self._drop_pending(reason)
        return self._stop(reason)

    def change_availability(self, operative, whole=False):
        # -> "Accepted", or "Scheduled" while a session runs and it goes inoperative. whole:
        # for connector 0, the charge point (connrare.change_availability).
        return _rare("change_availability", self, operative, whole)

    def _set_operative(self, operative):
        self._scheduled = None
        was = self.operative
        self.operative = operative
        try:
            # Saved before the reservation ends: a cut between the two boots the connector
            # Unavailable, the reservation ended then (connrare.init), not Available without it.
            self.store.save(_AVAIL_DOC, {"operative": operative, "scheduled": None,
                                         "cp": self.cp_wide})
        finally:  # (not saved: in force all the same, the caller told)
            if operative != was:
                if not operative:
                    self.finishing = False  # (operative again, cable in: Preparing, 1.6 4.9)
                    self._drop_pending("unavailable")
                    if self.reservations is not None:
                        self.reservations.end(1, "unavailable")
                log.info(_TAG, "connector %s", "operative" if operative else "inoperative")
        self._apply()

    # -- status ------------------------------------------------------------------------------
    def _compute_status(self, cid):
        if cid == 0:
            if not self.operative and self.cp_wide:
                return ("Unavailable", "NoError")
            return ("Available", "NoError")
        st = self._status_1()
        if self.grid_failed and st[1] == "NoError":
            return (st[0], "OtherError")  # vendor_error() says which
        if self.reader_failed and st[1] == "NoError":
            return (st[0], "ReaderFailure")
        return st

    def vendor_error(self, cid, status, error_code):
        # vendorErrorCode for a status being reported, or None: what an OtherError is (1.6:
        # "more information in vendorErrorCode"), a pilot or diode fault or a silent grid meter.
        if cid != 1 or error_code != "OtherError":
            return None
        if status == "Faulted":
            for k in safety.FAULT_ORDER:  # the fault the status names (_status_1)
                if k in self.faults:
                    return "PilotFault" if k == "pilot" else "DiodeFault" if k == "diode" else None
            return None
        return "GridMeterFailure" if self.grid_failed else None

    def _status_1(self):
        if self.faults:
            for k in safety.FAULT_ORDER:
                if k in self.faults:
                    return ("Faulted", self.faults[k])
        s = self.session
        if s is not None:
            if self.cp in ("C", "D"):
                return ("Charging", "NoError") if self.relay else ("SuspendedEVSE", "NoError")
            # B, or A: unplugged with StopTransactionOnEVSideDisconnect false, the transaction
            # kept (Preparing would say none is ongoing; OCTT TC_005_3_CS). The relay is open.
            if not s["auth"] or offer.paused(self.offer_a) or not self._available():
                return ("SuspendedEVSE", "NoError")
            return ("SuspendedEV", "NoError")
        if not self._available():
            # before Finishing: the CSMS hears its change has happened (1.6 5.2), cable in or not
            return ("Unavailable", "NoError")
        if self.finishing and self.cp in ("B", "C", "D") or self.stop_held:
            return ("Finishing", "NoError")
        if self.pending is not None or self.cp in ("B", "C", "D"):
            return ("Preparing", "NoError")
        if self.reservations is not None and self.reservations.reserved(1):
            return ("Reserved", "NoError")
        return ("Available", "NoError")

    def _report(self):
        for cid in (0, 1):
            st = self._compute_status(cid)
            # A fault that turns into another under the same OtherError (a shorted pilot read
            # as a missing diode for a sample, then as state E) is reported again: the CSMS
            # learns what it is from vendorErrorCode.
            v = self.vendor_error(cid, st[0], st[1]) if cid else None
            if st != self._status[cid] or (cid and v != self._vendor):
                self._status[cid] = st
                if cid:
                    self._vendor = v
                # Listeners first: a MemoryError in the log line or the telemetry after this
                # must not keep the new status from the OCPP client.
                self._emit("on_status", cid, st[0], st[1])
                log.info(_TAG, "connector %d: %s (%s)", cid, st[0], st[1])
                if cid == 1:
                    self.board.telemetry("session", _session_view(self))

    def set_tx_id(self, ref, tx_id, parent=None):
        # The CSMS's transactionId for the running session (shown in the simulation's state),
        # and its StartTransaction.conf's parentIdTag: a remote or offline start learns it only
        # there, and a card of the group stops the session (1.6 3.10; conntask.authorize_tag).
        # On flash with the session: it still holds after a power cut.
        s = self.session
        if s is not None and s["ref"] == ref:
            s["tx"] = tx_id
            if parent and parent != s.get("parent"):
                s["parent"] = parent
                try:
                    self.store.save(_SESSION_DOC, s)
                except OSError as ex:  # kept in RAM: the group stops it until a power cut
                    log.exc(_TAG, "session parent", ex)
            self.board.telemetry("session", _session_view(self))

    # -- firmware updates (ota/) -------------------------------------------------------------
    def started(self):
        # The connector task has driven the outputs at least once (a trial version's proof).
        return self._duty is not None

    def hold(self, on):
        # Unavailable while a firmware update installs (never during a session: the updater
        # waits for it to end), not persisted: the restart that follows ends it, or hold(False)
        # when the installation failed (a method: that must not need a load). A flag of its
        # own, apart from `operative`: a ChangeAvailability meanwhile starts nothing during the
        # installation and is what holds after it.
        self.held = on
        if on:
            self._drop_pending("unavailable")
        self._apply()
        if not on:
            self._try_start()
