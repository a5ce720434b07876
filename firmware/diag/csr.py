# The charge point's own certificate, renewed by request of the Central System (1.6 security
# whitepaper "Update Charge Point Certificate", OCTT TC_074_CS; a refusal is TC_077_CS's
# InvalidChargePointCertificate event) or by the charger itself before it expires (the
# whitepaper's A03: renew()). Loaded by diag/feature.py and diag/certs.py for those two messages,
# and by ocpp_client/connect.py after a connection at profile 3 for renew(); dropped after (with
# diag/p256.py), never in the boot heap.
#
# request(): after ExtendedTriggerMessage(SignChargePointCertificate).conf, or from renew(), a
# new EC P-256 key pair (diag/p256.py), kept on flash as the pending key (its own store document,
# saved atomically, never logged) and a PKCS#10 CSR (RFC 2986) in PEM: subject CN = the charge
# point's serial number (the whitepaper's; its cp_id when provisioning gave none), O = CpoName
# when set; signed ECDSA-SHA256. Sent as SignCertificate.req.
# renew(): started by the session's check_cert() (after a connection at profile 3, and at a
# heartbeat once the session's `renew_next` has come); once the session is online
# (BootNotification Accepted), the client certificate in use (settings cert_pem, its first PEM)
# read with diag/x509.py; with a trusted clock, one that expires within RENEW_DAYS gets
# request(), and again every RETRY_S while no CertificateSigned replaced it; one further away
# is checked again when it enters that window. One that cannot be read is left alone (logged
# once a day).
# signed(): CertificateSigned.req's chain is taken only when the leaf parses, holds the pending key,
# has not expired (a trusted clock: clock.trusted()) and, if its issuer is in the chain, is signed
# by it (RSA: ota/rsa.py; P-256: p256.py). Then cert_pem (the chain) and key_pem (the new key, SEC1
# "EC PRIVATE KEY", which mbedTLS's load_cert_chain takes as DER) are saved in the settings (a
# reboot's provisioning does not put the old pair back: settingsdoc.py `cert_prov`) and the pending
# key is dropped; at security profile 3 the old pair is kept (OLD) until the new one has connected,
# and put back if the CSMS refuses it (ocpp_client/proftrial.py); the session reconnects with them
# (ocpp_client/wsrare.py reconnect(), as for a new AuthorizationKey). A leaf whose notBefore is
# ahead (more than _SKEW_S) is kept with its key in the pending document until then, the pair in use
# meanwhile; renew() switches to it once notBefore has come (A02/A03: "as soon as Not valid before
# is reached"; checked after each connection and at heartbeats).
import binascii
import hashlib

import log

_TAG = "certs"
# A CA stamps notBefore with its own clock: a certificate this little ahead of ours is used at
# once (a CSMS whose clock is ours, set by its Heartbeat answers, takes it); one further ahead
# waits until then.
_SKEW_S = const(180)
RENEW_DAYS = 30  # renew() asks for a new certificate when the one in use expires within this
RETRY_S = 86400  # renew() asks again this long after a request no CertificateSigned answered
DOC = "csrkey"  # the pending private key: {"d": hex} (the store's folder, never logged)
OLD = "certold"  # the pair in use before, while the new one has not connected: {"cert", "key"}
_OID_CN = b"\x55\x04\x03"
_OID_O = b"\x55\x04\x0a"


def _der(tag, body):
    from diag.p256 import der

    return der(tag, body)


def _name(cn, org):
    # Name: SEQUENCE OF RDN (SET OF one AttributeTypeAndValue), UTF8String values; O then CN.
    rdns = b""
    for oid, v in ((_OID_O, org), (_OID_CN, cn)):
        if v:
            atv = _der(0x30, _der(0x06, oid) + _der(0x0C, v.encode()))
            rdns += _der(0x31, atv)
    return _der(0x30, rdns)


def _spki(q):
    from diag import p256, x509

    alg = _der(0x30, _der(0x06, x509.OID_EC) + _der(0x06, x509.OID_P256))
    return _der(0x30, alg + _der(0x03, b"\x00" + p256.point_bytes(q)))


def pem(der, label):
    b64 = binascii.b2a_base64(der).replace(b"\n", b"").decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def key_der(d, q):
    # SEC1 ECPrivateKey (RFC 5915): version 1, the scalar, [0] the curve, [1] the public key.
    from diag import p256, x509

    return _der(0x30, p256.der_int(1) + _der(0x04, d.to_bytes(32, "big"))
                + _der(0xA0, _der(0x06, x509.OID_P256))
                + _der(0xA1, _der(0x03, b"\x00" + p256.point_bytes(q))))


