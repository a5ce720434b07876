# A SetChargingProfile payload (or a RemoteStartTransaction's chargingProfile) checked and turned
# into evse/profile.py's compact tuple. Loaded for the call and dropped after it (evse/smart.py,
# supervisor.rare()): a TxProfile's session keeps only the rules that apply it, not this parser
# and its error texts.
import clock
from evse.profile import CP_MAX, MAX_PERIODS, MAX_STACK_LEVEL, PURPOSES, TX, UNITS

_KINDS = ("Absolute", "Recurring", "Relative")  # evse/profile.py's _KIND values
_RECURRING = const(1)
_RELATIVE = const(2)
_RECURRENCY = ("Daily", "Weekly")  # stored as 1, 2 (0 = not recurring)


def _isint(v):
    return type(v) is int  # not bool, which isinstance(v, int) would let through


def _isnum(v):
    return type(v) is int or type(v) is float


def _time(v, what):
    # -> unix s, or None for an absent field; raises ValueError with the field's name.
    if v is None:
        return None
    try:
        return clock.parse_iso(v)
    except ValueError:
        raise ValueError("bad %s" % what)


def parse(req, connectors, tx_id, now):
    # SetChargingProfile.req -> (compact profile, None) or (None, reason). Nothing is changed
    # here; the reason goes into a log line (and the caller's answer is Rejected).
    try:
        return _parse(req, connectors, tx_id, now), None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        return None, str(e) or type(e).__name__


def remote(prof, connectors, now):
    # A RemoteStartTransaction's chargingProfile -> parse()'s answer, for connector 1. Its
    # transaction does not exist yet (tx_id -1): the session it starts with is its own.
    prof = dict(prof)
    prof.pop("transactionId", None)
    return parse({"connectorId": 1, "csChargingProfiles": prof}, connectors, -1, now)


def _parse(req, connectors, tx_id, now):
    if not isinstance(req, dict):
        raise ValueError("not an object")
    cid = req.get("connectorId")
    if not _isint(cid) or cid < 0 or cid > connectors:
        raise ValueError("unknown connector %r" % (cid,))
    cp = req.get("csChargingProfiles")
    if not isinstance(cp, dict):
        raise ValueError("no csChargingProfiles")
    pid = cp.get("chargingProfileId")
    if not _isint(pid):
        raise ValueError("bad chargingProfileId")
    stack = cp.get("stackLevel")
    if not _isint(stack) or stack < 0 or stack > MAX_STACK_LEVEL:
        raise ValueError("stackLevel must be 0..%d" % MAX_STACK_LEVEL)
    name = cp.get("chargingProfilePurpose")
    if name not in PURPOSES:
        raise ValueError("unknown purpose %r" % (name,))
    purpose = PURPOSES.index(name)
    name = cp.get("chargingProfileKind")
    if name not in _KINDS:
        raise ValueError("unknown kind %r" % (name,))
    kind = _KINDS.index(name)
    rec = 0
    if kind == _RECURRING:
        name = cp.get("recurrencyKind")
        if name not in _RECURRENCY:
            raise ValueError("Recurring needs recurrencyKind Daily or Weekly")
        rec = _RECURRENCY.index(name) + 1
    txid = cp.get("transactionId")
    if purpose == CP_MAX and cid != 0:
        raise ValueError("ChargePointMaxProfile only on connector 0")
    if purpose == TX:
        if cid == 0:
            raise ValueError("TxProfile needs a connector, not 0")
        if tx_id is None:
            raise ValueError("TxProfile without an active transaction")
        if txid is not None and tx_id != -1 and txid != tx_id:  # (-1: not known yet)
            raise ValueError("transactionId %r is not the active transaction" % (txid,))
        txid = tx_id
    elif txid is not None:
        raise ValueError("transactionId only with TxProfile")
    vfrom = _time(cp.get("validFrom"), "validFrom")
    vto = _time(cp.get("validTo"), "validTo")
    if vfrom is not None and vto is not None and vfrom >= vto:
        raise ValueError("validFrom not before validTo")
    if vto is not None and vto <= now:
        raise ValueError("validTo already passed")

    sch = cp.get("chargingSchedule")
    if not isinstance(sch, dict):
        raise ValueError("no chargingSchedule")
    unit = sch.get("chargingRateUnit")
    if unit not in UNITS:
        raise ValueError("chargingRateUnit must be A or W")
    dur = sch.get("duration")
    if dur is not None and (not _isint(dur) or dur <= 0):
        raise ValueError("duration must be a positive integer")
    start = _time(sch.get("startSchedule"), "startSchedule")
    mr = sch.get("minChargingRate")
    if mr is not None:
        if not _isnum(mr) or mr < 0:
            raise ValueError("bad minChargingRate")
        mr = int(round(mr * 10))
    ps = sch.get("chargingSchedulePeriod")
    if not isinstance(ps, list) or not ps:
        raise ValueError("no chargingSchedulePeriod")
    if len(ps) > MAX_PERIODS:
        raise ValueError("more than %d periods" % MAX_PERIODS)
    flat = []
    last = -1
    for p in ps:
        if not isinstance(p, dict):
            raise ValueError("bad period")
        sp = p.get("startPeriod")
        lim = p.get("limit")
        ph = p.get("numberPhases")
        if not _isint(sp) or sp < 0:
            raise ValueError("bad startPeriod")
        if last < 0 and sp != 0:
            raise ValueError("first startPeriod must be 0")
        if sp <= last:
            # equal starts overlap; a smaller one is out of order: both are ambiguous
            raise ValueError("periods overlap or are not sorted (startPeriod %d)" % sp)
        if not _isnum(lim) or lim < 0:
            raise ValueError("bad limit at startPeriod %d" % sp)
        if ph is None:
            ph = 0
        elif not _isint(ph) or ph < 1 or ph > 3:
            raise ValueError("numberPhases must be 1..3")
        last = sp
        flat.append(sp)
        flat.append(int(round(lim * 10)))  # OCPP limits have one decimal
        flat.append(ph)
    # A relative profile has no start of its own (the transaction gives it one).
    if kind == _RELATIVE:
        start = None
    # Tuples: exactly sized (a list grown by append keeps spare slots) and never changed.
    return (pid, cid, purpose, kind, rec, stack, vfrom, vto, start, dur, UNITS.index(unit), mr,
            txid, tuple(flat))
