# The certificate store of the security extension: CentralSystemRootCertificate (the roots every
# wss:// connection to the CSMS is checked against) and ManufacturerRootCertificate (the roots a
# firmware signing certificate must chain to). One store document ("certs"), saved atomically
# before an answer says Accepted: a refused or failed request changes nothing.
#
# The central roots start as the provisioned `ca_pem` setting (factory, claim or `borne sim
# --ca`); once the CSMS installs or deletes one, this document is what wss:// trusts, until a new
# provisioning changes `ca_pem` (then that wins again, as a claim must).
#
# Key pairs: the charger cannot make its own (no key generation in MicroPython's ssl module, and
# no RSA/EC arithmetic fast enough in Python to make a private key safely), so SignCertificate /
# CertificateSigned are not offered: ExtendedTriggerMessage SignChargePointCertificate is
# Rejected and CertificateSigned answers Rejected. The host's provisioning tool makes the key and
# the client certificate (security profile 3) instead.
import log
from diag import x509

_TAG = "certs"
_DOC = "certs"
CS = "CentralSystemRootCertificate"
MFR = "ManufacturerRootCertificate"
KEYS = {
    "CertificateStoreMaxLength": ("i", 8, "r"),  # installed certificates, both kinds together
    "CertificateSignedMaxChainSize": ("i", 5500, "r"),  # bytes of a CertificateSigned chain
    "AdditionalRootCertificateCheck": ("b", False, "r"),
}


def _split(pem):
    # A PEM text -> [PEM of each certificate]; [] for "" or unreadable text.
    try:
        return [x509.to_pem(d) for d in x509.from_pem(pem)] if pem else []
    except x509.BadCert:
        return []


