"""Fixtures for system tests: a CSMS on the `ocpp` package and the simulated charger.

Every frame the charger sends passes the OCPP 1.6 schema check (date-time formats included);
a test whose charger sent an invalid frame fails at teardown with the frames listed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from borne.csms import Csms, Frame
from borne.mosquitto import Broker
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from ocpp.v16 import call
from simctl import Control, controlling, running

CP_ID = "CP-TEST-1"
# The system tests that matter run on both boards: unix_sim, and the ESP32 board's own code on
# the emulated chip. `@BOTH_BOARDS` on a test (or `board` among its parametrized arguments)
# selects them; everything else runs on unix_sim only.
BOARDS = ("unix_sim", "esp32_wallbox")
BOTH_BOARDS = pytest.mark.parametrize("board", BOARDS, indirect=True)


async def start_answered_with_callerror(csms: Csms, control: Control) -> Frame:
    """The CSMS answers every StartTransaction with a CALLERROR (its handler raises); the EV
    plugs in and asks for current: -> the first StartTransaction (its retry waits for
    TransactionMessageRetryInterval)."""

    def fail(payload: object) -> object:
        raise RuntimeError("CSMS database is down")

    csms.respond("StartTransaction", fail)
    await control("plug")
    await control("charge")
    return await csms.wait_call("StartTransaction")


async def answers_while_resolving(cp: Any, sim: Simulator, name: str) -> None:
    """The charger asks the simulation's resolver (holding its answers) for `name`; meanwhile
    it must answer the CSMS: a GetConfiguration within 2 s, or the lookup holds its loop."""
    await sim.dns.wait_query(name, timeout=30)
    try:
        conf = await asyncio.wait_for(
            cp.call(call.GetConfiguration(key=["HeartbeatInterval"])), 2)
    except TimeoutError:
        raise AssertionError(f"no GetConfiguration answer within 2 s while the charger's DNS "
                             f"lookup of {name} waited: the lookup holds the loop") from None
    assert conf.configuration_key[0]["key"] == "HeartbeatInterval"


@pytest.fixture
def board(request: pytest.FixtureRequest) -> str:
    """The board code the simulated charger runs (unix_sim unless a test parametrizes it)."""
    return getattr(request, "param", "unix_sim")


@pytest.fixture
def reader(request: pytest.FixtureRequest) -> str:
    """The RFID reader variant fitted (the ESP32 board's provisioning)."""
    return getattr(request, "param", "pn532_uart")


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    c = Csms(heartbeat_interval=300)
    await c.start()
    yield c
    await c.stop()
    assert not c.violations, "the charger sent frames that break the OCPP 1.6 schemas:\n" + (
        "\n".join(c.violations)
    )


@pytest.fixture(scope="session")
def compiled_firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The firmware as `borne build` makes it for the unix port (.mpy, as deployed): what a
    memory-bounded test should run, since source compiles into the heap at import."""
    from borne.build import compile_tree

    return compile_tree("unix_sim", out=tmp_path_factory.mktemp("build")).parent


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    return tmp_path / "flash"


@pytest.fixture
async def sim(csms: Csms, flash: Path, board: str, reader: str) -> AsyncIterator[Simulator]:
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                                 fitted=Fitted(board=board, reader=reader))) as s:
        yield s


@pytest.fixture
async def control(sim: Simulator) -> AsyncIterator[Control]:
    async with controlling(sim) as c:
        yield c


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A mosquitto of the test's own (tests/test_mqtt*.py): free ports, one user, no TLS."""
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
