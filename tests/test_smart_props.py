"""Property tests of firmware/evse/smart.py under CPython, against an independent model.

The firmware module runs unchanged: MicroPython's ``const()`` (an identity at run time) is
provided as a builtin only while it is imported, and its top-level modules (``log``,
``clock``, ``store``, ``evse``) are taken out of ``sys.modules`` again afterwards, so nothing
leaks into other tests. The on-target tests (tests/target/test_smart.py) are the main ones;
here hypothesis draws random profile sets and query times and checks limit_at, next_change and
composite_schedule against ``ref_limit``, a re-statement of the OCPP 1.6 rules written from the
OCPP payloads (not from the firmware's compact form) with exact fractions.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import datetime as dt
import importlib
import itertools
import json
import math
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
_FW_MODULES = ("log", "clock", "store", "evse", "supervisor")
_LOADED: dict[str, ModuleType] = {}  # the firmware's modules, between two uses


@contextlib.contextmanager
def _firmware() -> Iterator[None]:
    """firmware/ importable as on the charger while in the block (const() a builtin, the
    modules loaded before back in sys.modules), and out of sys.modules again afterwards. The
    firmware imports some modules when first used (evse/smart.py its profile parser)."""
    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] in _FW_MODULES}
    had_const = hasattr(builtins, "const")
    builtins.const = lambda x: x  # type: ignore[attr-defined]
    sys.path.insert(0, str(FIRMWARE))
    sys.modules.update(_LOADED)
    try:
        yield
    finally:
        sys.path.remove(str(FIRMWARE))
        if not had_const:
            del builtins.const  # type: ignore[attr-defined]
        for n in [n for n in sys.modules if n.split(".")[0] in _FW_MODULES]:
            _LOADED[n] = sys.modules.pop(n)
        sys.modules.update(saved)


def _load_firmware() -> ModuleType:
    with _firmware():
        smart = importlib.import_module("evse.smart")
    smart.log.level = smart.log.ERROR  # the firmware logs every change to stdout
    return smart


SMART = _load_firmware()
with _firmware():
    MAX_PERIODS = importlib.import_module("evse.composite").MAX_PERIODS
T0 = int(dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC).timestamp())
SET_AT = T0 - 30 * 86400  # profiles are installed before any time queried
CYCLE = {"Daily": 86400, "Weekly": 604800}
MAX_A = 80


class MemStore:
    """store.Store's load/save, in memory, through JSON like the real one."""

    def __init__(self) -> None:
        self.docs: dict[str, str] = {}

    def load(self, name: str, defaults: dict[str, Any], version: int = 1) -> dict[str, Any]:
        if name in self.docs:
            return json.loads(self.docs[name])
        return copy.deepcopy(defaults)

    def save(self, name: str, data: dict[str, Any], version: int = 1) -> None:
        self.docs[name] = json.dumps(data)


def _run(coro: Any) -> Any:
    """A composite schedule's coroutine driven by hand to its answer: its only awaits are
    asyncio.sleep(0), which yield None."""
    while True:
        try:
            assert coro.send(None) is None
        except StopIteration as done:
            return done.value


def _edges_per_step(s: Any, coro: Any) -> tuple[Any, list[int]]:
    """_run() -> (the answer, how many edges (edge_after calls) it walked between two turns of
    the event loop, each time)."""
    walked = [0]
    real = s.edge_after

    def counting(*a: Any) -> Any:
        walked[0] += 1
        return real(*a)

    s.edge_after = counting
    steps = []
    try:
        while True:
            walked[0] = 0
            try:
                assert coro.send(None) is None
            except StopIteration as done:
                steps.append(walked[0])
                return done.value, steps
            steps.append(walked[0])
    finally:
        del s.edge_after


def iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(s: str) -> int:
    return int(dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp())


# -- the model -----------------------------------------------------------------------------------

Req = dict[str, Any]  # a SetChargingProfile.req


