"""The time for a cold ESP32 from the network, without blocking its loop (firmware/net/sntp.py).

After a power cut the ESP32 board's clock says 2000-01-01 (no battery RTC), so the charger
cannot check a wss:// CSMS's certificate until SNTP gives the time. The SNTP server's name
(pool.ntp.org, the board's) is resolved by the simulation's resolver, the query waits on a
non-blocking socket: while the server holds its answer, the charger still reacts to a car being
plugged in at once (the blocking ntptime froze the loop for its wait); a reply that does not
answer the charger's request (a wrong originate timestamp) or is no SNTP reply is not taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from borne.csms import Csms
from borne.sim.agent import Security
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from borne.sim.sntp import NAME
from simctl import controlling, running
from tlscerts import Ca, server_context

CP_ID = "CP-TEST-1"
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def wss(tmp_path: Path) -> AsyncIterator[tuple[Csms, Security]]:
    """A wss:// CSMS (profile 2) at `localhost` and the charger's credentials for it."""
    ca = Ca()
    ctx = server_context(ca, ca.issue("localhost", ("localhost", "127.0.0.1")), tmp_path)
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start(ssl_context=ctx, url_host="localhost")
    yield csms, Security(2, KEY, ca=ca.write(tmp_path))
    await csms.stop()
    assert not csms.violations, csms.violations


def _esp32(csms: Csms, flash: Path, security: Security) -> Simulator:
    return Simulator(flash, cp_id=CP_ID, csms_url=csms.url, security=security,
                     fitted=Fitted(board="esp32_wallbox"))


async def _booted(csms: Csms) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=40)


async def test_a_cold_esp32_gets_the_time_by_name_then_connects_over_wss(
        wss: tuple[Csms, Security], flash: Path) -> None:
    csms, security = wss
    sim = _esp32(csms, flash, security)
    async with running(sim):
        assert sim.agent is not None
        await sim.dns.wait_query(NAME, timeout=30)  # the server's name, asked of the resolver
        await sim.agent.wait_line(r"clock: set from sntp to 20\d\d-", timeout=30)
        await _booted(csms)
        assert sim.sntp.requests >= 1 and sim.sntp.answered >= 1
        assert csms.auth_results and all(ok for _, ok in csms.auth_results)


async def test_the_charger_reacts_at_once_while_the_time_server_holds_its_answer(
        wss: tuple[Csms, Security], flash: Path) -> None:
    csms, security = wss
    sim = _esp32(csms, flash, security)
    sim.sntp.hold()
    async with running(sim), controlling(sim) as control:
        assert sim.agent is not None
        await control.wait_state(lambda s: s["led"]["color"] == "00ffff",
                                 "available but offline: cyan", timeout=30)
        loop = asyncio.get_running_loop()
        for n in (1, 2):
            # Right after a request reached the server, which keeps its answer: the charger is
            # waiting for it now. A car plugged in (and out) shows on the LED within 0.5 s.
            await sim.sntp.wait_request(sim.sntp.requests + 1, timeout=30)
            t0 = loop.time()
            plugged = n == 1
            await control("plug" if plugged else "unplug")
            want = "0000ff" if plugged else "00ffff"  # preparing: blue; offline: cyan
            await control.wait_state(lambda s, w=want: s["led"]["color"] == w,
                                     f"the LED {want} while SNTP waits", timeout=5)
            took = loop.time() - t0
            print(f"plug {n}: LED after {took:.3f} s, the SNTP answer held")
            assert took < 0.5, f"the charger took {took:.2f} s: the SNTP wait holds its loop"
        assert not csms.calls(), "no wss:// connection without the time"
        sim.sntp.release()
        await _booted(csms)
        await sim.agent.wait_line(r"clock: set from sntp")


@pytest.mark.parametrize("bad", ["forge", "garbage"])
async def test_a_reply_that_does_not_answer_the_request_is_not_taken(
        wss: tuple[Csms, Security], flash: Path, bad: str) -> None:
    csms, security = wss
    sim = _esp32(csms, flash, security)
    setattr(sim.sntp, bad, True)
    async with running(sim):
        assert sim.agent is not None
        await sim.agent.wait_line(r"no time from SNTP \(pool.ntp.org\)", timeout=30)
        await sim.agent.wait_line(r"clock not set \(2000-01-01T", timeout=30)
        assert sim.sntp.answered >= 1
        assert not [x for x in sim.agent.all_lines if "clock: set from" in x], "taken"
        assert not csms.calls()
        setattr(sim.sntp, bad, False)  # an honest answer is taken at the next attempt
        await _booted(csms)
        await sim.agent.wait_line(r"clock: set from sntp")


async def test_a_session_started_before_the_clock_was_set_reaches_the_csms_at_its_true_time(
        wss: tuple[Csms, Security], flash: Path) -> None:
    # A power cut takes the router down too: the charger comes back first, its clock at
    # 2000-01-01, the time server out of reach, and the EV charges (free charging). Its
    # StartTransaction, MeterValues and StopTransaction were sent stamped 2000-01-01 once the
    # time came: moved by the step that set the clock (the charger's clock ran on), they carry
    # the true times.
    from datetime import UTC, datetime

    from ocpp.v16 import call

    csms, security = wss
    sim = _esp32(csms, flash, security)
    async with running(sim), controlling(sim) as control:
        await _booted(csms)
        cp = csms.charge_points[CP_ID]
        for k, v in (("BorneFreeCharging", "true"), ("MeterValueSampleInterval", "2")):
            assert (await cp.call(call.ChangeConfiguration(key=k, value=v))).status == "Accepted"
        sim.sntp.hold()
        await control("power_cut")
        await control("plug")
        await control("load", amps=16)
        await control("charge")
        await control("power_on")
        began = datetime.now(UTC)
        e0 = (await control.wait_state(lambda s: s["relay"], "charging offline, the clock unset",
                                       30))["energy_wh"]
        await control.wait_state(lambda s: s["energy_wh"] >= e0 + 15, "a few samples", 30)
        await control("unplug")
        await control.wait_state(lambda s: not s["relay"], "stopped offline")
        ended = datetime.now(UTC)
        n = len(csms.frames)
        sim.sntp.release()
        stop = await csms.wait_call("StopTransaction", after=n, timeout=60)
    start = csms.calls("StartTransaction")[-1]

    def at(t: str) -> datetime:
        return datetime.fromisoformat(t.replace("Z", "+00:00"))

    t0, t1 = at(start.payload["timestamp"]), at(stop.payload["timestamp"])
    assert abs((t0 - began).total_seconds()) < 15, (start.payload["timestamp"], began)
    assert abs((t1 - ended).total_seconds()) < 5, (stop.payload["timestamp"], ended)
    stamps = [at(mv["timestamp"]) for f in csms.frames[n:] if f.is_call
              and f.action == "MeterValues" for mv in f.payload["meterValue"]]
    stamps += [at(mv["timestamp"]) for mv in stop.payload.get("transactionData", ())]
    assert stamps and all(t0 <= t <= t1 for t in stamps), (t0, t1, stamps)
