"""SignedUpdateFirmware (security extension): the signing certificate is checked against an
installed ManufacturerRootCertificate (validity, issuer, RSA signature) and the firmware's
signature against the certificate's key, on the charger; then the bundle goes the way of every
update (ota/: its own signature, install into the other slot, trial, commit). Every step is a
SignedFirmwareStatusNotification with the requestId; a bad certificate or signature is refused,
reported as a security event, and the running version stays."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from borne import release
from borne.csms import Csms
from borne.sim.filesrv import FileServer
from borne.sim.simulator import Simulator
from cryptography.hazmat.primitives.asymmetric import rsa
from ocpp.v16 import call
from signing import Rsa
from simctl import Control, controlling, running
from uploads import FTP_PASSWORD, ftp_server

CP_ID = "CP-TEST-1"
NEW = "0.3.0"
MFR = "ManufacturerRootCertificate"


@pytest.fixture(scope="module")
def release_key() -> rsa.RSAPrivateKey:
    return release.generate()


@pytest.fixture(scope="module")
def slot_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    files, _ = release.slot_files("unix_sim", NEW, tmp_path_factory.mktemp("rel"))
    return files


@pytest.fixture(scope="module")
def bundle(slot_files: list[tuple[str, bytes]], release_key: rsa.RSAPrivateKey) -> bytes:
    return release.pack(slot_files, release_key, version=NEW, board="unix_sim")


@pytest.fixture
async def www(tmp_path: Path) -> AsyncIterator[FileServer]:
    srv = FileServer(tmp_path / "www")
    await srv.start()
    yield srv
    await srv.stop()


def _provision(flash: Path, key: rsa.RSAPrivateKey) -> None:
    """The keyring ota/ checks every bundle against (as `borne deploy` writes it)."""
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "ota_keys.json").write_text(json.dumps(release.keyring([key.public_key()])))


@pytest.fixture
async def charger(csms: Csms, flash: Path, release_key: rsa.RSAPrivateKey
                  ) -> AsyncIterator[Simulator]:
    _provision(flash, release_key)
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim, \
            controlling(sim):
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)
        yield sim


def _statuses(csms: Csms) -> list[tuple[str, int | None]]:
    return [(f.payload["status"], f.payload.get("requestId"))  # (None: a triggered Idle)
            for f in csms.calls("SignedFirmwareStatusNotification")]


def _events(csms: Csms) -> list[str]:
    return [f.payload["type"] for f in csms.calls("SecurityEventNotification")]


def _iso(later_s: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=later_s)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


async def _request(csms: Csms, url: str, cert: Rsa, signature: bytes, rid: int,
                   later_s: int = 0, retries: int = 1, install_s: int | None = None) -> str:
    cp = csms.charge_points[CP_ID]
    fw = {"location": url, "retrieveDateTime": _iso(later_s), "signingCertificate": cert.pem,
          "signature": base64.b64encode(signature).decode()}
    if install_s is not None:
        fw["installDateTime"] = _iso(install_s)
    res = await cp.call(call.SignedUpdateFirmware(request_id=rid, retries=retries,
                                                  retry_interval=1, firmware=fw))
    status: str = res.status
    return status


async def _trigger(csms: Csms) -> tuple[str | None, dict[str, object]]:
    """ExtendedTriggerMessage(FirmwareStatusNotification) -> the message it brought."""
    n = len(csms.frames)
    res = await csms.charge_points[CP_ID].call(
        call.ExtendedTriggerMessage(requested_message="FirmwareStatusNotification"))
    assert res.status == "Accepted"
    f = await csms.wait_for(lambda: next(
        (f for f in csms.frames[n:] if f.direction == "in" and f.action in (
            "FirmwareStatusNotification", "SignedFirmwareStatusNotification")), None),
        10, "the triggered status")
    return f.action, f.payload


async def _manufacturer_root(csms: Csms) -> Rsa:
    """A manufacturer root, installed on the charger by the CSMS."""
    root = Rsa("borne manufacturer root")
    res = await csms.charge_points[CP_ID].call(
        call.InstallCertificate(certificate_type=MFR, certificate=root.pem))
    assert res.status == "Accepted"
    return root


async def test_signed_update_is_checked_installed_and_reported(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(bundle), 41) == "Accepted"
    await csms.wait_for(lambda: ("Installed", 41) in _statuses(csms), 90, "Installed")
    assert _statuses(csms) == [(s, 41) for s in ("Downloading", "Downloaded",
                                                 "SignatureVerified", "Installing",
                                                 "InstallRebooting", "Installed")]
    assert csms.calls("FirmwareStatusNotification") == []
    boots = [f.payload.get("firmwareVersion") for f in csms.calls("BootNotification")]
    assert boots[-1] == NEW and boots[0] != NEW
    await csms.wait_for(lambda: "FirmwareUpdated" in _events(csms), 20, "FirmwareUpdated")
    # The signature is RSA-PSS (OCTT TC_080_CS), as the charger says it verified it
    assert charger.agent is not None
    await charger.agent.wait_line("firmware of request 41: RSA-PSS signature verified")


async def test_signed_update_over_ftp_and_a_refused_login(
        csms: Csms, charger: Simulator, bundle: bytes, release_key: rsa.RSAPrivateKey,
        tmp_path: Path) -> None:
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    assert charger.agent is not None
    with ftp_server(tmp_path / "ftp") as ftp:
        (ftp.root / "fw.bin").write_bytes(bundle)
        # A wrong password (530): no retry can mend it, DownloadFailed after one try.
        assert await _request(csms, ftp.url("/fw.bin", password="wrong-one"), signer,
                              signer.sign(bundle), 51, retries=3) == "Accepted"
        await csms.wait_for(lambda: ("DownloadFailed", 51) in _statuses(csms), 30,
                            "DownloadFailed")
        assert _statuses(csms) == [("Downloading", 51), ("DownloadFailed", 51)]
        assert [ok for _, ok in ftp.logins] == [False]
        await charger.agent.wait_line(r"download 1/3 failed: FTP: login refused: 530")
        # The failed job may still await the answer to its DownloadFailed (the CSMS saw the
        # frame before it answered): then this request cancels that leftover.
        assert await _request(csms, ftp.url("/fw.bin"), signer, signer.sign(bundle),
                              52) in ("Accepted", "AcceptedCanceled")
        await csms.wait_for(lambda: ("Installed", 52) in _statuses(csms), 90, "Installed")
    got = [s for s, r in _statuses(csms) if r == 52]
    assert got == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                   "InstallRebooting", "Installed"], got
    boots = [f.payload.get("firmwareVersion") for f in csms.calls("BootNotification")]
    assert boots[-1] == NEW and boots[0] != NEW
    lines = "\n".join(charger.agent.all_lines)
    assert FTP_PASSWORD not in lines and "wrong-one" not in lines


async def test_bad_certificates_and_signatures_are_refused(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    root = await _manufacturer_root(csms)
    (www.root / "fw.bin").write_bytes(bundle)
    url = www.url("fw.bin")
    stranger = Rsa("someone's root")
    cases = {
        "unknown issuer": Rsa("signing", issuer=stranger, ca=False),
        "expired": Rsa("signing", issuer=root, ca=False, days=(-30, -1)),
    }
    for rid, (why, cert) in enumerate(cases.items(), start=1):
        assert await _request(csms, url, cert, cert.sign(bundle), rid) == "InvalidCertificate", why
        await csms.wait_for(
            lambda rid=rid: _events(csms).count("InvalidFirmwareSigningCertificate") == rid, 20,
            f"the InvalidFirmwareSigningCertificate security event for {why}")
    assert _statuses(csms) == []
    assert www.requests() == [], "nothing is downloaded for a bad certificate"
    # A good certificate, but the signature is not the file's; retrieved a few seconds later,
    # so the download is announced as scheduled first.
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    assert await _request(csms, url, signer, signer.sign(b"another file"), 9,
                          later_s=6) == "Accepted"
    await csms.wait_for(lambda: ("InvalidSignature", 9) in _statuses(csms), 30,
                        "InvalidSignature")
    assert [s for s, r in _statuses(csms) if r == 9] == ["DownloadScheduled", "Downloading",
                                                         "Downloaded", "InvalidSignature"]
    await csms.wait_for(lambda: "InvalidFirmwareSignature" in _events(csms), 20,
                        "the InvalidFirmwareSignature security event")
    boots = [f.payload.get("firmwareVersion") for f in csms.calls("BootNotification")]
    assert NEW not in boots
    assert charger.agent is not None
    await charger.agent.wait_line("SignedUpdateFirmware 1 refused: not issued by an installed "
                                  "ManufacturerRootCertificate")
    await charger.agent.wait_line("SignedUpdateFirmware 2 refused: signing certificate not "
                                  "valid now")


async def test_an_unsigned_update_after_a_signed_one_is_reported_unsigned(
        csms: Csms, charger: Simulator, www: FileServer, slot_files: list[tuple[str, bytes]],
        release_key: rsa.RSAPrivateKey) -> None:
    """A signed job that ota refuses (a bundle for another board) ends InstallVerificationFailed
    with its requestId; an UpdateFirmware after it, failing the same way in the same uptime, is
    reported as FirmwareStatusNotification (InstallationFailed: 1.6 has no other value), never
    under the signed job's requestId."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    other = release.pack(slot_files, release_key, version=NEW, board="esp32")
    (www.root / "other.bin").write_bytes(other)
    assert await _request(csms, www.url("other.bin"), signer, signer.sign(other), 61
                          ) == "Accepted"
    await csms.wait_for(lambda: ("InstallVerificationFailed", 61) in _statuses(csms), 30,
                        "InstallVerificationFailed")
    assert _statuses(csms) == [(s, 61) for s in ("Downloading", "Downloaded",
                                                 "SignatureVerified",
                                                 "InstallVerificationFailed")]
    # The signed job's last status stays the trigger's answer until another job reports.
    assert await _trigger(csms) == ("SignedFirmwareStatusNotification",
                                    {"status": "InstallVerificationFailed", "requestId": 61})
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await csms.charge_points[CP_ID].call(call.UpdateFirmware(location=www.url("other.bin"),
                                                             retrieve_date=when, retries=1))
    await csms.wait_call("FirmwareStatusNotification",
                         lambda p: p["status"] == "InstallationFailed", timeout=30)
    assert [f.payload["status"] for f in csms.calls("FirmwareStatusNotification")] == [
        "Downloading", "Downloaded", "InstallationFailed"]
    assert len(_statuses(csms)) == 5  # the four and the triggered one
    assert await _trigger(csms) == ("SignedFirmwareStatusNotification", {"status": "Idle"})


