"""Safety that does not wait for the loop, measured: with the emulated ESP32's main thread
blocked (a garbage collection, a blocking call), an RCD trip or an unplug must still open the
relay at once, from the pin interrupt. Used by the tests and by `borne bench safety-stall`."""

from __future__ import annotations

import asyncio
import time

from borne.sim.simulator import Simulator


async def relay_edge(sim: Simulator, want: bool, since: float, timeout: float = 5) -> float:
    """Seconds from `since` (time.monotonic) until the agent drives the relay to `want`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t, state in sim.hw.relay_log:
            if t >= since and state == want:
                return t - since
        await asyncio.sleep(0.0005)
    raise AssertionError(f"the relay never went {'closed' if want else 'open'}")


async def free_charging(sim: Simulator) -> None:
    """A CSMS that lets the charger start without a tag (plug in = charge)."""
    from ocpp.v16 import call

    assert sim.csms is not None
    await sim.csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = sim.csms.charge_points[sim.cp_id]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))


async def stalled_trip(sim: Simulator, kind: str, stall_ms: int = 300,
                       after_ms: int = 50) -> float:
    """Charge, block the chip's loop for `stall_ms`, and `after_ms` into it trip the RCD
    (kind "rcd") or unplug ("unplug"): seconds until the relay opened. Leaves the EV unplugged
    and the faults cleared (an RCD trip latches until the EV is unplugged with the RCD sound for
    a while: this waits for the connector to be Available again)."""
    await sim.command({"cmd": "plug"})
    await asyncio.sleep(0.3)
    t = time.monotonic()
    await sim.command({"cmd": "charge"})
    await relay_edge(sim, True, t, timeout=10)
    await asyncio.sleep(0.2)
    assert (await sim.command({"cmd": "stall", "ms": stall_ms}))["ok"]
    await asyncio.sleep(after_ms / 1000)
    t = time.monotonic()
    if kind == "rcd":
        await sim.command({"cmd": "fault", "kind": "rcd"})
    else:
        await sim.command({"cmd": "unplug"})
    dt = await relay_edge(sim, False, t)
    await asyncio.sleep((stall_ms - after_ms) / 1000 + 0.3)  # the loop runs again
    await sim.command({"cmd": "unplug"})
    await sim.command({"cmd": "fault", "kind": "clear"})
    deadline = time.monotonic() + 10
    while (await sim.command({"cmd": "state"}))["ocpp"]["status"] != "Available":
        assert time.monotonic() < deadline, "the connector not Available again"
        await asyncio.sleep(0.05)
    return dt
