"""A CSMS that never answers one message is not a dead link. A queued message (a security event, a
transaction message) or a StatusNotification that gets no answer while the CSMS still answers a
Heartbeat counts as a failed attempt: a security event or a status is dropped and the charger
keeps its link; a transaction message is sent again under the same message id (the CSMS may have
booked the first), on a new connection (OCPP-J 4.1.4: an id is used once per connection). A
link that answers nothing at all is reconnected, and then nothing queued is dropped. (Before,
any unanswered CALL cost the link, and the queue sent its oldest message first after each
reconnection: a CSMS without the security extension that ignores SecurityEventNotification
held the charger in a reconnect loop for good.)

The charger's CALLs time out after 2 s here (`call_timeout_s`), so each case takes seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

from borne.csms import Csms
from borne.sim.simulator import Simulator
from flashdoc import seed
from ocpp.v16 import call, call_result
from simctl import Control, controlling, running

CP_ID = "CP-TEST-1"
CARD = "04A1B2C3"


@asynccontextmanager
async def _charger(csms: Csms, flash: Path) -> AsyncIterator[tuple[Simulator, Control]]:
    seed(flash, "settings", {"call_timeout_s": 2})
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim, \
            controlling(sim) as control:
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        yield sim, control


async def _configure(csms: Csms, **keys: str) -> None:
    cp = csms.charge_points[CP_ID]
    for k, v in keys.items():
        assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"


def _status(cid: int, status: str) -> Any:
    return lambda p: p["connectorId"] == cid and p["status"] == status


async def test_a_csms_that_ignores_security_events_still_gets_statuses_and_transactions(
    csms: Csms, flash: Path
) -> None:
    # A CSMS without the security extension that does not even refuse its messages: every
    # SecurityEventNotification goes unanswered, everything else is answered.
    csms.unanswered["SecurityEventNotification"] = 1000
    async with _charger(csms, flash) as (sim, control):
        assert sim.agent is not None
        await csms.wait_call("SecurityEventNotification")  # the boot's StartupOfTheDevice
        await sim.agent.wait_line(r"rfid: reader ready", 15)
        n = len(csms.frames)
        await control("plug")
        await control("charge")
        await control("tap", uid=CARD)
        start = await csms.wait_call("StartTransaction", timeout=30)
        tx = (await csms.answer_to(start))["transactionId"]
        await csms.wait_call("StatusNotification", _status(1, "Charging"), after=n, timeout=20)
        await control("unplug")
        stop = await csms.wait_call("StopTransaction", timeout=20)
        assert stop.payload["transactionId"] == tx
        await csms.answer_to(stop)
        await csms.wait_call("StatusNotification", _status(1, "Available"), after=n, timeout=20)
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the queue empty")
        assert csms.connects == 1, f"the charger reconnected {csms.connects - 1} time(s)"
        assert len(csms.calls("SecurityEventNotification")) == 1, (
            "an ignored security event is dropped, not sent again")
        assert len(csms.calls("StartTransaction")) == 1
        assert len(csms.calls("StopTransaction")) == 1
        assert len(csms.calls("BootNotification")) == 1
        await sim.agent.wait_line(
            r"SecurityEventNotification dropped after 1 attempts \(no answer\)", 5)


async def test_an_ignored_start_is_sent_again_under_its_id_and_booked_once(
    csms: Csms, flash: Path
) -> None:
    # The CSMS drops the first StartTransaction (it may have booked it and lost the answer) and
    # answers its repeat: the repeat is the same frame, id included, so the CSMS books one
    # transaction; it goes on a new connection, where the id is not a reuse (OCPP-J 4.1.4).
    async with _charger(csms, flash) as (_, control):
        await _configure(csms, BorneFreeCharging="true", TransactionMessageRetryInterval="1")
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the boot's event answered")
        csms.unanswered["StartTransaction"] = 1
        await control("plug")
        await control("charge")
        first = await csms.wait_call("StartTransaction")
        await csms.wait_for(lambda: len(csms.calls("StartTransaction")) >= 2, 30,
                            "the ignored StartTransaction sent again")
        again = csms.calls("StartTransaction")[1]
        assert again.msg[1] == first.msg[1], "a repeat after no answer keeps its message id"
        assert again.raw == first.raw
        tx = (await csms.answer_to(again))["transactionId"]
        await control.wait_state(lambda s: (s["session"] or {}).get("transaction_id") == tx,
                                 "the session to carry the CSMS's transactionId")
        await control("unplug")
        stop = await csms.wait_call("StopTransaction", timeout=20)
        assert stop.payload["transactionId"] == tx
        await csms.answer_to(stop)
        assert len(set(csms.started.values())) == 1, (
            f"the CSMS booked {len(set(csms.started.values()))} transactions for one session")
        assert len(csms.calls("StartTransaction")) == 2
        assert csms.connects == 2, "the repeat goes on a new connection, once"
        assert csms.frames.index(first) < csms.frames.index(again)


async def test_an_ignored_status_is_dropped_and_the_link_kept(csms: Csms, flash: Path) -> None:
    async with _charger(csms, flash) as (_, control):
        await _configure(csms, BorneFreeCharging="true")
        n = len(csms.frames)
        csms.unanswered["StatusNotification"] = 1
        await control("plug")  # (free charging: the session starts, SuspendedEV: ignored)
        ignored = await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1,
                                       after=n)
        await control("charge")
        await csms.wait_call("StartTransaction", after=n, timeout=20)
        await csms.wait_call("StatusNotification", _status(1, "Charging"), after=n, timeout=20)
        assert csms.connects == 1, f"the charger reconnected {csms.connects - 1} time(s)"
        sent = [f.payload["status"] for f in csms.frames[n:]
                if f.action == "StatusNotification" and f.direction == "in"
                and f.payload["connectorId"] == 1]
        assert sent[0] == ignored.payload["status"] and sent[-1] == "Charging", sent
        assert sent.count(sent[0]) == 1, f"the ignored status was sent again: {sent}"


async def test_a_link_that_answers_nothing_is_reconnected_and_the_stop_delivered(
    csms: Csms, flash: Path
) -> None:
    # Half-open at the OCPP level: the WebSocket still answers pings, but neither the
    # StopTransaction nor the Heartbeat that probes the link gets an answer. That is a dead
    # link, not an ignored message: the charger reconnects and delivers the stop after it, with
    # TransactionMessageAttempts 1 (a timeout counted as an attempt would drop it).
    async with _charger(csms, flash) as (_, control):
        await _configure(csms, BorneFreeCharging="true", TransactionMessageAttempts="1")
        await control("plug")
        await control("charge")
        start = await csms.wait_call("StartTransaction", timeout=20)
        tx = (await csms.answer_to(start))["transactionId"]
        await control.wait_state(lambda s: (s["session"] or {}).get("transaction_id") == tx
                                 and s["ocpp"]["queued"] == 0, "the start answered")
        csms.unanswered["StopTransaction"] = 1
        csms.unanswered["Heartbeat"] = 1
        await control("unplug")
        first = await csms.wait_call("StopTransaction", timeout=20)
        await csms.wait_for(lambda: csms.connects >= 2, 30, "the charger to reconnect")
        await csms.wait_for(lambda: len(csms.calls("StopTransaction")) >= 2, 30,
                            "the StopTransaction sent again after the reconnect")
        again = csms.calls("StopTransaction")[1]
        assert again.raw == first.raw and again.payload["transactionId"] == tx
        await csms.answer_to(again)
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the queue empty")
        assert csms.connects == 2
        assert len(csms.calls("BootNotification")) == 1


async def test_an_answer_that_comes_after_the_timeout_is_taken(csms: Csms, flash: Path) -> None:
    # A stalled backend: the StartTransaction's answer comes after the charger's 2 s, before the
    # Heartbeat that probes the link. That late answer is the answer: its transactionId is the
    # session's, nothing is sent twice, and the link is kept.
    async with _charger(csms, flash) as (sim, control):
        assert sim.agent is not None
        await _configure(csms, BorneFreeCharging="true", TransactionMessageRetryInterval="1")
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the boot's event answered")
        csms.stalled["StartTransaction"] = 3.5
        await control("plug")
        await control("charge")
        start = await csms.wait_call("StartTransaction", timeout=20)
        tx = (await csms.answer_to(start))["transactionId"]
        await control.wait_state(lambda s: (s["session"] or {}).get("transaction_id") == tx
                                 and s["ocpp"]["queued"] == 0, "the late answer's transactionId")
        await control("unplug")
        stop = await csms.wait_call("StopTransaction", timeout=20)
        assert stop.payload["transactionId"] == tx
        await csms.answer_to(stop)
        assert len(csms.calls("StartTransaction")) == 1, "a late answer is not a reason to resend"
        assert csms.connects == 1, f"the charger reconnected {csms.connects - 1} time(s)"
        await sim.agent.wait_line(r"StartTransaction answered late", 5)


async def test_a_retry_lost_with_the_link_goes_again_under_the_id_the_csms_may_have_booked(
    csms: Csms, flash: Path
) -> None:
    # The CSMS refuses the first StartTransaction (a CALLERROR: its database is down), books the
    # retry (a new attempt, a new id) and its answer is lost with the link (a router reboot).
    # After the reconnection the start goes again under the retry's id, which the CSMS
    # recognises: one transaction. (Before, the reconnection forgot the attempts: the start went
    # under its first id, which the CSMS had refused, and it opened a second transaction.)
    async with _charger(csms, flash) as (sim, control):
        assert sim.gate is not None
        gate = sim.gate
        await _configure(csms, BorneFreeCharging="true", TransactionMessageRetryInterval="1")
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the boot's event answered")
        seen: list[object] = []

        def db_down_then_link_lost(payload: object) -> object:
            seen.append(payload)
            if len(seen) == 1:
                csms.started.clear()  # (on_start books before it asks us: not this one)
                raise RuntimeError("CSMS database is down")
            if len(seen) == 2:
                gate.set_up(False)  # booked; the answer is lost on the air
            return call_result.StartTransaction(  # the transaction on_start booked
                transaction_id=max(csms.started.values()), id_tag_info={"status": "Accepted"})

        csms.respond("StartTransaction", db_down_then_link_lost)
        await control("plug")
        await control("charge")
        await csms.wait_for(lambda: len(seen) >= 2, 30, "the retry after the CALLERROR")
        await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=20)
        await control("net", up=True)
        await csms.wait_for(lambda: len(csms.calls("StartTransaction")) >= 3, 30,
                            "the start sent again after the reconnection")
        first, retry, again = csms.calls("StartTransaction")[:3]
        assert retry.msg[1] != first.msg[1], "a retry after a CALLERROR is a new attempt"
        assert again.msg[1] == retry.msg[1], (
            f"sent again under {again.msg[1]}, not under {retry.msg[1]} that the CSMS booked")
        await control.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the start delivered")
        assert len(set(csms.started.values())) == 1, (
            f"the CSMS booked {len(set(csms.started.values()))} transactions for one session")


async def test_a_csms_that_refuses_heartbeats_delays_nothing(csms: Csms, flash: Path) -> None:
    # A backend that answers Heartbeat with a CALLERROR (a proxy without the action, a transient
    # InternalError) is there all the same: each heartbeat goes on time, and the session's work
    # (a status after a plug) is not held back by a pause, as it was when the refusal was taken
    # for the session's own failure (a 0.5-5 s pause after each, growing).
    def refuse(_: object) -> object:
        raise RuntimeError("no heartbeats here")

    async with _charger(csms, flash) as (sim, control):
        assert sim.agent is not None
        csms.respond("Heartbeat", refuse)
        n = len(csms.frames)
        await _configure(csms, HeartbeatInterval="1")
        for _ in range(5):
            await csms.wait_call("Heartbeat", after=len(csms.frames), timeout=10)
        beats = [f.t for f in csms.calls("Heartbeat")[-5:]]
        gaps = [round(b - a, 1) for a, b in pairwise(beats)]
        assert max(gaps) < 3.5, f"heartbeats held back after refusals: gaps {gaps} s"
        await control("plug")
        await csms.wait_call("StatusNotification", _status(1, "Preparing"), after=n, timeout=5)
        assert csms.connects == 1, f"the charger reconnected {csms.connects - 1} time(s)"
        assert not [x for x in sim.agent.all_lines if "session work failed" in x]
        await sim.agent.wait_line(r"Heartbeat refused: CallError", 5)
