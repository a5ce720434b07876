# Feature: diagnostics and the OCPP 1.6 security extension (the work is in diag/): GetDiagnostics,
# GetLog, ExtendedTriggerMessage, InstallCertificate, GetInstalledCertificateIds,
# DeleteCertificate, CertificateSigned, SignedUpdateFirmware; security events from boot on
# (hence attached at boot, after transactions: they go through its journaled queue).


def attach(s):
    from diag import agentlog
    from diag.feature import Diag

    d = Diag(s, agentlog.get())
    s.features["security_ext"] = d
    s.tasks.extend(d.tasks())
    return d.handlers()
