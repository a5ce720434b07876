"""Power cuts at random instants of sessions (OCA 032, 034): after each, the next boot ends the
open session with PowerLoss; no transaction is lost, none is counted twice. The CSMS recognises
repeats by message id only (borne.csms), so a message re-sent after a cut must carry its first
id, byte for byte; the bill is exact (the stop never below a register already reported, its
time never before the start and at the start's resolution). Deterministic: a fixed seed."""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from collections import Counter
from pathlib import Path

from borne.chaos.ledger import judge
from borne.csms import Csms
from borne.sim.simulator import Simulator
from flashdoc import read, seed
from ocpp.v16 import call, call_result
from simctl import Control, controlling, running

CP_ID = "CP-TEST-1"
SEED = 20261121
ROUNDS = 10


async def test_power_cut_at_random_instants_loses_and_doubles_nothing(
    csms: Csms, control: Control
) -> None:
    rng = random.Random(SEED)
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await cp.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="1"))
    for _ in range(ROUNDS):
        await control.wait_state(lambda s: s["ocpp"]["connected"], "online", timeout=30)
        await control("plug")
        await control("charge")
        # The cut falls anywhere from the EV's first request to well into charging, or
        # while the EV is leaving.
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        if rng.random() < 0.3:
            await control("unplug")
            await asyncio.sleep(rng.uniform(0.0, 0.3))
        await control("power_cut")
        assert (await control("state"))["relay"] is False
        await control("unplug")
        await control("power_on")
    await control.wait_state(lambda s: s["ocpp"]["connected"], "online", timeout=30)
    # Everything queued reaches the CSMS.
    await csms.wait_for(
        lambda: len({f.payload["transactionId"] for f in csms.calls("StopTransaction")})
        >= len(csms.started),
        30, "every started transaction to be stopped",
    )
    await asyncio.sleep(1.0)  # anything sent twice would arrive now
    ledger = judge(csms, CP_ID)
    print(f"{ledger.figures()} in {ROUNDS} power cuts")
    assert not ledger.violations, "\n".join(ledger.violations)
    assert ledger.transactions >= 1
    reasons = Counter(f.payload["reason"] for f in csms.calls("StopTransaction"))
    assert set(reasons) <= {"PowerLoss", "EVDisconnected"}, reasons


async def test_an_ev_plugged_through_a_power_cut_charges_again(
    csms: Csms, control: Control
) -> None:
    """The power comes back with the EV still plugged in and asking: once the interrupted
    session is ended (PowerLoss), a new one starts by itself (free charging here; a plug during
    that recovery is not forgotten; a tap then gets the refusal's red signal, to tap again)."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await control("plug")
    await control("charge")
    first = await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"], "the relay to close")
    n = len(csms.frames)
    await control("power_cut")
    await control("power_on")
    stop = await csms.wait_call("StopTransaction", after=n, timeout=30)
    assert stop.payload["reason"] == "PowerLoss"
    second = await csms.wait_call("StartTransaction", after=n, timeout=30)
    assert second.msg[1] != first.msg[1]
    await control.wait_state(lambda s: s["relay"], "the relay to close again", timeout=30)


async def test_a_stop_journaled_as_the_power_went_is_sent_once_and_its_start_not_again(
    csms: Csms, control: Control, flash: Path
) -> None:
    """A boot ends an interrupted session and journals its StopTransaction; the power goes again
    before the session's documents are gone. At the next boot that stop is delivered while the
    recovery still waits for its meter reading (the meter is slow here: it does not answer).
    The recovery must see that stop as journaled, not as a session never reported: the CSMS
    gets one StartTransaction and one StopTransaction for the session, none under a new id."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await control("plug")
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"] and not s["ocpp"]["queued"],
                             "charging, the start answered")
    await control("power_cut")
    await control("unplug")
    # What the recovery journals, as the journal writes it (store/journal.py), the power cut
    # coming before the session's document was removed.
    data = flash / "data"
    session = json.loads((data / "session.json").read_bytes().split(b"\n", 1)[1])
    stop = {"meterStop": session["last_wh"], "timestamp": start.payload["timestamp"],
            "reason": "PowerLoss", "idTag": session["tag"]}
    _journal(data / "txq.log", {"a": "StopTransaction", "p": stop, "r": session["ref"],
                                "i": "0badf00d-q1"})
    await control("fault", kind="meter_down")
    n = len(csms.frames)
    await control("power_on")
    await csms.wait_call("StopTransaction", after=n, timeout=30)
    # The recovery is over once the boot's own security event is out.
    await csms.wait_call("SecurityEventNotification", after=n, timeout=30)
    await control("fault", kind="clear")
    await control.wait_state(lambda s: s["ocpp"]["connected"] and not s["ocpp"]["queued"],
                             "the queue delivered", timeout=30)
    assert [f.msg[1] for f in csms.calls("StartTransaction")] == [start.msg[1]]
    assert len(csms.calls("StopTransaction")) == 1
    led = judge(csms, CP_ID)
    assert not led.violations, led.violations


