# The transaction queue's (txqueue.py) seldom-run path, out of the heap between its uses: a
# queued message that failed, answered with a CALLERROR or not answered at all; and at boot, the
# sessions a power cut left unfinished (transactions.py: journaled, end_interrupted). Loaded by
# supervisor.rare() for the failure and dropped after it. A MemoryError loading it reaches the
# session's worker, which pauses and delivers again (the record is still journaled).
import log
from ocpp_client.txqueue import START, STOP, METER
from supervisor import rare

_CONN = const("evse.connrare")

_TAG = "txq"
_LEARN_S = 2  # a tagLearned's pause before it goes again (not a transaction message)
# A retry's wait at most (the interval x the attempts, 1.6 4.10: a day x 100 passed the range
# of an ESP32's ticks, 2**29 ms: OverflowError in ticks_add); a day is the interval's own bound.
_MAX_WAIT_S = const(86400)


def tx_id(tid):
    # StartTransaction.conf's transactionId when it is not a JSON integer: a loosely typed
    # backend's "123" or 123.0 (PHP's database strings) names transaction 123, which its stop
    # must carry; -1 (the CSMS's transaction left open) only where no number can be read.
    if type(tid) in (str, float):
        try:
            n = int(float(tid))
            if n == float(tid) and -2147483648 <= n <= 2147483647:
                log.warn(_TAG, "transactionId %r is not an integer: taken as %d", tid, n)
                return n
        except (ValueError, OverflowError):
            pass
    log.warn(_TAG, "StartTransaction answered without a usable transactionId (%r): -1", tid)
    return -1


async def failed(q, e, seq, rec, attempts, errs):
    # e: the CallError or CallTimeout of record `rec` (journal seq), after `attempts` failed
    # attempts, `errs` of them CALLERRORs (the ".N" of the next id: txqueue.py deliver). -> the
    # new (attempts, errs, pause in s before the retry), (0, 0, None) once it is dropped (acked,
    # logged), or (attempts, errs, the answer's payload) when its answer came late. No answer
    # counts only where the link answers a probe (the CSMS ignores this message,
    # clientrare.answers); on a dead link the CallTimeout is raised, nothing counted, and the
    # session reconnects: a half-open link drops no billing data.
    action = rec["a"]
    code = getattr(e, "code", None)
    if code is None:
        from supervisor import rare

        s = q.session
        v = s is not None and await rare("ocpp_client.clientrare", "answers", s, e)
        if not v:
            raise e
        code = "no answer"
        if v is not True:  # its answer, late (the link stalled): taken as the answer
            log.warn(_TAG, "%s answered late", action)
            if v[0] == 3 and len(v) > 2 and isinstance(v[2], dict):
                return attempts, errs, v[2]  # delivered: deliver() goes on as if in time
            if v[0] == 4:  # a CALLERROR (a malformed one too, as rpcrare.bad_answer takes it)
                code = v[2] if len(v) > 2 and isinstance(v[2], str) else "GenericError"
                errs += 1
    else:
        errs += 1
    attempts += 1
    limit = q.config.get("TransactionMessageAttempts")
    if action not in (START, STOP, METER):
        # Not a transaction message (a SecurityEventNotification): the retries are the
        # transaction messages' (1.6 4.10). A CSMS without the security extension refuses (or
        # ignores) every one; waiting out retries would hold up the transaction messages and
        # the statuses behind it for minutes. A tagLearned (vendor.py) unanswered is sent
        # again (the owner was told the card was added), after _LEARN_S; refused, dropped.
        limit = limit if action == "DataTransfer" and code == "no answer" else 1
    elif action == METER and (attempts > 1 or getattr(q, "_mvdrop", -1) == q.delivered) \
            and _superseded(q, seq, rec["r"]):
        # Refused or ignored (the link alive: answers() above) repeatedly, with a newer
        # reading or the stop of its session queued behind it, whose register carries on what
        # it said: dropped now. Its retries' pauses (and, unanswered, a reconnection each) held
        # the queue in order while a reading queued each sample interval: a CSMS refusing every
        # one (the defaults: 60 s, 3 attempts, 60 s) left the stop, and the next start, hours
        # late. "Repeatedly" (1.6 lets a transaction message be skipped only then): its second
        # failure, or its first where the reading before it was dropped and no queued message
        # went through since (_mvdrop: q.delivered then); a one-off failure (a CSMS's hiccup
        # under a backlog) is retried, its sample kept. The latest reading of a session still
        # gets all its retries.
        limit = attempts
    if attempts >= limit:
        log.error(_TAG, "%s dropped after %d attempts (%s)", action, attempts, code)
        if action == METER:
            q._mvdrop = q.delivered
        # Saved before its ack line, as a delivered message's (txqueue.deliver's hook).
        flash = True
        ref = rec["r"]
        try:
            if action == START:
                q._set_id(ref, -1)
            elif action == STOP and ref not in q.done:
                q.end(ref)
            elif q._unsaved:
                q._save_ids()
        except OSError:
            flash = False  # kept in RAM, the ack too: sent again after a reboot
        q.j.ack(seq, flash)
        if action == STOP:
            q._forget(ref)  # as a delivered stop's (after its ack: a repeat needs the id)
        return 0, 0, None
    wait = _LEARN_S if action == "DataTransfer" else \
        min(q.config.get("TransactionMessageRetryInterval") * attempts, _MAX_WAIT_S)
    log.warn(_TAG, "%s: %s; retry %d in %d s", action, code, attempts, wait)
    if rec.get("i"):
        # Saved before the retry goes out: after a power cut it goes again under the id of its
        # last attempt (the CSMS may have booked that one), counting on (txqueue.deliver).
        try:
            q.store.save("txretry", {"i": rec["i"], "a": attempts, "e": errs})
        except (OSError, MemoryError) as x:
            log.exc(_TAG, "its attempts", x)
    if code == "no answer":
        # OCPP-J 1.6 4.1.4: a message id is used once per connection (MaEVe drops a reused
        # one). The repeat keeps its id (the CSMS may have booked the first, and can tell), so
        # it goes on a new connection: the link closes (1000), and the reconnection's delivery
        # waits out the retry before anything else.
        import time

        from ocpp_client.errors import Disconnected
        from supervisor import rare

        q.retry_at = time.ticks_add(time.ticks_ms(), wait * 1000)
        q._attempts, q._errs, q._aseq = attempts, errs, seq
        s = q.session
        ws = s.rpc.ws if s is not None else None
        if ws is not None:
            await rare("ocpp_client.wsrare", "hang_up", ws, 1000)
        raise Disconnected("its repeat goes on a new connection")
    return attempts, errs, wait


