"""What the CSMS saw of the charger's transactions, judged from the user's side.

A transaction the CSMS books twice is a duplicate, a start without a stop is lost, a stop below a
register the charger already reported under-bills, a stop earlier than its start (or at a coarser
resolution) is wrong. Repeats under the same message id are legal (OCPP 1.6 delivers at least
once) and counted; a repeat under a new id is a violation: a CSMS cannot recognise it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from borne.csms import Csms, Frame

TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")
REGISTER = "Energy.Active.Import.Register"


def parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def has_ms(s: str) -> bool:
    return "." in s


@dataclass
class Ledger:
    transactions: int = 0
    stops: int = 0
    meter_values: int = 0
    repeats_same_id: int = 0
    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def bad(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        if len(self.violations) < 50:
            self.violations.append(f"{kind}: {text}")

    def figures(self) -> dict[str, Any]:
        return {"transactions": self.transactions, "stops": self.stops,
                "meter_values": self.meter_values, "repeats_same_id": self.repeats_same_id,
                **{k: v for k, v in sorted(self.counts.items())}}


def judge(csms: Csms, cp_id: str, complete: bool = True) -> Ledger:
    """The ledger of one charge point's transaction messages. complete: every start must have
    its stop by now (the campaign waited for the queue to drain)."""
    led = Ledger()
    first: dict[str, Frame] = {}  # message id -> first CALL
    for f in csms.frames:
        if f.direction == "in" and f.is_call and f.cp_id == cp_id and f.action in TX_ACTIONS:
            mid = f.msg[1]
            if mid in first:
                led.repeats_same_id += 1
                continue
            first[mid] = f
    # A CALL the CSMS answered with a CALLERROR booked nothing: its retry (under a new id)
    # is no duplicate.
    first = {mid: f for mid, f in first.items() if not _refused(csms, cp_id, mid)}
    by_content: dict[tuple[str, str], str] = {}
    for mid, f in first.items():
        if f.action == "MeterValues" and "transactionId" not in f.payload:
            # Outside a transaction a reading is sent once, never journaled nor repeated: the
            # same content twice is two readings (two triggers in a second, or an aligned
            # boundary the CSMS's clock, set back across a reboot, made the charger pass again).
            continue
        key = (f.action or "", json.dumps(f.payload, sort_keys=True))
        if key in by_content:
            led.bad("repeated_under_new_id", f"{f.action} {by_content[key]} and {mid}: {key[1]}")
        by_content[key] = mid
    starts: dict[int, tuple[Frame, Any]] = {}  # transactionId -> (start frame, its payload)
    for mid, f in first.items():
        if f.action == "StartTransaction":
            tid = csms.started.get((cp_id, mid))
            if tid is not None:
                starts[tid] = (f, f.payload)
    led.transactions = len(starts)
    stops: dict[int, list[Frame]] = defaultdict(list)
    values: dict[int, list[Frame]] = defaultdict(list)
    order = {mid: i for i, mid in enumerate(first)}
    for f in first.values():
        tid = f.payload.get("transactionId")
        if f.action == "StopTransaction":
            stops[tid].append(f)
            led.stops += 1
        elif f.action == "MeterValues" and tid is not None:
            values[tid].append(f)
            led.meter_values += 1
    for tid, fs in stops.items():
        if tid not in starts and tid != -1:
            led.bad("stop_without_start", f"transaction {tid}")
        if len(fs) > 1:
            led.bad("stopped_twice", f"transaction {tid}: ids {[x.msg[1] for x in fs]}")
    for tid, (sf, sp) in starts.items():
        st = sp["timestamp"]
        t0 = parse_time(st)
        fs = stops.get(tid, [])
        if not fs:
            if complete:
                led.bad("lost", f"transaction {tid} (start {sf.msg[1]}) never stopped")
            continue
        stop = fs[0].payload
        regs = [r for v in values.get(tid, []) if (r := _register(v.payload)) is not None]
        top = max(regs, default=None)
        if top is not None and stop["meterStop"] < top:
            led.bad("billed_below_register",
                    f"transaction {tid}: meterStop {stop['meterStop']} < reported {top}")
        if stop["meterStop"] < sp["meterStart"]:
            led.bad("billed_below_start", f"transaction {tid}: {stop['meterStop']} < "
                    f"{sp['meterStart']}")
        for what, ts in [("stop", stop["timestamp"])] + [
            ("meter_values", mv["timestamp"]) for v in values.get(tid, [])
            for mv in v.payload["meterValue"]
        ]:
            if has_ms(ts) != has_ms(st):
                led.bad("timestamp_resolution", f"transaction {tid}: {what} {ts} vs start {st}")
            if parse_time(ts) < t0:
                led.bad("timestamp_before_start", f"transaction {tid}: {what} {ts} < start {st}")
        seq = [order[v.msg[1]] for v in values.get(tid, [])]
        if seq and min(seq) < order[sf.msg[1]]:
            led.bad("out_of_order", f"transaction {tid}: meter values before the start")
        if order[fs[0].msg[1]] < max([*seq, order[sf.msg[1]]]):
            led.bad("out_of_order", f"transaction {tid}: stop before one of its messages")
    return led


def _refused(csms: Csms, cp_id: str, mid: str) -> bool:
    """Did the CSMS answer message `mid` with a CALLERROR?"""
    a = csms.answered.get((cp_id, mid))
    return a is not None and a.lstrip("[ ").startswith("4")


def _register(p: dict[str, Any]) -> float | None:
    top = None
    for mv in p.get("meterValue", []):
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", REGISTER) == REGISTER and sv.get("unit", "Wh") == "Wh":
                try:
                    v = float(sv["value"])
                except (KeyError, ValueError):
                    continue
                top = v if top is None else max(top, v)
    return top
