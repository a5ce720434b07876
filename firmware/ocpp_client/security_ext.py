# Feature: diagnostics and the OCPP 1.6 security extension (the work is in diag/). Eager, after
# transactions (security events go through its queue): the security events, their hooks and the
# certificate store's roots run from boot (diag/events.py, small); GetDiagnostics, GetLog,
# ExtendedTriggerMessage, InstallCertificate, GetInstalledCertificateIds, DeleteCertificate,
# CertificateSigned and SignedUpdateFirmware load diag/feature.py at the first of them (their
# handlers made at each call by the state object's handler(action): features.py).


def attach(s):
    from diag import agentlog
    from diag.events import SecurityLogging

    ev = SecurityLogging(s, agentlog.get())
    s.features["security_ext"] = ev
    s.tasks.extend(ev.tasks())
    return {}