def _plain(csms: Csms) -> list[str]:
    return [f.payload["status"] for f in csms.calls("FirmwareStatusNotification")]


async def _update(csms: Csms, url: str) -> None:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await csms.charge_points[CP_ID].call(call.UpdateFirmware(location=url, retrieve_date=when,
                                                             retries=1))


async def test_a_signed_update_cancels_a_downloading_update_firmware_and_says_so(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    """One firmware job at a time: a SignedUpdateFirmware while an UpdateFirmware downloads
    answers AcceptedCanceled (the whitepaper's value for it), and the cancelled job ends with a
    final status the CSMS hears."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    await _update(csms, www.url("trickle/fw.bin"))
    await csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] == "Downloading")
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(bundle), 71
                          ) == "AcceptedCanceled"
    await csms.wait_for(lambda: ("Installed", 71) in _statuses(csms), 90, "Installed")
    assert _plain(csms) == ["Downloading", "DownloadFailed"]
    assert [s for s, _ in _statuses(csms)] == ["Downloading", "Downloaded", "SignatureVerified",
                                               "Installing", "InstallRebooting", "Installed"]


async def test_a_signed_update_replacing_a_downloading_signed_job_ends_it_under_its_id(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    """A second SignedUpdateFirmware while the first downloads answers AcceptedCanceled, and the
    first job ends with a final status under its own requestId: without one the CSMS keeps it
    Downloading for ever (as UpdateFirmware replacing a signed job already says)."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    assert await _request(csms, www.url("trickle/fw.bin"), signer, signer.sign(bundle), 74
                          ) == "Accepted"
    await csms.wait_for(lambda: ("Downloading", 74) in _statuses(csms), 30, "Downloading")
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(bundle), 75
                          ) == "AcceptedCanceled"
    await csms.wait_for(lambda: ("Installed", 75) in _statuses(csms), 90, "Installed")
    assert [s for s, r in _statuses(csms) if r == 74] == ["Downloading", "DownloadFailed"]
    assert [s for s, r in _statuses(csms) if r == 75] == [
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
        "Installed"]
    assert csms.calls("FirmwareStatusNotification") == []


