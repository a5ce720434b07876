"""The owner's broker given at the claim (optional fields of POST /api/claim): checked like the
other fields, stored with them, and the charger publishes there once claimed, with the broker
password kept out of the log."""

from __future__ import annotations

from pathlib import Path

import pytest
from borne.claim import ClaimError, ProvisioningClient
from borne.csms import Csms
from borne.sim.simulator import Simulator
from mqttpeer import PASSWORD, USER, Broker, Subscriber
from simctl import controlling, running
from test_claim import PASSWORD as CONN_PASSWORD
from test_claim import call, claim_and_wait, claim_options, fields, hotspot_up


async def test_a_claim_with_a_broker_publishes_there(
    csms: Csms, flash: Path, tmp_path: Path
) -> None:
    broker = Broker(tmp_path / "broker")
    broker.start()
    sub = Subscriber(broker, ["borne/GARAGE-8/#"])
    try:
        sim = Simulator(flash, cp_id="CP-CLAIM-2", claim=claim_options())
        async with running(sim), controlling(sim) as ctl:
            await hotspot_up(ctl)
            c = ProvisioningClient(sim.hotspot_url)
            await call(c.login, CONN_PASSWORD)
            for bad, field in (({"mqtt_url": "http://x"}, "mqtt_url"),
                               ({"mqtt_url": "mqtt://bad host"}, "mqtt_url"),
                               ({"mqtt_user": "someone"}, "mqtt_user"),
                               ({"mqtt_url": "mqtts://broker.lan"}, "mqtt_ca_pem"),
                               ({"mqtt_url": broker.url, "mqtt_password": "x" * 8},
                                "mqtt_password")):
                with pytest.raises(ClaimError) as e:
                    await call(c.claim, fields(csms.url, **bad))
                assert e.value.status == 422 and e.value.data["field"] == field, bad
            st = await claim_and_wait(c, fields(csms.url, cp_id="GARAGE-8", mqtt_url=broker.url,
                                                mqtt_user=USER, mqtt_password=PASSWORD))
            assert st["state"] == "done"
            await sub.value("borne/GARAGE-8/availability", "online", timeout=30)
            await sub.value("borne/GARAGE-8/ocpp", "online", timeout=30)
            assert sim.agent is not None
            assert not any(PASSWORD in ln for ln in sim.agent.all_lines)
    finally:
        sub.close()
        broker.stop()
