# GetCompositeSchedule's answer from the installed profiles (OCPP 1.6 5.7): loaded for the call
# only (evse/smart.py's composite_schedule(), supervisor.rare()), so a profile's whole life does
# not keep it in the heap. It walks Smart's limit rules (segment_at, edge_after) edge by edge,
# a few edges per turn of the event loop: a long request (a year over ten recurring profiles is
# thousands of edges, ~8 ms each on an ESP32) must not hold up the pilot and relay loop.
import asyncio

import clock
from evse import profile as pf
from evse.profile import KEY_PER_DECIAMP
from evse.smart import min_segment

# A composite answer is at most this many periods (its duration is cut there), so a CSMS asking
# for a year of an hourly daily profile cannot exhaust the heap.
MAX_PERIODS = const(48)
# Edges walked at most (the duration is cut at the last one: 1.6 lets the answer cover less than
# asked), _CHUNK of them between two turns of the event loop: a few seconds in all on an ESP32
# with ten profiles, well within a CSMS's wait, and a few tens of ms at a time.
_EDGES = const(400)
_CHUNK = const(4)
# The most the pilot can signal (IEC 61851-1): what "no limit" means in a composite schedule.
MAX_A = const(80)


async def schedule(smart, connector, duration, unit, now, tx_start, cap):
    # -> {"startSchedule", "duration", "chargingRateUnit", "chargingSchedulePeriod":
    # [{"startPeriod", "limit"[, "numberPhases"]}]} from now for duration s, equal neighbouring
    # periods merged; or None when no profile applies at all in that time and no cap is given
    # (nothing to report). unit "A" (None: "A") or "W"; cap: the charger's own limit in A
    # (installer setting), applied like a profile; where nothing limits, MAX_A is reported.
    # Without a transaction (tx_start None), relative schedules are shown as if one started now.
    # The duration is cut at MAX_PERIODS periods or _EDGES edges. ValueError for an unknown
    # connector or unit, or a duration < 1 (answer Rejected).
    if not isinstance(duration, int) or duration < 1:
        raise ValueError("duration %r" % (duration,))
    if type(connector) is not int or connector < 0 or connector > smart.n:
        raise ValueError("connector %r" % (connector,))
    if unit is None:
        unit = "A"
    if unit not in pf.UNITS:
        raise ValueError("chargingRateUnit %r" % (unit,))
    u = pf.UNITS.index(unit)
    with_tx = tx_start is not None
    anchor = tx_start if with_tx else now
    c10 = int((MAX_A if cap is None else cap) * 10 + 0.001)
    ceiling = (c10 * KEY_PER_DECIAMP, 0, 0, c10)
    found = cap is not None
    out = []
    last = None
    t = now
    end = now + duration
    n = 0
    while t < end:
        s = smart.segment_at(t, connector, anchor, with_tx)
        if s is not None:
            found = True
        key, _, su, tenths = min_segment(ceiling, s)
        if su != u:
            # W -> A: tenths of W / (230 x installed phases); A -> W: the reverse, both rounded
            # down (a W profile's own figure comes back exactly: key = tenths x 6 / phases).
            tenths = key // KEY_PER_DECIAMP if u == 0 else key * smart.phases // 6
        if last != tenths:
            if len(out) == MAX_PERIODS:
                end = t
                break
            d = {"startPeriod": t - now, "limit": tenths / 10}
            if smart.phases != 3:
                # The phases the limit is for: every installed one (an EV may draw on all, the
                # charger cannot switch), never a profile's numberPhases. 3 goes unsaid (1.6's
                # default).
                d["numberPhases"] = smart.phases
            out.append(d)
            last = tenths
        e = smart.edge_after(t, connector, anchor, with_tx)
        t = end if e is None or e > end else e
        n += 1
        if n % _CHUNK == 0:
            if n == _EDGES:
                end = t  # the periods found hold until t
            else:
                await asyncio.sleep(0)
    if not found:
        return None
    return {
        "startSchedule": clock.iso(now),
        "duration": end - now,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": out,
    }