async def test_an_update_firmware_replaces_a_downloading_signed_job(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    """An UpdateFirmware while a signed job downloads replaces it, as it replaces another
    UpdateFirmware: the signed job ends DownloadFailed and does not come back after the update's
    reboot. Meanwhile TriggerMessage(FirmwareStatusNotification) says Downloading, not Idle."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    assert await _request(csms, www.url("trickle/fw.bin"), signer, signer.sign(bundle), 72
                          ) == "Accepted"
    await csms.wait_for(lambda: ("Downloading", 72) in _statuses(csms), 30, "Downloading")
    n = len(csms.frames)
    res = await csms.charge_points[CP_ID].call(
        call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    assert res.status == "Accepted"
    f = await csms.wait_call("FirmwareStatusNotification", after=n)
    assert f.payload == {"status": "Downloading"}
    await _update(csms, www.url("fw.bin"))
    await csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] == "Installed",
                         timeout=90)
    assert _statuses(csms) == [("Downloading", 72), ("DownloadFailed", 72)]
    assert _plain(csms) == ["Downloading", "Downloading", "Downloaded", "Installing",
                            "Installed"]
    boots = [f.payload.get("firmwareVersion") for f in csms.calls("BootNotification")]
    assert boots[-1] == NEW and len(boots) == 2, boots
    assert charger.agent is not None
    assert not any("resumed after the reboot" in ln for ln in charger.agent.all_lines)


async def test_a_signed_job_ending_while_the_csms_link_is_down_is_reported_once_online(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    """The job runs while the CSMS link is down (its download does not use the link): its
    final status (here InvalidSignature) reaches the CSMS once the link is back."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(b"another file"), 73,
                          later_s=5) == "Accepted"
    await csms.wait_for(lambda: ("DownloadScheduled", 73) in _statuses(csms), 10,
                        "DownloadScheduled")
    assert charger.gate is not None and charger.agent is not None
    charger.gate.set_up(False)
    # (a status sent as the link went may wait for its CALL's timeout first)
    await charger.agent.wait_line("firmware of request 73: signature does not verify", 90)
    charger.gate.set_up(True)
    await csms.wait_for(lambda: ("InvalidSignature", 73) in _statuses(csms), 60,
                        "InvalidSignature once online")
    assert _statuses(csms)[-1] == ("InvalidSignature", 73)


