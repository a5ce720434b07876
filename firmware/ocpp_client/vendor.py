# Feature: DataTransfer with vendorId "borne": the owner app's tag learning ("learnTag": the next
# card read goes to the cloud, as "tagLearned", not to a session: sent again until answered) and
# logbook entries.
import asyncio

import log
from ocpp_client.errors import CallError

_TAG = "ocpp"
_RETRY_MS = const(2000)  # a tagLearned sent again after this while offline or unanswered


def attach(s):
    # The learned tag the CSMS has not answered yet, and its reporter task: the click told the
    # owner the card was read, so the report waits out the link (offline, an unanswered call)
    # until the CSMS answers it. One kept: a card learned meanwhile replaces it.
    held = [None, None]

    def learned(id_tag):
        if id_tag is None:
            log.info(_TAG, "tag learning timed out")
            return
        held[0] = id_tag
        if held[1] is None:
            held[1] = asyncio.create_task(report())

    async def report():
        try:
            while held[0] is not None:
                tag = held[0]
                if s.online():
                    try:
                        await s.rpc.call("DataTransfer", {"vendorId": "borne",
                                                          "messageId": "tagLearned", "data": tag})
                    except CallError as e:  # answered: a CSMS without it
                        log.warn(_TAG, "tagLearned %s refused: %s", tag, e)
                    except Exception as e:
                        log.warn(_TAG, "tagLearned %s not answered (%s): sent again",
                                 tag, type(e).__name__)
                        await asyncio.sleep_ms(_RETRY_MS)
                        continue
                    if held[0] == tag:
                        held[0] = None
                else:
                    await asyncio.sleep_ms(_RETRY_MS)
        finally:
            held[1] = None

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
