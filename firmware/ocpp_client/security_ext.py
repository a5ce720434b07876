# Feature: diagnostics and the OCPP 1.6 security extension (the work is in diag/). Eager, after
# transactions (security events go through its queue): the security events, their hooks and the
# certificate store's roots run from boot (diag/events.py, small); GetDiagnostics, GetLog,
# ExtendedTriggerMessage, InstallCertificate, GetInstalledCertificateIds, DeleteCertificate,
# CertificateSigned and SignedUpdateFirmware load diag/feature.py at the first of them (their
# handlers made at each call by the state object's handler(action): features.py).
# This module is boot only: attach() records the boot's security events (after the recovered
# sessions' stops when a power cut ended one) and is out of the heap again after
# (supervisor.drop).
import log
from diag import secevents

_TAG = "diag"


def attach(s):
    from diag import agentlog
    from diag.events import SecurityLogging
    from supervisor import drop

    ev = SecurityLogging(s, agentlog.get())
    s.features["security_ext"] = ev
    if s.connector.interrupted:
        s.tasks.append(_after_recovery(s, ev.sec))
    else:
        _boot_events(s, ev.sec)
    if s.store.load("signedfw", {"rid": None})["rid"] is not None:
        ev.need()  # a signed update is installing: its statuses are the signed job's
    s.tasks.extend(ev.tasks())
    drop("ocpp_client.security_ext")
    return {}


async def _after_recovery(s, sec):
    # A power cut ended a session: its StopTransaction happened before this boot, so it is
    # journaled first (the transactions feature reads the meter, then journals it).
    await s.feature("transactions").recovered.wait()
    _boot_events(s, sec)


def _boot_events(s, sec):
    # StartupOfTheDevice every boot; ResetOrReboot when the boot before ended in a reset the
    # CSMS (or the owner) asked for; FirmwareUpdated when the firmware version changed;
    # SecurityLogWasCleared when the security log holds less than at the last boot (its
    # file was removed or lost). One small store save per boot.
    store = s.store
    prev = None
    n = 0
    for rec in s.events.recent(2):
        n += 1
        if n == 2:
            prev = rec
    doc = store.load("diag_boot", {"fw": "", "sec": 0})
    if sec.j.last_seq() < doc["sec"]:
        sec.add("SecurityLogWasCleared", "%d records before" % doc["sec"])
    sec.add("StartupOfTheDevice")
    if prev is not None and prev.get("k") in ("reset", "factory_reset"):
        sec.add("ResetOrReboot", "%s reset" % prev.get("type", "factory"))
    fw = secevents.firmware_version()
    if doc["fw"] != fw and doc["fw"]:
        sec.add("FirmwareUpdated", "%s -> %s" % (doc["fw"], fw))
    doc["fw"] = fw
    doc["sec"] = sec.j.last_seq()
    try:
        store.save("diag_boot", doc)
    except OSError as e:
        log.exc(_TAG, "diag_boot", e)
