"""Home Assistant discovery: every discovery message the charger publishes, as a late
subscriber (HA after a restart) receives it, checked against HA's discovery schema
(tests/hadiscovery.py says where each rule comes from), and the one device they describe."""

from __future__ import annotations

import json
from pathlib import Path

import hadiscovery
import pytest
from borne.csms import Csms
from borne.sim.mqttopts import MqttOptions
from borne.sim.simulator import Simulator
from mqttpeer import PASSWORD, USER, Broker, Subscriber
from simctl import running

CP_ID = "CP-TEST-1"
BASE = f"borne/{CP_ID}"


def test_the_schema_catches_what_ha_refuses() -> None:
    ok = {"~": BASE, "name": "Energy", "uniq_id": "x_energy", "stat_t": "~/energy",
          "dev_cla": "energy", "stat_cla": "total_increasing", "unit_of_meas": "kWh",
          "dev": {"ids": ["x"], "name": "x"}}
    assert hadiscovery.check("sensor", ok)["state_topic"] == f"{BASE}/energy"
    for bad in ({"unit_of_meas": "A"}, {"stat_cla": "measurement"}, {"dev_cla": "enum"},
                {"stat_t": "~/#"}, {"bogus": 1}, {"dev": {"name": "no ids"}},
                {"ent_cat": "config"}, {"uniq_id": None}):
        with pytest.raises(ValueError):
            hadiscovery.check("sensor", {**ok, **bad})


async def test_every_discovery_message_fits_home_assistants_schema(
    csms: Csms, flash: Path, broker: Broker
) -> None:
    opts = MqttOptions(broker.url, USER, PASSWORD, controls=True)
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url, mqtt=opts)
    async with running(sim):
        first = Subscriber(broker, ["homeassistant/#", f"{BASE}/voltage_l3"], client_id="first")
        try:
            await first.wait(lambda m: m.topic.endswith("/free/config"), "the last config")
            await first.wait(lambda m: m.topic == f"{BASE}/voltage_l3", "the meter's values")
        finally:
            first.close()
        late = Subscriber(broker, ["homeassistant/#", f"{BASE}/#"], client_id="ha")
        try:
            await late.wait(lambda m: m.topic.endswith("/free/config"), "the last config")
            await late.wait(lambda m: m.topic == f"{BASE}/voltage_l3", "the meter's values")
            configs = [m for m in late.msgs if m.topic.startswith("homeassistant/")]
            state_topics = {m.topic for m in late.msgs if m.topic.startswith(BASE)}
        finally:
            late.close()
    seen: dict[str, dict[str, object]] = {}
    devices = set()
    for m in configs:
        assert m.retain, f"{m.topic}: discovery messages are retained"
        parts = m.topic.split("/")
        assert len(parts) == 5 and parts[0] == "homeassistant" and parts[4] == "config", m.topic
        component, node, obj = parts[1], parts[2], parts[3]
        for ident in (node, obj):
            assert ident and all(c.isalnum() or c in "_-" for c in ident), m.topic
        try:
            cfg = hadiscovery.check(component, json.loads(m.payload))
        except ValueError as e:
            raise AssertionError(f"{m.topic}: {e}\n{m.text}") from None
        assert cfg["unique_id"] not in {c["unique_id"] for c in seen.values()}
        seen[f"{component}/{obj}"] = cfg
        devices.add(json.dumps(cfg["device"], sort_keys=True))
        assert cfg["availability_topic"] == f"{BASE}/availability"
        st = cfg.get("state_topic")
        assert st in state_topics, f"{m.topic}: its state topic {st} has a retained value"
    assert len(devices) == 1, "one device"
    want = {"sensor/status", "sensor/energy", "sensor/power", "sensor/current_l1",
            "sensor/voltage_l1", "sensor/session_energy", "binary_sensor/plugged",
            "binary_sensor/charging", "binary_sensor/ocpp", "switch/paused", "number/limit",
            "switch/free"}
    assert want <= set(seen), f"missing: {want - set(seen)}"
    energy = seen["sensor/energy"]
    assert (energy["device_class"], energy["state_class"], energy["unit_of_measurement"]) == (
        "energy", "total_increasing", "kWh")
    assert seen["number/limit"]["min"] == 6 and seen["number/limit"]["max"] == 32
    assert "Charging" in seen["sensor/status"]["options"]  # type: ignore[operator]


async def test_a_changed_charge_point_id_leaves_no_ghost_device(
    csms: Csms, flash: Path, broker: Broker
) -> None:
    # The charger gets another charge point id (provisioning, or a claim under another id) and
    # keeps its broker: the old id's retained discovery configs are emptied (HA's way to remove
    # an entity), so Home Assistant shows one charger, not a second one that never updates.
    opts = MqttOptions(broker.url, USER, PASSWORD, controls=True)
    async with running(Simulator(flash, cp_id=CP_ID, csms_url=csms.url, mqtt=opts)):
        sub = Subscriber(broker, ["homeassistant/#"], client_id="first")
        try:
            await sub.wait(lambda m: m.topic.endswith("/free/config"), "the last config")
        finally:
            sub.close()
    async with running(Simulator(flash, cp_id="CP-TEST-2", csms_url=csms.url, mqtt=opts)):
        sub = Subscriber(broker, ["homeassistant/#"], client_id="second")
        try:
            await sub.wait(lambda m: m.topic.endswith("/borne_CP-TEST-2/free/config"),
                           "the new id's last config")
            await sub.wait(lambda m: "/borne_CP-TEST-1/" in m.topic and not m.payload
                           and m.topic.endswith("/free/config"), "the old id's configs emptied")
        finally:
            sub.close()
        late = Subscriber(broker, ["homeassistant/#"], client_id="ha")
        try:
            await late.wait(lambda m: m.topic.endswith("/borne_CP-TEST-2/free/config"),
                            "the new id's configs")
            nodes = {m.topic.split("/")[2] for m in late.msgs if m.payload}
        finally:
            late.close()
    assert nodes == {"borne_CP-TEST-2"}, nodes
