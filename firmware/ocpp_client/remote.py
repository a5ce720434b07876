# Feature: remote control. Reset (after its .conf: the session's stop, then the reboot),
# TriggerMessage (the messages features offer in session.triggers), UnlockConnector,
# ChangeAvailability.
import asyncio
import time

import log

_TAG = "ocpp"
# Triggerable with nothing to report until a feature offers them: answered with status Idle.
_IDLE = ("DiagnosticsStatusNotification", "FirmwareStatusNotification")


def attach(s):
    conn = s.connector

    async def reset(p):
        # Its work's coroutine made now (iter() gives it back to the follow that awaits it): a
        # heap with no block for it (368 bytes once, squeezed) gets the resident reset instead,
        # not an Accepted that nothing carries out.
        try:
            s.after(iter, _reset(s, p["type"]))
        except MemoryError:
            from ocpp_client import features

            return features.reset(s, p["type"] == "Hard")
        return {"status": "Accepted"}

    async def change_availability(p):
        if p["connectorId"] not in (0, 1):
            return {"status": "Rejected"}
        return {"status": conn.change_availability(p["type"] == "Operative",
                                                   p["connectorId"] == 0)}

    async def unlock(p):
        # A fixed cable has no lock to release (1.6 5.18: NotSupported, "no connector lock";
        # OCTT TC_017_2/TC_018_2_CS), nor has an unknown connector: nothing happens, a running
        # transaction goes on. Its "finish the transaction first" precedes an unlock that
        # happens; UnlockConnector "SHOULD NOT be used to remotely stop a running transaction".
        return {"status": "NotSupported"}

    async def trigger(p):
        what = p["requestedMessage"]
        cid = p.get("connectorId")
        fn = s.triggers.get(what)
        if fn is None and what in _IDLE:
            fn = _idle(s, what)
        if fn is None:
            return {"status": "NotImplemented"}
        if cid is not None and cid not in (0, 1):
            if what in ("MeterValues", "StatusNotification"):
                return {"status": "Rejected"}  # no such connector
            cid = None  # 1.6 5.17: a connectorId the message has no use for is ignored
        if what == "BootNotification" and s.registration == "Accepted":
            return {"status": "Rejected"}
        s.after(fn, cid)
        return {"status": "Accepted"}

    return {"Reset": reset, "ChangeAvailability": change_availability,
            "UnlockConnector": unlock, "TriggerMessage": trigger}


def _idle(s, what):
    async def send(cid):
        await s.rpc.call(what, {"status": "Idle"})

    return send


async def _reset(s, kind):
    hard = kind == "Hard"
    conn = s.connector
    # The session's stop first (the relay opens in it), then what is only told: the event log's
    # line (a flash write) and the tune, which need memory a reset must not depend on.
    conn.stop_for("HardReset" if hard else "SoftReset")
    tune = 0
    try:
        s.events.add("reset", type=kind)
        if s.restart_tune is not None:
            tune = s.restart_tune() or 0  # the owner hears the restart (sound + LED change)
    except MemoryError:
        pass
    t0 = time.ticks_ms()
    # The StopTransaction waits for the final meter reading (a second at most); a soft reset
    # also lets it go out first, if the link allows it.
    for _ in range(30):
        if not conn.finishing_stops:
            break
        await asyncio.sleep_ms(100)
    if not hard:
        for _ in range(50):
            if s.queue is None or not len(s.queue) or not s.online():
                break
            await asyncio.sleep_ms(100)
    log.info(_TAG, "%s reset", kind)
    ws = s.rpc.ws
    if not hard and ws is not None:
        from supervisor import rare

        await rare("ocpp_client.wsrare", "hang_up", ws, 1001)  # going away
    # The tune plays to its end (a second at most), not cut by the reboot.
    await asyncio.sleep_ms(max(50, min(1000, tune - time.ticks_diff(time.ticks_ms(), t0))))
    s.board.reset(hard)