def ref_offset(cp: dict[str, Any], t: int, tx_start: int) -> int | None:
    """Seconds into the profile's schedule at t, or None when the profile does not apply."""
    if "validFrom" in cp and t < parse(cp["validFrom"]):
        return None
    if "validTo" in cp and t >= parse(cp["validTo"]):
        return None
    sch = cp["chargingSchedule"]
    kind = cp["chargingProfileKind"]
    # Relative, or no startSchedule: "relative to the start of charging".
    start = tx_start if kind == "Relative" or "startSchedule" not in sch else parse(
        sch["startSchedule"]
    )
    if t < start:
        return None
    off = t - start
    if kind == "Recurring":
        off %= CYCLE[cp["recurrencyKind"]]
    if "duration" in sch and off >= sch["duration"]:
        return None
    return off


def ref_amps(cp: dict[str, Any], off: int, phases: int) -> tuple[Fraction, int | None]:
    """The limit in A per phase; W over 230 V x the installation's phases, whatever the period's
    numberPhases (the charger cannot switch phases: the EV may draw on every installed one)."""
    sch = cp["chargingSchedule"]
    cur = sch["chargingSchedulePeriod"][0]
    for p in sch["chargingSchedulePeriod"]:
        if p["startPeriod"] <= off:
            cur = p
    lim = Fraction(round(cur["limit"] * 10), 10)
    ph = cur.get("numberPhases")
    if sch["chargingRateUnit"] == "W":
        lim /= 230 * phases
    return lim, ph


def ref_best(reqs: list[Req], purpose: str, conn: int, t: int, tx_start: int, phases: int
             ) -> Fraction | None:
    top: tuple[int, Fraction] | None = None
    for r in reqs:
        cp = r["csChargingProfiles"]
        if r["connectorId"] != conn or cp["chargingProfilePurpose"] != purpose:
            continue
        off = ref_offset(cp, t, tx_start)
        if off is not None and (top is None or cp["stackLevel"] > top[0]):
            top = (cp["stackLevel"], ref_amps(cp, off, phases)[0])
    return None if top is None else top[1]


def ref_limit(reqs: list[Req], t: int, tx_start: int, with_tx: bool = True, phases: int = 3
              ) -> Fraction | None:
    """Amps per phase on connector 1 at t: min(max profile, TxProfile or else TxDefault); with
    one connector, connector 0's total is the same."""
    cap = ref_best(reqs, "ChargePointMaxProfile", 0, t, tx_start, phases)
    tx = ref_best(reqs, "TxProfile", 1, t, tx_start, phases) if with_tx else None
    if tx is None:
        tx = ref_best(reqs, "TxDefaultProfile", 1, t, tx_start, phases)
    if tx is None:
        tx = ref_best(reqs, "TxDefaultProfile", 0, t, tx_start, phases)
    vals = [v for v in (cap, tx) if v is not None]
    return min(vals) if vals else None


def down(v: Fraction | None) -> float | None:
    """Rounded down to 0.1, as the firmware reports amps."""
    return None if v is None else math.floor(v * 10) / 10


# -- strategies ----------------------------------------------------------------------------------


@st.composite
def schedules(draw: st.DrawFn, unit: str) -> dict[str, Any]:
    starts = draw(st.lists(st.integers(1, 2 * 86400), max_size=4, unique=True))
    periods = []
    for sp in [0, *sorted(starts)]:
        hi = 1000 if unit == "A" else 300000  # tenths: up to 100 A, 30 kW
        p: dict[str, Any] = {"startPeriod": sp, "limit": draw(st.integers(0, hi)) / 10}
        ph = draw(st.sampled_from([None, 1, 2, 3]))
        if ph is not None:
            p["numberPhases"] = ph
        periods.append(p)
    sch: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": periods}
    if draw(st.booleans()):
        sch["duration"] = draw(st.integers(60, 3 * 86400))
    return sch


