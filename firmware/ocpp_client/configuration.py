# Feature: the configuration keys over OCPP. GetConfiguration and ChangeConfiguration on config.py
# (the key table: types, defaults, access). Also the work of Config.set() and Config.entries(),
# which load this module for a change or a listing (from the cloud, MQTT, the diagnostics
# report): the check a new value must pass, the listing's text. `kt`: the config module (its
# spec(), names(), SETTINGS, CHECKS, DOC), handed over by Config.
import json

import log
from ocpp_client.errors import Reject

# The measurands the meter gives, comma-separated (one string constant, no tuple in the heap).
_MEASURANDS = (",Energy.Active.Import.Register,Power.Active.Import,Current.Import,Current.Offered"
               ",Power.Offered,Voltage,Frequency,"
               # one phase of those the meter gives by phase (1.6 9.1: "Voltage.L1"; a voltage is
               # phase-to-neutral, named either way)
               "Current.Import.L1,Current.Import.L2,Current.Import.L3,Voltage.L1,Voltage.L2,"
               "Voltage.L3,Voltage.L1-N,Voltage.L2-N,Voltage.L3-N,")
_MAX_MEASURANDS = const(8)  # the *MaxLength keys of config.py say 8


def attach(s):
    cfg = s.config

    async def get_configuration(p):
        keys = p.get("key")
        most = cfg.get("GetConfigurationMaxKeys")
        if keys and len(keys) > most:
            # 1.6 5.8: the charger's limit on one request's keys. Refused whole: cut to the
            # limit, the keys past it were in neither list and the CSMS took them as answered.
            raise Reject("OccurenceConstraintViolation",
                         "more than GetConfigurationMaxKeys (%d) keys" % most)
        return _Listing(cfg, keys)

    async def change_configuration(p):
        import sys

        key = canon(sys.modules["ocpp_client.config"], p["key"])
        status = cfg.set(key, p["value"])
        what = None
        if status == "Accepted" and key == "SecurityProfile":
            # 1.6 security whitepaper (ed. 3) A05.FR.06/07: disconnect, reconnect with the new
            # profile; on trial until it connects (proftrial.py: the old one back if it never does)
            what = "security profile %d" % cfg.get(key)
        elif (status == "Accepted" and key == "AuthorizationKey"
              and cfg.get("SecurityProfile") in (1, 2)):
            # the password in use changed: reconnect with it at once (OCTT TC_073_CS)
            what = "the new AuthorizationKey"
        if what is not None:
            # Once the answer is out, on the old link. A reconnection, not a reboot: no new
            # BootNotification.
            from supervisor import rare

            s.after(rare, "ocpp_client.wsrare", "reconnect", s, what)
        elif status == "Accepted" and key == "BorneFreeCharging" and cfg.get(key):
            from supervisor import rare

            rare("evse.connrare", "free_charging_on", s.connector)
        return {"status": status}

    return {"GetConfiguration": get_configuration, "ChangeConfiguration": change_configuration}


class _Listing:
    # GetConfiguration.conf, written key by key as the frame goes out (json_to: ws.py's
    # send_json), twice (counted, then sent): every key's entry and value text at once were
    # ~5 KB of dicts and strings (a 32-bit heap) at the moment the answer was made.
    def __init__(self, cfg, keys):
        self.cfg = cfg
        self.keys = keys

    def json_to(self, out):
        out.write(b'{"configurationKey": [')
        sep = b""
        unknown = None
        for e, u in self.cfg.entries(self.keys, True):
            if e is None:
                unknown = unknown or []
                unknown.append(u)
            else:
                out.write(sep)
                json.dump(e, out)
                sep = b", "
        out.write(b"]")
        if unknown:
            out.write(b', "unknownKey": ')
            json.dump(unknown, out)
        out.write(b"}")


