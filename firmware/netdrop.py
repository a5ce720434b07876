# What a rarely run network step loads of the connection's modules, out of the heap again after
# it (issue 12: load on use, dropped after): a certificate message (diag/certs.py: x509 loads
# ocpp_client.security with its cached TLS context; DeleteCertificate's probe wsopen), a firmware
# download (ota/update.py fetch(): net.http, https://'s security and ssl, asyncio's waits), a
# diagnostics upload (diag/upload.py), a firmware signing certificate's check (diag/signedfw.py).
# The session's next connect attempt takes what it finds loaded as in use elsewhere and keeps it
# (ocpp_client/connect.py), so one left here stayed resident for good. A module in use before the
# step (a connect attempt under way, the MQTT link, another download) stays; a package once none
# of it is left. Loaded by supervisor.rare() for the call: the coroutine of run() holds its code.
import sys

from supervisor import drop, drop_waits

_MODS = ("ocpp_client.security", "ocpp_client.wsopen", "ssl", "net.http", "net.sink", "net.ftp",
         "net.url", "net.dns", "net.tcp", "net")


def _held():
    return [n for n in _MODS if n in sys.modules], "asyncio.funcs" in sys.modules


def unheld(names, held):
    # Of `names`, those not in `held` (in use before the step) out of the heap; a package once
    # none of it is left. Also the connection attempt's (ocpp_client/connect.py).
    for n in names:
        if n not in held:
            q = n + "."
            for m in sys.modules:
                if m.startswith(q):
                    break
            else:
                drop(n)


def _drop(held):
    unheld(_MODS, held[0])
    if not held[1]:
        drop_waits()


async def run(coro):
    # -> await coro, then out of the heap what it loaded
    held = _held()
    try:
        return await coro
    finally:
        _drop(held)


def call(fn, *args):
    # -> fn(*args), then out of the heap what it loaded
    held = _held()
    try:
        return fn(*args)
    finally:
        _drop(held)
