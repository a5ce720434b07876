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
#   failures (a path that never answers). A network that is down (timeouts, no route, no name) or a clock not yet set says
#   nothing of the profile: those attempts are not counted, so an outage at the boot does not
#   undo the upgrade. The fallback is internal: Config.set() still refuses any lowering from
#   outside (A00.FR.005). The CSMS learns of it by a ReconfigurationOfSecurityParameters event
#   (the security parameters changed) naming the cause; the failures themselves raised their
#   own (InvalidCentralSystemCertificate, FailedToAuthenticateAtCentralSystem: secevents.py).
# Loaded for one call and dropped (supervisor.rare); its count lives on the session (cl.trial).
import time

import log

_TAG = "security"
_ATTEMPTS = const(3)
_TRIAL_MS = const(600000)  # 10 minutes
_ECONNREFUSED = const(111)


def settle(cl, ws):
    # ws: the attempt's WebSocket or the exception it failed with. -> what the session is to
    # take as the attempt's outcome (a failure that ended the trial says so).
    st = cl.settings
    new = st.get("security_profile", 0)
    old = st.get("profile_fallback", -1)
    if not isinstance(ws, Exception):
        st.update(profile_fallback=-1)
        cl.trial = None
        log.info(_TAG, "security profile %d connected: kept (%d is not used again)", new, old)
        return ws
    t = getattr(cl, "trial", None)
    if t is None:
        t = cl.trial = [0, time.ticks_ms()]
    if _refused(ws):
        t[0] += 1
    if t[0] < _ATTEMPTS and time.ticks_diff(time.ticks_ms(), t[1]) < _TRIAL_MS:
        log.warn(_TAG, "security profile %d on trial: %d of %d refused attempts", new, t[0],
                 _ATTEMPTS)
        return ws
    why = "%s %s" % (type(ws).__name__, ws)
    st.update(security_profile=old, profile_fallback=-1)
    cl.trial = None
    text = "SecurityProfile %d could not connect (%s): back to %d" % (new, why, old)
    log.warn(_TAG, "%s", text)
    from diag import secevents

    if secevents.current is not None:
        secevents.current.add("ReconfigurationOfSecurityParameters", text)
    # Not a refusal of the next attempt, which uses other credentials: retried at the base
    # (client.retry_ms), not after the trial's backoff.
    return ProfileFallback(text)


class ProfileFallback(OSError):
    # An OSError for client.dead(): the next attempt, with the old profile, is not a refusal's
    # retry (at the base, 1-2 s; not counted).
    pass


def _refused(e):
    # The CSMS's end answered and refused, or our own credentials are missing: counted. Not a
    # path that gave no answer (a timeout, no route, no name) nor a clock not set yet.
    if isinstance(e, OSError):
        return bool(e.args) and e.args[0] == _ECONNREFUSED
    return "TimeoutError" not in type(e).__name__ and "clock not set" not in str(e)
