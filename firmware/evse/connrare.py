# The connector's (evse/connector.py) seldom-run paths, out of the heap between their calls:
# the set-up at boot, the power-cut recovery, ChangeAvailability, a tag the CSMS refused
# mid-session, the owner's controls (mqtt/) and the peripherals' fault reports
# other than the meter's (the tasks at a session's edges: conntask.py). Each is a function of
# the connector `c`, loaded for the call by supervisor.rare() (connector.py's _rare(), or its
# caller's: those no resident code calls are not methods, which would be in the heap for good)
# and dropped after it (with .mpy files, a module's bytecode is in the heap while it is
# imported).
#
# The safety core stays in connector.py: nothing here closes the relay or stands between an
# input and the relay opening (every path ends in c._apply(); a stop here is c._stop(), which
# opens it first), and the poll, a session's start and a stop's journaling on no memory never
# load this module. A path that cannot load (MemoryError) raises to its caller before it changed
# anything: the command is answered or logged as failed there.
import log
from evse import offer

_TAG = "evse"
_SESSION_DOC = const("session")
_STOPPING_DOC = const("stopping")
_AVAIL_DOC = const("availability")
_RESERVATIONS_DOC = const("reservations")
FLASH_FULL = "flash full"  # on_start_dropped's why when the flash refused a start


def init(c, store):
    # The constructor's reading of the flash (connector.py sets its fields first).
    av = store.load(_AVAIL_DOC, {"operative": True, "scheduled": None})
    c.operative = av["operative"]
    c._scheduled = av["scheduled"]
    c.cp_wide = av.get("cp", not c.operative)  # (a document from before "cp": as it was shown)
    # Sessions the last power cut left unfinished: one stopped and waiting for its final
    # meter reading (its reason is known), and/or one still open (PowerLoss).
    st = store.load(_STOPPING_DOC, {"open": False})
    if st.get("open"):
        c.interrupted.append(st)
    op = store.load(_SESSION_DOC, {"open": False})
    if op.get("open") and not (st.get("open") and st["ref"] == op["ref"]):
        c.interrupted.append(op)
    if store.load(_RESERVATIONS_DOC, {"r": []})["r"]:
        r = c.reserving()
        for s in c.interrupted:
            # Started on a reservation, the power cut before its end was saved (_start saves
            # the session and journals its StartTransaction first, which names it: the CSMS
            # sees it used): it holds the connector no more.
            if s.get("res") is not None:
                r.used(s["res"])
        c.release_reservations()  # none left (used, or malformed): out again
    if c._scheduled is not None:
        # A change Scheduled for a session: no session outlives a boot (one the cut ended is
        # stopped now, before any new one can start; or the cut came as one ended, after its
        # document went and before the change was saved), so the change applies now, from the
        # first status reported (1.6 5.2).
        c.operative = c._scheduled
        c._scheduled = None
        log.info(_TAG, "connector inoperative: scheduled for the session a power cut ended")
        try:
            store.save(_AVAIL_DOC, {"operative": c.operative, "scheduled": None, "cp": c.cp_wide})
        except OSError as e:
            # Flash full or failing: in force all the same, the boot goes on. The document
            # still says Scheduled: the next boot applies it again.
            log.exc(_TAG, "availability not saved", e)
    if not c.operative and c.reservations is not None:
        # Made Unavailable, the power cut before its reservation's end was saved
        # (connector._set_operative): it ends now, as it would have (1.6 5.13).
        c.reservations.end(1, "unavailable")


def device_fault(c, code, active):
    # connector.device_fault() past the meter's own fault (which opens the relay there, before
    # this module is loaded).
    if code == "GridMeterFailure":
        # The supply-side meter (load balancing): not a fault of this connector, charging
        # goes on at the fallback offer. Reported as OtherError + vendorErrorCode, not as
        # PowerMeterFailure, which a CSMS reads as "this charger's energy figures are bad".
        if active != c.grid_failed:
            c.grid_failed = active
            (log.warn if active else log.info)(_TAG, "grid meter %s", "failing: offer at the "
                                               "fallback" if active else "answering again")
            c._report()
    elif code == "ReaderFailure":
        if active != c.reader_failed:
            c.reader_failed = active
            (log.warn if active else log.info)(_TAG, "ReaderFailure%s",
                                               "" if active else " cleared")
            c._report()
    faults = set(c.device_faults)
    (faults.add if active else faults.discard)(code)
    c.device_faults = tuple(sorted(faults))
    c.board.telemetry("device_faults", list(c.device_faults))


def take_interrupted(c):
    # Sessions a power cut left unfinished, each once: (session, reason). A stopped one
    # keeps its reason; an open one ends with PowerLoss at its last known meter value.
    out = []
    for s in c.interrupted:
        if "meter_stop" not in s:
            e = c.energy_wh()
            if e is not None and e >= s.get("last_wh", 0):
                s["meter_stop"] = e
            else:
                s["meter_stop"] = s.get("last_wh", s["meter_start"])
            s["stop_t"] = s.get("last_t", s["start"])
            s["stop_ms"] = s.get("last_ms", s["stop_t"] * 1000)
        out.append((s, s.get("stopped") or "PowerLoss"))
    c.interrupted = []
    c.power_cut_stops = out  # read-only, for listeners that start later (mqtt/)
    for s, reason in out:  # listeners that started before (mqtt/) hear of them now
        c._emit("on_power_cut_stop", s, reason)
    return out