@pytest.mark.parametrize("cut_at", ["DownloadScheduled", "Downloading"])
async def test_a_signed_job_cut_before_its_signature_is_checked_resumes_after_the_boot(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey, cut_at: str) -> None:
    """A power cut while the download waits for its retrieve time (hours, maybe) or while it
    runs: the job was saved when it was accepted, so the boot takes it up again once online
    (announcing where it is again) and the CSMS hears it to its end, all under its requestId."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    serve = www._file
    gate = asyncio.Event()

    async def held(*args: object) -> None:  # the server answers once the power is back
        await gate.wait()
        await serve(*args)  # type: ignore[arg-type]

    if cut_at == "Downloading":
        www._file = held  # type: ignore[method-assign]
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(bundle), 71,
                          later_s=20 if cut_at == "DownloadScheduled" else 0) == "Accepted"
    await csms.wait_for(lambda: (cut_at, 71) in _statuses(csms), 20, cut_at)
    assert charger.agent is not None
    await charger.agent.power_cut()
    gate.set()
    await charger.agent.power_on()
    await csms.wait_for(lambda: ("Installed", 71) in _statuses(csms), 120, "Installed")
    got = [s for s, _ in _statuses(csms)]
    assert {r for _, r in _statuses(csms)} == {71}
    assert got[0] == cut_at
    resumed = got[1:]
    if resumed[0] == "DownloadScheduled":  # the retrieve time had not come at the boot
        resumed = resumed[1:]
    assert resumed == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                       "InstallRebooting", "Installed"], got
    boots = [f.payload.get("firmwareVersion") for f in csms.calls("BootNotification")]
    assert len(boots) == 3 and boots[-1] == NEW, boots


async def test_installation_waits_for_install_date_time_even_across_a_power_cut(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    """installDateTime in the future: the verified file waits on flash (InstallScheduled),
    through a power cut, and is installed at that time; InstallRebooting comes before the
    reset into the new slot; Installed after it carries the requestId."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    install_s = 25
    due = time.monotonic() + install_s - 1  # the install time in whole seconds
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(bundle), 81,
                          install_s=install_s) == "Accepted"
    await csms.wait_for(lambda: ("InstallScheduled", 81) in _statuses(csms), 30,
                        "InstallScheduled")
    # ExtendedTriggerMessage: the signed job's state, not the unsigned updater's Idle
    assert await _trigger(csms) == ("SignedFirmwareStatusNotification",
                                    {"status": "InstallScheduled", "requestId": 81})
    assert charger.agent is not None
    await charger.agent.power_cut()
    await charger.agent.power_on()
    await csms.wait_for(lambda: ("Installed", 81) in _statuses(csms), 120, "Installed")
    assert {r for _, r in _statuses(csms)} == {81}
    got = [s for s, _ in _statuses(csms)]
    assert got[:4] == ["Downloading", "Downloaded", "SignatureVerified", "InstallScheduled"]
    # InstallScheduled: announced, triggered, and again after the boot (if still ahead)
    assert [s for s in got[4:] if s != "InstallScheduled"] == [
        "Installing", "InstallRebooting", "Installed"], got
    installing = next(f for f in csms.calls("SignedFirmwareStatusNotification")
                      if f.payload["status"] == "Installing")
    assert installing.t >= due, f"installed {due - installing.t:.1f} s before installDateTime"
    assert len(www.requests()) == 1, "the verified file was kept, not downloaded again"
    boots = [f.payload.get("firmwareVersion") for f in csms.calls("BootNotification")]
    assert len(boots) == 3 and boots[-1] == NEW, boots