def canon(kt, key):
    # A key as the table spells it: keys are CiString50 (1.6: compared case-insensitively), so
    # an operator's "heartbeatinterval" is HeartbeatInterval. An unknown key comes back as given.
    if type(key) is not str or kt.spec(key) is not None:
        return key
    low = key.lower()
    for n in kt.names():
        if n.lower() == low:
            return n
    return key


def set_key(cfg, kt, key, value):
    # Config.set(): ChangeConfiguration validated and stored; -> the OCPP ConfigurationStatus.
    key = canon(kt, key)
    sp = kt.spec(key)
    if sp is None:
        return "NotSupported"
    kind, _, access = sp
    if access == "r":
        return "Rejected"
    try:
        v = _parse(kind, value)
        _check(key, v, cfg, kt)
        extra = _mqtt().url_change(v, cfg.settings) if key == "BorneMqttUrl" else None
    except ValueError as e:
        log.info("config", "%s: value refused (%s)", key, e)
        return "Rejected"
    # Saved first, in effect after: the flash full or failing (OSError) leaves the old value in
    # force, Rejected (1.6 has no status for it; an InternalError said nothing of the value).
    name = kt.SETTINGS.get(key)
    try:
        if name is not None and cfg.settings is not None:
            kw = {name: v}  # a secret is stored once, in the settings
            if extra:
                kw.update(extra)
            elif key == "BorneMqttPassword":
                kw["mqtt_pass_ocpp"] = True  # the CSMS's own (mqtt/keys.py url_change)
            if key == "SecurityProfile":
                # the profile to fall back to, in the same save: a power cut leaves both or
                # neither (proftrial.py); a trial still pending keeps its own, the last that
                # connected
                fb = cfg.settings.get("profile_fallback", -1)
                fb = kw["profile_fallback"] = fb if fb >= 0 else cfg.get(key)
                log.info("security", "security profile %d on trial: %d kept until it connects",
                         v, fb)
            cfg.settings.update(**kw)
        elif name is None:
            cfg.store.save(kt.DOC, dict(cfg.changed, **{key: v}))
            cfg.changed[key] = v
    except OSError as e:
        log.exc("config", "%s not changed: flash full or failing" % key, e)
        return "Rejected"
    log.info("config", "%s changed", key)  # never the value: it may be a secret
    cfg.runtime.pop(key, None)
    if name is not None and cfg.settings is None:
        cfg.runtime[key] = v
    for lst in cfg.listeners:
        lst.on_config(key, v)
    if key.startswith("BorneMqtt"):
        _mqtt().changed()  # reconnect, or start now that a broker is set
    return "Accepted"


def _profile_ready(prof, st):
    # An upgrade is refused, not accepted into a charger that can no longer connect: what the
    # new profile needs must be in place already (the 1.6 security whitepaper's prerequisites).
    # A ws:// URL is no obstacle: at 2-3 it is reached over wss:// (security.endpoint).
    if st is None:
        return
    if prof in (1, 2) and not st.get("auth_key", ""):
        raise ValueError("no AuthorizationKey set")
    if prof >= 2:
        roots = getattr(st, "roots", None)
        if not (roots() if roots else st.get("ca_pem", "")):
            raise ValueError("no CentralSystemRootCertificate installed")
    if prof == 3 and not (st.get("cert_pem", "") and st.get("key_pem", "")):
        raise ValueError("no client certificate")


def _mqtt():
    # mqtt/keys.py: the BorneMqtt* keys' checks and the feature's start, loaded on use (and out
    # of the heap again when no broker runs: mqtt/keys.py drops itself).
    from mqtt import keys

    return keys


def entries(cfg, kt, keys=None, each=False):
    # Config.entries(): (configurationKey list, unknownKey list); each: one at a time instead,
    # (entry, None) or (None, unknown key). Write-only keys are left out of a full listing and
    # reported unknown when asked by name: no leak.
    if each:
        return _each(cfg, kt, keys)
    known, unknown = [], []
    for e, u in _each(cfg, kt, keys):
        if e is None:
            unknown.append(u)
        else:
            known.append(e)
    return known, unknown


