# A raised security profile on trial (1.6 security whitepaper, edition 3, A05): after an accepted
# ChangeConfiguration SecurityProfile the charger disconnects and reconnects with the new profile
# (A05.FR.06/07); if it cannot connect with it, it SHOULD fall back to its previous profile
# (A05.FR.08, "to prevent that the Charge Point will become unable to reconnect on its own").
# configuration.py keeps the previous profile in the settings (`profile_fallback`, saved with
# the new one); connect.py calls settle() after each attempt while it is set, so a trial a power
# cut interrupted goes on at the boot (a fresh count there: the new profile is tried again).
# - Kept: the first WebSocket upgrade with the new profile. A connection is what A05.FR.08/09
#   speak of; by then the TLS handshake checked the CSMS (2-3), the CSMS checked our Basic
#   credentials before the upgrade (the whitepaper's profile 1 remark) or our certificate (3),
#   and a CSMS must refuse a connection with a profile other than its own (A00.FR.002). No
#   BootNotification is sent at a reconnection, so none can be waited for.
# - Back to the old one: after _ATTEMPTS attempts the CSMS's end refused (TLS, HTTP, a reset, a
#   handshake cut), or _TRIAL_MS after the first failure without a connection, whatever the
#   failures (a path that never answers). A network that is down (timeouts, no route, no name)
#   or a clock not yet set says nothing of the profile: those attempts are not counted, so an
#   outage at the boot does not undo the upgrade. On the endpoint the old credentials reached
#   (a raise from 2 to 3, a renewed certificate) neither does a TCP refusal (the CSMS
#   restarting), and the 10 minutes start at the first refusal: an outage of any length keeps
#   what the CSMS installed. The fallback is internal: Config.set() still refuses any lowering
#   from outside (A00.FR.005). The CSMS learns of it by a ReconfigurationOfSecurityParameters event
#   (the security parameters changed) naming the cause; the failures themselves raised their
#   own (InvalidCentralSystemCertificate, FailedToAuthenticateAtCentralSystem: secevents.py).
# A client certificate renewed at profile 3 (CertificateSigned, diag/csr.py: settings `cert_trial`)
# is on the same trial, for the same reason: the pair in use before is kept until the new one has
# connected and is put back if the CSMS refuses the new one (its TLS end may not trust the CA that
# signed it), or the charger would be locked out for good.
# Loaded for one call and dropped (supervisor.rare); its count lives on the session (cl.trial).
import time

import log

_TAG = "security"
_ATTEMPTS = const(3)
_TRIAL_MS = const(600000)  # 10 minutes
_ECONNREFUSED = const(111)
_OLD = "certold"  # diag/csr.py OLD


def settle(cl, ws):
    # ws: the attempt's WebSocket or the exception it failed with. -> what the session is to
    # take as the attempt's outcome (a failure that ended the trial says so).
    st = cl.settings
    new = st.get("security_profile", 0)
    old = st.get("profile_fallback", -1)
    cert = st.get("cert_trial")  # a client certificate renewed at profile 3 (diag/csr.py)
    if not isinstance(ws, Exception):
        st.update(profile_fallback=-1, cert_trial=False)
        cl.trial = None
        if cert:
            _forget(cl.store)
            log.info(_TAG, "the new client certificate connected: kept")
        if old >= 0:
            log.info(_TAG, "security profile %d connected: kept (%d is not used again)", new, old)
        return ws
    # The endpoint the old credentials reached (a renewed certificate, a raise from 2 to 3: the
    # same wss:// host and port): its port refusing TCP is the CSMS down, not a refusal of the
    # new credentials, and a dead path there says nothing of them either (the trial's clock
    # starts at the first refusal). From 0-1 to 2-3 the URL turns wss://, perhaps another port.
    same = cert or old >= 2
    t = getattr(cl, "trial", None)
    refused = _refused(ws, same)
    if t is None:
        if same and not refused:
            return ws
        t = cl.trial = [0, time.ticks_ms()]
    if refused:
        t[0] += 1
    if t[0] < _ATTEMPTS and time.ticks_diff(time.ticks_ms(), t[1]) < _TRIAL_MS:
        log.warn(_TAG, "%s on trial: %d of %d refused attempts",
                 "the new client certificate" if cert else "security profile %d" % new, t[0],
                 _ATTEMPTS)
        return ws
    why = "%s %s" % (type(ws).__name__, ws)
    cl.trial = None
    if cert:
        # the pair that connected before, back in use (and the new one gone: the CSMS refused it)
        p = cl.store.load(_OLD, {})
        if p.get("cert") and p.get("key"):
            st.update(cert_pem=p["cert"], key_pem=p["key"], cert_trial=False)
            text = "the new client certificate could not connect (%s): back to the previous one"
        else:
            st.update(cert_trial=False)
            text = "the new client certificate could not connect (%s): no previous one kept"
        _forget(cl.store)
    else:
        st.update(security_profile=old, profile_fallback=-1)
        text = "SecurityProfile %d could not connect (%%s): back to %d" % (new, old)
    text = text % why
    log.warn(_TAG, "%s", text)
    from diag import secevents

    if secevents.current is not None:
        secevents.current.add("ReconfigurationOfSecurityParameters", text)
    # Not a refusal of the next attempt, which uses other credentials: retried at the base
    # (client.retry_ms), not after the trial's backoff.
    return ProfileFallback(text)


def _forget(store):
    try:
        store.remove(_OLD)
    except OSError:
        pass


class ProfileFallback(OSError):
    # An OSError for client.dead(): the next attempt, with the old profile, is not a refusal's
    # retry (at the base, 1-2 s; not counted).
    pass


def _refused(e, same):
    # The CSMS's end answered and refused, or our own credentials are missing: counted. Not a
    # path that gave no answer (a timeout, no route, no name) nor a clock not set yet; nor, on
    # the `same` endpoint, the OS's own ECONNREFUSED (a bare errno: the port refused TCP before
    # any TLS). wsopen.py's refusals carry a reason: a TLS 1.3 end closing on our certificate,
    # a reset at the first write (lwIP's refused connect, or that close: not told apart).
    if isinstance(e, OSError):
        return bool(e.args) and e.args[0] == _ECONNREFUSED and (len(e.args) > 1 or not same)
    return "TimeoutError" not in type(e).__name__ and "clock not set" not in str(e)
