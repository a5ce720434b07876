# On-target test: DeleteCertificate's TLS probe of the CSMS (diag/certs.py) loads what a
# connection needs (ocpp_client.security with its cached TLS context, ocpp_client.wsopen,
# net.url) and leaves the heap without what it loaded: the session's next connect attempt
# (ocpp_client/connect.py) keeps what it finds loaded as in use elsewhere, so a module the probe
# left stayed resident for good.
import sys

from fakeboard import FakeBoard
from store import Store
from supervisor import drop
from mphelp import closed_port
from test_x509 import ROOT, OTHER, ROOT_HASH

_CONN = ("ocpp_client.security", "ocpp_client.wsopen", "net.url")


class _Session:
    def __init__(self, port):
        self.settings = {"csms_url": "ws://127.0.0.1:%d/ocpp" % port, "security_profile": 2,
                         "ca_pem": ROOT + OTHER}
        self.board = FakeBoard()
        self.config = None


async def test_a_delete_certificate_probe_drops_the_modules_it_loaded():
    from diag.certs import CertStore

    s = _Session(closed_port())
    h = CertStore(Store("certprobe"), s.settings).handlers(s)
    drop(*_CONN)
    out = await h["DeleteCertificate"]({"certificateHashData": ROOT_HASH})
    assert out == {"status": "Failed"}, out  # (no CSMS: the probe fails, the root stays)
    left = [n for n in _CONN if n in sys.modules]
    assert not left, left


async def test_a_delete_certificate_probe_keeps_what_was_in_use_before_it():
    from diag.certs import CertStore
    from ocpp_client import security, wsopen  # noqa: F401 (in use: a connect under way)

    s = _Session(closed_port())
    h = CertStore(Store("certprobe2"), s.settings).handlers(s)
    out = await h["DeleteCertificate"]({"certificateHashData": ROOT_HASH})
    assert out == {"status": "Failed"}, out
    assert "ocpp_client.security" in sys.modules and "ocpp_client.wsopen" in sys.modules


async def test_an_install_certificate_drops_the_security_module_it_loaded():
    from diag.certs import CertStore

    s = _Session(closed_port())
    s.settings["ca_pem"] = ROOT
    h = CertStore(Store("certprobe3"), s.settings).handlers(s)
    drop(*_CONN)
    out = await h["InstallCertificate"]({"certificateType": "CentralSystemRootCertificate",
                                         "certificate": OTHER})
    assert out == {"status": "Accepted"}, out
    assert "ocpp_client.security" not in sys.modules


async def test_a_get_installed_certificate_ids_drops_the_security_module_it_loaded():
    from diag.certs import CertStore

    s = _Session(closed_port())
    h = CertStore(Store("certprobe4"), s.settings).handlers(s)
    drop(*_CONN)
    out = await h["GetInstalledCertificateIds"]({"certificateType": "CentralSystemRootCertificate"})
    assert out["status"] == "Accepted" and len(out["certificateHashData"]) == 2, out
    assert "ocpp_client.security" not in sys.modules