@st.composite
def profiles(draw: st.DrawFn, pid: int, purpose: str, conn: int, stack: int) -> Req:
    unit = draw(st.sampled_from(["A", "W"]))
    sch = draw(schedules(unit))
    kind = draw(st.sampled_from(["Absolute", "Recurring", "Relative"]))
    cp: dict[str, Any] = {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": sch,
    }
    if kind == "Recurring":
        cp["recurrencyKind"] = draw(st.sampled_from(["Daily", "Weekly"]))
    if kind != "Relative" and draw(st.integers(0, 3)):  # mostly with a startSchedule
        sch["startSchedule"] = iso(T0 + draw(st.integers(-8 * 86400, 2 * 86400)))
    if draw(st.booleans()):
        vf = T0 + draw(st.integers(-2 * 86400, 2 * 86400))
        cp["validFrom"] = iso(vf)
        if draw(st.booleans()):
            cp["validTo"] = iso(vf + draw(st.integers(60, 3 * 86400)))
    return {"connectorId": conn, "csChargingProfiles": cp}


@st.composite
def profile_sets(draw: st.DrawFn) -> list[Req]:
    # Distinct ids and distinct (connector, purpose, stackLevel): nothing replaces anything.
    slots = [("ChargePointMaxProfile", 0), ("TxDefaultProfile", 0), ("TxDefaultProfile", 1),
             ("TxProfile", 1)]
    out = []
    pid = 1
    for purpose, conn in slots:
        for stack in draw(st.lists(st.integers(0, 3), max_size=2, unique=True)):
            out.append(draw(profiles(pid, purpose, conn, stack)))
            pid += 1
    return out


def install(reqs: list[Req], store: MemStore | None = None, phases: int = 3) -> Any:
    s = SMART.Smart(store or MemStore(), 1, phases)
    for r in reqs:
        with _firmware():  # the parser loads on use
            st_, why = s.set_profile(copy.deepcopy(r), 77, SET_AT)
        assert st_ == "Accepted", (why, r)
    return s


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- properties ----------------------------------------------------------------------------------


PHASES = st.sampled_from([1, 3])  # the installation's (the `phases` setting)


@SETTINGS
@given(profile_sets(), st.integers(0, 86400), st.lists(st.integers(0, 4 * 86400), max_size=12),
       PHASES)
def test_limit_at_matches_the_model(reqs: list[Req], tx_ago: int, offsets: list[int],
                                    phases: int) -> None:
    s = install(reqs, phases=phases)
    tx_start = T0 - tx_ago
    for o in offsets:
        t = tx_start + o
        want = down(ref_limit(reqs, t, tx_start, phases=phases))
        assert s.limit_at(t, 1, tx_start) == want, (t - T0)
        # without a transaction TxProfiles do not count (relative ones anchored at t)
        assert s.limit_at(t, 1) == down(ref_limit(reqs, t, t, with_tx=False, phases=phases))
        # no schedule can be read with the clock unset: never above what any time allows
        low = s.lowest(1, True)
        assert low is None if not reqs else low is not None and (want is None or low <= want)


@SETTINGS
@given(profile_sets(), st.integers(0, 86400), st.integers(0, 86400), st.integers(60, 3 * 86400),
       st.sampled_from(["A", "W"]), PHASES, st.sampled_from([0, 1]), st.data())
def test_composite_schedule_matches_the_model(reqs: list[Req], tx_ago: int, later: int,
                                              duration: int, unit: str, phases: int, cid: int,
                                              data: st.DataObject) -> None:
    s = install(reqs, phases=phases)
    tx_start = T0 - tx_ago
    now = tx_start + later
    with _firmware():  # the composite schedule loads on use
        c = _run(s.composite_schedule(cid, duration, unit, now, tx_start))
    if c is None:
        # nothing applies anywhere: sample to be sure
        for o in data.draw(st.lists(st.integers(0, duration - 1), max_size=8)):
            assert ref_limit(reqs, now + o, tx_start, phases=phases) is None
        return
    assert c["startSchedule"] == iso(now) and c["chargingRateUnit"] == unit
    ps = c["chargingSchedulePeriod"]
    assert 0 < c["duration"] <= duration
    assert ps[0]["startPeriod"] == 0
    assert len(ps) <= MAX_PERIODS
    for a, b in itertools.pairwise(ps):
        assert a["startPeriod"] < b["startPeriod"] < c["duration"]
        assert a["limit"] != b["limit"]
    # every limit is for the installed phases, whatever the profiles' numberPhases (3: unsaid)
    assert all(p.get("numberPhases", 3) == phases for p in ps), ps
    ends = [p["startPeriod"] for p in ps[1:]] + [c["duration"]]
    for p, end in zip(ps, ends, strict=True):
        probes = {p["startPeriod"], end - 1}
        probes.update(data.draw(st.lists(st.integers(p["startPeriod"], end - 1), max_size=3)))
        for o in probes:
            want = ref_limit(reqs, now + o, tx_start, phases=phases)
            amps = MAX_A if want is None or want > MAX_A else want
            if unit == "A":
                assert p["limit"] == down(amps), (o, p, want)
            else:
                # W: amps x 230 x the installed phases (a W profile's own figure exactly)
                assert math.isclose(p["limit"] / (230 * phases), float(amps), abs_tol=0.001), (
                    o, p, want)


