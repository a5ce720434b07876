# Feature: DataTransfer with vendorId "borne": the owner app's tag learning ("learnTag": the next
# card read goes to the cloud, as "tagLearned", not to a session) and logbook entries.
import asyncio

import log

_TAG = "ocpp"


def attach(s):
    def learned(id_tag):
        if id_tag is None:
            log.info(_TAG, "tag learning timed out")
            return
        req = {"vendorId": "borne", "messageId": "tagLearned", "data": id_tag}
        if s.online():
            asyncio.create_task(s.send("DataTransfer", req))
        else:
            log.warn(_TAG, "tag %s learned while offline: not reported", id_tag)

    async def data_transfer(p):
        if p.get("vendorId") != "borne":
            return {"status": "UnknownVendorId"}
        if p.get("messageId") == "learnTag":
            if s.reader is None:
                return {"status": "Rejected"}
            s.reader.learn(learned)
            s.events.add("learn_tag")
            return {"status": "Accepted"}
        if p.get("messageId") == "logbook":
            # The driver logbook entry the cloud attaches to the current session.
            s.events.add("logbook", data=str(p.get("data", ""))[:200])
            return {"status": "Accepted"}
        return {"status": "UnknownMessageId"}

    return {"DataTransfer": data_transfer}
