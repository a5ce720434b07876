"""Offline behaviour (OCA 036-039): half-open sockets are detected, transaction messages are
queued and delivered in order after the link returns, never lost, never doubled; a start the
CSMS never acknowledged leads to transactionId -1."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

from borne.csms import Csms
from conftest import start_answered_with_callerror
from ocpp.v16 import call, call_result
from simctl import Control

CP_ID = "CP-TEST-1"


async def _setup(csms: Csms, **keys: str):  # type: ignore[no-untyped-def]
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    for k, v in {"WebSocketPingInterval": "1", **keys}.items():
        assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"
    return cp


async def test_dead_link_is_noticed_and_the_led_and_state_tell_the_truth(
    csms: Csms, control: Control
) -> None:
    await _setup(csms)
    await control.wait_state(lambda s: s["ocpp"]["connected"], "online")
    await control("net", up=False)
    await control.wait_state(
        lambda s: not s["ocpp"]["connected"] and s["led"]["color"] == "00ffff",
        "offline, and the LED showing it (cyan)", timeout=10,
    )
    await control("net", up=True)
    await control.wait_state(lambda s: s["ocpp"]["connected"], "online again", timeout=20)
    assert len(csms.calls("BootNotification")) == 1


async def _readings_queued_offline(csms: Csms, control: Control) -> tuple[int, int]:
    """A session started online (its transactionId known), then the link down until 3
    periodic readings are queued (OCTT TC_036_CS): (its transactionId, len(csms.frames) when
    the link went)."""
    start = await csms.wait_call("StartTransaction")
    tx = (await csms.answer_to(start))["transactionId"]
    await control.wait_state(lambda s: (s["session"] or {}).get("transaction_id") == tx, "tx id")
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    n = len(csms.frames)
    await control.wait_state(lambda s: s["ocpp"]["queued"] >= 3, "3 readings queued offline")
    return tx, n


async def test_session_stopped_offline_is_delivered_after_reconnect(
    csms: Csms, control: Control
) -> None:
    await _setup(csms, BorneFreeCharging="true", MeterValueSampleInterval="1")
    await control("plug")
    await control("charge")
    tx, n = await _readings_queued_offline(csms, control)
    await control("unplug")
    await control.wait_state(lambda s: not s["relay"], "the relay to open while offline")
    await control("net", up=True)
    stop = await csms.wait_call("StopTransaction", after=n, timeout=30)
    assert stop.payload["transactionId"] == tx and stop.payload["reason"] == "EVDisconnected"
    assert len(csms.calls("StopTransaction")) == 1 and len(csms.calls("StartTransaction")) == 1
    for mv in csms.calls("MeterValues"):
        assert mv.payload.get("transactionId") == tx
    # ... each delivered once back, before the stop, in time order, a sample interval apart,
    # as Sample.Periodic (OCTT checks the spacing by the timestamps)
    late = [datetime.fromisoformat(v["timestamp"]) for f in csms.frames[n:csms.frames.index(stop)]
            if f.is_call and f.action == "MeterValues" for v in f.payload["meterValue"]
            if v["sampledValue"][0].get("context", "Sample.Periodic") == "Sample.Periodic"]
    assert len(late) >= 3, late
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(late)]
    assert all(round(g) == 1 for g in gaps), gaps  # (in whole seconds, as OCTT compares)
    assert len(csms.calls("BootNotification")) == 1


async def test_a_reading_refused_once_is_retried_though_newer_ones_are_queued(
    csms: Csms, control: Control
) -> None:
    """1.6 allows a charge point to skip a transaction message only when the CSMS repeatedly
    reports a failure to process it. Readings queued through an outage; back online, the CSMS
    answers the first of them with a one-off CALLERROR (a database hiccup under the backlog):
    it goes again after TransactionMessageRetryInterval and is booked, not dropped at its first
    failure because newer ones wait behind it (its sample lost from the CSMS's charging curve
    and interim billing). A CSMS refusing every reading: test_interop_variants.py."""
    await _setup(csms, MeterValueSampleInterval="1", TransactionMessageAttempts="3",
                 TransactionMessageRetryInterval="1", BorneFreeCharging="true")
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    _, n = await _readings_queued_offline(csms, control)
    refused: list[str] = []

    def hiccup(p: object) -> object:
        if not refused:
            refused.append("x")
            raise RuntimeError("database busy")
        return call_result.MeterValues()

    csms.respond("MeterValues", hiccup)
    await control("net", up=True)
    first = await csms.wait_call("MeterValues", after=n, timeout=30)
    again = await csms.wait_call("MeterValues", timeout=15, after=csms.frames.index(first) + 1)
    assert again.msg[1] == first.msg[1] + ".1", "the refused reading was dropped, not retried"
    assert again.payload["meterValue"] == first.payload["meterValue"]
    assert await csms.answer_to(again) == {}, "the retry was not booked"


async def _charging_offline(csms: Csms, control: Control) -> None:
    """Free charging, the network down, an EV plugged in and charging."""
    await _setup(csms, BorneFreeCharging="true")
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    await control("plug")
    await control("charge")
    await control.wait_state(lambda s: s["relay"], "charging offline (free charging)")


async def test_session_started_and_stopped_offline_keeps_its_order(
    csms: Csms, control: Control
) -> None:
    await _charging_offline(csms, control)
    await control("unplug")
    await control.wait_state(lambda s: not s["relay"], "stopped offline")
    await control("net", up=True)
    stop = await csms.wait_call("StopTransaction", timeout=30)
    start = csms.calls("StartTransaction")[0]
    assert csms.frames.index(start) < csms.frames.index(stop)
    tx = (await csms.answer_to(start))["transactionId"]
    assert stop.payload["transactionId"] == tx


async def test_start_never_accepted_gives_transaction_id_minus_one(
    csms: Csms, control: Control
) -> None:
    await _setup(csms, BorneFreeCharging="true", TransactionMessageAttempts="2",
                 TransactionMessageRetryInterval="1")

    def fail(payload: object) -> object:
        raise RuntimeError("CSMS database is down")

    csms.respond("StartTransaction", fail)
    await control("plug")
    await control("charge")
    await csms.wait_for(lambda: len(csms.calls("StartTransaction")) >= 2, 20, "a retry")
    await control("unplug")
    stop = await csms.wait_call("StopTransaction", timeout=20)
    assert stop.payload["transactionId"] == -1
    assert len(csms.calls("StartTransaction")) == 2, "attempts must stop at the configured count"


async def test_start_queued_offline_goes_before_the_charging_status(
    csms: Csms, control: Control
) -> None:
    # OCTT TC_037_1_CS: after the reconnection the CSMS hears the StartTransaction first, then
    # "Charging" (it must know the transaction before the status that names it).
    await _charging_offline(csms, control)
    n = len(csms.frames)
    await control("net", up=True)
    start = await csms.wait_call("StartTransaction", after=n, timeout=30)
    charging = await csms.wait_call(
        "StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Charging",
        after=n, timeout=30)
    later = csms.calls()[csms.calls().index(start) + 1:]
    assert charging in later
    before = csms.frames[n:csms.frames.index(start)]
    assert not [f for f in before if f.is_call and f.action == "StatusNotification"], (
        "no status before the queued StartTransaction")
    assert len(csms.calls("BootNotification")) == 1


async def test_status_changed_while_the_queue_delivers_is_reported_after_it(
    csms: Csms, control: Control
) -> None:
    # The queue at the reconnection goes first; a status that changes meanwhile is reported
    # once it is out, and a message queued meanwhile (the stop) does not hold the status back.
    await _setup(csms, BorneFreeCharging="true", TransactionMessageRetryInterval="5")
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    await control("plug")
    await control("charge")
    await control.wait_state(lambda s: s["relay"], "charging offline (free charging)")

    def fail(payload: object) -> object:
        raise RuntimeError("CSMS database is down")

    csms.respond("StartTransaction", fail)
    n = len(csms.frames)
    await control("net", up=True)
    await csms.wait_call("StartTransaction", after=n, timeout=30)
    await control("unplug")  # during the 5 s before the start is sent again
    await control.wait_state(lambda s: not s["relay"], "stopped while the start waits")
    csms.respond("StartTransaction", None)
    stop = await csms.wait_call("StopTransaction", after=n, timeout=30)
    status = await csms.wait_call(
        "StatusNotification", lambda p: p["connectorId"] == 1, after=n, timeout=30)
    calls = csms.calls()
    starts = [i for i, f in enumerate(calls) if f.action == "StartTransaction"
              and csms.frames.index(f) >= n]
    assert len(starts) == 2
    assert calls.index(status) > starts[-1], "statuses only once the reconnection's queue is out"
    assert status.payload["status"] in ("Finishing", "Available"), status.payload
    assert calls.index(status) < calls.index(stop), "the stop, queued later, goes after them"


async def test_a_status_changed_offline_carries_the_time_of_the_change(
    csms: Csms, control: Control
) -> None:
    # 1.6: a StatusNotification's timestamp is "the time for which the status is reported".
    # A change made offline is reported at the reconnection with its own time.
    await _charging_offline(csms, control)
    await control("unplug")
    unplugged = datetime.now(UTC)
    await control.wait_state(lambda s: not s["relay"], "stopped offline")
    await asyncio.sleep(3)  # the outage goes on: the report comes seconds after the change
    n = len(csms.frames)
    await control("net", up=True)
    f = await csms.wait_call("StatusNotification",
                             lambda p: p["connectorId"] == 1 and p["status"] == "Available",
                             after=n, timeout=30)
    stamp = datetime.fromisoformat(f.payload["timestamp"].replace("Z", "+00:00"))
    assert abs((stamp - unplugged).total_seconds()) < 1, (f.payload, unplugged)


async def test_a_start_waiting_for_its_retry_holds_no_status_back(
    csms: Csms, control: Control
) -> None:
    # Online, the CSMS answers a StartTransaction with a CALLERROR: the start is sent again after
    # TransactionMessageRetryInterval, and meanwhile the other messages go on (1.6 4.10 retries
    # the transaction message; nothing says the rest waits): the unplug's status is reported
    # at once, not after the retry.
    await _setup(csms, BorneFreeCharging="true", TransactionMessageRetryInterval="6")
    first = await start_answered_with_callerror(csms, control)
    await csms.wait_for(lambda: len(csms.frames) > csms.frames.index(first) + 1, 10,
                        "the CALLERROR")
    csms.respond("StartTransaction", None)
    await control("unplug")
    status = await csms.wait_call(
        "StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] != "Charging",
        after=csms.frames.index(first), timeout=5)
    assert len(csms.calls("StartTransaction")) == 1, "the status waited for the retry"
    second = await csms.wait_call("StartTransaction", after=csms.frames.index(first) + 1,
                                  timeout=15)
    assert second.t - first.t >= 5.5, "retried before TransactionMessageRetryInterval"
    assert second.msg[1] != first.msg[1], "a retry after a CALLERROR is a new attempt"
    stop = await csms.wait_call("StopTransaction", timeout=15)
    assert csms.calls().index(status) < csms.calls().index(second) < csms.calls().index(stop)


async def test_a_status_sent_on_a_link_found_dead_is_reported_after_the_reconnection(
    csms: Csms, control: Control
) -> None:
    # The link dies silently; the plug's "Preparing" goes out on it and waits for its answer
    # when the watchdog finds the socket half-open (two WebSocketPingIntervals of silence, 5 s
    # at least, here well within the call's timeout) and ends the session. The CSMS never got
    # it: it is reported after the reconnection (it was lost: the CSMS showed "Available" with
    # an EV plugged in until the next change).
    await _setup(csms)
    await control.wait_state(lambda s: s["ocpp"]["connected"], "online")
    await control("net", up=False)
    n = len(csms.frames)
    await control("plug")
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    assert not [f for f in csms.frames[n:] if f.action == "StatusNotification"], (
        "the gate is cut: nothing reaches the CSMS")
    await control("net", up=True)
    f = await csms.wait_call(
        "StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Preparing",
        after=n, timeout=20)
    assert f.payload["errorCode"] == "NoError"


async def test_a_session_after_an_offline_boot_has_its_clock_aligned_readings(
    csms: Csms, control: Control
) -> None:
    # 1.6 9.1.5: clock-aligned readings at every boundary of the interval's grid. A boot offline
    # (a watchdog reset, a power cut on a board whose clock kept the time) took none until the
    # CSMS had set the clock, though the clock was trusted: a session charged offline had its
    # periodic samples but no Sample.Clock reading for the whole outage.
    await _setup(csms, BorneFreeCharging="true", ClockAlignedDataInterval="2",
                 MeterValuesAlignedData="Energy.Active.Import.Register")
    await control("net", up=False)
    await control("power_cut")
    await control("power_on")
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    await control.wait_state(lambda s: s["relay"], "charging offline (free charging)", 30)
    await asyncio.sleep(6)
    up = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    await control("net", up=True)
    start = await csms.wait_call("StartTransaction", timeout=30)
    tx = (await csms.answer_to(start))["transactionId"]
    await csms.wait_for(lambda: any(f.payload.get("transactionId") == tx and any(
        mv["timestamp"] > up for mv in f.payload["meterValue"]) for f in csms.calls(
        "MeterValues")), 20, "the readings since the reconnection")
    offline = [mv["timestamp"] for f in csms.calls("MeterValues") for mv in f.payload["meterValue"]
               if f.payload.get("transactionId") == tx and mv["timestamp"] < up
               and mv["sampledValue"][0]["context"] == "Sample.Clock"]
    assert len(offline) >= 2, f"the clock-aligned readings while offline: {offline}"