def _superseded(q, seq, ref):
    # A MeterValues or StopTransaction of session `ref` queued after record `seq`.
    for r in q._held[:q._nheld]:
        if r is not None and r.get("r") == ref and r["a"] in (METER, STOP):
            return True
    it = q.j.pending()
    try:
        for s, r in it:
            if s > seq and r.get("r") == ref and r.get("a") in (METER, STOP):
                return True
    finally:
        it.close()
    return False


def tidy(q, sessions):
    # At boot: the transactionIds that no session a power cut left unfinished and no queued
    # message needs (a cut between a stop's answer and its id's removal: txqueue._forget) are
    # forgotten, or the document (and the dict kept in RAM for good) would grow with them.
    need = {s["ref"] for s in sessions or ()}
    for _, rec in q.j.pending():
        need.add(rec.get("r"))
    for ref in [r for r in q.ids if r not in need]:
        log.info(_TAG, "transactionId of %s: its session is over, forgotten", ref)
        q._forget(ref, False)


def pay(t):
    # The stops the transactions feature owes (transactions.py on_tx_stop: no memory to journal
    # or hold them), in order. Each journaled has its session's documents removed; one held in
    # RAM keeps them until it reaches the flash (on_stop_journaled). A MemoryError leaves it and
    # those after it owed.
    o = t.owed
    while o:
        s, reason = o[0]
        held = False
        try:
            t.stop_now(s, reason)
        except OSError:
            held = True
        o.pop(0)
        if not held:
            t.stop_journaled(s["ref"])
        try:
            log.info(_TAG, "session %s: its owed StopTransaction %s", s["ref"],
                     "kept in RAM" if held else "journaled")
        except MemoryError:
            pass


_SHIFTS = "txshiftms"  # {"s": [[boot prefix, clock.shift_ms], ...]} oldest first (version 2)
_OLD_SHIFTS = "txshift"  # (boot prefix -> the same in s, as a build before 2026-12-06 saved it)
_FLOOR = "2025"  # a time before it was stamped by a clock not yet set (clock._FLOOR)
_KEEP = const(8)  # boots' steps kept at most (each one's records still queued)


def _shifts(q):
    # The saved steps, oldest boot first. A build before 2026-12-07 kept a dict (version 1),
    # whose order MicroPython does not keep: its dropping of "the oldest" dropped any boot's,
    # the newest's too, whose queued records then went out at 2000-01-01 (chaos mixed 100023).
    d = q.store.load(_SHIFTS, {"s": []}, 2)
    s = d.pop("s")
    return [[p, d[p]] for p in d] + s


