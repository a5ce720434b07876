"""The benchmark harness works (its figures are printed by `make bench`, not asserted here)."""

from __future__ import annotations

from borne import bench


async def test_boot_scenario_reports_heap_and_fails_cleanly_when_starved() -> None:
    heap = await bench.boot_scenario("256wK")
    assert heap is not None, "the agent did not boot in a 256wK heap"
    assert 0 < int(str(heap["peak"])) < int(str(heap["total"]))
    # A heap far too small: the scenario reports failure instead of hanging or raising.
    assert await bench.boot_scenario("8wK", timeout=10) is None


def test_local_list_bench_runs_inside_micropython() -> None:
    f = bench.local_list_figures(50)
    assert f["status"] == "Accepted" and f["status2"] == "Accepted", f
    assert int(str(f["erases"])) > 0 and int(str(f["heap_growth"])) > 0, f
