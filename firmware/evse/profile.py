# One OCPP 1.6 charging profile: its compact form and the time rules of its schedule (does it
# apply at t, which period, when can that change next). No hardware, no network: evse/smart.py
# combines profiles, this file knows one; evse/profparse.py turns a SetChargingProfile payload
# into one (loaded for that call only).
#
# Compact, because the ESP32 heap is ~100 KB: a profile is one flat list (fields below) with
# limits in tenths as small ints and times as unix seconds; the store keeps the same list as
# JSON, so loading it allocates no dicts with OCPP's long key names.
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
CP_MAX = const(0)
TX_DEFAULT = const(1)
TX = const(2)
# chargingProfileKind: Absolute, Recurring, Relative (evse/profparse.py reads the names)
_ABSOLUTE = const(0)
_RELATIVE = const(2)
_CYCLE = (0, 86400, 604800)  # seconds per recurrence
UNITS = ("A", "W")

# Advertised through ChargeProfileMaxStackLevel / ChargingScheduleMaxPeriods: they bound the
# RAM and flash one profile may take.
MAX_STACK_LEVEL = const(8)
MAX_PERIODS = const(24)

# Fields of the compact list.
ID = const(0)
CONN = const(1)
PURPOSE = const(2)
_KIND = const(3)
_REC = const(4)  # 0, 1 Daily, 2 Weekly
STACK = const(5)
_VFROM = const(6)  # unix s or None
_VTO = const(7)
_START = const(8)  # startSchedule, unix s or None
_DUR = const(9)  # seconds or None
_UNIT = const(10)  # 0 A, 1 W
_MINRATE = const(11)  # tenths or None (kept for the record; the EV's own minimum)
_TXID = const(12)  # TxProfile only
_PERIODS = const(13)  # flat: startPeriod, limit in tenths, numberPhases (0 = absent), ...
_NFIELDS = const(14)

# A limit compares across units as amps per phase. To keep the comparison exact in integers,
# key = amps per phase x 13800 (tenths x 1380): an A limit in tenths is x 1380, a W limit in
# tenths is W / (230 V x phases) x 13800 = tenths x 6 / phases (6 / phases is whole for 1-3).
# phases is the installation's (the `phases` setting), not the period's numberPhases: the
# charger cannot switch phases (ConnectorSwitch3to1PhaseSupported false), so an EV may draw on
# every installed phase whatever numberPhases says, and a power cap holds only when divided by
# all of them (7360 W with numberPhases 1 on 3 phases is 10.6 A a phase, not 32 A: 22 kW). A
# numberPhases below the installed count cannot be enforced; it is kept for the record only.
KEY_PER_DECIAMP = const(1380)


def loaded(p, cid):
    # A profile as read back from flash (JSON lists) -> the compact tuple, or None when it is
    # malformed. The store's CRC already vouches for the bytes; this guards against a document
    # written by another firmware version.
    try:
        ps = p[_PERIODS]
        if (len(p) == _NFIELDS and p[CONN] == cid and 0 <= p[PURPOSE] <= TX_DEFAULT
                and 0 <= p[_KIND] <= _RELATIVE and 0 <= p[_REC] <= 2 and len(ps) >= 3
                and len(ps) % 3 == 0 and ps[0] == 0):
            return tuple(p[:_PERIODS]) + (tuple(ps),)
    except (TypeError, IndexError, KeyError):
        pass
    return None


def _base(p, anchor):
    # When the schedule's offset 0 is. Relative schedules, and absolute or recurring ones without
    # startSchedule ("relative to the start of charging", 1.6 ChargingSchedule), start with the
    # transaction: anchor. anchor None = no transaction yet: the schedule would start with the
    # next one, so its offset stays 0 (its first period).
    if p[_START] is None:
        return anchor
    return p[_START]


def offset(p, t, anchor):
    # -> seconds into the schedule at t (into the current cycle for a recurring one), or -1 when
    # the profile does not apply at t: outside validFrom/validTo, before its start, or past its
    # duration (then the next lower stack level applies).
    vf = p[_VFROM]
    vt = p[_VTO]
    if (vf is not None and t < vf) or (vt is not None and t >= vt):
        return -1
    base = _base(p, anchor)
    if base is None:
        return 0
    off = t - base
    if off < 0:
        return -1  # a recurrence starts at startSchedule, it is not projected backwards
    cyc = _CYCLE[p[_REC]]
    if cyc:
        off %= cyc
    d = p[_DUR]
    if d is not None and off >= d:
        return -1
    return off


def period(p, off):
    # -> index into p[_PERIODS] of the period in force at offset off (the first one starts at 0)
    ps = p[_PERIODS]
    i = 0
    j = 3
    n = len(ps)
    while j < n and ps[j] <= off:
        i = j
        j += 3
    return i


def seg(p, off, phases, i=None):
    # The limit at offset off (or of period index i) as (key, numberPhases or 0, unit index,
    # limit in tenths); phases: the installation's, 1 or 3 (see KEY_PER_DECIAMP).
    ps = p[_PERIODS]
    if i is None:
        i = period(p, off)
    tenths = ps[i + 1]
    if p[_UNIT]:
        key = tenths * (6 // phases)
    else:
        key = tenths * KEY_PER_DECIAMP
    return (key, ps[i + 2], p[_UNIT], tenths)


def lowest(p, phases):
    # The lowest limit segment of any of p's periods: what p could impose at some time.
    low = None
    for i in range(0, len(p[_PERIODS]), 3):
        s = seg(p, 0, phases, i)
        if low is None or s[0] < low[0]:
            low = s
    return low


def next_edge(p, t, anchor):
    # -> the first time after t at which offset() or period() may change, or None. Edges where
    # nothing actually changes are harmless (callers re-evaluate and merge).
    best = None
    for e in (p[_VFROM], p[_VTO]):
        if e is not None and e > t and (best is None or e < best):
            best = e
    base = _base(p, anchor)
    if base is None:
        return best
    if t < base:
        e = base
    else:
        cyc = _CYCLE[p[_REC]]
        o = t - base
        if cyc:
            o %= cyc
        c = t - o  # start of the current cycle (the base itself when not recurring)
        e = None
        ps = p[_PERIODS]
        for k in range(3, len(ps), 3):
            if ps[k] > o:
                e = c + ps[k]
                break
        d = p[_DUR]
        if d is not None and d > o and (e is None or c + d < e):
            e = c + d
        if cyc and (e is None or c + cyc < e):
            e = c + cyc
    if e is not None and (best is None or e < best):
        best = e
    return best


def dead(p, now):
    # True when the profile can never apply again: validTo passed, or an absolute schedule with a
    # start of its own whose duration is over. Such profiles are dropped to free RAM and flash.
    if p[_VTO] is not None and p[_VTO] <= now:
        return True
    return (p[_KIND] == _ABSOLUTE and p[_START] is not None and p[_DUR] is not None
            and p[_START] + p[_DUR] <= now)
