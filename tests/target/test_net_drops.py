# servers: http
# On-target test: a firmware download (ota/update.py fetch(), SignedUpdateFirmware's too), a
# diagnostics upload (diag/upload.py) and the check of a firmware signing certificate
# (diag/signedfw.py) leave the heap without the connection modules they loaded (netdrop.py):
# ocpp_client.security with its cached TLS context, ssl, net/, asyncio's waits. The session's
# next connect attempt (ocpp_client/connect.py) keeps what it finds loaded as in use elsewhere,
# so a module one of them left stayed resident for good. One in use before stays.
import json
import os
import sys

import supervisor
from fakeboard import FakeBoard

CFG = json.loads(os.getenv("BORNE_FILESRV") or "{}")
ROOT = CFG.get("root", "")
_NET = ("ocpp_client.security", "ssl", "net.http", "net.sink", "net.tcp", "net.url", "net.dns",
        "net", "asyncio.funcs")


def _clean():
    # the heap of a charger whose session is up: none of them loaded
    supervisor.drop_waits()
    supervisor.drop(*_NET)
    return _settings()


def _settings():
    with open(CFG["ca"]) as f:
        return {"ca_pem": f.read()}


def _left():
    return [n for n in _NET if n in sys.modules]


async def test_an_https_firmware_download_drops_what_it_loaded():
    from ota import update

    with open(ROOT + "/fw.bin", "wb") as f:
        f.write(b"f" * 3000)
    st = _clean()
    n = await update.fetch("https://localhost:%d/fw.bin" % CFG["https"], "fw.out", st,
                           FakeBoard(), resume=False)
    assert n == 3000, n
    assert not _left(), _left()


async def test_a_download_keeps_what_was_in_use_before_it():
    from ota import update
    from ocpp_client import security  # noqa: F401 (in use: a connect attempt under way)
    from net import dns  # noqa: F401 (the MQTT link's)

    n = await update.fetch("https://localhost:%d/fw.bin" % CFG["https"], "fw.out", _settings(),
                           FakeBoard(), resume=False)
    assert n == 3000, n
    assert "ocpp_client.security" in sys.modules and "net.dns" in sys.modules
    assert "net" in sys.modules and "net.http" not in sys.modules


async def test_an_https_diagnostics_upload_drops_what_it_loaded():
    from diag import upload

    with open("diag.txt", "wb") as f:
        f.write(b"abc")
    st = _clean()
    n = await upload.upload("https://localhost:%d/upload/" % CFG["https"], "d.txt", "diag.txt",
                            FakeBoard(), st)
    assert n == 3, n
    assert not _left(), _left()


async def test_a_signing_certificate_check_drops_the_security_module():
    from diag.signedfw import SignedFirmware
    from test_x509 import LEAF

    class Store:
        def certs(self, kind):
            return []

    class Job:  # SignedFirmware's check alone (no store, no updater)
        check_certificate = SignedFirmware.check_certificate
        _check = getattr(SignedFirmware, "_check", None)

    j = Job()
    j.diag = Job()
    j.diag.certs = Store()
    _clean()
    cert, why = j.check_certificate(LEAF)
    assert cert is None and "ManufacturerRootCertificate" in why, why
    assert "ocpp_client.security" not in sys.modules
