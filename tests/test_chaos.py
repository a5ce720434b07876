"""A seeded slice of `make chaos` (borne.chaos, issue 11): every campaign at a small size, so
`make test` catches a regression of what the full campaign measures (figures in README.md).
A failure lists the violations; the figures are printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from borne.chaos.campaigns import CAMPAIGNS, SLICE, SLICE_LONGEST_CUT_S, report, run

SEED = 20261202


@pytest.mark.parametrize("name", CAMPAIGNS)
async def test_chaos_slice(name: str, tmp_path: Path) -> None:
    [res] = await run([name], SLICE, SEED, tmp_path, longest_cut=SLICE_LONGEST_CUT_S)
    print(report(res))
    assert not res.violations, report(res)
