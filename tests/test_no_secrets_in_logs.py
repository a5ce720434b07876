"""Nothing secret in the charger's logs or uploads: with every secret the tests can set in play
(the OCPP AuthorizationKey, a new one from the CSMS, the per-device hotspot key and connection
password, a client private key, an FTP upload password), the agent log on flash, the event log,
the security log and the uploaded diagnostics file contain none of them."""

from __future__ import annotations

import json
from pathlib import Path

from borne.csms import Csms
from borne.sim.agent import Security
from borne.sim.simulator import Simulator
from ocpp.v16 import call
from simctl import controlling, running
from uploads import FTP_PASSWORD, ftp_server

CP_ID = "CP-TEST-1"
KEY = "Secret-Auth-Key-0123456789"
NEW_KEY = "Another-Secret-Key-98765"


def _flash_logs(flash: Path) -> dict[str, str]:
    data = flash / "data"
    out = {p.name: p.read_text(errors="replace") for p in (data / "agentlog").glob("*.log")}
    for name in ("events.log", "seclog.log"):
        out[name] = (data / name).read_text(errors="replace")
    return out


async def test_no_secret_reaches_a_log_or_an_upload(flash: Path, tmp_path: Path) -> None:
    csms = Csms(basic_auth={CP_ID: KEY})
    await csms.start()
    try:
        sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url, security=Security(1, KEY))
        async with running(sim), controlling(sim) as control:
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            cp = csms.charge_points[CP_ID]
            await control("plug")
            await control.wait_state(lambda s: s["ocpp"]["status"] == "Preparing", "Preparing")
            await control("unplug")
            csms.basic_auth = {CP_ID: NEW_KEY}
            assert (await cp.call(call.ChangeConfiguration(key="AuthorizationKey",
                                                           value=NEW_KEY))).status == "Accepted"
            # The charger reconnects with the new key at once (test_security.py)
            await csms.wait_for(lambda: csms.connects == 2, 20, "the reconnection")
            cp = csms.charge_points[CP_ID]
            with ftp_server(tmp_path / "ftp") as ftp:
                res = await cp.call(call.GetDiagnostics(location=ftp.url()))
                await csms.wait_for(lambda: any(
                    f.payload["status"] == "Uploaded"
                    for f in csms.calls("DiagnosticsStatusNotification")), 30, "Uploaded")
                upload = (ftp.root / res.file_name).read_text()
            # A wrong password is logged as such, never shown.
            await cp.call(call.GetDiagnostics(location=ftp.url(password="Wrong-" + FTP_PASSWORD),
                                              retries=1))
            await csms.wait_for(lambda: any(
                f.payload["status"] == "UploadFailed"
                for f in csms.calls("DiagnosticsStatusNotification")), 30, "UploadFailed")
            assert sim.agent is not None
            console = "\n".join(sim.agent.all_lines)
        factory = json.loads((flash / "factory.json").read_text())
        secrets = {"AuthorizationKey": KEY, "the new AuthorizationKey": NEW_KEY,
                   "the FTP password": FTP_PASSWORD,
                   "the hotspot key": factory["hotspot_key"],
                   "the connection password": factory["conn_password"]}
        texts = {**_flash_logs(flash), "the uploaded diagnostics": upload, "the console": console}
        assert any(k[0].isdigit() for k in texts), "no agent log file on flash"
        assert "== agent log" in upload and "AuthorizationKey" not in upload.split(
            "== OCPP configuration")[1].split("==")[0]
        for where, text in texts.items():
            assert text, f"{where} is empty"
            for what, secret in secrets.items():
                assert secret not in text, f"{what} is in {where}"
    finally:
        await csms.stop()
