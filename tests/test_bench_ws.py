"""The WebSocket benchmark runs in the unix port and reports its figures (never asserted)."""

from __future__ import annotations

from borne import bench


async def test_ws_frames_bench_reports_figures() -> None:
    lines = await bench.ws_frames()
    assert len(lines) == 3, lines
    assert "MB/s" in lines[0] and " us" in lines[1] and "rule check" in lines[2], lines
