# One connection attempt of the session (client.py _connect()), loaded for it and dropped
# before it runs (supervisor.rare(): its coroutine holds its code): the credentials and the TLS
# context (with the ssl module and the central roots: diag/roots.py, the certificate store,
# x509.py and rsa.py when ca_pem changed), the URL and the handshake. The attempt drops those it
# loaded once the link is up or the attempt failed (one already in use elsewhere when it began
# stays); a package once none of it is left. A successful attempt starts the check of the
# client certificate's expiry at profile 3 (client.py check_cert()). While a raised security
# profile (or a renewed client certificate) is on trial, each attempt's outcome goes to
# proftrial.py (loaded for it). The CSMS's name is resolved by net/dns.py, without blocking the
# loop; its answer is kept in cl.dns_memo.
import sys
import time

import log
from netdrop import unheld
from ocpp_client.ws import WsClosed
from supervisor import drop

drop("netdrop")  # (its unheld() is all this takes: not left in the heap by the attempt)
_ECONNRESET = const(104)
_OPEN = ("ocpp_client.security", "ocpp_client.wsopen", "ssl", "net.url", "net.dns", "net.tcp",
         "diag.roots", "diag.certs", "diag.x509", "ota.rsa", "net", "ota")
_CREDS = ("ocpp_client.security", "diag.roots", "diag.certs", "diag.x509", "ota.rsa", "ota")


async def resolve(cl, host, held, asked):
    # The CSMS's address (net/dns.py, with the memo cl.dns_memo), the module out of the heap
    # again before the connect unless it was held (see attempt()).
    from net import dns

    asked[0] = True
    try:
        return await dns.resolve(host, cl.board.dns_server(), cl.dns_memo)
    finally:
        unheld(("net.dns",), held)


async def attempt(cl, url):
    # -> the WebSocket, or the exception the attempt failed with. `url`: the CSMS URL as
    # provisioned; the profile picks its scheme (security.endpoint).
    held = [n for n in _OPEN if n in sys.modules]
    asked = [False]  # the name was resolved (resolve())
    try:
        from ocpp_client import security

        u = security.endpoint(cl.settings, url)
        if u != url:
            log.info("security", "profile %d: the CSMS URL %s over TLS: %s",
                     cl.settings.get("security_profile", 0), log.url(url), log.url(u))
            url = u
        if url.startswith("wss://"):
            await security.sync_clock(cl.board)  # an untrusted clock from SNTP, not blocking
        auth, tls = security.connect_args(cl.settings, url, cl.tls_keep)
        # The credentials are made: their modules leave the heap before the connection's
        # (net/dns.py too, once resolved: resolve()). The TCP and TLS sockets and the
        # handshake then find its blocks free: an attempt's peak, a reconnect's in a heap that
        # a session has filled, was every module of it loaded at once.
        security = None
        unheld(_CREDS, held)
        from ocpp_client import wsopen

        ws = await wsopen.connect(
            url, cl.settings["cp_id"], auth=auth, ssl_ctx=tls,
            route=getattr(cl.board, "route", None), spool=cl.spool, spool_if=cl.rpc.spool_wanted,
            resolve=lambda h: resolve(cl, h, held, asked),
        )
    except Exception as e:
        ws = e
        m = cl.dns_memo
        if asked[0] and m and m[0]:
            m[2] = time.ticks_ms()  # expired (net/dns.py memo): the CSMS may have moved
        if isinstance(e, WsClosed):
            # Closed after our request without an answer: a CSMS refusing (backed off:
            # client.dead) once it repeats. The first may be the path's: a network that comes
            # back resets what hung on it (the chaos net gate does), and the charger must be
            # back at once.
            n = cl.hs_closes = getattr(cl, "hs_closes", 0) + 1
            if n < 2:
                ws = OSError(_ECONNRESET, str(e))
    if not isinstance(ws, Exception):
        cl.hs_closes = 0
    security = wsopen = auth = tls = None  # the socket keeps its TLS context
    unheld(_OPEN, held)
    st = cl.settings
    if st.get("profile_fallback", -1) >= 0 or st.get("cert_trial"):
        # a raised profile, or a renewed client certificate, on trial: kept or undone
        from supervisor import rare

        try:
            ws = rare("ocpp_client.proftrial", "settle", cl, ws)
        except Exception as e:  # no memory for it: the next attempt settles it
            log.warn("security", "profile trial not settled: %s", e)
    if not isinstance(ws, Exception):
        cl.check_cert()
    return ws
