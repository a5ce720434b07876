# The certificate store of the security extension: CentralSystemRootCertificate (the roots every
# wss:// connection to the CSMS is checked against) and ManufacturerRootCertificate (the roots a
# firmware signing certificate must chain to). One store document ("certs"), saved atomically
# before an answer says Accepted: a refused or failed request changes nothing.
#
# The central roots start as the provisioned `ca_pem` setting (factory, claim or `borne sim
# --ca`); once the CSMS installs or deletes one, this document is what wss:// trusts, until a new
# provisioning changes `ca_pem` (then that wins again, as a claim must).
#
# The charge point's own certificate (security profile 3's client certificate) is renewed by
# request of the CSMS: ExtendedTriggerMessage SignChargePointCertificate makes a new EC P-256 key
# pair on the charger (pure Python, diag/p256.py) and a CSR, sent as SignCertificate; the
# CertificateSigned that answers it is checked against that pending key and installed as
# cert_pem / key_pem (diag/csr.py, loaded for those two messages only). A chain refused is the
# security event InvalidChargePointCertificate (OCTT TC_077_CS). The first key and client
# certificate still come from the host's provisioning tool.
#
# A connection reads the central roots from the document alone (diag/roots.py), or `ca_pem`
# itself while the document has not followed a new one yet (diag/secevents.py roots()): this
# store, and x509.py (with ota/rsa.py) with it, load when the CSMS asks about certificates.
import log
from diag import roots

_TAG = "certs"
_DOC = roots.DOC
CS = "CentralSystemRootCertificate"
MFR = "ManufacturerRootCertificate"
_MAX = const(8)  # CertificateStoreMaxLength's default (ocpp_client/config.py has the keys)


def _split(pem):
    # A PEM text -> [PEM of each certificate]; [] for "" or unreadable text.
    if not pem:
        return []
    from diag import x509

    try:
        return [x509.to_pem(d) for d in x509.from_pem(pem)]
    except x509.BadCert:
        return []


class CertStore:
    def __init__(self, store, settings, sec=None, config=None):
        self.store = store
        self.settings = settings
        self.sec = sec
        self.config = config
        self.d = roots.load(store)

    def _max(self):
        return self.config.get("CertificateStoreMaxLength") if self.config else _MAX

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
        from diag import x509

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
        from diag import x509
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
    def find(self, hd):
        # The installed certificate with this hash data (SHA256, SHA384 or SHA512, as the CSMS
        # computed it): (kind, pem, serial) or None.
        alg = hd.get("hashAlgorithm")
        if alg not in ("SHA256", "SHA384", "SHA512"):
            return None
        want = (hd["issuerNameHash"].lower(), hd["issuerKeyHash"].lower(),
                hd["serialNumber"].lower().lstrip("0") or "0")
        try:
            for kind in (CS, MFR):
                for c, pem in self.certs(kind):
                    h = c.hash_data(None, alg)
                    if (h["issuerNameHash"], h["issuerKeyHash"], h["serialNumber"]) == want:
                        return kind, pem, h["serialNumber"]
            return None
        finally:
            if alg != "SHA256":
                from supervisor import drop

                drop("diag.sha512")  # (loaded for this request only, where hashlib lacks it)

    async def delete(self, hd, url=None, route=None, resolver=None, client=("", "")):
        # -> "Accepted" | "Failed" | "NotFound". `url`: the CSMS endpoint; when it is wss://, a
        # central root is deleted only if a TLS handshake with the CSMS still succeeds on the
        # roots that remain (it is not the root the connection needs), and never the last one.
        found = self.find(hd)
        if found is None:
            return "NotFound"
        kind, pem, serial = found
        d = self._copy()
        key = "cs" if kind == CS else "mfr"
        d[key].remove(pem)
        if kind == CS and url and url.startswith("wss://"):
            if not d["cs"]:
                log.warn(_TAG, "DeleteCertificate refused: the last central system root, "
                         "which the wss:// connection needs")
                return "Failed"
            why = await _probe(url, "".join(d["cs"]), route, resolver, client=client)
            if why:
                log.warn(_TAG, "DeleteCertificate refused: without it the CSMS's certificate "
                         "is not trusted (%s)", why)
                return "Failed"
        if not self._save(d):
            return "Failed"
        log.info(_TAG, "%s deleted: serial %s", kind, serial)
        if self.sec is not None:
            self.sec.add("ReconfigurationOfSecurityParameters", "%s deleted" % kind)
        return "Accepted"

    # -- OCPP handlers --------------------------------------------------------------------------
    def handlers(self, s):
        # -> the certificate actions' handlers for the session `s`.
        ocpp = s

        async def install(p):
            return {"status": self.install(p["certificateType"], p["certificate"])}

        async def get_ids(p):
            ids = self.ids(p["certificateType"])
            if not ids:
                return {"status": "NotFound"}
            return {"status": "Accepted", "certificateHashData": ids}

        async def delete(p):
            url = ocpp.settings.get("csms_url", "") or ""
            if url:  # the URL connections go to: wss:// at profile 2-3
                from ocpp_client.security import endpoint

                url = endpoint(ocpp.settings, url)
            b = ocpp.board
            st = ocpp.settings
            # At profile 3 the CSMS may require the client certificate: the probe presents it,
            # or every handshake fails and no root could ever be deleted.
            client = (st.get("cert_pem", ""), st.get("key_pem", "")) if st.get(
                "security_profile", 0) == 3 else ("", "")
            return {"status": await self.delete(p["certificateHashData"], url,
                                                getattr(b, "route", None), b.dns_server(),
                                                client)}

        async def signed(p):
            chain = p["certificateChain"]
            limit = ocpp.config.get("CertificateSignedMaxChainSize")
            if len(chain) > limit:
                why = "chain of %d bytes over %d" % (len(chain), limit)
            else:
                from supervisor import drop

                try:
                    from diag import csr

                    why = await csr.signed(ocpp.store, ocpp.settings, chain, self.central_roots())
                finally:
                    drop("diag.csr", "diag.p256")
            if not why:  # (False: taken, to be used from its notBefore: csr.signed())
                if why is False:
                    ocpp.renew_next = 0  # the next check_cert() notes when to switch
                elif ocpp.settings.get("security_profile", 0) == 3:
                    from supervisor import rare

                    ocpp.after(rare, "ocpp_client.wsrare", "reconnect", ocpp,
                               "the new client certificate")
                return {"status": "Accepted"}
            log.warn(_TAG, "CertificateSigned rejected: %s", why)
            if self.sec is not None:
                # The 1.6 security whitepaper's event for a refused charge point certificate
                # (OCTT TC_077_CS), not only a log line
                self.sec.add("InvalidChargePointCertificate", why)
            return {"status": "Rejected"}

        return {"InstallCertificate": _light(install),
                "GetInstalledCertificateIds": _light(get_ids),
                "DeleteCertificate": _light(delete), "CertificateSigned": _light(signed)}