@SETTINGS
@given(profile_sets(), st.integers(0, 86400), st.integers(0, 2 * 86400), PHASES, st.data())
def test_next_change_is_the_next_change(reqs: list[Req], tx_ago: int, later: int, phases: int,
                                        data: st.DataObject) -> None:
    s = install(reqs, phases=phases)
    tx_start = T0 - tx_ago
    now = tx_start + later
    v = s.limit_at(now, 1, tx_start)
    nc = s.next_change(now, 1, tx_start)
    horizon = nc if nc is not None else now + 10 * 86400
    assert horizon > now
    for o in data.draw(st.lists(st.integers(0, horizon - now - 1), max_size=10)):
        assert down(ref_limit(reqs, now + o, tx_start, phases=phases)) == v, o
    if nc is not None and s.limit_at(nc, 1, tx_start) == v:
        # not a change: only allowed as the "look again" answer after a long steady stretch
        # (hundreds of edges: days with these profile sets)
        assert nc - now > 86400


@SETTINGS
@given(profile_sets(), st.fixed_dictionaries({}, optional={
    "id": st.integers(0, 10),
    "connector": st.integers(0, 2),
    "purpose": st.sampled_from(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]),
    "stack": st.integers(0, 3),
}))
def test_clear_removes_exactly_the_matches(reqs: list[Req], kw: dict[str, Any]) -> None:
    store = MemStore()
    s = install(reqs, store)

    def match(r: Req) -> bool:
        # 1.6 5.5: "either a specific charging profile (denoted by id) or a selection" by the
        # other fields: an id alone decides
        cp = r["csChargingProfiles"]
        if "id" in kw:
            return bool(kw["id"] == cp["chargingProfileId"])
        return (kw.get("connector", r["connectorId"]) == r["connectorId"]
                and kw.get("purpose", cp["chargingProfilePurpose"]) == cp["chargingProfilePurpose"]
                and kw.get("stack", cp["stackLevel"]) == cp["stackLevel"])

    left = [r for r in reqs if not match(r)]
    assert s.clear(**kw) == ("Accepted" if len(left) < len(reqs) else "Unknown")
    ids = sorted(r["csChargingProfiles"]["chargingProfileId"] for r in left)
    assert sorted(p[0] for p in s.profiles()) == ids
    # a reboot keeps all but the TxProfiles (they end with their transaction)
    kept = sorted(r["csChargingProfiles"]["chargingProfileId"] for r in left
                  if r["csChargingProfiles"]["chargingProfilePurpose"] != "TxProfile")
    assert sorted(p[0] for p in SMART.Smart(store, 1).profiles()) == kept


BREAKERS = (
    ("chargingProfilePurpose", "MaxProfile"),
    ("chargingProfileKind", "Sometimes"),
    ("stackLevel", -1),
    ("chargingProfileId", "7"),
)


