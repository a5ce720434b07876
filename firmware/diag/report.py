# The diagnostics file (GetDiagnostics, GetLog DiagnosticsLog) and the security log file (GetLog
# SecurityLog), written to flash line by line (bounded RAM: one record at a time), then uploaded
# from there. Nothing secret goes in: configuration keys come from Config.entries() (write-only
# keys such as AuthorizationKey are never listed), settings from a list of the harmless ones.
import gc
import json
import os

import clock
import log

# Settings shown in the diagnostics: identity, endpoint, installation. Never a key, a password,
# a Wi-Fi name of the owner's home or a certificate.
_SETTINGS = ("cp_id", "serial", "model", "vendor", "csms_url", "security_profile",
             "profile_fallback", "call_timeout_s", "claimed", "meter_model", "meter_addr",
             "meter_baud", "phases", "grid_meter_model", "grid_meter_addr", "main_fuse_a",
             "grid_fallback_a")
_FAULTS = ("fault", "fault_cleared", "connection_timeout", "factory_reset", "reset")


def _iso(t):
    return clock.iso(t) if t is not None else "-"


def _url_safe(u):
    return log.url(u) if isinstance(u, str) else u


def diagnostics(path, d, since=None, until=None, faults=20):
    # d: the Diag feature (settings, config, events, agent log, board, connector).
    f = open(path, "w")
    try:
        w = f.write
        s = d.settings
        w("borne diagnostics\n")
        w("generated %s; window %s .. %s\n" % (clock.iso(), _iso(since), _iso(until)))
        w("\n== identity\n")
        for k in ("cp_id", "vendor", "model", "serial"):
            w("%s: %s\n" % (k, s.get(k, "")))
        w("firmware: %s\n" % d.firmware_version())
        w("board: %s\n" % d.board_name())
        w("\n== resources\n")
        gc.collect()
        w("heap: %d bytes free, %d used\n" % (gc.mem_free(), gc.mem_alloc()))
        try:
            st = os.statvfs(d.root)
            w("flash: %d of %d KiB free\n" % (st[0] * st[3] // 1024, st[0] * st[2] // 1024))
        except (OSError, AttributeError):
            w("flash: unknown\n")
        w("\n== settings (no secrets)\n")
        for k in _SETTINGS:
            v = s.get(k)
            if k == "csms_url":
                v = _url_safe(v)
            w("%s: %s\n" % (k, json.dumps(v)))
        w("\n== OCPP configuration (write-only keys never shown)\n")
        known, _ = d.config.entries()
        for e in known:
            w("%s%s: %s\n" % (e["key"], " (r)" if e["readonly"] else "", e["value"]))
        w("\n== faults now\n")
        conn = d.connector
        if conn is not None:
            w("connector: %s\n" % json.dumps(sorted(conn.faults.values())))
            w("devices: %s\n" % json.dumps(list(conn.device_faults)))
        w("\n== last faults (newest first)\n")
        for rec in _last(d.events, _FAULTS, faults):
            w(_event_line(rec))
        w("\n== event log\n")
        for _, rec in _fixed(d.events, _steps(d.sec), since, until):
            w(_event_line(rec))
        w("\n== agent log\n")
        if d.agentlog is not None:
            for ln in d.agentlog.lines(since, until):
                w(ln.decode("utf-8", "replace") if isinstance(ln, bytes) else ln)
        w("\n== end\n")
    finally:
        f.close()


def _event_line(rec):
    rec = dict(rec)
    t = rec.pop("t", None)
    k = rec.pop("k", "?")
    return "%s %s %s\n" % (_iso(t), k, json.dumps(rec) if rec else "")


def _last(events, kinds, n):
    buf = []
    for _, rec in events.records():
        if rec.get("k") in kinds:
            buf.append(rec)
            if len(buf) > n:
                buf.pop(0)
    buf.reverse()
    return buf


def security_log(path, sec, since=None, until=None):
    f = open(path, "w")
    try:
        f.write("borne security log; generated %s; window %s .. %s\n"
                % (clock.iso(), _iso(since), _iso(until)))
        for t, r in _fixed(sec.j, _steps(sec), since, until):
            info = r.get("info")
            f.write("%s %s%s\n" % (clock.iso(t), r.get("type", "?"), (" " + info) if info else ""))
    finally:
        f.close()


# A record stamped before _FLOOR (clock._FLOOR) was stamped by a clock not set yet: an ESP32
# cold-booted offline counts from 2000-01-01. A technician reading the logs (and a window of the
# hours asked for) needs the time it happened: a boot whose clock was set later has its records
# moved here, at read time, by the step that set it (the SettingSystemTime security event, which
# says it), as the transaction queue moves its records (txqrare.restamp). The journals stay as
# written (append-only, nothing resident for it); a boot that never got the time keeps its
# stamps, and so does one whose step the security log no longer holds (its ring).
_FLOOR = const(1735689600)


def _steps(sec):
    # [(time set, step s)] of the security log's SettingSystemTime records, oldest first.
    out = []
    if sec is not None:
        for _, r in sec.j.records():
            if r.get("type") == "SettingSystemTime":
                try:
                    out.append((r["t"], int(r["info"].split()[1])))
                except (KeyError, IndexError, ValueError, AttributeError):
                    pass
    return out


def _runs(records, steps):
    # [(first seq, last seq, step)]: the runs of records stamped by an unset clock whose boot set
    # it. A run ends at a record stamped by a set clock (at t: the setting came between, the
    # latest one logged before t, made with the unset clock past the run's last stamp and after
    # the last set-clock record before the run) or at a stamp going back (a new boot, its clock
    # cold again: the run before never got its step).
    out = []
    first = last = lt = None
    pt = 0
    for seq, r in records:
        t = r.get("t", 0)
        if t < _FLOOR:
            if first is None or t < lt:
                first = seq
            last, lt = seq, t
            continue
        if first is not None:
            step = None
            for ts, st in steps:
                if pt <= ts <= t and ts - st >= lt:
                    step = st
            if step:
                out.append((first, last, step))
            first = None
        pt = t
    return out


def _fixed(log_, steps, since=None, until=None):
    # log_: a journal or the event log (records(): (seq, record) oldest first) -> (the record's
    # time, moved if its boot's clock was set later, record) within since .. until (None: open),
    # oldest first; two passes, one record in RAM at a time.
    runs = _runs(log_.records(), steps) if steps else ()
    for seq, r in log_.records():
        t = r.get("t", 0)
        if t < _FLOOR:
            for a, b, st in runs:
                if a <= seq <= b:
                    t += st
                    break
        if (since is None or t >= since) and (until is None or t <= until):
            yield t, r