def shifted(q):
    # The clock was set in a boot that began without it, records queued (txqueue._on_clock):
    # its step is saved by the boot's id prefix, for those sent after a reboot. The journal is
    # in order, so the boots before the one of the oldest queued record have nothing left to
    # move: their steps go.
    import clock

    d = [e for e in _shifts(q) if e[0] != q._prefix]
    d.append([q._prefix, clock.shift_ms])
    item = q._next()
    if item is not None:
        p = str(item[1].get("i", "")).split("-", 1)[0]
        for k in range(len(d)):
            if d[k][0] == p:
                d = d[k:]
                break
    try:
        q.store.save(_SHIFTS, {"s": d[-_KEEP:]}, 2)
    except OSError as e:
        log.exc(_TAG, "clock shift", e)


def restamp(q, rec, payload):
    # A queued message holding times a clock not yet set stamped (txqueue._stale): moved by
    # the step that set it in the record's boot, if known (this boot's, or one saved).
    import clock

    p = rec["i"].split("-", 1)[0]
    shift = None
    if p == q._prefix:
        shift = clock.shift_ms
    else:
        for e in _shifts(q):
            if e[0] == p:
                shift = e[1]
                break
        if shift is None:
            shift = q.store.load(_OLD_SHIFTS, {}).get(p, 0) * 1000
    if shift:
        _move(payload, shift)


def _move(p, shift):
    # The times in a message (its own, its MeterValues', its transactionData's) stamped before
    # _FLOOR, moved by `shift` ms: the charger's clock ran on meanwhile, so the move is exact.
    # The resolution stays.
    import clock

    if isinstance(p, list):
        for x in p:
            _move(x, shift)
        return
    if not isinstance(p, dict):
        return
    for k, v in p.items():
        if k == "timestamp" and isinstance(v, str) and v[:4] < _FLOOR:
            ms = clock.parse_iso(v) * 1000 + (int(v[20:23]) if v[19:20] == "." else 0)
            ms += shift
            p[k] = clock.iso_ms(ms) if v[19:20] == "." else clock.iso(ms // 1000)
        elif isinstance(v, (list, dict)):
            _move(v, shift)


def journaled(q, sessions):
    # ref -> [its start journaled or answered, its stop journaled, (Wh, ms) reported].
    if not sessions:
        return None
    out = {}
    for s in sessions:
        ref = s["ref"]
        out[ref] = [q.tx_id(ref) is not None, False, q.reported(ref)]
    for _, rec in q.j.pending():
        f = out.get(rec["r"])
        if f is not None:
            if rec["a"] == START:
                f[0] = True
            elif rec["a"] == STOP:
                f[1] = True
    return out


async def end_interrupted(t):
    # Sessions a power cut left unfinished end now: an open one with PowerLoss, a stopped
    # one with its own reason. A StartTransaction is journaled first if the cut came before
    # that; a stop already journaled is not repeated. The bill is exact: the meter is read
    # now (the register stood still while the charger was off), and an open session's stop
    # is never below a register already reported for it nor earlier than the last instant
    # the charger knew it was running (its last MeterValues or minute checkpoint). The
    # connector starts no new session before this is done.
    if not t.connector.interrupted:
        return
    m = t.s.meter
    if m is not None and hasattr(m, "fresh"):
        try:
            await m.fresh(3000)
        except Exception as e:
            log.exc("ocpp", "meter at boot", e)
    # A session whose stop went already (delivered or dropped: txqueue's done) left its
    # document behind (a removal that failed): not interrupted, never booked again; the
    # document goes with the others (forget_interrupted).
    c = t.connector
    done = t.txq.done
    c.interrupted = [s for s in c.interrupted if s["ref"] not in done]
    # The flash full (or no memory): each session is tried, a stop kept in RAM is journaled
    # before anything newer and its documents stay until then (kept); one that could not
    # even be kept stays to the next boot. The connector goes on either way.
    todo = rare(_CONN, "take_interrupted", c)
    cut, t._cut = t._cut, None
    kept = []
    for s, reason in todo:
        ref = s["ref"]
        started, stopped, reported = cut[ref]
        if stopped:
            continue
        _floor(s, *reported)
        log.warn("ocpp", "session %s was unfinished at power loss: stopping it (%s)",
                 ref, reason)
        try:
            if not started:
                t.on_tx_start(s, True)
            t.on_tx_stop(s, reason)
        except Exception as e:  # (OSError: kept in RAM, or refused; MemoryError)
            kept.append(ref)
            log.exc("ocpp", "session %s: stop not on flash" % ref, e)
        t.s.events.add("session_stop", reason=reason)
    rare(_CONN, "forget_interrupted", t.connector, kept)


def _floor(s, wh, ms):
    # An interrupted open session's stop: never below a register already reported for it, never
    # before the last time it was known running (nor its start).
    if "stop_ms" not in s:
        s["stop_ms"] = s.get("last_ms", s["stop_t"] * 1000)
    if wh is not None and wh > s["meter_stop"]:
        s["meter_stop"] = wh
    if ms is not None and ms > s["stop_ms"]:
        s["stop_ms"] = ms