async def test_a_start_retried_after_a_callerror_goes_again_under_the_retry_id_after_a_cut(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """The CSMS refuses StartTransaction X (a CALLERROR), books its retry X.1 and the power goes
    before the charger reads that answer. After the reboot the start must go again as X.1, the
    id the CSMS may have booked: repeated as X (its attempts forgotten with the RAM), a CSMS
    that does not keep every message id it refused books it as a second transaction."""
    assert sim.gate is not None
    gate = sim.gate
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    for k, v in (("BorneFreeCharging", "true"), ("TransactionMessageRetryInterval", "1")):
        await cp.call(call.ChangeConfiguration(key=k, value=v))
    await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the boot's event answered")
    seen: list[object] = []

    def db_down_then_power_cut(payload: object) -> object:
        seen.append(payload)
        if len(seen) == 1:
            csms.started.clear()  # (on_start books before it asks us: not this one)
            raise RuntimeError("CSMS database is down")
        if len(seen) == 2:
            gate.set_up(False)  # booked; the power goes before the answer reaches the charger
        return call_result.StartTransaction(
            transaction_id=max(csms.started.values()), id_tag_info={"status": "Accepted"})

    csms.respond("StartTransaction", db_down_then_power_cut)
    await control("plug")
    await control("charge")
    await csms.wait_for(lambda: len(seen) >= 2, 30, "the retry after the CALLERROR")
    first, retry = csms.calls("StartTransaction")[:2]
    assert retry.msg[1] != first.msg[1], "a retry after a CALLERROR is a new attempt"
    await control("power_cut")
    await control("unplug")
    await control("net", up=True)
    n = len(csms.frames)
    await control("power_on")
    again = await csms.wait_call("StartTransaction", after=n, timeout=30)
    assert again.msg[1] == retry.msg[1], (
        f"sent again under {again.msg[1]} after the cut, not under {retry.msg[1]} that the CSMS "
        f"booked ({first.msg[1]} was refused)")
    await csms.wait_call("StopTransaction", after=n, timeout=30)
    await control.wait_state(lambda s: s["ocpp"]["connected"] and not s["ocpp"]["queued"],
                             "the queue delivered", timeout=30)
    assert len(csms.calls("StartTransaction")) == 3
    led = judge(csms, CP_ID)
    assert not led.violations, led.violations


def _journal(path: Path, rec: dict[str, object]) -> None:
    last = max(int(ln.split(b" ", 1)[0]) for ln in path.read_bytes().splitlines() if ln)
    seq = last + 1
    payload = json.dumps(rec).encode()
    crc = zlib.crc32(payload, zlib.crc32(b"%d" % seq))
    with path.open("ab") as f:
        f.write(b"%d %08x %s\n" % (seq, crc, payload))


async def test_an_id_left_by_a_cut_after_its_stop_was_answered_is_forgotten_at_boot(
    csms: Csms, flash: Path
) -> None:
    """The power went between a StopTransaction's answer (acked) and the removal of its
    session's transactionId: nothing needs that id any more, and the next boot forgets it
    (kept, every such cut left one more in the document and in RAM for good)."""
    seed(flash, "txids", {"1796000000-123": 41})
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim, \
            controlling(sim) as control:
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the boot's event answered")
        cp = csms.charge_points[CP_ID]
        await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
        await control("plug")
        await control("charge")
        start = await csms.wait_call("StartTransaction", timeout=20)
        tx = (await csms.answer_to(start))["transactionId"]
        await control.wait_state(lambda s: (s["session"] or {}).get("transaction_id") == tx,
                                 "the start answered")
        await control("unplug")
        stop = await csms.wait_call("StopTransaction", timeout=20)
        assert stop.payload["transactionId"] == tx
        await csms.answer_to(stop)
        for _ in range(100):  # (removed just after the stop's ack)
            if _ids(flash) == {}:
                break
            await asyncio.sleep(0.1)
        assert _ids(flash) == {}, "a transactionId no session needs is kept"
        # (what stays: the refs of the last sessions ended, bounded: txqueue.py _DONE)
        assert len(read(flash, "txids")["~"]) == 1


def _ids(flash: Path) -> dict[str, object]:
    # The id document's transactionIds (not its "~": the last sessions whose stop went).
    return {k: v for k, v in read(flash, "txids").items() if k != "~"}
