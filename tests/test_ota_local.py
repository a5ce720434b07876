"""A local firmware update at the charger: the owner, on the charger's hotspot, logs in on the
claim page and uploads a signed bundle in its "Firmware update" section (headless Chromium,
tests/browser.py); the charger checks it as it would a remote one, installs it, restarts into
it and the page says the new version runs. A bad bundle is refused on the page with the reason;
the API refuses an upload without the owner's token."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import browser
import pytest
from borne import release
from borne.claim import ProvisioningClient
from borne.sim.simulator import ClaimOptions, Simulator
from cryptography.hazmat.primitives.asymmetric import rsa
from flashdoc import seed
from test_claim_page import wait_hotspot

CP_ID = "CP-LOCAL-1"
PASSWORD = "wxyz-2345-6789"
NEW = "0.2.0"
FW_MSG = "document.getElementById('fw_msg')"


@pytest.fixture(scope="module")
def key_and_files(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    files, _ = release.slot_files("unix_sim", NEW, tmp_path_factory.mktemp("rel"))
    return release.generate(), files


def _provision(flash: Path, key: rsa.RSAPrivateKey) -> None:
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "ota_keys.json").write_text(json.dumps(release.keyring([key.public_key()])))
    seed(flash, "settings", {"ota_trial_s": 3})  # no CSMS while unclaimed: proof by time


@pytest.fixture
async def csim(flash: Path, key_and_files) -> AsyncIterator[Simulator]:  # type: ignore[no-untyped-def]
    _provision(flash, key_and_files[0])
    s = Simulator(flash, cp_id=CP_ID, claim=ClaimOptions(
        hotspot_key="abcd-efgh-ijkm-npqr", conn_password=PASSWORD))
    await s.start()
    await wait_hotspot(s, True)
    yield s
    await s.stop()
    print("---- agent log ----")
    print("\n".join(s.agent.all_lines if s.agent else []))


async def _open_page(b: browser.Browser, sim: Simulator) -> browser.Page:
    page = await b.new_page()
    await page.goto(sim.hotspot_url + "/")
    await page.wait_for(f"document.getElementById('who').textContent.includes('{CP_ID}')",
                        "the charger's identity on the page", timeout=30)
    await page.type("#password", PASSWORD)
    await page.click("#login-btn")
    await page.wait_for("!document.getElementById('fw').hidden", "the firmware section")
    await page.click("#fw summary")
    return page


async def _choose_file(page: browser.Page, path: Path) -> None:
    doc = await page.send("DOM.getDocument")
    node = await page.send("DOM.querySelector", nodeId=doc["root"]["nodeId"],
                           selector="#fw_file")
    await page.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node["nodeId"])


def _put(url: str, data: bytes, token: str | None) -> int:
    req = urllib.request.Request(url, data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


async def test_owner_installs_a_bundle_from_the_claim_page(
        csim: Simulator, flash: Path, tmp_path: Path, key_and_files) -> None:  # type: ignore[no-untyped-def]
    key, files = key_and_files
    good = tmp_path / f"borne-{NEW}.fw"
    good.write_bytes(release.pack(files, key, version=NEW, board="unix_sim"))
    bad = tmp_path / "other-key.fw"
    bad.write_bytes(release.pack(files[:3] + [f for f in files if f[0] == "app.mpy"],
                                 release.generate(), version=NEW, board="unix_sim"))
    loop = asyncio.get_running_loop()
    # No token, no upload.
    assert await loop.run_in_executor(
        None, _put, csim.hotspot_url + "/api/firmware", good.read_bytes(), None) == 401
    async with browser.launch() as b:
        page = await _open_page(b, csim)
        try:
            await _choose_file(page, bad)
            await page.click("#fw-btn")
            text = await page.wait_for(f"{FW_MSG}.className === 'bad' && {FW_MSG}.textContent",
                                       "the refusal on the page", timeout=30)
            assert "signed by unknown key" in text, text
            await page.screenshot(tmp_path / "1-fw-refused.png")
            await _choose_file(page, good)
            await page.click("#fw-btn")
            text = await page.wait_for(f"{FW_MSG}.className === 'ok' && {FW_MSG}.textContent",
                                       "the new version running, on the page", timeout=90)
            assert text == f"Version {NEW} is running.", text
            await page.screenshot(tmp_path / "2-fw-installed.png")
        finally:
            print("---- page errors ----", *page.errors, sep="\n")
        assert not page.errors, page.errors
    # It proves itself (3 s without a crash, no CSMS while unclaimed) and commits.
    for _ in range(100):
        if (flash / "boot_slot").exists() and not (flash / "boot_trial").exists():
            break
        await asyncio.sleep(0.1)
    assert (flash / "boot_slot").read_text() == "a"
    assert csim.agent is not None
    await csim.agent.wait_line(r"slot a proved itself \(\d+ s without a crash\)")


async def _put_raw(port: int, token: str, length: int, body: bytes) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"PUT /api/firmware HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n".encode() + body)
    await w.drain()
    return r, w


async def test_a_second_upload_while_one_is_received_is_refused(csim: Simulator) -> None:
    # Both would write the same file on flash: the second is refused at once, before its body,
    # and once the first is gone (its client vanished) an upload is taken again.
    assert csim.claim is not None
    port = csim.claim.http_port
    token = await asyncio.to_thread(ProvisioningClient(csim.hotspot_url).login, PASSWORD)
    first_r, first_w = await _put_raw(port, token, 100_000, b"B1" * 1000)  # more to come
    second_r, second_w = await _put_raw(port, token, 10, b"0123456789")
    try:
        reply = await asyncio.wait_for(second_r.read(), 10)
    finally:
        second_w.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 409 "), reply[:200]
    assert json.loads(body)["error"] == "another upload is in progress", body
    first_w.write_eof()  # the first upload ends short of its length: refused, its file dropped
    try:
        reply = await asyncio.wait_for(first_r.read(), 15)
    finally:
        first_w.close()
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    third_r, third_w = await _put_raw(port, token, 10, b"0123456789")  # not a bundle
    try:
        reply = await asyncio.wait_for(third_r.read(), 10)
    finally:
        third_w.close()
    assert b"another upload" not in reply, reply[:200]
