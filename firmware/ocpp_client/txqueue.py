# Transaction-related messages (StartTransaction, StopTransaction, transaction MeterValues),
# journaled on flash before they are sent and acked only after the CSMS's answer, so a power cut
# or an outage at any instant loses none and reorders none (but intermediate MeterValues thinned
# in a long outage: _THIN).
#
# A record names its session by a local reference; the transactionId is filled in at send time
# from the StartTransaction.conf (kept in a small document), or -1 when that start could never
# be delivered. Flash budget: one journal line per message plus one ack line; the id document
# is rewritten twice per StartTransaction.conf (both copies) and per StopTransaction.conf (its
# ref among those done, then its id forgotten).
import asyncio
import binascii
import gc
import os
import time

import clock
import log
from supervisor import rare
from ocpp_client.errors import CallError, CallTimeout, NotSent

_TAG = const("txq")
_IDS = const("txids")
_DONE = const("~")  # in the id document: the refs of the last sessions whose stop went
_NDONE = const(8)
_RETRY = const("txretry")  # the oldest message's failed attempts (txqrare.failed saves them)
MAX_RECORDS = const(400)  # the journal's bound (store/journal.py; hotspot/reset.py opens it)
_HELD = const(8)  # records kept in RAM while the journal has no memory to write them
_HELD_RETRY_MS = const(1000)
# A long outage: past _THIN bytes of journal (~10 h of MeterValues at 60 s, of a ~3 MiB flash)
# the intermediate MeterValues are thinned to one each _SPARSE_MS, none past 2 x _THIN, so the
# flash keeps room for every session's Start and Stop (always journaled), the settings, the list.
_THIN = const(262144)
_SPARSE_MS = const(900000)
START = "StartTransaction"
STOP = "StopTransaction"
METER = "MeterValues"


def _stale(p):
    # Does a queued message hold a time stamped before the clock was set in its boot (a year
    # before clock._FLOOR's)?
    for k in ("meterValue", "transactionData"):
        v = p.get(k)
        if v and v[0].get("timestamp", "")[:4] < "2025":
            return True
    return p.get("timestamp", "9")[:4] < "2025"


