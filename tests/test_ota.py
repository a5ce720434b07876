"""Firmware updates end to end: the simulated charger takes UpdateFirmware, downloads a signed
bundle from a real HTTP(S) server, reports every step, installs it into the other slot, boots it
on trial and commits it; a bad version rolls back by itself; bad bundles and bad servers are
refused with the running version untouched, and a session is never interrupted."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from borne import release
from borne.csms import Csms
from borne.sim.agent import Security
from borne.sim.filesrv import FileServer, self_signed
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from conftest import answers_while_resolving
from cryptography.hazmat.primitives.asymmetric import rsa
from flashdoc import seed
from ocpp.v16 import call
from simctl import Control, controlling, running
from uploads import FTP_PASSWORD, ftp_server

CP_ID = "CP-TEST-1"
NEW = "0.2.0"


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return release.generate()


@pytest.fixture(scope="session")
def slot_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    """The unix_sim application as a release slot (mpy-cross), version NEW; built once."""
    files, _ = release.slot_files("unix_sim", NEW, tmp_path_factory.mktemp("rel"))
    return files


def _with(files: list[tuple[str, bytes]], name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(p, b) for p, b in files if p != name] + [(name, data)]


@pytest.fixture
async def www(tmp_path: Path) -> AsyncIterator[FileServer]:
    ctx, ca = self_signed(tmp_path / "tls")
    srv = FileServer(tmp_path / "www", ctx)
    srv.ca = ca  # type: ignore[attr-defined]
    await srv.start()
    yield srv
    await srv.stop()


def _provision(flash: Path, key: rsa.RSAPrivateKey, trial_s: int | None = None) -> None:
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "ota_keys.json").write_text(json.dumps(release.keyring([key.public_key()])))
    if trial_s is not None:
        seed(flash, "settings", {"ota_trial_s": trial_s})


@pytest.fixture
async def charger(csms: Csms, flash: Path, signing_key: rsa.RSAPrivateKey
                  ) -> AsyncIterator[tuple[Simulator, Control]]:
    _provision(flash, signing_key)
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim, \
            controlling(sim) as ctl:
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)
        yield sim, ctl


def _statuses(csms: Csms) -> list[str]:
    return [f.payload["status"] for f in csms.calls("FirmwareStatusNotification")]


async def _update(csms: Csms, url: str, **kw: Any) -> None:
    cp = csms.charge_points[CP_ID]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await cp.call(call.UpdateFirmware(location=url, retrieve_date=when, **kw))


async def _final(csms: Csms, n: int = 0, timeout: float = 60) -> str:
    finals = ("Installed", "InstallationFailed", "DownloadFailed")
    f = await csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] in finals,
                             timeout=timeout, after=n)
    status: str = f.payload["status"]
    return status


def _versions(csms: Csms) -> list[str]:
    return [f.payload.get("firmwareVersion") for f in csms.calls("BootNotification")]


async def test_remote_update_over_https_reports_every_step_and_commits(
        csms: Csms, www: FileServer, signing_key: rsa.RSAPrivateKey,
        slot_files: list[tuple[str, bytes]], flash: Path) -> None:
    _provision(flash, signing_key)
    # https:// is checked against the CA the charger was provisioned with (here the server's).
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                    security=Security(0, ca=www.ca))  # type: ignore[attr-defined]
    async with running(sim), controlling(sim):
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)
        await _remote_update(csms, www, signing_key, slot_files, flash)


async def _remote_update(csms: Csms, www: FileServer, signing_key: rsa.RSAPrivateKey,
                         slot_files: list[tuple[str, bytes]], flash: Path) -> None:
    (www.root / "fw.bin").write_bytes(
        release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
    await _update(csms, www.url("fw.bin", tls=True, host="localhost"), retries=2,
                  retry_interval=1)
    assert await _final(csms) == "Installed"
    assert _statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert _versions(csms)[-1] == NEW and _versions(csms)[0] != NEW
    assert (flash / "boot_slot").read_text() == "a"
    assert not (flash / "boot_trial").exists() and not (flash / "ota_bundle.fw").exists()
    # The charger stayed in business: Unavailable while installing, Available again after.
    st = [f.payload["status"] for f in csms.calls("StatusNotification")
          if f.payload["connectorId"] == 1]
    assert "Unavailable" in st and st[-1] == "Available"
    # TriggerMessage answers the current state: nothing running now.
    n = len(csms.frames)
    res = await csms.charge_points[CP_ID].call(
        call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    assert res.status == "Accepted"
    f = await csms.wait_call("FirmwareStatusNotification", after=n)
    assert f.payload["status"] == "Idle"


async def test_a_version_that_crashes_rolls_back_and_reports(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]], flash: Path) -> None:
    sim, _ctl = charger
    broken = _with(slot_files, "app.py", b"import no_such_module_anywhere\n")
    broken = [(p, b) for p, b in broken if p != "app.mpy"]
    (www.root / "bad.bin").write_bytes(
        release.pack(broken, signing_key, version=NEW, board="unix_sim"))
    await _update(csms, www.url("bad.bin"), retries=1, retry_interval=1)
    assert await _final(csms) == "InstallationFailed"
    assert _statuses(csms) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert NEW not in _versions(csms)
    assert not (flash / "boot_slot").exists() and not (flash / "boot_trial").exists()
    assert sim.agent is not None
    await sim.agent.wait_line(r"rolled back: slot a: crashed: ImportError")


async def test_a_version_that_never_proves_itself_rolls_back(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]], flash: Path) -> None:
    # It boots, but resets before it could prove itself (a watchdog reset, as a hang would
    # cause): after main.py's trial boots the old version is back and says why.
    sim, _ctl = charger
    hang = b"import sys\ndef run():\n    sys.exit(4)\n"
    files = [(p, b) for p, b in _with(slot_files, "app.py", hang) if p != "app.mpy"]
    (www.root / "hang.bin").write_bytes(
        release.pack(files, signing_key, version=NEW, board="unix_sim"))
    await _update(csms, www.url("hang.bin"))
    assert await _final(csms, timeout=90) == "InstallationFailed"
    assert sim.agent is not None
    await sim.agent.wait_line(r"rolled back: slot a: not proven after 3 boots")
    assert NEW not in _versions(csms)


async def test_a_version_that_never_reaches_the_csms_rolls_back(
        csms: Csms, www: FileServer, signing_key: rsa.RSAPrivateKey,
        slot_files: list[tuple[str, bytes]], flash: Path) -> None:
    # It runs and never crashes, but its OCPP connection never opens: committed after the trial
    # time, it would have left the charger out of the CSMS's reach for good. A job the CSMS
    # asked for must reach it again; the old version comes back and says why.
    _provision(flash, signing_key, trial_s=6)
    src = (Path(__file__).parents[1] / "firmware/ocpp_client/wsopen.py").read_text()
    src += "\n\nasync def connect(*a, **k):\n    raise WsError('this version cannot connect')\n"
    files = [(p, b) for p, b in _with(slot_files, "ocpp_client/wsopen.py", src.encode())
             if p != "ocpp_client/wsopen.mpy"]
    (www.root / "deaf.bin").write_bytes(
        release.pack(files, signing_key, version=NEW, board="unix_sim"))
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim:
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)
        await _update(csms, www.url("deaf.bin"))
        assert await _final(csms, timeout=90) == "InstallationFailed"
        assert sim.agent is not None
        await sim.agent.wait_line(r"rolled back: slot a: never reached the CSMS in \d+ s")
    assert NEW not in _versions(csms)
    assert not (flash / "boot_slot").exists() and not (flash / "boot_trial").exists()


BAD = [
    # (what, manifest or file change, expected reason in the log)
    ("unknown key", "key", r"signed by unknown key"),
    ("bad signature", "sig", r"bad signature"),
    ("hash mismatch", "hash", r"SHA-256 differs"),
    ("truncated", "trunc", r"truncated bundle"),
    ("other board", {"board": "esp32_wallbox"}, r"bundle for board esp32_wallbox"),
    ("newer MicroPython", {"micropython": "9.1"}, r"needs MicroPython 9.1"),
    ("downgrade", {"version": "0.0.9"}, r"downgrade from .* to 0.0.9"),
    ("path outside", "path", r"outside the slot"),
]


async def test_bad_bundles_are_refused_and_change_nothing(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]], flash: Path) -> None:
    sim, ctl = charger
    assert sim.agent is not None
    small = [(p, b) for p, b in slot_files if p in ("app.mpy", "version.mpy")]
    # A session runs through all of it and is never interrupted.
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await ctl("plug")
    await ctl("charge")
    await ctl.wait_state(lambda s: s["relay"], "charging")
    other = release.generate()
    for what, change, reason in BAD:
        if change == "key":
            data = release.pack(small, other, version=NEW, board="unix_sim")
        elif isinstance(change, dict):
            data = release.pack(small, signing_key, version=NEW, board="unix_sim", extra=change)
        elif change == "path":
            data = release.pack([*small, ("../main.py", b"x")], signing_key, version=NEW,
                                board="unix_sim")
        else:
            data = bytearray(release.pack(small, signing_key, version=NEW, board="unix_sim"))
            if change == "sig":
                data[-sum(len(b) for _, b in small) - 5] ^= 1
            elif change == "hash":
                data[-3] ^= 1
            elif change == "trunc":
                data = data[:-100]
            data = bytes(data)
        (www.root / "b.bin").write_bytes(data)
        n = len(csms.frames)
        start = len(sim.agent.all_lines)
        await _update(csms, www.url("b.bin"), retries=1)
        assert await _final(csms, n) == "InstallationFailed", what
        await sim.agent.wait_line(reason, start=start, timeout=5)
    for what, path, reason in [
        ("404", "nothing.bin", r"HTTP 404"),
        ("500", "status/500/x", r"HTTP 500"),
        ("redirect loop", "loop/x", r"more than 5 redirects"),
        ("1 byte a second", "trickle/b.bin", r"server too slow: \d+ bytes in 10000 ms"),
    ]:
        n = len(csms.frames)
        start = len(sim.agent.all_lines)
        await _update(csms, www.url(path), retries=1)
        assert await _final(csms, n, timeout=30) == "DownloadFailed", what
        await sim.agent.wait_line(reason, start=start, timeout=5)
    state = await ctl("state")
    assert state["relay"] and state["ocpp"]["status"] == "Charging"
    assert len(csms.calls("BootNotification")) == 1, "the charger restarted"
    assert len(csms.calls("StopTransaction")) == 0
    assert not (flash / "boot_slot").exists() and not (flash / "app_a").exists()


async def test_installation_waits_for_the_session_to_end(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]]) -> None:
    _sim, ctl = charger
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await ctl("plug")
    await ctl("charge")
    await ctl.wait_state(lambda s: s["relay"], "charging")
    (www.root / "fw.bin").write_bytes(
        release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
    await _update(csms, www.url("fw.bin"))
    await csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] == "Downloaded")
    await asyncio.sleep(2)
    assert "Installing" not in _statuses(csms)
    # Nothing is being installed yet: TriggerMessage answers the last status sent, Downloaded
    n = len(csms.frames)
    res = await cp.call(call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    assert res.status == "Accepted"
    f = await csms.wait_call("FirmwareStatusNotification", after=n)
    assert f.payload == {"status": "Downloaded"}
    assert (await ctl("state"))["relay"]
    await ctl("unplug")
    assert await _final(csms) == "Installed"
    stops = csms.calls("StopTransaction")
    assert len(stops) == 1 and stops[0].payload["reason"] == "EVDisconnected"


async def test_a_second_request_replaces_an_installation_still_waiting_for_the_session(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]], flash: Path) -> None:
    # The first bundle is downloaded and waits for the session to end, nothing written yet; the
    # operator sends another one. UpdateFirmware.conf has no status to refuse it with: the
    # charger installs the one asked for last (as a second request replaces a download).
    sim, ctl = charger
    assert sim.agent is not None
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await ctl("plug")
    await ctl("charge")
    await ctl.wait_state(lambda s: s["relay"], "charging")
    (www.root / "first.bin").write_bytes(
        release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
    (www.root / "second.bin").write_bytes(release.pack(
        [*slot_files, ("second.txt", b"the second bundle")], signing_key, version=NEW,
        board="unix_sim"))
    await _update(csms, www.url("first.bin"))
    await sim.agent.wait_line(r"installation waits for the transaction to end", timeout=30)
    n = len(csms.frames)
    await _update(csms, www.url("second.bin"))
    await csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] == "Downloaded",
                         after=n)
    assert (await ctl("state"))["relay"], "the session goes on"
    await ctl("unplug")
    assert await _final(csms, n) == "Installed"
    assert (flash / "app_a" / "second.txt").read_bytes() == b"the second bundle"
    stops = csms.calls("StopTransaction")
    assert len(stops) == 1 and stops[0].payload["reason"] == "EVDisconnected"


async def test_download_resumes_after_network_cuts_and_a_second_request_replaces_a_stuck_one(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]]) -> None:
    (www.root / "fw.bin").write_bytes(
        release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
    size = (www.root / "fw.bin").stat().st_size
    # First a server that trickles a byte a second: the download stalls; a second UpdateFirmware
    # replaces it (the stalled job is dropped, as OCPP 2.0.1 L01.FR.24 does; 1.6's answer has no
    # status to say so).
    await _update(csms, www.url("trickle/fw.bin"))
    await csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] == "Downloading")
    await asyncio.sleep(1)
    # Then the connection drops after every 60 kB: each retry resumes where the last one ended.
    n = len(csms.frames)
    await _update(csms, www.url("cut/60000/fw.bin"), retries=10, retry_interval=1)
    assert await _final(csms, n, timeout=90) == "Installed"
    ranges = [r.headers.get("range") for r in www.requests("GET") if r.path.startswith("/cut/")]
    want = [None] + [f"bytes={k}-" for k in range(60000, size, 60000)]
    assert ranges == want, ranges
    assert _versions(csms)[-1] == NEW


async def test_remote_update_over_ftp_reports_every_step_and_commits(
        csms: Csms, charger: tuple[Simulator, Control], signing_key: rsa.RSAPrivateKey,
        slot_files: list[tuple[str, bytes]], flash: Path, tmp_path: Path) -> None:
    # The ftp://user:password@host/path location CSMSs such as SteVe hand out (net/ftp.py RETR).
    sim, _ctl = charger
    with ftp_server(tmp_path / "ftp") as ftp:
        (ftp.root / "fw").mkdir()
        (ftp.root / "fw" / "fw.bin").write_bytes(
            release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
        await _update(csms, ftp.url("/fw/fw.bin"), retries=2, retry_interval=1)
        assert await _final(csms) == "Installed"
        assert ftp.logins and all(ok for _, ok in ftp.logins), ftp.logins
        assert ftp.rests == [], "a first try starts at 0"
    assert _statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert _versions(csms)[-1] == NEW and _versions(csms)[0] != NEW
    assert (flash / "boot_slot").read_text() == "a"
    assert not (flash / "boot_trial").exists() and not (flash / "ota_bundle.fw").exists()
    assert sim.agent is not None
    await sim.agent.wait_line(r"downloaded \d+ bytes from ftp://\*\*\*@127.0.0.1:\d+/fw/fw.bin")
    assert FTP_PASSWORD not in "\n".join(sim.agent.all_lines)
    # nor in the event log (its fw_update record names the location) or the agent log on flash
    logs = [flash / "data" / "events.log", *(flash / "data" / "agentlog").glob("*.log")]
    assert any("fw_update" in p.read_text(errors="replace") for p in logs if p.exists())
    for p in logs:
        assert FTP_PASSWORD not in p.read_text(errors="replace"), p


async def test_a_location_it_cannot_download_from_fails_the_download_at_once(
        csms: Csms, charger: tuple[Simulator, Control]) -> None:
    """OCTT TC_044_2 (download failed): an UpdateFirmware whose location no download can use
    (another scheme, an ftp:// folder) was ignored, logged only: the CSMS heard no
    FirmwareStatusNotification and waited for one for ever. Now Downloading, then
    DownloadFailed at once (no retry mends a location), as for any download that fails."""
    for loc in ("sftp://127.0.0.1/fw.bin", "ftp://127.0.0.1/firmware/", "file:///fw.bin"):
        n = len(csms.frames)
        await _update(csms, loc, retries=3, retry_interval=60)
        assert await _final(csms, n, timeout=10) == "DownloadFailed", loc
        got = [f.payload["status"] for f in csms.frames[n:]
               if f.direction == "in" and f.is_call and f.action == "FirmwareStatusNotification"]
        assert got == ["Downloading", "DownloadFailed"], (loc, got)
    cp = csms.charge_points[CP_ID]
    n = len(csms.frames)
    await cp.call(call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    f = await csms.wait_call("FirmwareStatusNotification", after=n)
    assert f.payload == {"status": "Idle"}  # the failed job is over


async def test_a_firmware_status_the_csms_refuses_is_not_sent_again_and_again(
        csms: Csms, charger: tuple[Simulator, Control]) -> None:
    """A FirmwareStatusNotification answered with a CALLERROR (a CSMS without Firmware
    Management, as after a local upload, or one that failed) was sent again every 2 s for ever,
    and the statuses behind it never went out. It is an answer: the status is dropped, as the
    transaction queue drops a refused message that is not a transaction's, and the next one
    goes out."""

    def fail(payload: object) -> object:
        raise NotImplementedError("no Firmware Management here")

    csms.respond("FirmwareStatusNotification", fail)
    await _update(csms, "http://127.0.0.1:1/fw.bin", retries=1)
    assert await _final(csms, timeout=10) == "DownloadFailed"
    await asyncio.sleep(5)
    assert _statuses(csms) == ["Downloading", "DownloadFailed"]
    csms.respond("FirmwareStatusNotification", None)
    n = len(csms.frames)
    cp = csms.charge_points[CP_ID]
    await cp.call(call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    f = await csms.wait_call("FirmwareStatusNotification", after=n)
    assert f.payload == {"status": "Idle"}
    await asyncio.sleep(3)
    assert _statuses(csms) == ["Downloading", "DownloadFailed", "Idle"]


async def test_ftp_download_resumes_with_rest_and_a_refused_login_fails_at_once(
        csms: Csms, charger: tuple[Simulator, Control], signing_key: rsa.RSAPrivateKey,
        slot_files: list[tuple[str, bytes]], tmp_path: Path) -> None:
    sim, _ctl = charger
    assert sim.agent is not None
    with ftp_server(tmp_path / "ftp", cut=60000) as ftp:
        (ftp.root / "fw.bin").write_bytes(
            release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
        size = (ftp.root / "fw.bin").stat().st_size
        # A wrong password (530) is final, as an HTTP 4xx is: no retry, DownloadFailed at once.
        await _update(csms, ftp.url("/fw.bin", password="wrong-one"), retries=3,
                      retry_interval=1)
        assert await _final(csms, timeout=30) == "DownloadFailed"
        assert _statuses(csms) == ["Downloading", "DownloadFailed"]
        assert [ok for _, ok in ftp.logins] == [False]
        await sim.agent.wait_line(r"firmware update failed \(DownloadFailed\): FTP: login "
                                  r"refused: 530")
        # No such file (550) is final too.
        n = len(csms.frames)
        await _update(csms, ftp.url("/nothing.bin"), retries=3, retry_interval=1)
        assert await _final(csms, n, timeout=30) == "DownloadFailed"
        await sim.agent.wait_line(r"DownloadFailed\): FTP: RETR answered 550")
        # The data connection drops after every 60 kB: each retry asks REST where the last ended.
        n = len(csms.frames)
        await _update(csms, ftp.url("/fw.bin"), retries=10, retry_interval=1)
        assert await _final(csms, n, timeout=90) == "Installed"
        assert len(ftp.rests) >= 2 and ftp.rests == list(range(60000, size, 60000)), (
            ftp.rests, size)
    assert _versions(csms)[-1] == NEW
    assert "wrong-one" not in "\n".join(sim.agent.all_lines)
    assert FTP_PASSWORD not in "\n".join(sim.agent.all_lines)


async def test_a_download_by_host_name_asks_the_network_resolver_without_holding_the_loop(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]]) -> None:
    # The server's name goes to the network's resolver (net/dns.py on a UDP socket), never to
    # open_connection's getaddrinfo, which on the ESP32 holds the whole loop while the resolver
    # takes its time; a name that does not exist is a download failure like any other.
    sim, _ctl = charger
    assert sim.agent is not None
    cp = csms.charge_points[CP_ID]
    (www.root / "fw.bin").write_bytes(
        release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
    await _update(csms, www.url("fw.bin", host="nowhere.borne.test"), retries=1)
    assert await _final(csms, timeout=30) == "DownloadFailed"
    await sim.agent.wait_line(r"firmware update failed \(DownloadFailed\): cannot resolve "
                              r"nowhere.borne.test: name does not exist")
    assert "nowhere.borne.test" in sim.dns.queries
    assert not www.requests("GET")
    # A slow resolver: the lookup waits, the charger goes on answering the CSMS meanwhile.
    sim.dns.names["fw.borne.test"] = "127.0.0.1"
    sim.dns.hold()
    n = len(csms.frames)
    await _update(csms, www.url("fw.bin", host="fw.borne.test"), retries=2, retry_interval=1)
    await answers_while_resolving(cp, sim, "fw.borne.test")
    assert not www.requests("GET"), "the download cannot start before its name is resolved"
    sim.dns.release()
    assert await _final(csms, n, timeout=60) == "Installed"
    gets = www.requests("GET")
    assert gets and gets[0].headers.get("host") == f"fw.borne.test:{www.ports['http']}", gets
    assert _versions(csms)[-1] == NEW


async def test_ota_bench_runs_inside_micropython() -> None:
    from borne.bench_ota import ota_figures

    f = await ota_figures()
    assert f["files"] > 10 and f["install_erases"] > 0 and f["rsa_us"] > 0, f


# ---- the interpreter itself: an image into the next OTA partition (the ESP32 board) ----------


def _image_bundle(key: rsa.RSAPrivateKey) -> bytes:
    import random

    image = b"\xe9" + random.Random(7).randbytes(200_000)  # an ESP32 app image's magic byte
    return release.pack([("firmware.bin", image)], key, version="1.0.0", board="esp32_wallbox",
                        extra={"kind": "image"})


@pytest.fixture
async def esp32(csms: Csms, flash: Path, signing_key: rsa.RSAPrivateKey
                ) -> AsyncIterator[Simulator]:
    _provision(flash, signing_key)
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url,
                                 fitted=Fitted(board="esp32_wallbox"))) as sim:
        await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)
        yield sim


async def test_an_interpreter_image_boots_once_on_trial_and_is_marked_valid(
        csms: Csms, esp32: Simulator, www: FileServer, signing_key: rsa.RSAPrivateKey,
        flash: Path) -> None:
    from borne.sim import esp32state

    (www.root / "image.bin").write_bytes(_image_bundle(signing_key))
    await _update(csms, www.url("image.bin"))
    assert await _final(csms, timeout=60) == "Installed"
    assert _statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
    od = esp32state.otadata(flash)
    assert (od["boot"], od["state"]) == ("ota_1", "valid"), od
    assert len(csms.calls("BootNotification")) == 2


async def test_an_image_that_does_not_prove_itself_is_rolled_back_by_the_bootloader(
        csms: Csms, esp32: Simulator, www: FileServer, signing_key: rsa.RSAPrivateKey,
        flash: Path) -> None:
    from borne.sim import esp32state

    assert esp32.agent is not None
    (www.root / "image.bin").write_bytes(_image_bundle(signing_key))
    await _update(csms, www.url("image.bin"))
    # The image's first boot dies before it proved itself (a crash, a hang and the watchdog,
    # a power cut: the bootloader sees the same thing).
    await esp32.agent.wait_line(r"running image ota_1 on trial", timeout=60)
    await esp32.agent.power_cut()
    await esp32.agent.power_on()
    assert await _final(csms, timeout=60) == "InstallationFailed"
    await esp32.agent.wait_line(r"rolled back: image ota_1 not proven, the bootloader went back "
                                r"to ota_0")
    od = esp32state.otadata(flash)
    assert (od["boot"], od["state"]) == ("ota_0", "aborted"), od


async def test_credentials_in_an_http_location_go_as_basic_and_never_into_the_logs(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]]) -> None:
    """http://user:password@host/...?token=...: the credentials go to the server as HTTP
    Basic (as for diagnostics uploads) and neither they nor the query reach the event log or
    the agent log, which a GetDiagnostics uploads. (A bundle for another board: refused after
    its download, no reboot needed.)"""
    sim, _ctl = charger
    (www.root / "fw.bin").write_bytes(
        release.pack(slot_files, signing_key, version=NEW, board="esp32"))
    url = www.url("fw.bin").replace("://", "://u:s3cret@") + "?token=t0ken5ecret"
    await _update(csms, url, retries=1)
    assert await _final(csms) == "InstallationFailed"
    assert _statuses(csms) == ["Downloading", "Downloaded", "InstallationFailed"]
    get = www.requests("GET")
    assert [r.path for r in get] == ["/fw.bin?token=t0ken5ecret"]
    assert get[0].headers["authorization"] == "Basic " + base64.b64encode(b"u:s3cret").decode()
    res = await csms.charge_points[CP_ID].call(call.GetDiagnostics(location=www.url("upload/")))
    await csms.wait_call("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded",
                         timeout=30)
    text = (www.root / "uploads" / res.file_name).read_text()
    assert "fw_update" in text and "***@127.0.0.1" in text
    assert sim.agent is not None
    for secret in ("s3cret", "t0ken5ecret"):
        assert secret not in text
        assert not [ln for ln in sim.agent.all_lines if secret in ln]


async def test_a_job_saved_uncapped_by_an_older_build_waits_the_capped_retry_interval(
        csms: Csms, flash: Path, signing_key: rsa.RSAPrivateKey) -> None:
    """A download job an older build saved with the CSMS's retryInterval as it came (here
    2**31-1 s, an int32 a CSMS may send) resumes at the boot with the cap a request gets now
    (a day): the retry waited 68 years, the job Downloading for good (on the ESP32, past ~6.2
    days, asyncio.sleep overflows)."""
    _provision(flash, signing_key)
    seed(flash, "ota", {"phase": "download", "status": "Downloading", "sent": True,
                        "loc": "http://127.0.0.1:9/fw.bin", "at": 0, "retries": 3,
                        "interval": 2**31 - 1, "tries": 1, "version": "", "slot": "",
                        "why": "", "down": False, "local": False})
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url)) as sim:
        assert sim.agent is not None
        await sim.agent.wait_line(r"download try 2 of 3 failed: .* again in 86400 s", timeout=60)
        await asyncio.sleep(3)
    assert "InstallationFailed" not in _statuses(csms)


async def test_a_resumed_download_of_a_file_changed_on_the_server_starts_over(
        csms: Csms, charger: tuple[Simulator, Control], www: FileServer,
        signing_key: rsa.RSAPrivateKey, slot_files: list[tuple[str, bytes]], flash: Path
) -> None:
    """The bundle is replaced on the server between two tries: the resume asks for the rest
    only of the version it has part of (If-Range with its ETag, RFC 9110 13.1.5), the server
    sends the new one whole, and the update installs it. Without If-Range the rest of the new
    file was appended to the start of the old one, and the spliced bundle, downloaded in full,
    failed its signature (InstallationFailed)."""
    sim, _ = charger
    assert sim.agent is not None
    (www.root / "fw.bin").write_bytes(
        release.pack(slot_files, signing_key, version=NEW, board="unix_sim"))
    await _update(csms, www.url("cut/100000/fw.bin"), retries=10, retry_interval=3)
    await sim.agent.wait_line(r"download try 1 of 10 failed", timeout=30)
    (www.root / "fw.bin").write_bytes(release.pack(
        _with(slot_files, "second.txt", b"the second bundle"), signing_key, version=NEW,
        board="unix_sim"))
    assert await _final(csms, timeout=120) == "Installed"
    gets = [r.headers for r in www.requests("GET") if r.path.startswith("/cut/")]
    assert "range" not in gets[0] and gets[1].get("range") == "bytes=100000-", gets
    assert gets[1].get("if-range", "").startswith('"'), gets  # the first version's ETag
    assert (flash / "app_a" / "second.txt").read_bytes() == b"the second bundle"
