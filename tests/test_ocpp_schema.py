"""The CSMS's frame checker: one-decimal numbers are valid whatever their binary float."""

from __future__ import annotations

import json

from borne.ocpp_schema import FrameChecker


def _composite_answer(limits: list[float]) -> list[str]:
    fc = FrameChecker()
    fc.outgoing(json.dumps([2, "m1", "GetCompositeSchedule", {"connectorId": 1, "duration": 60}]))
    periods = [{"startPeriod": i, "limit": v} for i, v in enumerate(limits)]
    conf = {"status": "Accepted", "connectorId": 1, "scheduleStart": "2026-03-02T10:00:00Z",
            "chargingSchedule": {"duration": 60, "chargingRateUnit": "A",
                                 "chargingSchedulePeriod": periods}}
    return fc.incoming(json.dumps([3, "m1", conf]))


def test_one_decimal_limits_are_valid() -> None:
    # 0.3, 5.6, ... are not multiples of 0.1 as binary floats; as written they are.
    assert _composite_answer([k / 10 for k in range(0, 1000)]) == []


def test_two_decimals_are_not() -> None:
    problems = _composite_answer([5.65])
    assert problems and "multiple of" in problems[0], problems
