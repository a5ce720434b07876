# Feature: DataTransfer with vendorId "borne": the owner app's tag learning ("learnTag": the next
# card read goes to the cloud, as "tagLearned", not to a session) and logbook entries.
import log

_TAG = "ocpp"


def attach(s):
    def learned(id_tag):
        # The click tells the owner the card was added (the owner's manual): its report goes
        # through the transaction queue, journaled, so neither an outage nor a power cut before
        # the CSMS answers loses it (sent again until answered: txqrare.failed). One the flash
        # (full) or the memory cannot take now is not kept in RAM, where a power cut would lose
        # it after the click, nor sent later: the owner hears the refusal and tries again.
        if id_tag is None:
            log.info(_TAG, "tag learning timed out")
            return
        try:
            s.queue.add("DataTransfer", {"vendorId": "borne", "messageId": "tagLearned",
                                         "data": id_tag}, None, hold=None)
        except Exception as e:  # (MemoryError, OSError: flash full or failing)
            log.exc(_TAG, "tagLearned %s not kept" % id_tag, e)
            return False

    async def data_transfer(p):
        # vendorId and messageId are CiStrings (1.6 DataTransfer.req): any case is ours.
        if p["vendorId"].lower() != "borne":
            return {"status": "UnknownVendorId"}
        mid = (p.get("messageId") or "").lower()
        if mid == "learntag":
            if s.reader is None or s.reader.failed:  # (ReaderFailure: no card would be read)
                return {"status": "Rejected"}
            s.reader.learn(learned)
            s.events.add("learn_tag")
            return {"status": "Accepted"}
        if mid == "logbook":
            # The driver logbook entry the cloud attaches to the current session.
            s.events.add("logbook", data=str(p.get("data", ""))[:200])
            return {"status": "Accepted"}
        return {"status": "UnknownMessageId"}

    return {"DataTransfer": data_transfer}
