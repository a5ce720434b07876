# Feature: diagnostics and the OCPP 1.6 security extension (the work is in diag/). Eager, after
# transactions (security events go through its queue): the security events, their hooks and the
# certificate store's roots run from boot (diag/secevents.py, small); GetDiagnostics, GetLog,
# ExtendedTriggerMessage, InstallCertificate, GetInstalledCertificateIds, DeleteCertificate,
# CertificateSigned and SignedUpdateFirmware load diag/feature.py at the first of them (their
# handlers made at each call by the state object's handler(action): features.py).
# This module is boot only: attach() sets the hooks (ARCHITECTURE.md, "Diagnostics and the
# security extension"), records the boot's security events (after the recovered sessions' stops
# when a power cut ended one) and is out of the heap again after (supervisor.drop).
import clock
import log
from diag import secevents

_TAG = "diag"


def attach(s):
    from diag import agentlog
    from supervisor import drop

    drop("ocpp_client.security_ext")
    # s: the OCPP session; the transactions feature is attached (s.queue)
    sec = secevents.current = secevents.SecurityEvents(s.store, s.queue)
    sec.s = s
    al = sec.agentlog = agentlog.get()
    s.features["security_ext"] = sec
    s.triggers["DiagnosticsStatusNotification"] = sec.trigger_diag
    s.triggers["LogStatusNotification"] = sec.trigger_log  # ExtendedTriggerMessage only
    s.rpc.on_bad = sec.add
    s.on_link_error = sec.on_link_error
    s.settings.roots = sec.roots  # wss:// trusts the certificate store's roots
    clock.listeners.append(sec.on_clock)
    s.config.listen(sec)
    if s.connector.interrupted:
        s.tasks.append(_after_recovery(s, sec))
    else:
        _boot_events(s, sec)
    if _signed_job(s.store):
        sec.need().signedfw  # a signed job is on: resumed, or its statuses routed (signedfw.py)
    if al is not None:
        sec.reset = s.board.reset
        s.board.reset = sec.flush_then_reset
        s.tasks.append(("agentlog", al.run))  # supervised by the session (client.py)
    return {}


def _signed_job(store):
    # A signed job on, or a replaced one's final status owed (diag/signedfw.py cancel()).
    d = store.load("signedfw", {"rid": None})
    return d["rid"] is not None or bool(d.get("owed"))


async def _after_recovery(s, sec):
    # A power cut ended a session: its StopTransaction happened before this boot, so it is
    # journaled first (the transactions feature reads the meter, then journals it).
    await s.feature("transactions").recovered.wait()
    _boot_events(s, sec)


def _boot_events(s, sec):
    # StartupOfTheDevice every boot; ResetOrReboot when the boot before ended in a reset the
    # CSMS (or the owner) asked for; FirmwareUpdated when the firmware version changed;
    # SecurityLogWasCleared when the security log holds less than at the last boot (its
    # file was removed or lost). One small store save per boot. An upload a power cut ended
    # (diag/feature.py marks it in the same document): its final status.
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
    from supervisor import fw_version  # the running firmware's

    fw = fw_version()
    if doc["fw"] != fw and doc["fw"]:
        sec.add("FirmwareUpdated", "%s -> %s" % (doc["fw"], fw))
    doc["fw"] = fw
    doc["sec"] = sec.j.last_seq()
    was = doc.pop("was", None)  # a replaced upload whose failure was not queued yet
    if was:
        _upload_cut(sec, [was[0], None])
    up = doc.pop("up", None)
    if up:
        _upload_cut(sec, up)
    try:
        store.save("diag_boot", doc)
    except OSError as e:
        log.exc(_TAG, "diag_boot", e)


def _upload_cut(sec, up):
    # The CSMS heard Uploading and would wait for the end for ever: the failure is queued (the
    # transaction queue delivers it once online, a power cut again or not), and the file that
    # was being uploaded is removed from flash.
    rid, path = up
    try:
        import os

        if path:
            os.remove(path)
    except OSError:
        pass
    log.warn(_TAG, "an upload was cut short by a power cut: reported as failed")
    try:
        if rid is None:
            sec.txq.add("DiagnosticsStatusNotification", {"status": "UploadFailed"}, None)
        else:
            sec.txq.add("LogStatusNotification", {"status": "UploadFailure", "requestId": rid},
                        None)
    except (OSError, ValueError) as e:
        log.exc(_TAG, "queueing the upload's failure", e)