class CertStore:
    def __init__(self, store, settings, sec=None, config=None):
        self.store = store
        self.settings = settings
        self.sec = sec
        self.config = config
        self.d = store.load(_DOC, {"base": None, "cs": [], "mfr": []})

    def _max(self):
        return self.config.get("CertificateStoreMaxLength") if self.config else KEYS[
            "CertificateStoreMaxLength"][1]

    def central_roots(self):
        # The PEM text wss:// trusts (security.connect_args asks at each connection).
        ca = self.settings.get("ca_pem", "")
        if self.d["base"] != ca:
            if self.d["base"] is not None:
                log.info(_TAG, "ca_pem provisioned anew: the central system roots follow it")
            self.d = {"base": ca, "cs": _split(ca), "mfr": self.d["mfr"]}
            try:
                self.store.save(_DOC, self.d)
            except OSError as e:
                log.exc(_TAG, "saving", e)
        return "".join(self.d["cs"])

    def _list(self, kind):
        if kind == CS:
            self.central_roots()
            return self.d["cs"]
        return self.d["mfr"]

    def certs(self, kind):
        # -> [(x509.Cert, pem)]; unreadable entries are skipped.
        out = []
        for pem in self._list(kind):
            try:
                out.append((x509.Cert(x509.from_pem(pem)[0]), pem))
            except x509.BadCert:
                pass
        return out

    def _save(self, d):
        try:
            self.store.save(_DOC, d)
        except OSError as e:
            log.exc(_TAG, "saving", e)
            return False
        self.d = d
        return True

    def _copy(self):
        return {"base": self.d["base"], "cs": list(self.d["cs"]), "mfr": list(self.d["mfr"])}

    # -- InstallCertificate ---------------------------------------------------------------------
    def install(self, kind, pem):
        # -> "Accepted" | "Rejected" | "Failed", with a log line for every refusal.
        import clock
        from ocpp_client import security

        try:
            ders = x509.from_pem(pem)
            if len(ders) != 1:
                raise x509.BadCert("%d certificates: one root certificate expected" % len(ders))
            c = x509.Cert(ders[0])
        except (x509.BadCert, ValueError, IndexError) as e:
            log.warn(_TAG, "InstallCertificate %s rejected: %s", kind, e)
            return "Rejected"
        if not c.self_issued() or not c.ca:
            log.warn(_TAG, "InstallCertificate %s rejected: not a root CA certificate", kind)
            return "Rejected"
        if security.clock_ok() and not c.valid_at(clock.now()):
            log.warn(_TAG, "InstallCertificate %s rejected: not valid now (%s .. %s)", kind,
                     clock.iso(c.not_before), clock.iso(c.not_after))
            return "Rejected"
        self._list(kind)
        d = self._copy()
        lst = d["cs" if kind == CS else "mfr"]
        new = x509.to_pem(ders[0])
        if new in lst:
            log.info(_TAG, "InstallCertificate %s: already installed", kind)
            return "Accepted"
        if len(d["cs"]) + len(d["mfr"]) >= self._max():
            log.warn(_TAG, "InstallCertificate %s rejected: the store holds %d (CertificateStore"
                     "MaxLength)", kind, self._max())
            return "Rejected"
        lst.append(new)
        if not self._save(d):
            return "Failed"
        log.info(_TAG, "%s installed: serial %s", kind, c.serial_hex())
        if self.sec is not None:
            self.sec.add("ReconfigurationOfSecurityParameters", "%s installed" % kind)
        return "Accepted"

    # -- GetInstalledCertificateIds -----------------------------------------------------------
    def ids(self, kind):
        return [c.hash_data() for c, _ in self.certs(kind)]

    # -- DeleteCertificate ----------------------------------------------------------------------
    def delete(self, hd, secure_link):
        # -> "Accepted" | "Failed" | "NotFound". secure_link: the CSMS is reached over wss://,
        # so its last central root is what the next connection needs: never deleted.
        if hd.get("hashAlgorithm") != "SHA256":
            log.info(_TAG, "DeleteCertificate: only SHA256 hash data is kept")
            return "NotFound"
        want = (hd["issuerNameHash"].lower(), hd["issuerKeyHash"].lower(),
                hd["serialNumber"].lower().lstrip("0") or "0")
        for kind, key in ((CS, "cs"), (MFR, "mfr")):
            for c, pem in self.certs(kind):
                h = c.hash_data()
                if (h["issuerNameHash"], h["issuerKeyHash"], h["serialNumber"]) != want:
                    continue
                d = self._copy()
                if kind == CS and secure_link and len(d["cs"]) <= 1:
                    log.warn(_TAG, "DeleteCertificate refused: the last central system root, "
                             "which the wss:// connection needs")
                    return "Failed"
                d[key].remove(pem)
                if not self._save(d):
                    return "Failed"
                log.info(_TAG, "%s deleted: serial %s", kind, h["serialNumber"])
                if self.sec is not None:
                    self.sec.add("ReconfigurationOfSecurityParameters", "%s deleted" % kind)
                return "Accepted"
        return "NotFound"

    # -- OCPP handlers --------------------------------------------------------------------------
    def register(self, handlers, ocpp):
        from ocpp_client import config as cfgmod

        for k, v in KEYS.items():
            cfgmod.KEYS.setdefault(k, v)
        self.config = ocpp.config

        async def install(p):
            return {"status": self.install(p["certificateType"], p["certificate"])}

        async def get_ids(p):
            ids = self.ids(p["certificateType"])
            if not ids:
                return {"status": "NotFound"}
            return {"status": "Accepted", "certificateHashData": ids}

        async def delete(p):
            url = ocpp.settings.get("csms_url", "") or ""
            return {"status": self.delete(p["certificateHashData"], url.startswith("wss://"))}

        async def signed(p):
            chain = p["certificateChain"]
            limit = ocpp.config.get("CertificateSignedMaxChainSize")
            if len(chain) > limit:
                log.warn(_TAG, "CertificateSigned rejected: chain of %d bytes over %d",
                         len(chain), limit)
            else:
                log.warn(_TAG, "CertificateSigned rejected: this charger makes no key pair of "
                         "its own (no SignCertificate was sent); provisioning installs it")
            return {"status": "Rejected"}

        handlers["InstallCertificate"] = install
        handlers["GetInstalledCertificateIds"] = get_ids
        handlers["DeleteCertificate"] = delete
        handlers["CertificateSigned"] = signed