async def test_extended_trigger_message_answers_signed_firmware_status_idle_after_installed(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    """ExtendedTriggerMessage(FirmwareStatusNotification) triggers a
    SignedFirmwareStatusNotification (security whitepaper, MessageTriggerEnumType): Idle without a
    requestId while no firmware job ever ran, Idle again once the last one said Installed
    (L01.FR.28), never the plain 1.6 FirmwareStatusNotification."""
    assert await _trigger(csms) == ("SignedFirmwareStatusNotification", {"status": "Idle"})
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(bundle), 91) == "Accepted"
    await csms.wait_for(lambda: ("Installed", 91) in _statuses(csms), 90, "Installed")
    assert await _trigger(csms) == ("SignedFirmwareStatusNotification", {"status": "Idle"})
    assert csms.calls("FirmwareStatusNotification") == []


async def _two_bundles(csms: Csms, www: FileServer, slot_files: list[tuple[str, bytes]],
                       release_key: rsa.RSAPrivateKey) -> tuple[Rsa, bytes, bytes]:
    """A signing certificate under an installed manufacturer root, and two bundles served as
    first.bin and second.bin (the second adds second.txt)."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    first = release.pack(slot_files, release_key, version=NEW, board="unix_sim")
    second = release.pack([*slot_files, ("second.txt", b"the second bundle")], release_key,
                          version=NEW, board="unix_sim")
    (www.root / "first.bin").write_bytes(first)
    (www.root / "second.bin").write_bytes(second)
    return signer, first, second


async def _charging(csms: Csms, ctl: Control) -> None:
    """A free-charging session with the relay closed."""
    await csms.charge_points[CP_ID].call(
        call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await ctl("plug")
    await ctl("charge")
    await ctl.wait_state(lambda s: s["relay"], "charging")


@pytest.mark.parametrize("first_job", ["SignedUpdateFirmware", "UpdateFirmware"])
async def test_a_signed_update_replaces_an_install_waiting_for_the_session(
        csms: Csms, charger: Simulator, www: FileServer, slot_files: list[tuple[str, bytes]],
        release_key: rsa.RSAPrivateKey, flash: Path, first_job: str) -> None:
    """The first bundle is downloaded and waits for the session to end, nothing written; the
    operator sends a corrected one, signed. The whitepaper (Secure firmware update: a charge
    point installing or about to install firmware SHOULD cancel it and answer AcceptedCanceled)
    wants it replaced: the first job ends InstallationFailed (a signed one under its
    requestId), the second is installed once the session ended. (It was Rejected, and the first
    one installed.)"""
    signer, first, second = await _two_bundles(csms, www, slot_files, release_key)
    assert charger.agent is not None
    async with controlling(charger) as ctl:
        await _charging(csms, ctl)
        if first_job == "UpdateFirmware":
            await _update(csms, www.url("first.bin"))
        else:
            assert await _request(csms, www.url("first.bin"), signer, signer.sign(first), 101
                                  ) == "Accepted"
        await charger.agent.wait_line(r"installation waits for the transaction to end", 60)
        assert await _request(csms, www.url("second.bin"), signer, signer.sign(second), 102
                              ) == "AcceptedCanceled"
        await csms.wait_for(lambda: ("SignatureVerified", 102) in _statuses(csms), 30,
                            "the second job verified")
        if first_job == "UpdateFirmware":
            await csms.wait_call("FirmwareStatusNotification",
                                 lambda p: p["status"] == "InstallationFailed")
            assert _plain(csms) == ["Downloading", "Downloaded", "InstallationFailed"]
        else:
            assert [s for s, r in _statuses(csms) if r == 101] == [
                "Downloading", "Downloaded", "SignatureVerified", "InstallationFailed"]
        assert (await ctl("state"))["relay"], "the session goes on"
        await ctl("unplug")
    await csms.wait_for(lambda: ("Installed", 102) in _statuses(csms), 90, "Installed")
    assert [s for s, r in _statuses(csms) if r == 102] == [
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
        "Installed"]
    assert (flash / "app_a" / "second.txt").read_bytes() == b"the second bundle"
    stops = csms.calls("StopTransaction")
    assert len(stops) == 1 and stops[0].payload["reason"] == "EVDisconnected"


async def test_an_update_firmware_replaces_a_signed_install_waiting_for_the_session(
        csms: Csms, charger: Simulator, www: FileServer, slot_files: list[tuple[str, bytes]],
        release_key: rsa.RSAPrivateKey, flash: Path) -> None:
    """An UpdateFirmware replaces a verified signed bundle waiting for the session to end, as it
    replaces an UpdateFirmware's: the signed job ends InstallationFailed under its requestId and
    the new bundle is installed once the session ended. (It was ignored: UpdateFirmware.conf
    has no status, so the CSMS heard nothing of its request, ever, and the old bundle went
    in.)"""
    signer, first, _ = await _two_bundles(csms, www, slot_files, release_key)
    assert charger.agent is not None
    async with controlling(charger) as ctl:
        await _charging(csms, ctl)
        assert await _request(csms, www.url("first.bin"), signer, signer.sign(first), 111
                              ) == "Accepted"
        await charger.agent.wait_line(r"installation waits for the transaction to end", 60)
        await _update(csms, www.url("second.bin"))
        await csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] == "Downloaded",
                             timeout=30)
        await csms.wait_for(lambda: ("InstallationFailed", 111) in _statuses(csms), 10,
                            "the signed job's end")
        assert (await ctl("state"))["relay"], "the session goes on"
        await ctl("unplug")
    await csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] == "Installed",
                         timeout=90)
    assert _statuses(csms) == [(s, 111) for s in ("Downloading", "Downloaded",
                                                  "SignatureVerified", "InstallationFailed")]
    assert _plain(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert (flash / "app_a" / "second.txt").read_bytes() == b"the second bundle"


async def test_a_signed_bundle_that_fails_its_own_checks_ends_install_verification_failed(
        csms: Csms, charger: Simulator, www: FileServer, slot_files: list[tuple[str, bytes]],
        release_key: rsa.RSAPrivateKey) -> None:
    """The file carries the request's signature, but the bundle inside fails the checks made
    before anything is written (here: signed by a release key the charger does not trust). The
    whitepaper's status for it is InstallVerificationFailed ("verification of the new firmware
    failed and installation will not proceed"), not InstallationFailed, which tells the
    operator an installation was tried and failed. The running version stays."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    stranger = release.pack(slot_files, release.generate(), version=NEW, board="unix_sim")
    (www.root / "fw.bin").write_bytes(stranger)
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(stranger), 121
                          ) == "Accepted"
    await csms.wait_for(lambda: any(r == 121 and s.endswith("Failed") for s, r in
                                    _statuses(csms)), 60, "the job's end")
    assert _statuses(csms) == [(s, 121) for s in ("Downloading", "Downloaded",
                                                  "SignatureVerified",
                                                  "InstallVerificationFailed")]
    assert await _trigger(csms) == ("SignedFirmwareStatusNotification",
                                    {"status": "InstallVerificationFailed", "requestId": 121})
    assert charger.agent is not None
    await charger.agent.wait_line(r"firmware update failed \(InstallVerificationFailed\): "
                                  r"signed by unknown key")
    boots = [f.payload.get("firmwareVersion") for f in csms.calls("BootNotification")]
    assert NEW not in boots


