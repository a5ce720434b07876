# Feature: transactions. StartTransaction / StopTransaction (journaled in txqueue.py before they
# are sent), the sessions a power cut left unfinished, RemoteStartTransaction and
# RemoteStopTransaction. Listens to the connector's on_tx_start / on_tx_stop.
import asyncio
import gc
import json

import clock
import log
from ocpp_client import meterdata
from ocpp_client.txqueue import TxQueue, START, STOP
from supervisor import rare

_TAG = const("ocpp")
_CONN = const("evse.connrare")  # the connector's seldom-run paths, loaded for the call
_TXQ = const("ocpp_client.txqrare")  # and the queue's: a power cut's sessions, at boot
# StopTxnSampledData / StopTxnAlignedData values kept for a session's StopTransaction: the latest,
# a bounded share of the heap whatever the session's length: at most _KEPT (with
# Transaction.Begin and .End, 14: within StopTransactionMaxMeterValues, 20) and _KEPT_BYTES of
# JSON text (~150 bytes each for one measurand, ~0.8 KB for four with their phases), so the
# StopTransaction's journal line stays within the journal's 8 KB (store/journal.py). The CSMS
# has every one as it happened when MeterValuesSampledData / AlignedData name the measurands too.
_KEPT = const(12)
_KEPT_BYTES = const(4096)


