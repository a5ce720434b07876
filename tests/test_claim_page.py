"""The claim page served by the charger, driven end to end in headless Chromium (issue 6).

The agent starts unclaimed under the unix port with its hotspot's HTTP server on a loopback port
and a simulated radio; a phone-sized Chromium tab (tests/browser.py, over the DevTools protocol)
opens the page at the hotspot's address and an owner's mistakes and corrections are played
through it. The outcome is then checked from outside the browser: the CSMS got the charger's
BootNotification, the hotspot closed, and the page never asked anything of any other host.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import browser
import pytest
from borne.csms import Csms
from borne.sim.simulator import ClaimOptions, Simulator

CP_ID = "CP-PAGE-1"
PASSWORD = "wxyz-2345-6789"
HOME = {"ssid": "Home Net", "password": "correct horse 42", "rssi": -50}
NEIGHBOUR = {"ssid": "Neighbour", "password": "whatever-123", "rssi": -80}
# What GET /api/claim reports for a refused Wi-Fi password (firmware/hotspot/failtext.py MESSAGES):
# the page must show it as it is.
WIFI_REFUSED = "the home Wi-Fi refused the password"
CLAIM_PY = Path(__file__).parent.parent / "firmware" / "hotspot" / "failtext.py"

MSG = "document.getElementById('msg')"


@pytest.fixture
async def csim(flash: Path) -> AsyncIterator[Simulator]:
    s = Simulator(flash, cp_id=CP_ID, claim=ClaimOptions(
        networks=[HOME, NEIGHBOUR], hotspot_key="abcd-efgh-ijkm-npqr", conn_password=PASSWORD,
        close_grace_ms=1500))
    await s.start()
    yield s
    await s.stop()
    print("---- agent log ----")
    print("\n".join(s.agent.all_lines if s.agent else []))


async def wait_hotspot(sim: Simulator, open_: bool, timeout: float = 20) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        st = sim.state()
        if (st.get("hotspot") or {}).get("open") is open_:
            return st
        if loop.time() > deadline:
            raise AssertionError(f"the hotspot not {'open' if open_ else 'closed'} after "
                                 f"{timeout} s: {st.get('hotspot')}")
        await asyncio.sleep(0.05)


async def shown(page: browser.Page, what: str, bad: bool, timeout: float = 30) -> str:
    """Wait until the status line shows a result (an error when `bad`); its text."""
    cond = (f"{MSG}.className === 'bad' && {MSG}.textContent" if bad else
            f"{MSG}.className === 'ok' && {MSG}.textContent")
    text: str = await page.wait_for(cond, what, timeout)
    return text


async def test_owner_claims_the_charger_from_a_phone(
    csms: Csms, csim: Simulator, tmp_path: Path
) -> None:
    assert f'"wifi_wrong_password": "{WIFI_REFUSED}"' in CLAIM_PY.read_text()
    await wait_hotspot(csim, True)
    origin = urlsplit(csim.hotspot_url).netloc
    async with browser.launch() as b:
        page = await b.new_page()  # a phone: 390 x 844 CSS pixels, touch, mobile
        try:
            await page.goto(csim.hotspot_url + "/")
            await page.wait_for(f"document.getElementById('who').textContent.includes('{CP_ID}')",
                                "the charger's identity on the page")
            assert not await page.visible("#claim"), "the claim form shows before the login"

            # The connection password, mistyped first.
            await page.type("#password", "wxyz-0000-0000")
            await page.click("#login-btn")
            assert await shown(page, "the wrong password refused", bad=True) == \
                "wrong connection password"
            assert await page.visible("#login") and not await page.visible("#claim")
            assert await page.eval("document.activeElement.id") == "password"
            await page.screenshot(tmp_path / "1-login-refused.png")
            await page.type("#password", PASSWORD.upper().replace("-", " "))  # as on the label
            await page.click("#login-btn")
            await page.wait_for("document.getElementById('wifi_ssid_pick').options.length > 1",
                                "the Wi-Fi scan list after the login")
            assert not await page.visible("#login")
            options = await page.eval(
                "[...document.getElementById('wifi_ssid_pick').options].map(o => o.textContent)")
            assert options[:2] == ["Home Net", "Neighbour"], options

            # The form, with the wrong Wi-Fi password first.
            await page.type("#name", "Garage")
            await page.select("#wifi_ssid_pick", "Neighbour")
            await page.select("#wifi_ssid_pick", "Home Net")
            assert not await page.visible("#wifi_ssid"), "a network was picked from the list"
            await page.type("#wifi_password", "not the password")
            await page.click("summary")  # open "Cloud (CSMS)"
            await page.select("#security_profile", "0: none")
            assert not await page.visible("#auth_key") and not await page.visible("#ca_pem")
            # An http:// URL: refused before anything is tried, the field pointed at.
            await page.type("#csms_url", "http://" + csms.url.removeprefix("ws://"))
            await page.click("#claim-btn")
            assert await shown(page, "the bad URL refused", bad=True) == \
                "csms_url must start with ws:// or wss://"
            assert await page.eval("document.activeElement.id") == "csms_url"
            await page.type("#csms_url", csms.url)
            await page.screenshot(tmp_path / "2-claim-form.png")
            await page.click("#claim-btn")
            assert await shown(page, "the Wi-Fi failure", bad=True) == WIFI_REFUSED
            assert await page.eval("document.activeElement.id") == "wifi_password"
            await page.screenshot(tmp_path / "3-wifi-refused.png")
            assert not csms.calls(), "the charger talked OCPP before the claim succeeded"

            # Corrected.
            await page.type("#wifi_password", HOME["password"])
            await page.click("#claim-btn")
            done = await shown(page, "success on the page", bad=False)
            assert "Garage" in done and CP_ID in done, done
            await page.screenshot(tmp_path / "4-claim-done.png")
        finally:
            print("---- page requests ----", *page.requests, sep="\n")
            print("---- page errors ----", *page.errors, sep="\n")

    boot = await csms.wait_call("BootNotification", timeout=30)
    assert boot.cp_id == CP_ID
    st = await wait_hotspot(csim, False)
    assert st["hotspot"]["claimed"] is True
    # Everything the page loaded came from the charger, and nothing went wrong in it.
    paths = {urlsplit(u).path for u in page.requests}
    assert paths >= {"/", "/app.js", "/app.css", "/api/identity", "/api/login", "/api/networks",
                     "/api/claim"}, f"requests not all recorded: {page.requests}"
    foreign = [u for u in page.requests if urlsplit(u).netloc != origin or
               urlsplit(u).scheme != "http"]
    assert not foreign, f"the page reached beyond the charger ({origin}): {foreign}"
    assert not page.errors, page.errors