@SETTINGS
@given(profile_sets(), st.data())
def test_bad_profile_changes_nothing(reqs: list[Req], data: st.DataObject) -> None:
    store = MemStore()
    s = install(reqs, store)
    before = (s.profiles(), dict(store.docs))
    bad = copy.deepcopy(data.draw(profiles(99, "TxDefaultProfile", 1, 3)))
    cp = bad["csChargingProfiles"]
    how = data.draw(st.integers(0, len(BREAKERS) + 2))
    if how < len(BREAKERS):
        k, v = BREAKERS[how]
        cp[k] = v
    elif how == len(BREAKERS):
        ps = cp["chargingSchedule"]["chargingSchedulePeriod"]
        ps.append(dict(ps[-1]))  # a duplicate startPeriod: overlapping periods
    elif how == len(BREAKERS) + 1:
        cp["chargingProfilePurpose"] = "TxProfile"  # without a transaction (tx_id None below)
    else:
        cp["chargingSchedule"]["chargingSchedulePeriod"][0]["startPeriod"] = 5
    with _firmware():
        st_, why = s.set_profile(bad, None, SET_AT)
    assert st_ == "Rejected" and why
    assert (s.profiles(), store.docs) == before


# -- pinned cases (the audit of 2026-12) ---------------------------------------------------------


def _req(pid: int, purpose: str, conn: int, limit: float, unit: str = "A",
         phases: int | None = None) -> Req:
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
    if phases is not None:
        period["numberPhases"] = phases
    return {"connectorId": conn, "csChargingProfiles": {
        "chargingProfileId": pid, "stackLevel": 0, "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": unit, "startSchedule": iso(SET_AT),
                             "chargingSchedulePeriod": [period]}}}


def _composite(s: Any, cid: int, unit: str) -> list[dict[str, Any]]:
    with _firmware():
        c = _run(s.composite_schedule(cid, 600, unit, T0, None))
    return list(c["chargingSchedulePeriod"])