def forget_interrupted(c, kept=()):
    # Called once the stops of the interrupted sessions are journaled. An EV plugged in
    # meanwhile (or still plugged in from before the cut) starts now: its plug was refused
    # by can_start() while the old session's documents were still there. kept: the refs of
    # sessions whose stop is not on flash (held in RAM: the flash full): their documents stay
    # until it is (stop_journaled), a power cut meanwhile ends them again at the next boot.
    for doc in (_STOPPING_DOC, _SESSION_DOC):
        if not kept or c.store.load(doc, {}).get("ref") not in kept:
            c.store.remove(doc)
    if kept:
        c.stop_held = True  # Finishing until it is on flash (stop_journaled)
    c._try_start()


def refuse_start(c, s, e, doc=True):
    # connector._start(): the session's document or its StartTransaction did not reach the
    # flash (full or failing, e), or an earlier stop is still in RAM (doc False: the document
    # there is that stop's): no session (the relay never closed for it), its document gone,
    # the owner told as for a refused tap, the CSMS by the listeners (on_start_dropped: the
    # transactions feature sends a StatusNotification with InternalError, "flash full").
    # An OSError 12 (ENOMEM): no memory for the StartTransaction (transactions.py), the same
    # but for what the log and the CSMS are told.
    c.session = None
    if doc:
        c.store.remove(_SESSION_DOC)
    why = "no memory" if getattr(e, "errno", None) == 12 else FLASH_FULL
    log.error(_TAG, "session for %s refused: %s (%s)", s["tag"],
              why if why != FLASH_FULL else "flash full or failing", e)
    c.events.add("start_refused", tag=s["tag"], why="memory" if why != FLASH_FULL else "flash")
    c._feedback(False)
    c._emit("on_start_dropped", s["tag"], s["src"], why)
    c._apply()


def stop_journaled(c, ref):
    # The StopTransaction of session ref, kept in RAM (the flash was full, or no memory), is
    # on flash now: its session's documents go (connector._journal_stop() kept them), so the
    # next boot does not end it again; the connector is available again (Finishing meanwhile).
    c.stop_held = False
    for doc in (_STOPPING_DOC, _SESSION_DOC):
        if c.store.load(doc, {}).get("ref") == ref and (c.session is None
                                                         or c.session["ref"] != ref):
            c.store.remove(doc)
            log.info(_TAG, "session %s: stop on flash, %s document removed", ref, doc)


def deauthorize(c, ref, stop):
    # The CSMS refused the tag of a running session (StartTransaction.conf not Accepted).
    s = c.session
    if s is None or s["ref"] != ref:
        return
    if stop:
        c._stop("DeAuthorized")
        return
    # The transaction is kept. MaxEnergyOnInvalidId (Wh, 0: none) lets the charge go on until
    # the transaction has delivered that much from its start (as 2.0.1's E05 says of the same
    # key): connector.py's poll stops the delivery there; no meter, no such allowance.
    cap = c.config.get("MaxEnergyOnInvalidId")
    e = c.energy_wh()
    if cap and e is not None and e - s["meter_start"] < cap:
        s["cap_wh"] = s["meter_start"] + cap
        log.info(_TAG, "charging on up to %d Wh of the transaction (MaxEnergyOnInvalidId)", cap)
        return
    s["auth"] = False  # deliver no more energy
    c._apply()


def change_availability(c, operative, whole=False):
    # whole: ChangeAvailability for connector 0, the charge point, whose own status (connector
    # 0) then goes Unavailable too; for connector 1 only the connector's does. Operative for
    # either makes both operative again: with one connector, the charge point charges again.
    if operative:
        c.cp_wide = False
    elif whole:
        c.cp_wide = True
    if c.session is not None and not operative:
        c._scheduled = operative
        c.store.save(_AVAIL_DOC, {"operative": c.operative, "scheduled": operative,
                                  "cp": c.cp_wide})
        return "Scheduled"
    c._set_operative(operative)
    if operative:
        c._try_start()  # an EV plugged in meanwhile: free charging starts it now
    return "Accepted"


# -- owner controls (mqtt/, home automation) -------------------------------------------------
# They only lower the offer or switch free charging: the relay still follows _apply(), and
# the smart-charging limit and the supply's headroom still cap whatever the owner sets.
def set_owner_pause(c, paused):
    c.owner_paused = bool(paused)
    c.offer_a = c._compute_offer()
    c._apply()


def set_owner_limit(c, amps):
    # amps: None (no limit of the owner's) or 6 .. the installer's maximum; checked here too.
    if amps is not None and not offer.MIN_A <= amps <= c.config.get("BorneMaxCurrent"):
        raise ValueError("limit out of range")
    c.owner_limit_a = amps
    c.offer_a = c._compute_offer()
    c._apply()


def set_free_charging(c, on):
    # The BorneFreeCharging vendor key (the same one the CSMS may change); an EV already
    # plugged in starts at once when it goes on.
    st = c.config.set("BorneFreeCharging", "true" if on else "false")
    if st == "Accepted" and on:
        free_charging_on(c)
    c._apply()
    return st


def free_charging_on(c):
    # BorneFreeCharging went on (here, or by ChangeConfiguration: configuration.py): an EV
    # already plugged in starts now, not at its next plug-in.
    c._try_start()
