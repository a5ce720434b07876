"""The memory budget (issue 12): both reference workloads pass in the heap the budget gives.

The firmware runs as `borne deploy` installs it (.mpy files: their bytecode in the heap) under
`-X heapsize=NwK`, N from `borne.workload.BUDGET_WK` (KiB of 32-bit words: the same N KiB on an
ESP32 for pointer-sized data); and as a ROMFS image executed in place (bytecode out of the
heap) in the data heap the budget gives that. A change that needs more heap fails here; a
reduction lowers the figure there (the one place; `borne bench memory-budget` measures how far
it could go). Scenarios and what fails them: `borne/workload.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from borne import workload

REFERENCE_WK = workload.BUDGET_WK["reference"]
CLAIM_WK = workload.BUDGET_WK["claim"]
REFERENCE_ROM_WK = workload.BUDGET_WK["reference_rom"]
CLAIM_ROM_WK = workload.BUDGET_WK["claim_rom"]


@pytest.fixture(scope="module")
def mpy_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = workload.build("mpy", tmp_path_factory.mktemp("mem"))
    assert folder is not None
    return folder


@pytest.fixture(scope="module")
def rom_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = workload.build("rom", tmp_path_factory.mktemp("rom"))
    assert folder is not None
    return folder


def _check(res: workload.Result) -> None:
    assert res.ok, res.summary() + f"\nsteps passed: {res.steps}"
    assert not res.violations, "frames that break the OCPP 1.6 schemas:\n" + "\n".join(
        res.violations)


async def test_reference_workload_fits_the_budget(mpy_build: Path) -> None:
    _check(await workload.reference(f"{REFERENCE_WK}wK", "mpy", mpy_build))


async def test_claim_fits_the_budget(mpy_build: Path) -> None:
    _check(await workload.claim(f"{CLAIM_WK}wK", "mpy", mpy_build))



async def test_reference_workload_fits_the_rom_budget(rom_image: Path) -> None:
    _check(await workload.reference(f"{REFERENCE_ROM_WK}wK", "rom", rom_image))


async def test_claim_fits_the_rom_budget(rom_image: Path) -> None:
    _check(await workload.claim(f"{CLAIM_ROM_WK}wK", "rom", rom_image))