async def build(d, q, cn, org):
    # -> the CSR (DER) for public q, signed with d: CertificationRequestInfo (version 0, subject,
    # SubjectPublicKeyInfo, no attributes), ecdsa-with-SHA256, the signature.
    from diag import p256, x509

    info = _der(0x30, p256.der_int(0) + _name(cn, org) + _spki(q) + b"\xa0\x00")
    r, s = await p256.agen(p256.sign(d, hashlib.sha256(info).digest()))
    alg = _der(0x30, _der(0x06, x509.OID_ECDSA_SHA256))
    return _der(0x30, info + alg + _der(0x03, b"\x00" + p256.sig_der(r, s)))


def subject(settings, config):
    cn = settings.get("serial", "") or settings.get("cp_id", "")
    org = ""
    if config is not None:
        try:
            org = config.get("CpoName") or ""
        except (KeyError, ValueError):
            org = ""
    return cn, org


async def request(s):
    # s: the OCPP session. The key pair, the pending key saved, SignCertificate sent.
    import time

    from diag import p256

    t0 = time.ticks_ms()
    d, q = await p256.agen(p256.keygen())
    cn, org = subject(s.settings, s.config)
    der = await build(d, q, cn, org)
    ms = time.ticks_diff(time.ticks_ms(), t0)
    try:
        s.store.save(DOC, {"d": "%064x" % d})
    except OSError as e:
        log.exc(_TAG, "saving the new key", e)
        return
    d = None
    log.info(_TAG, "new P-256 key pair and CSR (CN=%s%s) made in %d ms; SignCertificate sent",
             cn, (", O=" + org) if org else "", ms)
    res = await s.send("SignCertificate", {"csr": pem(der, "CERTIFICATE REQUEST")})
    if res is not None:
        log.info(_TAG, "SignCertificate: %s", res.get("status"))