def _each(cfg, kt, keys):
    for k in keys or kt.names():
        if keys:
            k = canon(kt, k)
        sp = kt.spec(k)
        if sp is None or sp[2] == "x":
            if keys:
                yield None, k
            continue
        yield {"key": k, "readonly": sp[2] == "r", "value": show(sp[0], cfg.get(k))}, None


def _parse(kind, value):
    if not isinstance(value, str):
        raise ValueError("not a string")
    if kind == "i":
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("not an integer")
    if kind == "b":
        lv = value.strip().lower()
        if lv not in ("true", "false"):
            raise ValueError("not true/false")
        return lv == "true"
    if kind == "m":
        items = [m.strip() for m in value.split(",") if m.strip()]
        for m in items:
            if ("," + m + ",") not in _MEASURANDS:
                raise ValueError("unsupported measurand %s" % m)
        if len(items) > _MAX_MEASURANDS:
            raise ValueError("too many measurands")
        return ",".join(items)
    return value


def _check(key, v, cfg, kt):
    if isinstance(v, int) and not isinstance(v, bool) and not 0 <= v <= 0x7FFFFFFF:
        # (past an int32 no CSMS reads it back, and a time past a machine word overflowed the
        # ticks arithmetic that uses it: every tap's start failed)
        raise ValueError("out of range")
    if key == "LightIntensity" and v > 100:
        raise ValueError("over 100 %")
    if key in ("HeartbeatInterval", "TransactionMessageRetryInterval") and v == 0:
        raise ValueError("zero")
    if key in ("TransactionMessageAttempts", "BlinkRepeat") and v > 100:
        raise ValueError("too many")
    if key in ("MinimumStatusDuration", "ConnectionTimeOut", "TransactionMessageRetryInterval") \
            and v > 86400:
        # timed with ticks_add/ticks_diff, whose range ends after some 6 days on a charger (a
        # longer ConnectionTimeOut wrapped: the tap's authorization lapsed at once)
        raise ValueError("over a day")
    if key == "SecurityProfile":
        if v > 3 or v <= cfg.get("SecurityProfile"):
            # never lowered over OCPP (A00.FR.005); nor set to itself (A05.FR.01: Rejected)
            raise ValueError("the security profile is only raised")
        _profile_ready(v, cfg.settings)
    if key == "AuthorizationKey":
        if not 16 <= len(v) <= 40:
            raise ValueError("length")
    if key == "ConnectorPhaseRotation":
        _rotation(v)
    if key == "CpoName" and len(v) > 64:
        # the O of the charge point certificate's CSR (diag/csr.py): X.509 bounds an
        # organization name to 64 characters (RFC 5280 ub-organization-name); a CA refuses more
        raise ValueError("over 64 characters")
    if key == "BorneFreeChargingIdTag" and not (0 < len(v) <= 20 and _printable(v)):
        raise ValueError("not an idTag (1-20 printable characters)")  # it goes in StartTransaction
    if key in ("MeterValuesAlignedData", "StopTxnAlignedData") and v and cfg.get("ClockAlignedDataInterval") < 0:
        raise ValueError("bad interval")
    chk = kt.CHECKS.get(key)
    if chk is not None:
        chk(v)
    if key.startswith("BorneMqtt"):
        _mqtt().check(key, v)


def _printable(v):
    for c in v:
        if not " " < c <= "~":
            return False
    return True


def _rotation(v):
    # 1.6 9.1.7: "<connector>.<rotation>" entries, connector 0 (the supply) or 1 (ours).
    items = v.split(",")
    if len(items) > 2:
        raise ValueError("too many entries")
    for it in items:
        c, _, r = it.strip().partition(".")
        if c not in ("0", "1") or r not in ("NotApplicable", "Unknown", "RST", "RTS", "SRT",
                                             "STR", "TRS", "TSR"):
            raise ValueError("not <connector>.<rotation>: %s" % it)


def show(kind, v):
    if kind == "b":
        return "true" if v else "false"
    return str(v)
