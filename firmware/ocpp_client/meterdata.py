# Sampled values for MeterValues and StopTransaction.transactionData, from the meter's latest
# reading. Values the meter does not have are left out, never invented.
import clock

_PHASES = const(("L1", "L2", "L3"))


def _fmt(v):
    if isinstance(v, float):
        s = "%.1f" % v
        return s[:-2] if s.endswith(".0") else s
    return str(v)


def sampled(meter, connector, measurands, context):
    # -> list of SampledValue dicts (possibly empty)
    r = getattr(meter, "latest", None) if meter is not None else None
    if not r or not r.get("ok"):
        r = {}  # failing: its last reading is no longer the meter's, and no value is invented
    n = getattr(meter, "phases", 3)  # a single-phase installation has no L2, L3
    out = []
    for m in measurands:
        # "Current.Import.L1", "Voltage.L2-N": that phase only (1.6 9.1 MeterValuesSampledData:
        # a measurand "combined with the optional phase"); configuration.py admits which.
        i = m.rfind(".")
        want = m[i + 1:i + 3] if i > 0 and m[i + 1:i + 2] == "L" else None
        if want:
            m = m[:i]
        unit = "A"  # each branch sets its measurand's values and unit (None: no unit)
        if m == "Energy.Active.Import.Register":
            # In whole Wh, as meterStart/meterStop are: a register sent here is never above the
            # transaction's meterStop (a rounded-up "1234.6" would be).
            e = connector.energy_wh()
            vals = [(None, int(e))] if e is not None else []
            unit = "Wh"
        elif m == "Power.Active.Import":
            vals = [(None, r.get("power_w"))]
            unit = "W"
        elif m == "Current.Import":
            vals = list(zip(_PHASES[:n], r.get("current_a") or ()))
        elif m == "Voltage":
            vals = [(p + "-N", v) for p, v in zip(_PHASES[:n], r.get("voltage_v") or ())]
            unit = "V"
        elif m == "Frequency":
            vals = [(None, r.get("frequency_hz"))]
            unit = None
        elif m == "Current.Offered":
            # What the pilot signals, also while the EV takes nothing (SuspendedEV)
            vals = [(None, connector.offer_a if connector.offering() else 0)]
        elif m == "Power.Offered":
            a = connector.offer_a if connector.offering() else 0
            vals = [(None, a * 230 * n)]
            unit = "W"
        else:
            vals = []
        for phase, v in vals:
            if v is None or want and (phase or "")[:2] != want:
                continue
            sv = {"value": _fmt(v), "context": context, "measurand": m}
            if phase:
                sv["phase"] = phase
            if unit:
                sv["unit"] = unit
            out.append(sv)
    return out


def meter_value(values, ts=None, ms=False):
    # ts: unix seconds (None: now), or milliseconds with ms=True (a transaction's values carry
    # its start's resolution).
    return {"timestamp": clock.iso_ms(ts) if ms else clock.iso(ts), "sampledValue": values}