async def renew(cl):
    # A03 (see the header): started by the session's check_cert(); waits for the session to be
    # online (nothing is sent before BootNotification is Accepted, whose
    # currentTime may also be what makes the clock trusted), gives up when the link drops.
    import asyncio
    import sys

    import clock

    mods = ("diag.x509", "ota.rsa", "diag.p256", "ota")
    held = [n for n in mods if n in sys.modules]
    try:
        while not cl.online():
            if not cl.connected:
                cl.renew_next = 0  # checked at the next connection
                return
            await asyncio.sleep(1)
        if not clock.trusted():
            return  # checked at a heartbeat after the clock is set (check_cert()'s hour)
        wait = await _switch(cl)
        if wait is True:
            return
        if wait is not None:  # a new certificate waits for its notBefore: nothing to ask
            cl.renew_next = wait
            return
        from diag import x509

        now = clock.now()
        try:
            cert = x509.Cert(x509.from_pem(cl.settings.get("cert_pem", ""))[0])
        except (x509.BadCert, ValueError, IndexError) as e:
            log.warn(_TAG, "client certificate unreadable, not checked for renewal: %s", e)
            cl.renew_next = now + RETRY_S
            return
        end = cert.not_after
        x509 = cert = None
        left = end - now
        if left >= RENEW_DAYS * 86400:
            cl.renew_next = end - RENEW_DAYS * 86400  # when it enters the window
            return
        # The CSMS may answer with CertificateSigned later, or never: asked again a day on.
        cl.renew_next = now + RETRY_S
        log.info(_TAG, "client certificate expires %s (in %d days): renewing it",
                 clock.iso(end), left // 86400)
        await request(cl)
    finally:
        from supervisor import drop

        drop(*(n for n in mods[:3] if n not in held))
        if "ota" not in held and not [m for m in sys.modules if m.startswith("ota.")]:
            drop("ota")


def _pending(store):
    d = store.load(DOC, {"d": ""}).get("d") or ""
    try:
        return int(d, 16) if len(d) == 64 else None
    except ValueError:
        return None


async def _signs(c, issuer):
    # Is c's signature made by issuer's key (RSA, or P-256 stepped between event loop turns)?
    from diag import p256

    if issuer.rsa is not None:
        return c.signed_by(issuer)
    g = c.ecdsa_by(issuer)
    return g is not None and bool(await p256.agen(g))


async def _to_root(leaf, chain, roots):
    # -> None when every link from the leaf up is signed by the next, up to one of the central
    # roots installed here (the 1.6 security whitepaper: the certificate is "part of the Central
    # System Root certificate hierarchy"), else the reason. An issuer the chain carries must
    # verify (a liar in the chain is refused even if a root would do); one it leaves out is
    # looked for among the roots.
    c = leaf
    for _ in range(len(chain) + 1):
        if c.der in roots:
            return None
        up = None
        for x in chain:
            if x is not c and x.subject == c.issuer:
                up = x
                break
        if up is None:
            for r in roots.values():
                if r.subject == c.issuer and await _signs(c, r):
                    return None
            return "not issued under a central system root installed here"
        if not await _signs(c, up):
            return "the signature of its issuer in the chain does not verify"
        c = up
    return "the chain goes round in circles"


async def signed(store, settings, chain, roots_pem=""):
    # CertificateSigned: -> None when taken (saved), else the reason it is refused. roots_pem:
    # the central system roots the chain must lead to (none installed: not checked, logged).
    import clock
    from diag import p256, x509

    d = _pending(store)
    if d is None:
        return "no SignCertificate pending: no key of this charger awaits a certificate"
    try:
        ders = x509.from_pem(chain)
        certs = [x509.Cert(b) for b in ders]
    except (x509.BadCert, ValueError, IndexError) as e:
        return "unreadable certificate chain: %s" % e
    leaf = certs[0]
    q = await p256.agen(p256.public(d))
    if leaf.ec != p256.point_bytes(q):
        return "the certificate is not for the key of the last SignCertificate"
    # One whose notBefore is still ahead is taken and switched to once it is reached (the
    # whitepaper's A02/A03): a CSMS refuses it before.
    now = clock.now()
    if clock.trusted() and now > leaf.not_after:
        return "expired (%s .. %s)" % (clock.iso(leaf.not_before), clock.iso(leaf.not_after))
    ahead = clock.trusted() and now < leaf.not_before - _SKEW_S
    roots = {}
    try:
        for b in x509.from_pem(roots_pem) if roots_pem else ():
            roots[b] = x509.Cert(b)
    except x509.BadCert as e:  # (what is read before it is kept)
        log.warn(_TAG, "a central system root unreadable: %s", e)
    if roots:
        why = await _to_root(leaf, certs[1:], roots)
        if why is not None:
            return why
    else:
        log.warn(_TAG, "no central system root installed: the chain's root is not checked")
    cert_pem = "".join(x509.to_pem(b) for b in ders)
    if ahead:
        # Kept beside its key until then; renew() (the session's check_cert(), after each
        # connection and at heartbeats) switches to it.
        try:
            store.save(DOC, {"d": "%064x" % d, "cert": cert_pem, "from": leaf.not_before})
        except OSError as e:
            log.exc(_TAG, "keeping the new client certificate", e)
            return "could not be saved"
        log.info(_TAG, "charge point certificate kept until it is valid, from %s",
                 clock.iso(leaf.not_before))
        return False
    return _install(store, settings, d, q, cert_pem, leaf.serial_hex(), leaf.not_after)


def _install(store, settings, d, q, cert_pem, serial, until):
    # The new pair in use (the settings), the pending key dropped. -> None, or why not.
    import clock

    key_pem = pem(key_der(d, q), "EC PRIVATE KEY")
    d = None
    # What provisioning gave (hashed) stays noted: the boot's provisioning, which still holds the
    # old pair, leaves the renewed one alone (settingsdoc.load()).
    prov = settings.get("cert_prov", "")
    if not prov:
        from supervisor import rare

        prov = rare("settingsdoc", "prov_hash", settings.get("cert_pem", ""))
    # At profile 3 the pair that connected is kept ("certold") until the new one has: a CSMS
    # that refuses the new one would lock the charger out (ocpp_client/proftrial.py falls back).
    trial = settings.get("security_profile", 0) == 3
    try:
        if trial and not settings.get("cert_trial"):
            store.save(OLD, {"cert": settings.get("cert_pem", ""),
                             "key": settings.get("key_pem", "")})
        settings.update(cert_pem=cert_pem, key_pem=key_pem, cert_prov=prov, cert_trial=trial)
    except OSError as e:
        log.exc(_TAG, "saving the new client certificate", e)
        return "could not be saved"
    try:
        store.remove(DOC)
    except OSError:
        pass
    log.info(_TAG, "charge point certificate installed: serial %s, valid until %s",
             serial, clock.iso(until))
    return None


async def _switch(cl):
    # A certificate taken before its notBefore (signed()): in use once that has come, then
    # the session reconnects with it. -> True when switched, its notBefore while it waits,
    # else None.
    import clock
    from diag import p256, x509

    p = cl.store.load(DOC, {})
    if not p.get("cert"):
        return None
    if clock.now() < p["from"] - _SKEW_S:
        return p["from"] - _SKEW_S
    d = int(p["d"], 16)
    q = await p256.agen(p256.public(d))
    leaf = x509.Cert(x509.from_pem(p["cert"])[0])
    if _install(cl.store, cl.settings, d, q, p["cert"], leaf.serial_hex(), leaf.not_after):
        return None
    from supervisor import rare

    await rare("ocpp_client.wsrare", "reconnect", cl, "the new client certificate")
    return True
