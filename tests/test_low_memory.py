"""Running out of memory is bad input too (issue 12, "Bad input").

The agent runs from the mpy-cross build (as `borne deploy` installs it) in a heap 10% below the
budget, and the test then takes more of its heap away (the unix_sim board's `squeeze`: every free
block of 2 KB or more, as a fragmented heap would have none) while a session charges. The charger
keeps charging safely with features shed: the hotspot (the owner's setup button) is refused with a
logged reason and a 1,000-tag SendLocalList is answered Failed, the old list kept. Once the memory
is given back the same list update is Accepted, at 90 % of the budget too, and the hotspot opens by
itself where the heap has room for it. Throughout: the session is billed exactly, no journaled
transaction message is lost or repeated, the agent never reboots, keeps answering, and opens the
relay when the EV stops.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from borne import workload
from borne.csms import Csms
from borne.sim.options import Runtime
from borne.sim.simulator import Simulator
from ocpp.exceptions import InternalError
from ocpp.v16 import call
from simctl import Control, controlling, running
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.system

# 10% below the memory budget of the reference workload (issue 12): the charger must keep
# charging there with features shed. The squeeze below makes the shedding independent of this
# figure. The hotspot needs more free heap than this one has while it runs (hotspot/claim.py
# NEED_FREE, and a 4 KB block a heap this fragmented lacks): its opening once memory frees is
# shown in a roomier heap.
LOW_HEAP_WK = workload.BUDGET_WK["reference"] * 9 // 10
ROOMY_HEAP_WK = 256
CP_ID = "CP-LOWMEM"
# While squeezed the agent keeps only the free blocks shorter than this: room for its small
# allocations (OCPP frames, journal lines), none for the hotspot's largest block (a claim's 4 KB
# CA certificate: hotspot/claim.py checks it).
SQUEEZE_BLOCK = 1024
# For the setup button: no free block of 4 KB (hotspot/opening.py _BLOCK), so claim mode loads and
# refuses for its block. The blocks under 1 KB alone summed ~32 KB in a 256wK heap, about
# app.py's floor below which it is not even loaded (_CLAIM_FLOOR: a refusal without its figures).
BUTTON_SQUEEZE_BLOCK = 4096
# Squeezed harder while a list update arrives: none for its largest allocations, 512 bytes, and
# less free in all than it needs beside its message (ocpp_client/authorization.py checks both:
# ROOM, 8 KB); metering may pause then (no block for a journal line: the record waits in RAM),
# the relay holds.
LIST_SQUEEZE_BLOCK = 512
LIST_SQUEEZE_CAP = 6144
# For a Reset: no free block of 384 bytes, as little as a session's dict growing for its stop's
# fields (368 bytes: the relay opened, the session never ended, 1 run in 2 before the fix) or
# remote.py's code and work may find; now and then not even the Reset's frame is read (272
# bytes). At 512 the old code passed 4 runs in 4; at 256 hardly a frame is read.
RESET_SQUEEZE_BLOCK = 384
OLD_TAG = "0A0B0C0D"  # on the local list before the squeeze
# What claim mode leaves free beside it on a claimed charger (hotspot/claim.py _CHARGING_ROOM):
# a tap's authorization and a list update load after it opens.
CHARGING_ROOM = 12288


@pytest.fixture(params=[LOW_HEAP_WK])
async def lsim(request: pytest.FixtureRequest, csms: Csms, flash: Path,
               compiled_firmware: Path) -> AsyncIterator[Simulator]:
    s = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                  runtime=Runtime(heapsize=f"{request.param}wK", compiled=compiled_firmware))
    async with running(s, tail=300):
        yield s


@pytest.fixture
async def lctl(lsim: Simulator) -> AsyncIterator[Control]:
    async with controlling(lsim) as c:
        yield c


async def squeeze(sim: Simulator, block: int | None, cap: int = 0) -> dict[str, Any]:
    """The agent takes every free block of its heap of `block` bytes or more (None: gives them
    back), with a `cap` more until at most `cap` bytes stay free; its report: held and free
    bytes."""
    sim.hw.squeeze_heap(block, cap)
    for _ in range(200):
        rep = sim.hw.telemetry.get("squeeze")
        if rep is not None:
            return dict(rep)
        await asyncio.sleep(0.05)
    raise AssertionError("the agent did not answer the squeeze")


async def list_version_or_shed(cp: Any, agent: Any, version: int) -> None:
    """GetLocalListVersion while squeezed: the list's version, or, shed, a CALLERROR
    InternalError with the reason in the agent's log (authorization is a feature loaded on use:
    its module may find no block to load into; it comes back once memory frees)."""
    mark = len(agent.all_lines)
    try:
        res = await cp.call(call.GetLocalListVersion(), suppress=False)
    except InternalError:
        # (or the line itself lost to the squeeze, which the log counts)
        await agent.wait_line(r"GetLocalListVersion .*out of memory|feature authorization failed "
                              r"to load|frame handling failed.*MemoryError|log: \d+ line\(s\) "
                              r"dropped: no memory", start=mark)
        return
    assert res.list_version == version, res


async def booted(csms: Csms, sim: Simulator) -> Any:
    """The agent, once it reported its connector to the CSMS after the boot."""
    assert sim.agent is not None
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=60)
    return sim.agent


async def remote_session(cp: Any, lctl: Control) -> dict[str, Any]:
    """A remote start, the EV plugged in and charging: the state once the relay closed."""
    assert (await cp.call(call.RemoteStartTransaction(id_tag="REMOTE1"))).status == "Accepted"
    await lctl("plug")
    await lctl("load", amps=16)
    await lctl("charge")
    return await lctl.wait_state(lambda s: s["relay"], "the relay to close", 30)


def _entry(tag: str) -> dict[str, Any]:
    return {"id_tag": tag, "id_tag_info": {"status": "Accepted"}}


@pytest.mark.parametrize("lsim", [LOW_HEAP_WK, ROOMY_HEAP_WK], indirect=True)
async def test_low_memory_sheds_features_and_keeps_charging_safely(
    csms: Csms, lsim: Simulator, lctl: Control
) -> None:
    # A list update needs no block of more than 512 bytes (ocpp_client/locallist.py merges in
    # small portions): the list is set at 90 % of the budget too, shed while squeezed, updated
    # after.
    low = lsim.runtime.heapsize == f"{LOW_HEAP_WK}wK"
    agent = await booted(csms, lsim)
    cp = csms.charge_points[CP_ID]
    for k, v in (("MeterValueSampleInterval", "2"), ("LocalPreAuthorize", "true")):
        assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"
    res = await cp.call(call.SendLocalList(list_version=1, update_type="Full",
                                           local_authorization_list=[_entry(OLD_TAG)]))
    assert res.status == "Accepted", res

    # A session charges.
    st = await remote_session(cp, lctl)
    start = (await csms.wait_call("StartTransaction")).payload
    assert abs(start["meterStart"] - st["energy_wh"]) <= 2
    roomy = await squeeze(lsim, 10**9)  # nothing held: the free heap while charging
    print(f"heap {LOW_HEAP_WK}wK: {roomy['free']} bytes free while charging")

    # Memory taken away while charging.
    n_mv = len(csms.frames)
    rep = await squeeze(lsim, SQUEEZE_BLOCK)
    print(f"squeezed: {rep}")
    assert low or rep["held"] > 0, rep  # at 90 % there may be no block that large to take
    mark = len(agent.all_lines)
    await lctl("button", ms=3500)
    # refused by claim mode's room check, or before: no memory to load claim mode at all
    line = await agent.wait_line(r"hotspot: claim mode \(setup button\) refused: \d+ bytes of "
                                 r"heap free, it needs \d+ with a block of \d+|app: claim mode "
                                 r"refused: no memory to load it", start=mark)
    print(line)
    st = await lctl.wait_state(lambda s: (s["hotspot"] or {}).get("refused"), "the refusal", 10)
    assert not st["hotspot"]["open"]

    tags = [_entry(f"T{i:05d}") for i in range(1000)]
    await squeeze(lsim, LIST_SQUEEZE_BLOCK, LIST_SQUEEZE_CAP)
    mark = len(agent.all_lines)
    res = await cp.call(call.SendLocalList(list_version=2, update_type="Full",
                                           local_authorization_list=tags))
    assert res.status == "Failed", res
    # logged where it failed: the room check, the update half way, or reading the frame
    line = await agent.wait_line(r"SendLocalList.*(refused|out of memory)|update failed: "
                                 r"no memory|frame handling failed.*MemoryError", start=mark)
    print(line)
    await list_version_or_shed(cp, agent, 1)
    await squeeze(lsim, SQUEEZE_BLOCK)
    n_mv = len(csms.frames)

    # Still charging, still metering, still answering.
    await csms.wait_call("MeterValues", after=n_mv, timeout=20)
    st = await lctl("state")
    assert st["relay"] and st["power_w"] > 0 and st["ocpp"]["status"] == "Charging"
    await list_version_or_shed(cp, agent, 1)

    # Memory given back (the squeeze ends); the hotspot waits for room while the session runs.
    await squeeze(lsim, None)

    # The EV stops: the relay opens; the session ends billed exactly.
    await lctl("pause")
    await lctl.wait_state(lambda s: not s["relay"], "the relay to open", 5)
    tx = int((await csms.answer_to(await csms.wait_call("StartTransaction")))["transactionId"])
    assert (await cp.call(call.RemoteStopTransaction(transaction_id=tx))).status == "Accepted"
    stop = (await csms.wait_call("StopTransaction", timeout=20)).payload
    at_stop = (await lctl("state"))["energy_wh"]
    assert stop["transactionId"] == tx and stop["reason"] == "Remote"
    assert abs(stop["meterStop"] - at_stop) <= 2, (stop["meterStop"], at_stop)
    n = len(csms.frames)
    await lctl("unplug")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)

    # At 90 % of the budget the hotspot either stays refused (less heap free than it needs) or
    # opens now that the session's memory is back (the heap's layout decides; either is safe,
    # and it never opened while the session ran); in the roomier heap it opened once the
    # squeeze ended.
    if low:
        await lctl.wait_state(lambda s: s["hotspot"]["refused"] or s["hotspot"]["open"],
                              "the hotspot refused still, or open", 10)
        print(f"heap {LOW_HEAP_WK}wK: {(await squeeze(lsim, 10**9))['free']} bytes free after "
              "the session")
        await squeeze(lsim, None)
    else:
        await lctl.wait_state(lambda s: (s["hotspot"] or {}).get("open"), "the hotspot", 15)

    # The old list still works: the listed tag starts without asking the CSMS.
    n_auth = len(csms.calls("Authorize"))
    await lctl("plug")
    await lctl("tap", uid=OLD_TAG)
    start2 = (await csms.wait_call("StartTransaction", lambda p: p["idTag"] == OLD_TAG,
                                   timeout=20)).payload
    assert len(csms.calls("Authorize")) == n_auth, "a listed tag is decided locally"
    await lctl("charge")
    await lctl.wait_state(lambda s: s["relay"], "the relay to close", 20)
    await lctl("unplug")
    await lctl.wait_state(lambda s: not s["relay"], "the relay to open", 5)
    stop2 = (await csms.wait_call("StopTransaction", lambda p: p["idTag"] == OLD_TAG,
                                  timeout=20)).payload
    assert stop2["meterStop"] >= start2["meterStart"]

    # With its memory back, the same list update goes through, at 90 % of the budget too, and a
    # Differential one of 1,000 changes (merged bucket by bucket in small portions).
    res = await cp.call(call.SendLocalList(list_version=2, update_type="Full",
                                           local_authorization_list=tags))
    assert res.status == "Accepted", res
    assert (await cp.call(call.GetLocalListVersion())).list_version == 2
    changes = [_entry(f"N{i:05d}") for i in range(500)] + [{"id_tag": f"T{i:05d}"}
                                                          for i in range(500)]
    res = await cp.call(call.SendLocalList(list_version=3, update_type="Differential",
                                           local_authorization_list=changes))
    assert res.status == "Accepted", res
    assert (await cp.call(call.GetLocalListVersion())).list_version == 3

    # Nothing journaled was lost or repeated; the agent never rebooted.
    await lctl.wait_state(lambda s: s["ocpp"]["queued"] == 0, "the queue to drain", 20)
    starts = [f.payload for f in csms.calls("StartTransaction")]
    stops = [f.payload for f in csms.calls("StopTransaction")]
    assert len(starts) == 2 and len(stops) == 2, (starts, stops)
    ids = {int((await csms.answer_to(f))["transactionId"]) for f in csms.calls("StartTransaction")}
    assert {s["transactionId"] for s in stops} == ids
    for f in csms.calls("MeterValues"):
        if "transactionId" in f.payload:
            assert f.payload["transactionId"] in ids
    assert agent.boots == 1, "the agent rebooted"


@pytest.mark.parametrize("lsim", [ROOMY_HEAP_WK], indirect=True)
async def test_the_hotspot_opens_once_memory_frees(
    csms: Csms, lsim: Simulator, lctl: Control
) -> None:
    agent = await booted(csms, lsim)
    roomy = await squeeze(lsim, 10**9)
    rep = await squeeze(lsim, BUTTON_SQUEEZE_BLOCK)
    assert rep["held"] > 0 and rep["free"] >= 32768, rep
    mark = len(agent.all_lines)
    await lctl("button", ms=3500)
    # refused before claim mode loads (app.py: hotspot/room.py's figure), or by claim mode itself
    refused = await agent.wait_line(r"hotspot: claim mode \(setup button\) refused: \d+ bytes "
                                    r"of heap free, it needs \d+ with a block of \d+|app: claim "
                                    r"mode refused: no memory to load it \(\d+ bytes free, it "
                                    r"needs \d+\)", start=mark)
    m = re.search(r"it needs (\d+)", refused)
    assert m, refused
    need = int(m.group(1))  # hotspot/room.py need() and the room it leaves for charging
    assert not (await lctl.wait_state(lambda s: (s["hotspot"] or {}).get("refused"),
                                      "the refusal", 10))["hotspot"]["open"]
    await squeeze(lsim, None)
    await lctl.wait_state(lambda s: (s["hotspot"] or {}).get("open"), "the hotspot to open", 15)
    held = roomy["free"] - (await squeeze(lsim, 10**9))["free"]
    print(f"the open hotspot holds {held} bytes of heap (it needs {need} free to open)")
    assert held <= need - CHARGING_ROOM, (
        "the open hotspot takes the room hotspot/claim.py leaves for charging's features")
    await squeeze(lsim, None)


async def test_a_reset_squeezed_out_of_its_feature_still_stops_the_session_and_reboots(
    csms: Csms, lsim: Simulator, lctl: Control
) -> None:
    # A Reset is the operator's remedy for a charger in trouble, low memory included: with no
    # free block for ocpp_client/remote.py (1,168 bytes in the reference's run at 142wK, answered
    # InternalError then), for its work or for the session's stop, it is still Accepted; the
    # session stops with its reason, the charger reboots and the StopTransaction reaches the
    # CSMS. (Before: InternalError, or Accepted with the relay open and the session never
    # ended, "work after the answer: MemoryError ... 368 bytes", 1 run in 2.)
    agent = await booted(csms, lsim)
    cp = csms.charge_points[CP_ID]
    await remote_session(cp, lctl)
    tx = int((await csms.answer_to(await csms.wait_call("StartTransaction")))["transactionId"])
    await squeeze(lsim, RESET_SQUEEZE_BLOCK)
    for _ in range(8):
        mark = len(agent.all_lines)
        try:
            res = (await cp.call(call.Reset(type="Hard"), suppress=False)).status
            break
        except ConnectionClosed:
            # The answer unwritten for want of a block (its work goes on all the same: rpc.py),
            # the link gone with the reboot: the reboot and the stop below tell.
            res = "Accepted"
            break
        except InternalError:
            # Only for a frame the squeeze left no block to read (rpc.py's last resort, before
            # any Reset is handled: 1 run in 3 here), as an operator would: asked again.
            await agent.wait_line(r"frame handling failed.*MemoryError", start=mark)
            await asyncio.sleep(0.5)
    else:
        raise AssertionError("the Reset's frame was never read")
    assert res == "Accepted", res
    line = await agent.wait_line(r"reset without its feature|Hard reset", start=mark)
    print(line)  # the resident path (remote.py found no block), or remote.py's own
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 30, "the reboot")
    stop = (await csms.wait_call("StopTransaction", timeout=30)).payload
    assert stop["reason"] == "HardReset" and stop["transactionId"] == tx, stop
    assert len(csms.calls("StopTransaction")) == 1
