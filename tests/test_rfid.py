"""The RFID reader end to end: the simulator's PN532 emulator on the agent's UART socket, the
agent's PN532 driver and tag-event task, and the connector's tag events."""

from __future__ import annotations

import asyncio

from borne.sim.simulator import Simulator
from simctl import Control

TAG_LINE = r"evse: tag {} presented"


async def test_tap_gives_one_event_per_presentation(control: Control, sim: Simulator) -> None:
    assert sim.agent is not None
    await sim.agent.wait_line(r"rfid: reader ready", 15)
    for uid in ("04a2b3c4", "04112233445566", "0411223344556677889A"):
        start = len(sim.agent.all_lines)
        assert (await control("tap", uid=uid, hold=1.2))["ok"]
        await sim.agent.wait_line(TAG_LINE.format(uid.upper()), 5, start=start)
        await control.wait_state(lambda s, u=uid: s["tag"] == u.upper(), "tag in state")
        # held for 1.2 s, polled every 150 ms: still one event; wait for the card to go
        await control.wait_state(lambda s: not s["card"], "the card taken away", 5)
        # Presentations only: the authorization's outcome ("tag ... refused: Invalid") is logged
        # too, before or after the card goes, as the CSMS link happens to be up or not.
        lines = [ln for ln in sim.agent.all_lines[start:]
                 if f"evse: tag {uid.upper()} presented" in ln]
        assert len(lines) == 1, lines



async def test_a_tap_of_the_card_still_held_is_no_new_presentation(
    control: Control, sim: Simulator
) -> None:
    # A card counts once per presentation: tapped again before its last tap's hold is over,
    # it never left the field, so the charger reads nothing new; the reply says so, since a
    # scenario that taps twice in quick succession would otherwise wait for a tap never read.
    assert sim.agent is not None
    await sim.agent.wait_line(r"rfid: reader ready", 15)
    uid = "04A1B2C3"
    start = len(sim.agent.all_lines)
    assert (await control("tap", uid=uid))["held"] is False
    await sim.agent.wait_line(TAG_LINE.format(uid), 5, start=start)
    assert (await control("tap", uid=uid))["held"] is True
    await control.wait_state(lambda s: not s["card"], "the card taken away", 5)
    lines = [ln for ln in sim.agent.all_lines[start:] if TAG_LINE.format(uid) in ln]
    assert len(lines) == 1, lines
    # Kept away for longer than the reader's 0.5 s "gone" time, then tapped again: read again.
    await asyncio.sleep(1.0)
    start = len(sim.agent.all_lines)
    assert (await control("tap", uid=uid))["held"] is False
    await sim.agent.wait_line(TAG_LINE.format(uid), 5, start=start)

async def test_tap_refuses_uids_that_are_not_iso14443a_lengths(control: Control) -> None:
    for uid in ("04A2B3", "04A2B3C4D5", "0"):
        reply = await control("tap", uid=uid)
        assert reply["ok"] is False and "4, 7 or 10 bytes" in reply["error"], reply
    reply = await control("tap", uid="04A2B3C4", hold=0)
    assert reply["ok"] is False and "hold" in reply["error"]


async def test_reader_down_is_reported_and_the_reader_reinitialised(
    control: Control, sim: Simulator
) -> None:
    assert sim.agent is not None
    await sim.agent.wait_line(r"rfid: reader ready", 15)
    assert (await control("fault", kind="reader_down"))["ok"]
    st = await control.wait_state(
        lambda s: "ReaderFailure" in s["device_faults"], "ReaderFailure reported", 10
    )
    assert "reader_down" in st["faults"]
    start = len(sim.agent.all_lines)
    assert (await control("fault", kind="clear"))["ok"]
    await control.wait_state(lambda s: s["device_faults"] == [], "ReaderFailure cleared", 10)
    await sim.agent.wait_line(r"rfid: reader ready", 5, start=start)
    # and it reads cards again
    assert (await control("tap", uid="04A2B3C4"))["ok"]
    await sim.agent.wait_line(TAG_LINE.format("04A2B3C4"), 5, start=start)