def test_a_long_composite_walks_few_edges_per_turn_of_the_loop() -> None:
    # A year over ten daily profiles of 24 hourly periods, edges apart (the audit of 2026-12:
    # ~88000 edges walked in one go froze the charger for tens of seconds). The walk gives the
    # event loop a turn every few edges (an edge is ~8 ms on an ESP32 with ten profiles: the
    # pilot and relay loop must not wait more than a few tens of ms) and stops after a bounded
    # number of them, answering a shorter duration (1.6 5.7 allows it).
    reqs = []
    for k in range(10):
        r = _req(k + 1, "ChargePointMaxProfile" if k == 9 else "TxDefaultProfile",
                 0 if k == 9 else 1, 32)
        cp = r["csChargingProfiles"]
        cp["stackLevel"] = 0 if k == 9 else k
        cp["chargingProfileKind"] = "Recurring"
        cp["recurrencyKind"] = "Daily"
        sch = cp["chargingSchedule"]
        sch["startSchedule"] = iso(SET_AT + 61 * k)
        sch["chargingSchedulePeriod"] = [{"startPeriod": h * 3600, "limit": 32} for h in range(24)]
        reqs.append(r)
    s = install(reqs)
    year = 365 * 86400
    with _firmware():
        c, steps = _edges_per_step(s, s.composite_schedule(1, year, "A", T0, None))
    assert c["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 32.0}]
    assert 86400 <= c["duration"] < year, c["duration"]
    assert max(steps) <= 4, steps
    assert sum(steps) <= 400, sum(steps)


def test_a_power_limit_holds_on_every_installed_phase() -> None:
    # 7360 W "on 1 phase" on a 3-phase installation: the EV may draw on all 3 (the charger
    # cannot switch), so 7360 / (230 x 3) = 10.67 A a phase, not 32 A (22 kW).
    s = install([_req(1, "ChargePointMaxProfile", 0, 7360, "W", phases=1)], phases=3)
    assert s.limit_at(T0, 1) == 10.6
    # The composite's limits are for the 3 installed phases (1.6's default: numberPhases left
    # out), not 10.6 A next to the profile's numberPhases 1 (2.4 kW; the audit of 2026-12).
    assert _composite(s, 1, "W") == [{"startPeriod": 0, "limit": 7360.0}]
    assert _composite(s, 0, "W") == [{"startPeriod": 0, "limit": 7360.0}]
    assert _composite(s, 1, "A") == [{"startPeriod": 0, "limit": 10.6}]
    # 7.4 kW without numberPhases on a 1-phase installation: all of it on that phase.
    s = install([_req(1, "ChargePointMaxProfile", 0, 7360, "W")], phases=1)
    assert s.limit_at(T0, 1) == 32.0
    assert _composite(s, 1, "W") == [{"startPeriod": 0, "limit": 7360.0, "numberPhases": 1}]
    # an A limit in W: 16 A x 230 V x 1 phase
    s = install([_req(1, "TxDefaultProfile", 1, 16, phases=3)], phases=1)
    assert _composite(s, 1, "W") == [{"startPeriod": 0, "limit": 3680.0, "numberPhases": 1}]


def test_connector_0_reports_the_charge_points_total() -> None:
    # 1.6 5.7: connector 0 is "the total expected energy flow of the Charge Point", TxDefault
    # profiles included, not the ChargePointMaxProfile alone.
    s = install([_req(1, "ChargePointMaxProfile", 0, 32), _req(2, "TxDefaultProfile", 0, 10)])
    assert _composite(s, 0, "A") == [{"startPeriod": 0, "limit": 10.0}]
    assert _composite(s, 0, "W") == [{"startPeriod": 0, "limit": 6900.0}]
    assert s.limit_at(T0, 0) == 10.0
    # the maximum still caps it
    s = install([_req(1, "ChargePointMaxProfile", 0, 8), _req(2, "TxDefaultProfile", 1, 10)])
    assert _composite(s, 0, "A") == [{"startPeriod": 0, "limit": 8.0}]


def test_connector_0_sums_the_connectors_under_the_maximum() -> None:
    # Smart keeps profiles for more connectors than this charger has: the total is their sum.
    s = SMART.Smart(MemStore(), 2)
    for r in (_req(1, "ChargePointMaxProfile", 0, 32), _req(2, "TxDefaultProfile", 1, 10),
              _req(3, "TxDefaultProfile", 2, 12)):
        with _firmware():
            assert s.set_profile(r, None, SET_AT)[0] == "Accepted"
    assert _composite(s, 0, "A") == [{"startPeriod": 0, "limit": 22.0}]
    assert _composite(s, 0, "W") == [{"startPeriod": 0, "limit": 15180.0}]
    with _firmware():
        assert s.set_profile(_req(1, "ChargePointMaxProfile", 0, 16), None, SET_AT)[0] == (
            "Accepted")
    assert _composite(s, 0, "A") == [{"startPeriod": 0, "limit": 16.0}]


def test_clear_by_id_ignores_the_other_fields() -> None:
    reqs = [_req(1, "ChargePointMaxProfile", 0, 32), _req(2, "TxDefaultProfile", 0, 10)]
    s = install(reqs)
    assert s.clear(2, 1) == "Accepted"  # profile 2 is on connector 0: the id decides
    assert [p[0] for p in s.profiles()] == [1]
    assert s.clear(9, 0) == "Unknown"  # no profile 9: nothing, not the connector-0 ones
    assert [p[0] for p in s.profiles()] == [1]


def test_a_remote_starts_txprofile_needs_room() -> None:
    reqs = [_req(i, "TxDefaultProfile", i % 2, 10 + i) for i in range(1, 11)]
    for i, r in enumerate(reqs):
        r["csChargingProfiles"]["stackLevel"] = i // 2
    s = install(reqs)
    tx = {"chargingProfileId": 20, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
          "chargingProfileKind": "Relative",
          "chargingSchedule": {"chargingRateUnit": "A",
                               "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]}}
    with _firmware():
        p, why = s.parse_remote(tx)
    assert p is None and "10 profiles" in why
    # one that replaces an installed profile (its id) still fits
    with _firmware():
        p, why = s.parse_remote(dict(tx, chargingProfileId=3))
    assert why is None and s.install(p) == ("Accepted", None)