async def test_an_install_made_while_the_csms_link_is_down_reports_in_order_after_the_boot(
        csms: Csms, charger: Simulator, www: FileServer, bundle: bytes,
        release_key: rsa.RSAPrivateKey) -> None:
    """The installation runs while the CSMS link is down (at its installDateTime): the reset
    keeps InstallRebooting unsent. The new version commits itself as soon as its
    BootNotification is accepted, and Installed ends the job; the kept InstallRebooting must
    still go first under the job's requestId, not after Installed as a plain
    FirmwareStatusNotification (whose FirmwareStatus has no such value: a CALLERROR, and the
    CSMS's last word on the job was InstallRebooting)."""
    root = await _manufacturer_root(csms)
    signer = Rsa("borne firmware signing", issuer=root, ca=False, key=release_key)
    (www.root / "fw.bin").write_bytes(bundle)
    assert await _request(csms, www.url("fw.bin"), signer, signer.sign(bundle), 131,
                          install_s=12) == "Accepted"
    await csms.wait_for(lambda: ("InstallScheduled", 131) in _statuses(csms), 30,
                        "InstallScheduled")
    assert charger.gate is not None and charger.agent is not None
    charger.gate.set_up(False)
    await charger.agent.wait_line(r"running slot a on trial", 90)
    await asyncio.sleep(3)
    charger.gate.set_up(True)
    await csms.wait_for(lambda: ("Installed", 131) in _statuses(csms), 90, "Installed")
    await asyncio.sleep(3)  # (anything after it)
    assert csms.calls("FirmwareStatusNotification") == []
    got = [s for s, r in _statuses(csms) if r == 131]
    assert got[-2:] == ["InstallRebooting", "Installed"], got
