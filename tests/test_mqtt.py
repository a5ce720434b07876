"""MQTT end to end: the simulated charger publishes to a real mosquitto (password and TLS
listeners) and a paho-mqtt subscriber checks topics, payloads, retained flags and QoS; the
owner's commands go the other way. Charging and OCPP go on whatever the broker does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from borne.csms import Csms
from borne.sim.mqttopts import MqttOptions
from borne.sim.simulator import Simulator
from mqttpeer import PASSWORD, USER, Broker, Subscriber
from ocpp.v16 import call
from simctl import Control, controlling, running

CP_ID = "CP-TEST-1"
BASE = f"borne/{CP_ID}"


@pytest.fixture
def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def sub(broker: Broker) -> AsyncIterator[Subscriber]:
    s = Subscriber(broker, [f"{BASE}/#", "homeassistant/#"])
    yield s
    s.close()


def _sim(csms: Csms, flash: Path, opts: MqttOptions) -> Simulator:
    return Simulator(flash, cp_id=CP_ID, csms_url=csms.url, mqtt=opts)


async def _charging(csms: Csms, control: Control, tag: str = "04A1B2C3D4") -> int:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    res = await cp.call(call.RemoteStartTransaction(id_tag=tag, connector_id=1))
    assert res.status == "Accepted"
    await control("plug")
    await control("load", amps=16)
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"], "the relay to close")
    return int((await csms.answer_to(start))["transactionId"])


async def test_state_sessions_and_availability_are_published(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    opts = MqttOptions(broker.url, USER, PASSWORD)
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        online = await sub.value(f"{BASE}/availability", "online")
        assert online.qos == 1
        await sub.value(f"{BASE}/status", "Available")
        await sub.value(f"{BASE}/ocpp", "online")
        await sub.wait(lambda m: m.topic == f"{BASE}/energy", "the energy register")
        # A subscriber that comes later (Home Assistant after a restart) gets the retained ones.
        late = Subscriber(broker, [f"{BASE}/#"], client_id="late")
        try:
            for topic, want in (("availability", "online"), ("status", "Available"),
                                ("ocpp", "online"), ("relay", "OFF"), ("plugged", "OFF"),
                                ("pilot", "A"), ("fault", "OFF"), ("faults", "[]")):
                m = await late.value(f"{BASE}/{topic}", want, timeout=5)
                assert m.retain, topic
            fw = await late.wait(lambda m: m.topic == f"{BASE}/firmware", "firmware", 5)
            energy = await late.wait(lambda m: m.topic == f"{BASE}/energy", "energy", 5)
            assert fw.retain and fw.text and energy.retain and float(energy.text) >= 0
        finally:
            late.close()
        tx = await _charging(csms, control)
        await sub.value(f"{BASE}/status", "Charging")
        await sub.value(f"{BASE}/relay", "ON")
        await sub.value(f"{BASE}/plugged", "ON")
        await sub.value(f"{BASE}/pilot", "C")
        running_ = await sub.wait(
            lambda m: m.topic == f"{BASE}/session" and json.loads(m.payload)["active"],
            "the running session")
        sess = json.loads(running_.payload)
        assert sess["tag"] == "04******D4", "the id tag is masked"
        await sub.wait(lambda m: m.topic == f"{BASE}/power" and float(m.text) > 1000,
                       "power while charging", timeout=15)
        await sub.wait(lambda m: m.topic == f"{BASE}/current_l1" and 10 < float(m.text) < 20,
                       "the EV's 16 A on L1")
        volt = await sub.wait(lambda m: m.topic == f"{BASE}/voltage_l3", "voltage L3")
        assert 200 < float(volt.text) < 260
        off = await sub.wait(lambda m: m.topic == f"{BASE}/offer", "the offer")
        assert float(off.text) >= 6
        cp = csms.charge_points[CP_ID]
        await cp.call(call.RemoteStopTransaction(transaction_id=tx))
        done = await sub.wait(lambda m: m.topic == f"{BASE}/sessions", "the finished session")
        assert done.qos == 1 and not done.retain
        rec = json.loads(done.payload)
        assert rec["tag"] == "04******D4" and rec["reason"] == "Remote"
        assert rec["transaction_id"] == tx and rec["duration_s"] >= 0
        assert rec["energy_kwh"] >= 0
        await sub.value(f"{BASE}/relay", "OFF")
        await sub.value(f"{BASE}/charging", "OFF")
        # nothing secret on the broker or in the log
        assert not any(PASSWORD.encode() in m.payload for m in sub.msgs)
        assert not any(PASSWORD in line for line in sim.agent.all_lines)
        assert not any("04A1B2C3D4".encode() in m.payload for m in sub.msgs
                       if m.topic.startswith(BASE))
        # the last will: the charger gone without a word -> "offline", retained
        n = len(sub.msgs)
        await sim.agent.power_cut()
        await sub.value(f"{BASE}/availability", "offline", timeout=120, after=n)
        late = Subscriber(broker, [f"{BASE}/availability"], client_id="late2")
        try:
            gone = await late.value(f"{BASE}/availability", "offline", timeout=5)
            assert gone.retain
        finally:
            late.close()
