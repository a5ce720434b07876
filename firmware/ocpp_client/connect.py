# One connection attempt of the session (client.py _connect()), loaded for it and dropped
# before it runs (supervisor.rare(): its coroutine holds its code): the credentials and the TLS
# context (with the ssl module and the central roots: diag/roots.py, the certificate store,
# x509.py and rsa.py when ca_pem changed), the URL and the handshake. The attempt drops those it
# loaded once the link is up or the attempt failed (one already in use elsewhere when it began
# stays); a package once none of it is left. At profile 3 a successful attempt starts the check
# of the client certificate's expiry (diag/csr.py renew(), the whitepaper's A03).
import sys

import log
from supervisor import drop

_OPEN = ("ocpp_client.security", "ocpp_client.wsopen", "ssl", "net.url", "diag.roots",
         "diag.certs", "diag.x509", "ota.rsa", "net", "ota")


def _drop_open(held):
    for n in _OPEN:
        if n not in held:
            p = n + "."
            for m in sys.modules:
                if m.startswith(p):
                    break
            else:
                drop(n)


async def attempt(cl, url):
    # -> the WebSocket, or the exception the attempt failed with. `url`: the CSMS URL as
    # provisioned; the profile picks its scheme (security.endpoint).
    held = [n for n in _OPEN if n in sys.modules]
    try:
        from ocpp_client import security, wsopen

        u = security.endpoint(cl.settings, url)
        if u != url:
            log.info("security", "profile %d: the CSMS URL %s over TLS: %s",
                     cl.settings.get("security_profile", 0), url, u)
            url = u
        auth, tls = security.connect_args(cl.settings, url, cl.board, cl.tls_keep)
        ws = await wsopen.connect(
            url, cl.settings["cp_id"], auth=auth, ssl_ctx=tls,
            route=getattr(cl.board, "route", None), spool=cl.spool, spool_if=cl.rpc.spool_wanted,
        )
    except Exception as e:
        ws = e
    security = wsopen = auth = tls = None  # the socket keeps its TLS context
    _drop_open(held)
    if (not isinstance(ws, Exception) and cl.settings.get("security_profile", 0) == 3
            and not getattr(cl, "renew_asked", False)):
        _renew(cl)
    return ws


def _renew(cl):
    # A03: the client certificate checked once the session is online, renewed before it expires
    # (diag/csr.py renew(): loaded for it, its task holds its code until it ends).
    import asyncio

    from supervisor import rare

    try:
        asyncio.create_task(rare("diag.csr", "renew", cl))
    except Exception as e:  # no memory for it: checked again at the next connection
        log.warn("certs", "client certificate not checked for renewal: %s", e)
