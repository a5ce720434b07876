"""MQTT end to end: the simulated charger publishes to a real mosquitto (password and TLS
listeners) and a paho-mqtt subscriber checks topics, payloads, retained flags and QoS; the
owner's commands go the other way. Charging and OCPP go on whatever the broker does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from borne.csms import Csms
from borne.sim.mqttopts import MqttOptions
from borne.sim.options import Fitted
from borne.sim.simulator import Simulator
from mqttpeer import PASSWORD, USER, Broker, Subscriber
from ocpp.v16 import call
from simctl import controlling, running
from test_sessions import _charging

CP_ID = "CP-TEST-1"
TAG = "04A1B2C3D4"  # published masked
BASE = f"borne/{CP_ID}"


@pytest.fixture
def sub(broker: Broker) -> AsyncIterator[Subscriber]:
    s = Subscriber(broker, [f"{BASE}/#", "homeassistant/#"])
    yield s
    s.close()


def _sim(csms: Csms, flash: Path, opts: MqttOptions) -> Simulator:
    return Simulator(flash, cp_id=CP_ID, csms_url=csms.url, mqtt=opts)


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
        tx = await _charging(csms, control, TAG)
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
        assert not any(b"04A1B2C3D4" in m.payload for m in sub.msgs
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


def _profile(limit: float) -> dict[str, object]:
    return {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}


async def test_owner_controls_go_through_the_connector(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    opts = MqttOptions(broker.url, USER, PASSWORD, controls=True)
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        await sub.value(f"{BASE}/availability", "online")
        await sub.value(f"{BASE}/limit", "32")
        await _charging(csms, control, TAG)

        async def command(payload: str | bytes) -> dict[str, object]:
            n = len(sub.msgs)
            sub.publish(f"{BASE}/set", payload)
            m = await sub.wait(lambda m: m.topic == f"{BASE}/result", "a result", after=n)
            assert not m.retain
            return dict(json.loads(m.payload))

        # pause: the relay opens through the connector (SuspendedEVSE), resume closes it again
        assert await command('{"pause": true, "id": "p1"}') == {"id": "p1", "ok": True}
        st = await control.wait_state(lambda s: not s["relay"], "the relay to open on pause")
        assert st["pwm_duty"] == 100
        await sub.value(f"{BASE}/paused", "ON")
        await csms.wait_call("StatusNotification", lambda p: p["status"] == "SuspendedEVSE")
        assert (await command('{"pause": false}'))["ok"] is True
        await control.wait_state(lambda s: s["relay"], "the relay to close on resume")
        # the owner's limit lowers the offer; the CSMS's smart-charging limit still caps it
        assert (await command('{"current_limit": 10}'))["ok"] is True
        st = await control.wait_state(lambda s: abs(s["pwm_duty"] - 10 / 0.6) < 0.1, "10 A")
        assert st["relay"]
        await sub.value(f"{BASE}/offer", "10.0")
        await sub.value(f"{BASE}/limit", "10")
        cp = csms.charge_points[CP_ID]
        res = await cp.call(call.SetChargingProfile(connector_id=1,
                                                    cs_charging_profiles=_profile(8)))
        assert res.status == "Accepted"
        await control.wait_state(lambda s: abs(s["pwm_duty"] - 8 / 0.6) < 0.1, "8 A from the CSMS")
        assert (await command('{"current_limit": 16}'))["ok"] is True
        await sub.value(f"{BASE}/limit", "16")
        st = await control("state")
        assert abs(st["pwm_duty"] - 8 / 0.6) < 0.1, "the smart-charging limit still caps"
        # bad commands: an answer saying why, and nothing changes
        for payload, why in (
            ('{"current_limit": 40}', "from 6 to 32 A"),
            ('{"current_limit": 5.5}', "from 6 to 32 A"),
            ('{"current_limit": "16"}', "must be a number"),
            ('{"pause": true, "boost": 1}', "unknown field boost"),
            ('{"pause": "yes"}', "true or false"),
            ("{not json", "not valid JSON"),
            (b"\xff\xfe\x00", "not valid JSON"),
            ("[1, 2]", "JSON object"),
            ("{}", "nothing to do"),
            ('{"id": 5, "pause": true}', "id must be a string"),
        ):
            await asyncio.sleep(0.3)  # pace: the charger takes 4 commands a second after 10
            ans = await command(payload)
            assert ans["ok"] is False and why in str(ans["error"]), (payload, ans)
        st = await control("state")
        assert st["relay"] and abs(st["pwm_duty"] - 8 / 0.6) < 0.1
        assert any("command refused: unknown field boost" in ln for ln in sim.agent.all_lines)
        # free charging: on, and an EV plugged in after the session starts by itself
        assert (await command('{"free_charging": true}'))["ok"] is True
        await sub.value(f"{BASE}/free", "ON")
        events = (flash / "data").glob("events*")
        assert any(b"mqtt_command" in p.read_bytes() for p in events), "commands in the event log"


async def test_command_flood_is_cut_and_the_charger_answers(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    opts = MqttOptions(broker.url, USER, PASSWORD, controls=True)
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        await sub.value(f"{BASE}/availability", "online")
        await _charging(csms, control, TAG)
        for i in range(300):
            sub.c.publish(f"{BASE}/set", '{"pause": %s}' % ("true" if i % 2 else "false"))
        sub.c.publish(f"{BASE}/set", "x" * 2000)  # longer than any command: dropped whole
        await sim.agent.wait_line("command flood")
        results = [m for m in sub.msgs if m.topic == f"{BASE}/result"]
        assert len(results) < 60, "a flood is cut, not answered command by command"
        # still answering, and the last word is the owner's: resume
        await asyncio.sleep(1.5)
        sub.publish(f"{BASE}/set", '{"pause": false, "id": "last"}')
        await sub.wait(lambda m: m.topic == f"{BASE}/result" and b'"last"' in m.payload,
                       "the answer after the flood")
        await control.wait_state(lambda s: s["relay"], "charging after the flood")
        assert sim.agent.boots == 1 and not sim.agent.exit_codes


async def test_controls_are_off_unless_the_installation_enables_them(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    opts = MqttOptions(broker.url, USER, PASSWORD, controls=False)
    async with running(_sim(csms, flash, opts)):
        await sub.value(f"{BASE}/availability", "online")
        n = len(sub.msgs)
        sub.publish(f"{BASE}/set", '{"pause": true}')
        ans = await sub.wait(lambda m: m.topic == f"{BASE}/result", "a result", after=n)
        assert json.loads(ans.payload) == {
            "ok": False, "error": "controls are off (installation setting mqtt_controls)"}
        await sub.value(f"{BASE}/paused", "OFF")
        await sub.wait(lambda m: m.topic.endswith("/free/config"), "the last discovery message")
        configs = [m.topic for m in sub.msgs if m.topic.startswith("homeassistant/") and m.payload]
        assert configs and not any("/switch/" in t or "/number/" in t for t in configs)
        removed = {m.topic for m in sub.msgs if m.topic.startswith("homeassistant/")
                   and not m.payload}
        assert len(removed) == 3, "an empty retained message removes each control from HA"


async def test_a_retained_command_is_not_replayed_at_a_reconnect(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    # The broker hands a retained message to every new subscription (MQTT 3.1.1, 3.3.1.3): a
    # pause published retained would come back at each reconnect and undo the owner's resume.
    opts = MqttOptions(broker.url, USER, PASSWORD, controls=True)
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        await sub.value(f"{BASE}/availability", "online")
        await _charging(csms, control, TAG)
        sub.c.publish(f"{BASE}/set", '{"pause": true}', retain=True).wait_for_publish(5)
        await sub.value(f"{BASE}/paused", "ON")  # live: the owner's word now, taken
        n = len(sub.msgs)
        sub.publish(f"{BASE}/set", '{"pause": false}')
        await sub.value(f"{BASE}/paused", "OFF", after=n)
        await control.wait_state(lambda s: s["relay"], "charging again on resume")
        n = len(sub.msgs)
        cp = csms.charge_points[CP_ID]
        res = await cp.call(call.ChangeConfiguration(key="BorneMqttUser", value=USER))
        assert res.status == "Accepted"  # the settings changed: the charger reconnects
        await sub.value(f"{BASE}/availability", "online", after=n, timeout=30)
        await sim.agent.wait_line("W mqtt: a retained command dropped")
        n = len(sub.msgs)
        sub.publish(f"{BASE}/set", '{"current_limit": 16, "id": "after"}')
        await sub.wait(lambda m: m.topic == f"{BASE}/result" and b'"after"' in m.payload,
                       "the answer to a live command after the reconnect", after=n)
        st = await control("state")
        assert st["relay"], "a retained pause was replayed at the reconnect"
        assert sub.latest(f"{BASE}/paused").text == "OFF"  # type: ignore[union-attr]


async def test_no_command_closes_the_relay_against_the_invariants(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    opts = MqttOptions(broker.url, USER, PASSWORD, controls=True)
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        await sub.value(f"{BASE}/availability", "online")
        await _charging(csms, control, TAG)
        await control("fault", kind="rcd")
        await control.wait_state(lambda s: not s["relay"], "the RCD trip to open the relay")
        await sub.value(f"{BASE}/fault", "ON")
        await sub.value(f"{BASE}/error", "GroundFailure")
        for payload in ('{"pause": false}', '{"current_limit": 32}', '{"free_charging": true}'):
            n = len(sub.msgs)
            sub.publish(f"{BASE}/set", payload)
            await sub.wait(lambda m: m.topic == f"{BASE}/result", "a result", after=n)
        st = await control("state")
        assert not st["relay"] and st["pwm_duty"] == 100, "a fault keeps the relay open"
        await control("unplug")
        await control("fault", kind="clear")
        await sub.value(f"{BASE}/fault", "OFF")
        st = await control("state")
        assert not st["relay"], "no EV asking: nothing to close"


def _session_kwh(sub: Subscriber, after: int = 0) -> list[tuple[str, float]]:
    """(session id, energy_kwh) of each running-session message from index `after`."""
    out = []
    for m in sub.msgs[after:]:
        if m.topic == f"{BASE}/session":
            d = json.loads(m.payload)
            if d["active"]:
                out.append((d["id"], d["energy_kwh"]))
    return out


async def test_session_energy_never_falls_while_the_meter_fails(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    # Session energy is total_increasing in HA: a lower value within one session reads as a
    # meter reset, and HA's statistics count the session's energy twice.
    opts = MqttOptions(broker.url, USER, PASSWORD)
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        await sub.value(f"{BASE}/availability", "online")
        await _charging(csms, control, TAG)
        await sub.wait(lambda m: m.topic == f"{BASE}/session"
                       and json.loads(m.payload)["energy_kwh"] > 0, "session energy rising",
                       timeout=30)
        await control("fault", kind="meter_down")
        await sim.agent.wait_line("meter failing: PowerMeterFailure")
        for _ in range(2):  # two samples of the running session while the meter fails
            n = len(sub.msgs)
            await sub.wait(lambda m: m.topic == f"{BASE}/session", "the session sampled",
                           timeout=15, after=n)
        peak = max(kwh for _, kwh in _session_kwh(sub))
        await control("fault", kind="clear")
        await sub.wait(lambda m: m.topic == f"{BASE}/session"
                       and json.loads(m.payload)["energy_kwh"] > peak,
                       "session energy rising again once the meter is back", timeout=60)
        vals = _session_kwh(sub)
        assert len({ref for ref, _ in vals}) == 1, "one session throughout"
        kwh = [v for _, v in vals]
        assert kwh == sorted(kwh), f"session energy fell within one session: {kwh}"


async def test_power_current_and_voltage_are_unknown_while_the_meter_fails(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    # A retained 11 kW after the meter failed (the relay open) would be shown as current: the
    # measurements go "None" (HA's MQTT sensor: unknown) until the meter is back.
    opts = MqttOptions(broker.url, USER, PASSWORD)
    measured = ("power", "current_l1", "current_l2", "current_l3", "voltage_l1", "voltage_l2",
                "voltage_l3")
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        await sub.value(f"{BASE}/availability", "online")
        await _charging(csms, control, TAG)
        await sub.wait(lambda m: m.topic == f"{BASE}/power" and float(m.text) > 1000,
                       "power while charging", timeout=15)
        n = len(sub.msgs)
        await control("fault", kind="meter_down")
        await control.wait_state(lambda s: not s["relay"], "the relay to open on meter failure")
        for t in measured:
            await sub.value(f"{BASE}/{t}", "None", timeout=15, after=n)
        await sub.value(f"{BASE}/faults", '["PowerMeterFailure"]', timeout=15, after=n)
        late = Subscriber(broker, [f"{BASE}/#"], client_id="late")
        try:
            m = await late.wait(lambda m: m.topic == f"{BASE}/power", "the retained power", 5)
            assert m.retain and m.text == "None", f"a late subscriber gets {m.text} W"
            e = await late.wait(lambda m: m.topic == f"{BASE}/energy", "the retained energy", 5)
            assert float(e.text) > 0, "the register total stays (a stale total is still true)"
        finally:
            late.close()
        n = len(sub.msgs)
        await control("fault", kind="clear")
        v = await sub.wait(lambda m: m.topic == f"{BASE}/voltage_l1" and m.text != "None",
                           "the voltage once the meter is back", timeout=30, after=n)
        assert 200 < float(v.text) < 260


def _energy(sub: Subscriber) -> list[float]:
    return [float(m.text) for m in sub.msgs if m.topic == f"{BASE}/energy" and m.text != "None"]


async def test_the_energy_register_never_steps_down_across_a_power_cut(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    # Energy is total_increasing in HA: a lower value reads as a meter reset (HA then counts
    # the whole register again) or, within 10 %, as a fall of the sum. An S0 meter's count
    # restarts at boot from its base saved once a minute: the register published every 5 s
    # before a power cut was above what the charger counted from after it.
    opts = MqttOptions(broker.url, USER, PASSWORD)
    s = Simulator(flash, cp_id=CP_ID, csms_url=csms.url, mqtt=opts,
                  fitted=Fitted(meter_model="pulse"))
    async with running(s) as sim, controlling(sim) as control:
        await sub.value(f"{BASE}/availability", "online")
        await _charging(csms, control, TAG)
        await control("load", amps=32)
        await sub.wait(lambda m: m.topic == f"{BASE}/session"
                       and json.loads(m.payload)["energy_kwh"] >= 0.03, "30 Wh charged",
                       timeout=60)
        await asyncio.sleep(5)  # a meter sample more
        await control("power_cut")
        await control("power_on")
        n = len(sub.msgs)
        await sub.value(f"{BASE}/availability", "online", timeout=60, after=n)
        await csms.wait_call("StopTransaction", timeout=60)
        await asyncio.sleep(6)  # a meter sample after the boot
        kwh = _energy(sub)
        assert kwh == sorted(kwh), f"the energy register stepped down: {kwh}"


async def test_a_busy_link_to_a_live_broker_is_kept(
    csms: Csms, flash: Path, broker: Broker, sub: Subscriber
) -> None:
    # Keep alive is 60 s: the charger pings when it sent nothing for half of it, and drops
    # the link when it heard nothing for 1.5 times it. Values going out every 5 s while
    # charging (QoS 0: no answer) must not make a live broker look silent: the link dropped
    # every 90 s, and the broker sent the will, "offline", to Home Assistant each time.
    opts = MqttOptions(broker.url, USER, PASSWORD)
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        await sub.value(f"{BASE}/availability", "online")
        await _charging(csms, control, TAG)
        n = len(sub.msgs)
        await asyncio.sleep(100)
        avail = [m.text for m in sub.msgs[n:] if m.topic == f"{BASE}/availability"]
        assert avail == [], f"availability while charging: {avail}"
        assert not [ln for ln in sim.agent.all_lines if "broker:" in ln]
        assert any(m.topic == f"{BASE}/power" for m in sub.msgs[n:])
