"""A seeded slice of `make chaos` (borne.chaos, issue 11): every campaign at a small size, so
`make test` catches a regression of what the full campaign measures (figures in README.md).
A failure lists the violations; the figures are printed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from borne.chaos.campaigns import CAMPAIGNS, SLICE, SLICE_LONGEST_CUT_S, report, run
from borne.csms import Csms
from conftest import CP_ID
from ocpp.v16 import call
from simctl import Control

SEED = 20261202


@pytest.mark.parametrize("name", CAMPAIGNS)
async def test_chaos_slice(name: str, tmp_path: Path) -> None:
    [res] = await run([name], SLICE, SEED, tmp_path, longest_cut=SLICE_LONGEST_CUT_S)
    print(report(res))
    assert not res.violations, report(res)


async def test_an_answer_sent_before_the_charger_hangs_up_is_read(csms: Csms,
                                                                  control: Control) -> None:
    # Seed 60517 answers=80 (a "Reset: TimeoutError" violation): the CSMS, stalled on a tap's
    # Authorize, sent a soft Reset; the charger answered it and hung up (1001). Our Authorize
    # answer then failed on the closed link, which ended the CSMS's reading: the Reset.conf
    # already received was never routed and the operator's Reset timed out. Every frame the
    # charger sent before it closed is read.
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    csms.stalled["Authorize"] = 3.0
    await control("tap", uid="04A1B2C3")
    await csms.wait_call("Authorize")
    res = await asyncio.wait_for(cp.call(call.Reset(type="Soft")), 10)
    assert res.status == "Accepted"
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 20, "the reboot")
