# Transaction-related messages (StartTransaction, StopTransaction, transaction MeterValues),
# journaled on flash before they are sent and acked only after the CSMS's answer, so a power cut
# or an outage at any instant loses none and reorders none.
#
# A record names its session by a local reference; the transactionId is filled in at send time
# from the StartTransaction.conf (kept in a small document), or -1 when that start could never
# be delivered. Flash budget: one journal line per message plus one ack line; the id document
# is rewritten once per StartTransaction.conf and once per StopTransaction.conf.
import asyncio

import log
from ocpp_client.errors import CallError

_TAG = "txq"
_IDS = "txids"
_MAX_RECORDS = const(400)
_BATCH = const(8)  # records taken per pass over the journal: bounded RAM, few passes
START = "StartTransaction"
STOP = "StopTransaction"
METER = "MeterValues"


class TxQueue:
    def __init__(self, store, config):
        self.store = store
        self.config = config
        self.j = store.journal("txq", _MAX_RECORDS)
        self.ids = store.load(_IDS, {})  # session ref -> transactionId
        self.session = None  # object with kick(): told when a message is queued
        self.on_start_conf = None  # fn(ref, conf)
        self.on_stop_conf = None  # fn(ref, conf)
        self.delivered = 0

    def __len__(self):
        return len(self.j)

    def add(self, action, payload, ref):
        # Durable once this returns.
        self.j.append({"a": action, "p": payload, "r": ref})
        if self.session is not None:
            self.session.kick()

    def tx_id(self, ref):
        return self.ids.get(ref)

    def _set_id(self, ref, tx_id):
        self.ids[ref] = tx_id
        self.store.save(_IDS, self.ids)

    def _forget(self, ref):
        if ref in self.ids:
            del self.ids[ref]
            self.store.save(_IDS, self.ids)

    def _batch(self):
        # The next few pending records, read in one pass over the journal (it must not be
        # written while it is read, and a pass per message would make delivery quadratic).
        out = []
        for seq, rec in self.j.pending():
            out.append((seq, rec))
            if len(out) >= _BATCH:
                break
        return out

    async def deliver(self, rpc):
        # Sends queued messages in order until the queue is empty or the link fails (the
        # exception propagates to the session, which reconnects).
        attempts = 0
        batch = []
        while True:
            if not batch:
                batch = self._batch()
                if not batch:
                    return
            seq, rec = batch[0]
            action, payload, ref = rec["a"], rec["p"], rec["r"]
            if action == START and ref in self.ids:
                # Answered before a power cut came between the id and the ack: never twice.
                self.j.ack(seq)
                batch.pop(0)
                continue
            if action in (STOP, METER):  # (a SecurityEventNotification is queued here too)
                tid = self.ids.get(ref)
                payload["transactionId"] = tid if tid is not None else -1
            def hook(conf, seq=seq, action=action, ref=ref):
                # Runs the instant the answer is read: the id and the ack reach flash before
                # anything else happens, which keeps the window for a retransmission after a
                # power cut as small as it can be. (OCPP 1.6 delivers at least once: a cut
                # between the CSMS's answer and this write still repeats the message.)
                if action == START:
                    tid = conf.get("transactionId")
                    self._set_id(ref, tid if isinstance(tid, int) else -1)
                self.j.ack(seq)
                log.debug(_TAG, "%s %d acked", action, seq)

            log.debug(_TAG, "sending %s %d", action, seq)
            try:
                conf = await rpc.call(action, payload, on_result=hook)
            except CallError as e:
                attempts += 1
                limit = self.config.get("TransactionMessageAttempts")
                if attempts >= limit:
                    log.error(_TAG, "%s dropped after %d attempts (%s)", action, attempts, e.code)
                    if action == START:
                        self._set_id(ref, -1)
                    self.j.ack(seq)
                    batch.pop(0)
                    attempts = 0
                    continue
                wait = self.config.get("TransactionMessageRetryInterval") * attempts
                log.warn(_TAG, "%s answered %s; retry %d in %d s", action, e.code, attempts, wait)
                await asyncio.sleep(wait)
                continue
            attempts = 0
            batch.pop(0)
            if action == START:
                if self.on_start_conf:
                    self.on_start_conf(ref, conf)
            elif action == STOP:
                self._forget(ref)
                if self.on_stop_conf:
                    self.on_stop_conf(ref, conf)
            self.delivered += 1