class Transactions:
    def __init__(self, s):
        self.s = s
        self.connector = s.connector
        self.config = s.config
        self._authorizing = None  # the idTag of a remote start whose Authorize.req is out
        self._begin = {}  # session ref -> Transaction.Begin sampled values
        self._kept = {}  # session ref -> its StopTxnSampled/AlignedData values (JSON texts)
        # (session, reason) of stops not journaled yet (on_tx_stop); txqrare.pay journals them
        self.owed = []
        self._paying = False  # _pay() runs
        q = self.txq = TxQueue(s.store, s.config)
        q.session = s  # add() calls s.kick(): the session delivers it
        q.on_start_conf = self._start_conf
        q.on_stop_conf = self._stop_conf
        q.on_stop_journaled = self.stop_journaled
        s.queue = q
        # What the journal holds of the sessions a power cut left unfinished, read now, before
        # anything is delivered: a stop the last boot journaled for one may be delivered (and
        # its transactionId forgotten) while the recovery waits for the meter.
        self._cut = None
        if s.connector.interrupted:
            self._cut = rare(_TXQ, "journaled", q, s.connector.interrupted)
        if q.ids:  # (a power cut between a stop's answer and its id's removal leaves one)
            rare("ocpp_client.txqrare", "tidy", q, s.connector.interrupted)
        s.connector.listen(self)
        # Set once the sessions a power cut left unfinished are journaled: what this boot
        # journals of its own (security events) comes after them, as it happened.
        self.recovered = asyncio.Event()
        s.tasks.append(self._recover())  # at boot, once the meter can be read

    def stop_value(self, ref, mv):
        # A periodic or clock-aligned reading of StopTxnSampledData / StopTxnAlignedData
        # (metering.py), in time order, for the StopTransaction's transactionData; in RAM only
        # (a power cut's PowerLoss stop goes without them).
        a = self._kept.get(ref)
        if a is None:
            a = self._kept[ref] = []
        a.append(json.dumps(mv))
        n = 0
        for t in a:
            n += len(t)
        while len(a) > 1 and (len(a) > _KEPT or n > _KEPT_BYTES):
            n -= len(a.pop(0))

    def tx_id_now(self):
        # The CSMS's transactionId of the running session, or None.
        ref = self.connector.session_ref
        return self.txq.tx_id(ref) if ref is not None else None

    # -- connector events --------------------------------------------------------------------
    # No memory while a StartTransaction or StopTransaction is built: it is built again after a
    # collection (its journaling is its last step: all or nothing), a stop the second time
    # without its optional transactionData (so too one the journal refuses as too long: a stop
    # is never lost for its data); the Transaction.Begin values are optional too.
    def on_tx_start(self, s, hold=False):
        # hold: a power cut's recovery, whose session ran: kept in RAM with its stop when the
        # flash refuses it (a new session's start is refused instead: connector.py).
        try:
            self._tx_start(s, hold)
        except MemoryError:
            gc.collect()
            try:
                self._tx_start(s, hold)
            except MemoryError:
                # Neither journaled nor held: refused as one the flash refuses (OSError: the
                # connector's listeners swallow anything else, and the relay would close for
                # a session the CSMS never hears of).
                raise OSError(12)  # ENOMEM
        try:
            begin = self._sampled("Transaction.Begin")
            if begin:
                self._begin[s["ref"]] = meterdata.meter_value(begin, _start_ms(s), True)
        except MemoryError:
            log.warn(_TAG, "no memory for the Transaction.Begin values: left out")

    def _tx_start(self, s, hold=False):
        ts = clock.iso_ms(s["start_ms"]) if "start_ms" in s else clock.iso(s["start"])
        req = {"connectorId": 1, "idTag": s["tag"], "meterStart": int(s["meter_start"]),
               "timestamp": ts}
        if s.get("res") is not None:
            req["reservationId"] = s["res"]
        self.txq.add(START, req, s["ref"], hold=hold)

    def on_tx_starting(self):
        # A session starts only once every stop before it is on flash (the connector asks).
        if self.owed:
            self._pay_now()
        if self.owed or not self.txq.flush_held():
            raise OSError("records held in RAM are not on flash yet")

    def on_tx_stop(self, s, reason):
        # A stop neither journaled nor held in RAM (no memory even after a collection, or the
        # held slots full: txqueue.py) is owed, in order, and tried again each second (_pay):
        # the connector keeps its session's document meanwhile (OSError), no session starts
        # before it is journaled (on_tx_starting), a power cut ends the session at boot.
        o = self.owed
        if not o:
            try:
                return self.stop_now(s, reason)
            except MemoryError:
                gc.collect()
        o.append((s, reason))
        if not self._paying:
            try:
                asyncio.create_task(self._pay())
                self._paying = True
            except MemoryError:  # (the next start, or the next stop, tries again)
                pass
        raise OSError("StopTransaction owed: no memory to journal it yet")

    async def _pay(self):
        try:
            while self.owed:
                await asyncio.sleep(1)
                self._pay_now()
        finally:
            self._paying = False

    def _pay_now(self):
        try:
            rare("ocpp_client.txqrare", "pay", self)
        except MemoryError:
            gc.collect()

    def stop_now(self, s, reason):
        # Raises OSError when kept in RAM (not on flash yet), MemoryError when not even that.
        try:
            self._tx_stop(s, reason, True)
        except (MemoryError, ValueError) as e:  # (ValueError: the journal's "record too big")
            gc.collect()
            log.warn(_TAG, "StopTransaction's transactionData left out: %s", e)
            self._tx_stop(s, reason, False)

    def _tx_stop(self, s, reason, data):
        # Times with the start's resolution (ms), never before it.
        stop_ms = max(s.get("stop_ms", s["stop_t"] * 1000), _start_ms(s))
        req = {"meterStop": int(s["meter_stop"]), "timestamp": clock.iso_ms(stop_ms),
               "reason": reason, "idTag": s.get("by") or s["tag"]}  # (by: who stopped it)
        if data:
            data = []
            if s["ref"] in self._begin:
                data.append(self._begin[s["ref"]])
            for t in self._kept.get(s["ref"], ()):
                data.append(json.loads(t))
            end = self._sampled("Transaction.End")
            if end:
                data.append(meterdata.meter_value(end, stop_ms, True))
            if data:
                req["transactionData"] = data
        m = self.s.meter
        if hasattr(m, "keep"):
            m.keep(req["meterStop"])
        done = self.txq.add(STOP, req, s["ref"])
        self._begin.pop(s["ref"], None)
        self._kept.pop(s["ref"], None)
        if not done:
            # Kept in RAM (flash full, or no memory): the connector keeps the session's document
            # until it is on flash (stop_journaled), a power cut meanwhile ends it from there.
            raise OSError("StopTransaction kept in RAM, not on flash yet")

    def stop_journaled(self, ref):
        try:
            rare(_CONN, "stop_journaled", self.connector, ref)
        except Exception as e:
            log.exc(_TAG, "session %s: documents" % ref, e)

    def on_start_dropped(self, id_tag, source, why):
        # A start the flash refused (connrare.refuse_start): the CSMS is told, with the status
        # as it is and errorCode InternalError (1.6 has no code for storage; OtherError would
        # need a vendorErrorCode to say anything), "flash full" in info. Not journaled: there is
        # no room; lost if offline, as the owner was told at the charger.
        if why == "flash full" and self.s.online():
            req = {"connectorId": 1, "status": self.connector.status_of(1)[0],
                   "errorCode": "InternalError", "info": why,
                   "timestamp": clock.iso_ms(clock.now_ms())}
            asyncio.create_task(self.s.send("StatusNotification", req))

    def _sampled(self, context):
        return meterdata.sampled(self.s.meter, self.connector,
                                 self.config.measurands("StopTxnSampledData"), context)

    async def _recover(self):
        # (txqrare.end_interrupted: loaded at boot only when a power cut left a session)
        try:
            if self.connector.interrupted:
                await rare(_TXQ, "end_interrupted", self)
        finally:
            self.recovered.set()

    # -- answers to our messages -------------------------------------------------------------
    def _start_conf(self, ref, conf, p):
        # (A remote start's TxProfile is in force since its session started: evse/limits.py.)
        info = conf.get("idTagInfo")
        if not isinstance(info, dict) or "status" not in info:
            # 1.6 requires it: an answer without it says nothing of the tag, which stays
            # authorized (taken as a refusal, it stopped the charge); the id is taken.
            self.connector.set_tx_id(ref, self.txq.tx_id(ref))
            return log.warn(_TAG, "session %s: StartTransaction answered without idTagInfo", ref)
        self.connector.set_tx_id(ref, self.txq.tx_id(ref), info.get("parentIdTag"))
        self._remember(p.get("idTag"), info)
        if info.get("status") != "Accepted":
            log.warn(_TAG, "CSMS refused the tag of session %s: %s", ref, info.get("status"))
            rare(_CONN, "deauthorize", self.connector, ref,
                 self.config.get("StopTransactionOnInvalidId"))

    def _stop_conf(self, ref, conf, p):
        info = conf.get("idTagInfo")
        if info:
            self._remember(p.get("idTag"), info)

    def _remember(self, tag, info):
        # Every idTagInfo updates the authorization cache, for the idTag of the message it
        # answers (as journaled: its session may be over by the answer; a stop's is the card
        # that stopped it).
        s = self.s
        if tag and s.cached != (tag, info):  # (as the Authorize of its start: in the cache)
            from ocpp_client.features import release

            auth = s.feature("authorization")  # (need() ... release(): it may be transient)
            try:
                if auth is not None:
                    auth.remember(tag, info)
            finally:
                release(s, s.rpc.handlers, "authorization")

    # -- the CSMS's calls --------------------------------------------------------------------
    async def remote_start(self, p):
        if self.s.registration != "Accepted":
            # Not while the CSMS keeps the charger Pending (OCPP 1.6 4.2: not allowed then). A
            # RemoteStopTransaction is honoured even so: stopping is always safe.
            return {"status": "Rejected"}
        cid = p.get("connectorId", 1)
        if cid != 1:
            return {"status": "Rejected"}  # one connector; 0 is not a connector to charge on
        prof = p.get("chargingProfile")
        if prof is not None and prof.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}
        if self._authorizing is not None:
            return {"status": "Rejected"}  # one remote start at a time, like the connector
        id_tag = p["idTag"]
        lim = self.s.limits
        if prof is None or lim is None:
            prof = None
        else:
            # Checked and held now, while the CSMS can still be told no; it limits the session
            # of this remote start from its first instant, and no other (evse/limits.py).
            try:
                why = lim.expect(id_tag, prof)
            except MemoryError:
                why = "no memory for profiles"
            if why:
                log.warn(_TAG, "remote start with a TxProfile refused: %s", why)
                return {"status": "Rejected"}
        authorize = self.config.get("AuthorizeRemoteTxRequests")
        st = self.connector.remote_start(id_tag, authorized=not authorize)
        if st != "Accepted":
            if prof is not None:
                lim.drop("remote start rejected")
        elif authorize:
            self._authorizing = id_tag
            self.s.after(self._authorize_remote, id_tag)
        return {"status": st}

    async def _authorize_remote(self, id_tag):
        status = "Invalid"
        try:
            # The CSMS just sent the start: its Authorize waits a CALL's timeout for its turn
            # and answer, not a tap's 7 s (behind our CALLs on a slow CSMS, that refused a
            # start the CSMS was told was Accepted, as if offline).
            status, parent = await self.s.authorize(id_tag, self.s.rpc.timeout_ms)
        finally:  # no answer (an error) refuses it too: the start (and its TxProfile) dropped
            self._authorizing = None
            if status == "Accepted":
                self.connector.remote_authorized(id_tag, parent)
            else:
                log.info(_TAG, "remote start for %s refused: %s", id_tag, status)
                self.connector.remote_refused(id_tag)

    async def remote_stop(self, p):
        tid = p["transactionId"]
        return {"status": self.connector.remote_stop(lambda ref: self.txq.tx_id(ref) == tid)}


def _start_ms(s):
    return s["start_ms"] if "start_ms" in s else s["start"] * 1000


def attach(s):
    t = s.features["transactions"] = Transactions(s)
    return {"RemoteStartTransaction": t.remote_start, "RemoteStopTransaction": t.remote_stop}