class TxQueue:
    def __init__(self, store, config):
        self.store = store
        self.config = config
        self.j = store.journal("txq", MAX_RECORDS)
        self.ids = store.load(_IDS, {})  # session ref -> transactionId
        # The refs of the last sessions whose stop was delivered (or dropped), newest first, kept
        # with the ids: a session's document a failed removal left is then not taken at boot for
        # one a power cut interrupted, and booked again (transactions._journaled).
        self.done = self.ids.pop(_DONE, [])
        self.gone = None  # the transactionId of the session whose stop went last (smartcharging)
        # An id the flash refused (full) is in RAM only: saved before any ack line (whose
        # watermark would pass its StartTransaction, which a reboot then would not repeat: the
        # id lost, the stop at -1), and tried again at the next add() and deliver().
        self._unsaved = False
        self.session = None  # object with kick(): told when a message is queued
        self.on_start_conf = None  # fn(ref, conf, payload): the answer and what it answers
        self.on_stop_conf = None  # fn(ref, conf, payload)
        self.delivered = 0
        self._prefix = binascii.hexlify(os.urandom(4)).decode()
        self._n = 0
        # A record stamped while the clock was not set (a boot offline after a power cut) goes
        # out with its times moved by the step that set it, that boot's (saved for later boots:
        # txqrare.shifted()).
        clock.listeners.append(self._on_clock)
        # No memory to journal a record even after the journal's own retries: the record (built
        # already) waits here, in order, and is journaled before anything newer, by the next
        # add() or by the session's deliver() (which sends nothing that is not on flash). The
        # slots are preallocated: keeping a record in one allocates nothing.
        self._held = [None] * _HELD
        self._nheld = 0
        self._flash = None  # the OSError of the last write that failed (flash full), or None
        self.on_stop_journaled = None  # fn(ref): a held StopTransaction reached the flash
        self._held_at = 0  # ticks_ms: the held records are tried again then (deliver())
        # The oldest message, answered with a CALLERROR (or ignored: no answer on a live link),
        # is sent again at retry_at (ticks_ms), after `_attempts` (`_errs` of them CALLERRORs):
        # the session's regular delivery returns meanwhile, so its statuses and heartbeats are
        # not held up behind the wait (minutes, with the defaults).
        self.retry_at = None
        self._attempts = 0
        self._errs = 0
        self._sparse = 0  # the time (ms) of the last MeterValues kept while thinning
        self.thinned = 0  # MeterValues dropped by the thinning since boot
        self._aseq = None  # the journal seq of the message they count
        # Those saved at its last failure: a reboot must not forget them, or the message would
        # go again under its first id, which the CSMS refused, not under the one it may have
        # booked (taken when that message's record comes up).
        self._saved = store.load(_RETRY, {})

    def __len__(self):
        return len(self.j) + self._nheld

    def _on_clock(self, step, source):
        if clock.shift_ms and len(self.j):
            rare("ocpp_client.txqrare", "shifted", self)

    def add(self, action, payload, ref, extra=None, hold=False):
        # Durable once this returns. The record carries the message id it is sent under, every
        # time: a repeat after a reconnect or a power cut is the first frame byte for byte (the
        # frame is built from the record as read back from flash, the same text each time). The
        # id is unique across boots and factory resets (random per boot + a counter).
        # extra: more fields kept with the record (a MeterValues' register and time, read back
        # when a power cut ends the session). hold: a StartTransaction the flash refuses is
        # kept in RAM too (a power cut's recovery: its session ran), not raised; None: a record
        # not on flash is raised, never kept in RAM (a learned card's report, vendor.py).
        if action == METER and self._thin(extra):
            return True
        if self._unsaved:
            self._retry_ids()  # (first: the line may compact the journal, acks and all)
        self._n += 1
        rec = {"a": action, "p": payload, "r": ref, "i": "%s-q%d" % (self._prefix, self._n)}
        if extra:
            rec.update(extra)
        done = self._journal(rec, hold)
        if self.session is not None:
            self.session.kick()
        return done

    def _thin(self, extra):
        # -> True for a MeterValues the thinning drops (see _THIN).
        try:
            size = os.stat(self.j.path)[6]
        except OSError:
            return False
        if size < _THIN:
            return False
        ms = extra.get("ms", 0) if extra else 0
        if size < 2 * _THIN and not 0 <= ms - self._sparse < _SPARSE_MS:  # (a clock step back)
            self._sparse = ms
            return False
        if not self.thinned:
            log.warn(_TAG, "%d bytes queued: MeterValues thinned", size)
        self.thinned += 1
        return True

    def _journal(self, rec, hold=False):
        # -> True once on flash, False when kept in RAM (held: journaled by the next add() or
        # deliver()). Held without memory, or with the flash full or failing (OSError), but a
        # StartTransaction the flash refuses raises: its session does not start (connector.py);
        # hold None: raised, never held.
        a = rec["a"]
        if self.flush_held():  # (none held: clears _flash)
            try:
                self.j.append(rec)  # retried after a collection by the journal itself
                return True
            except MemoryError:
                gc.collect()
            except OSError as e:
                self._flash = e
        if hold is None or (a == START and self._flash is not None and not hold):
            raise self._flash or MemoryError()
        if self._nheld >= (_HELD if a != METER else _HELD - 2):  # (2 kept for a stop)
            raise MemoryError("no memory to journal a %s, none left to hold it" % a)
        self._held[self._nheld] = rec
        self._nheld += 1
        log.warn(_TAG, "%s kept in RAM: %s", a,
                 "no memory to journal it yet" if self._flash is None else "flash full")
        return False

    def flush_held(self):
        # Journal the records kept in RAM, oldest first. -> True when none is left. A held
        # StopTransaction's session document goes once it is on flash (on_stop_journaled).
        n = self._nheld
        i = 0
        try:
            while i < n:
                rec = self._held[i]
                self.j.append(rec)
                self._held[i] = None
                i += 1
                if rec["a"] == STOP and self.on_stop_journaled is not None:
                    self.on_stop_journaled(rec["r"])
            self._flash = None
        except MemoryError:
            gc.collect()
        except OSError as e:
            self._flash = e
        if i:
            h = self._held
            for k in range(i, n):
                h[k - i] = h[k]
                h[k] = None
            self._nheld = n - i
            log.info(_TAG, "%d record(s) kept in RAM journaled", i)
        return not self._nheld

    def reported(self, ref):
        # (highest Energy.Active.Import.Register in Wh, latest time in ms) of the MeterValues
        # journaled for a session and still on flash, or (None, None).
        wh = t = None
        for _, rec in self.j.records():
            if rec.get("r") == ref and rec.get("a") == METER:
                w, ms = rec.get("wh"), rec.get("ms")
                if w is not None and (wh is None or w > wh):
                    wh = w
                if ms is not None and (t is None or ms > t):
                    t = ms
        return wh, t

    def tx_id(self, ref):
        return self.ids.get(ref)

    def _set_id(self, ref, tx_id):
        self.ids[ref] = tx_id
        self._unsaved = True
        self._save_ids()

    def _save_ids(self):
        # Raises OSError (flash full or failing): the ids stay in RAM, _unsaved. Saved twice,
        # so the copy before (.bak, what load() takes when this one is spoiled) holds the
        # newest id too: one lost sends its session's stop at -1, the CSMS's transaction open.
        d = self._doc(self.ids, self.done)
        self.store.save(_IDS, d)
        self._unsaved = False
        try:
            self.store.save(_IDS, d)
        except (OSError, MemoryError):
            pass  # (one copy: as good as it was)

    def _doc(self, ids, done):
        if not done:
            return ids
        d = dict(ids)
        d[_DONE] = done
        return d

    def _retry_ids(self):
        try:
            self._save_ids()
            log.info(_TAG, "transactionIds saved")
        except OSError:
            pass

    def end(self, ref):
        # A session's stop went (answered, or dropped): its ref on the list of those done,
        # saved with its id still there before the stop's ack line (OSError: in RAM, _unsaved,
        # the ack in RAM too). A document its removal left behind is then never taken at boot
        # for a session a power cut interrupted: its stop is repeated (at least once), not
        # booked again.
        self.done = ([ref] + self.done)[:_NDONE]
        self._unsaved = True
        self.store.save(_IDS, self._doc(self.ids, self.done))  # (_forget's save: the 2nd copy)
        self._unsaved = False

    def _forget(self, ref, ended=True):
        # Saved first, then forgotten: a save that fails (flash full) keeps the id, which the
        # stop repeated after a reboot needs (at least once); logged, delivery goes on. ended:
        # its stop went now, its ref goes on the list of those done (end() put it there).
        ids = self.ids
        if ref in ids:
            rest = {k: v for k, v in ids.items() if k != ref}
            done = ([ref] + self.done)[:_NDONE] if ended and ref not in self.done else self.done
            try:
                self.store.save(_IDS, self._doc(rest, done))
                self.ids = rest
                self.done = done
                self.gone = ids[ref]
                self._unsaved = False
            except OSError as e:
                log.exc(_TAG, "transactionId of %s kept" % ref, e)

    def _next(self):
        # The oldest pending record, or None: one in RAM at a time (a MeterValues record is
        # ~0.4 KB as objects). Cheap to ask per message: the journal's pass starts where its
        # last one found the oldest, and it is closed before the record is sent and acked.
        g = self.j.pending()
        try:
            for item in g:
                return item
        finally:
            g.close()
        return None

    def waits(self):
        # True while the oldest message waits for its retry, or records kept in RAM wait for the
        # flash (or the memory) to take them (_held_at: no spin meanwhile, heartbeats go out).
        r = self.retry_at
        if r is None and self._nheld:
            r = self._held_at
        return r is not None and time.ticks_diff(r, time.ticks_ms()) > 0

    async def _wake(self, s):
        await asyncio.sleep(s)
        if self.session is not None:
            self.session.kick()

    async def deliver(self, rpc, n=-1, patient=None):
        # Sends queued messages in order until the queue is empty, n of them are done (n < 0:
        # no bound) or the link fails (the exception propagates to the session, which
        # reconnects). Patient (by default when bounded: a reconnection's queue, which goes
        # before the statuses), a retry's wait is waited out here; if not, it returns and the
        # session calls again.
        if patient is None:
            patient = n >= 0
        if self._unsaved:
            self._retry_ids()
        if self.waits():
            if not patient:
                return
            r = self.retry_at
            await asyncio.sleep_ms(time.ticks_diff(self._held_at if r is None else r,
                                                   time.ticks_ms()))
        self.retry_at = None
        # The oldest message's failed attempts stay on the queue until it is done: a link lost
        # meanwhile (the worker cancelled, or the dead link raised) must not reset them, or its
        # repeat would go under its first id rather than the one the CSMS may have booked.
        attempts, errs = self._attempts, self._errs
        item = None
        while True:
            if item is None:
                if not n:
                    return
                n -= 1
                held = self._nheld and not self.flush_held()
                item = self._next()
                if item is None:
                    self._saved = None  # (nothing of an earlier boot left for it to name)
                    if held:  # still no memory or flash for them: tried again later, no spin
                        self._held_at = time.ticks_add(time.ticks_ms(), _HELD_RETRY_MS)
                        asyncio.create_task(self._wake(_HELD_RETRY_MS // 1000))
                    return
            seq, rec = item
            if seq != self._aseq:  # (those of a message answered as its worker was cancelled)
                attempts = errs = 0
                r = self._saved
                # (its failures before a power cut; kept until its own record comes: one whose
                # ack was lost in a reboot may go before it)
                if r and r.get("i") == rec.get("i"):
                    self._saved = None
                    attempts, errs = self._attempts, self._errs = r["a"], r["e"]
                    self._aseq = seq
            action, payload, ref = rec["a"], rec["p"], rec["r"]
            if action == START and ref in self.ids:
                # Answered before a power cut came between the id and the ack: never twice.
                self.j.ack(seq)
                item = None
                continue
            if action in (STOP, METER):  # (a SecurityEventNotification is queued here too)
                tid = self.ids.get(ref)
                payload["transactionId"] = tid if tid is not None else -1
            if _stale(payload):
                rare("ocpp_client.txqrare", "restamp", self, rec, payload)
            def hook(conf, seq=seq, action=action, ref=ref):
                # Runs the instant the answer is read: the id and the ack reach flash before
                # anything else happens, which keeps the window for a retransmission after a
                # power cut as small as it can be. (OCPP 1.6 delivers at least once: a cut
                # between the CSMS's answer and this write still repeats the message.) Both
                # writes are idempotent: no memory for them, they are tried again after a
                # collection; failing still, the record stays unacked and is sent again. The
                # flash full or failing (OSError, logged by rpc.py): the record is done in RAM
                # (the journal's ack), repeated only after a reboot; the id is kept in RAM, and
                # every later ack too until it is saved (_unsaved).
                for _ in range(2):
                    try:
                        try:
                            if action == START:
                                tid = conf.get("transactionId")
                                if type(tid) is not int:  # (a loosely typed "123", none)
                                    tid = rare("ocpp_client.txqrare", "tx_id", tid)
                                self._set_id(ref, tid)
                            elif action == STOP and ref not in self.done:
                                self.end(ref)
                            elif self._unsaved:
                                self._save_ids()  # before an ack line passes its start
                        except OSError:
                            self.j.ack(seq, False)  # not on flash: sent again after a reboot
                            raise
                        self.j.ack(seq)
                        break
                    except MemoryError:
                        gc.collect()
                log.debug(_TAG, "%s %d acked", action, seq)

            log.debug(_TAG, "sending %s %d", action, seq)
            try:
                # A retry after a CALLERROR is a new attempt (".N", N the CALLERRORs so far): a
                # CSMS that recognises repeats by id would only give the same error again. One
                # after no answer is the same frame: the CSMS may have booked the first.
                mid = rec.get("i")
                if mid is not None and errs:
                    mid = "%s.%d" % (mid, errs)
                conf = await rpc.call(action, payload, on_result=hook, mid=mid)
            except NotSent:
                continue  # never went out (the link busy): no attempt, it waits its turn again
            except (CallError, CallTimeout) as e:
                # A failed attempt: probed, counted, dropped or retried (txqrare.py, loaded on
                # use). A dead link is raised from there, nothing counted.
                attempts, errs, wait = await rare("ocpp_client.txqrare", "failed", self, e, seq,
                                                  rec, attempts, errs)
                self._attempts, self._errs, self._aseq = attempts, errs, seq
                if wait is None:  # dropped
                    item = None
                    continue
                if isinstance(wait, dict):  # its answer, late: delivered
                    conf = wait
                    hook(conf)
                else:
                    self.retry_at = time.ticks_add(time.ticks_ms(), wait * 1000)
                    if not patient:
                        asyncio.create_task(self._wake(wait))
                        return
                    await asyncio.sleep(wait)  # (a link lost meanwhile: the next waits the rest)
                    self.retry_at = None
                    continue
            attempts = errs = self._attempts = self._errs = 0
            item = None
            if action == START:
                if self.on_start_conf:
                    self.on_start_conf(ref, conf, payload)
            elif action == STOP:
                self._forget(ref)
                if self.on_stop_conf:
                    self.on_stop_conf(ref, conf, payload)
            self.delivered += 1