# What a certificate message loads of the connection's modules (ocpp_client.security, by
# x509.from_pem too, with its cached TLS context; DeleteCertificate's probe wsopen with net.url)
# is dropped after it unless in use before it (netdrop.py).
def _light(fn):
    async def h(p):
        from supervisor import rare

        return await rare("netdrop", "run", fn(p))

    return h


async def _probe(url, roots_pem, route=None, resolver=None, timeout_ms=10000, client=("", "")):
    # One TLS handshake with the CSMS trusting only `roots_pem`: None when it succeeds, else the
    # reason. (MicroPython's TLS sockets do not tell which root verified a peer, so asking the
    # server again is how to know whether a root is still needed.) The CSMS's name is asked of
    # `resolver` by net/dns.py (see there), as the OCPP connection does.
    import asyncio
    import sys

    from ocpp_client import security
    from ocpp_client.wsopen import parse_url

    w = None
    held = "net.dns" in sys.modules
    tcp_held = "net.tcp" in sys.modules
    try:
        _, host, port, path = parse_url(url)
        ctx = security.tls_context(roots_pem, client[0], client[1])
        from net import dns

        try:
            ip = await dns.lookup(host, resolver, held)
        except OSError as e:
            return str(e)
        finally:
            dns = None
        chost, cport = route(ip, port) if route else (ip, port)
        from net import tcp  # (its socket closed if given up; dropped after unless held)

        r, w = await asyncio.wait_for_ms(tcp.connect(chost, cport, ctx, host), timeout_ms)
        # The handshake runs with the first write; any HTTP answer means it passed.
        w.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                % (path.encode(), host.encode()))
        await asyncio.wait_for_ms(w.drain(), timeout_ms)
        # Only the answer's first bytes: readline() would read a hostile server's endless
        # line on to the end of the heap.
        if await asyncio.wait_for_ms(r.readexactly(7), timeout_ms) != b"HTTP/1.":
            return "no HTTP answer"
        return None
    except EOFError:
        return "no HTTP answer"
    except Exception as e:
        return "%s %s" % (type(e).__name__, " ".join(str(e).split()))
    finally:
        if w is not None:
            tcp.close(w)  # (the TCP socket too: a failed TLS handshake lets it go)
        if not tcp_held:
            from supervisor import drop

            drop("net.tcp")
