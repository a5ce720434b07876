"""MQTT under bad conditions: a broker that refuses our credentials, one that sends malformed
and foreign packets or closes mid-packet, one that goes away, TLS with the CA checked and the
broker's name resolved by the charger's own DNS query. Each gets a log line, never a crash,
never a relay change; charging and OCPP go on; finished sessions wait on flash for the broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from borne.csms import Csms
from borne.sim.dnsserver import DnsServer
from borne.sim.fakebroker import FakeBroker
from borne.sim.mqttopts import MqttOptions
from borne.sim.simulator import Simulator
from mqttpeer import PASSWORD, USER, Broker, Subscriber
from ocpp.v16 import call
from simctl import Control, controlling, running
from tlscerts import Ca

CP_ID = "CP-TEST-1"
BASE = f"borne/{CP_ID}"


def _sim(csms: Csms, flash: Path, opts: MqttOptions) -> Simulator:
    return Simulator(flash, cp_id=CP_ID, csms_url=csms.url, mqtt=opts)


async def _charge(csms: Csms, control: Control) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    cp = csms.charge_points[CP_ID]
    await cp.call(call.ChangeConfiguration(key="BorneFreeCharging", value="true"))
    await control("load", amps=16)
    await control("plug")
    await control("charge")
    await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"], "charging")


async def test_refused_credentials_are_logged_and_charging_goes_on(
    csms: Csms, flash: Path, broker: Broker
) -> None:
    wrong = "not-the-password-42"
    opts = MqttOptions(broker.url, USER, wrong)
    async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
        await sim.agent.wait_line(r"W mqtt: the broker refused the connection: (bad user name or "
                                  r"password|not authorized)")
        await sim.agent.wait_line(r"I mqtt: reconnecting in \d+ s")
        await _charge(csms, control)
        assert not any(wrong in ln or PASSWORD in ln for ln in sim.agent.all_lines)


@pytest.mark.parametrize("mode", ["garbage", "midpacket", "silent"])
async def test_a_broken_broker_costs_only_the_connection(
    csms: Csms, flash: Path, mode: str
) -> None:
    fake = FakeBroker(mode, BASE)
    await fake.start()
    try:
        opts = MqttOptions(fake.url, controls=True)
        async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
            await _charge(csms, control)
            if mode == "garbage":
                await sim.agent.wait_line(r"W mqtt: 1 message\(s\) on topics that are not ours")
                await sim.agent.wait_line(r"W mqtt: a packet of \d+ bytes dropped")
                await sim.agent.wait_line(r"W mqtt: PUBLISH with QoS 2 dropped")
                await sim.agent.wait_line(r"W mqtt: malformed PUBLISH dropped")
                await sim.agent.wait_line(r"W mqtt: broker: ValueError unexpected packet")
            elif mode == "midpacket":
                await sim.agent.wait_line(r"W mqtt: broker: OSError .*closed the connection")
            else:  # silent: accepts, never answers CONNECT
                await sim.agent.wait_line(r"W mqtt: broker: OSError no CONNACK", timeout=30)
            await sim.agent.wait_line(r"I mqtt: reconnecting in \d+ s")
            st = await control("state")
            assert st["relay"], "nothing the broker sent opened the relay"
            assert sim.agent.boots == 1 and not sim.agent.exit_codes
            assert not any("command done" in ln for ln in sim.agent.all_lines)
    finally:
        await fake.stop()


async def test_sessions_wait_on_flash_while_the_broker_is_away(
    csms: Csms, flash: Path, broker: Broker
) -> None:
    opts = MqttOptions(broker.url, USER, PASSWORD)
    sub = Subscriber(broker, [f"{BASE}/#"])
    try:
        async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
            await sub.value(f"{BASE}/availability", "online")
            sub.close()
            broker.stop()
            await sim.agent.wait_line(r"W mqtt: broker: ")
            await _charge(csms, control)  # charging and OCPP as usual meanwhile
            cp = csms.charge_points[CP_ID]
            await control("unplug")
            await csms.wait_call("StopTransaction")
            await control.wait_state(lambda s: not s["relay"], "the relay to open")
            queued = list((flash / "data").glob("mqtt_sessions*"))
            assert queued and b"EVDisconnected" in queued[0].read_bytes(), "queued on flash"
            # the queue survives a power cut
            await sim.agent.power_cut()
            await sim.agent.power_on()
            broker.start()
            sub = Subscriber(broker, [f"{BASE}/#"])
            done = await sub.wait(lambda m: m.topic == f"{BASE}/sessions", "the queued session",
                                  timeout=30)
            rec = json.loads(done.payload)
            assert rec["reason"] == "EVDisconnected" and rec["tag"] == "FR********NG"
            assert done.qos == 1
            await sub.value(f"{BASE}/status", "Available")
            await csms.wait_for(lambda: len(csms.calls("BootNotification")) >= 2, 30,
                                "the boot after the power cut")
            cp = csms.charge_points[CP_ID]  # the connection after the power cut
            assert (await cp.call(call.GetConfiguration(key=["BorneMqttUrl"]))
                    ).configuration_key[0]["value"] == broker.url
    finally:
        sub.close()


async def test_tls_with_the_ca_checked_and_the_name_resolved_without_blocking(
    csms: Csms, flash: Path, tmp_path: Path
) -> None:
    ca = Ca()
    ca_file = ca.write(tmp_path)
    cert, key = ca.issue("localhost").write(tmp_path, "broker")
    broker = Broker(tmp_path / "broker", tls=(cert, key))
    broker.start()
    dns = DnsServer({"mqtt.home.test": "127.0.0.1"})
    dns_addr = await dns.start()
    try:
        # The certificate is for "localhost": a name that resolves but is not on it fails TLS.
        dns.names["localhost"] = "127.0.0.1"
        opts = MqttOptions(f"mqtts://localhost:{broker.tls_port}", USER, PASSWORD, ca_file,
                           dns=dns_addr)
        sub = Subscriber(broker, [f"{BASE}/#"])
        try:
            async with running(_sim(csms, flash, opts)) as sim:
                await sub.value(f"{BASE}/availability", "online")
                assert "localhost" in dns.queries
                assert any("(TLS)" in ln for ln in sim.agent.all_lines)
                # The CSMS may move the broker, but not to plain MQTT, and the owner's password
                # stays with the broker it was given for: a CSMS pointing the charger at its own
                # listener once received it.
                await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
                cp = csms.charge_points[CP_ID]
                for url, want in ((f"mqtt://127.0.0.1:{broker.port}", "Rejected"),
                                  (f"mqtts://localhost:{broker.tls_port + 1}", "Accepted")):
                    res = await cp.call(call.ChangeConfiguration(key="BorneMqttUrl", value=url))
                    assert res.status == want, (url, res.status)
                doc = json.loads((flash / "data" / "settings.json").read_text().split("\n", 1)[1])
                assert doc["mqtt_pass"] == "" and doc["mqtt_user"] == USER, doc
                assert not any(PASSWORD in ln for ln in sim.agent.all_lines)
        finally:
            sub.close()
        bad = MqttOptions(f"mqtts://mqtt.home.test:{broker.tls_port}", USER, PASSWORD, ca_file,
                          dns=dns_addr)
        async with running(_sim(csms, tmp_path / "flash2", bad)) as sim:
            await sim.agent.wait_line(r"W mqtt: broker: \w+ TLS handshake failed")
            await sim.agent.wait_line(r"I mqtt: reconnecting")
            assert not any("connected to the broker" in ln for ln in sim.agent.all_lines)
        dns.silent = True
        gone = MqttOptions(f"mqtt://nowhere.home.test:{broker.port}", USER, PASSWORD,
                           dns=dns_addr)
        async with running(_sim(csms, tmp_path / "flash3", gone)) as sim, \
                controlling(sim) as control:
            await sim.agent.wait_line(r"W mqtt: broker: DnsError the resolver did not answer")
            await _charge(csms, control)
    finally:
        dns.stop()
        broker.stop()


async def test_the_broker_set_over_ocpp(csms: Csms, flash: Path, broker: Broker) -> None:
    # Provisioned with a broker that is not there; the CSMS gives the right one and the
    # credentials through the vendor keys, and the charger connects with them.
    from mqttpeer import free_port

    opts = MqttOptions(f"mqtt://127.0.0.1:{free_port()}")
    sub = Subscriber(broker, [f"home/ev/{CP_ID}/#"])
    try:
        async with running(_sim(csms, flash, opts)) as sim:
            await sim.agent.wait_line(r"W mqtt: broker: ")
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            cp = csms.charge_points[CP_ID]
            for key, value, want in (("BorneMqttUrl", "http://x", "Rejected"),
                                     ("BorneMqttPrefix", "a/#", "Rejected"),
                                     # MQTT 3.1.1 1.5.3: no NUL (the broker hangs up) nor
                                     # other control characters; no empty topic level
                                     ("BorneMqttPrefix", "home\u0000x", "Rejected"),
                                     ("BorneMqttPrefix", "home\nx", "Rejected"),
                                     ("BorneMqttPrefix", "home\u007fx", "Rejected"),
                                     ("BorneMqttPrefix", "home//x", "Rejected"),
                                     ("BorneMqttPrefix", "home/ev", "Accepted"),
                                     ("BorneMqttControls", "true", "Rejected"),
                                     ("BorneMqttUser", USER, "Accepted"),
                                     ("BorneMqttPassword", PASSWORD, "Accepted"),
                                     ("BorneMqttUrl", broker.url, "Accepted")):
                res = await cp.call(call.ChangeConfiguration(key=key, value=value))
                assert res.status == want, (key, res.status)
            await sub.value(f"home/ev/{CP_ID}/availability", "online", timeout=30)
            res = await cp.call(call.GetConfiguration(key=["BorneMqttPassword", "BorneMqttUser"]))
            assert res.unknown_key == ["BorneMqttPassword"], "write-only: never shown"
            assert res.configuration_key[0]["value"] == USER
            assert not any(PASSWORD in ln for ln in sim.agent.all_lines)
    finally:
        sub.close()


def test_sim_mqtt_options_are_checked(tmp_path: Path) -> None:
    import argparse

    from borne.sim.cli import mqtt_from

    def ns(**kw: object) -> argparse.Namespace:
        base: dict[str, object] = dict(mqtt=None, mqtt_user=None, mqtt_pass=None, mqtt_ca=None,
                                       mqtt_controls=False)
        base.update(kw)
        return argparse.Namespace(**base)

    assert mqtt_from(ns()) is None
    opts = mqtt_from(ns(mqtt="mqtt://broker.lan:1884", mqtt_user="u", mqtt_pass="p",
                        mqtt_controls=True))
    assert opts is not None and opts.argv() == [
        "--mqtt", "mqtt://broker.lan:1884", "--mqtt-controls", "1", "--mqtt-user", "u",
        "--mqtt-pass", "p"]
    for bad in (dict(mqtt="http://x"), dict(mqtt="mqtt://u:p@x"), dict(mqtt="mqtt://x:99999"),
                dict(mqtt="mqtts://x"), dict(mqtt_user="u"),
                dict(mqtt="mqtts://x", mqtt_ca=tmp_path / "missing.pem")):
        with pytest.raises(ValueError):
            mqtt_from(ns(**bad))


async def test_a_session_a_power_cut_ended_is_published(
    csms: Csms, flash: Path, broker: Broker
) -> None:
    opts = MqttOptions(broker.url, USER, PASSWORD)
    sub = Subscriber(broker, [f"{BASE}/#"])
    try:
        async with running(_sim(csms, flash, opts)) as sim, controlling(sim) as control:
            await sub.value(f"{BASE}/availability", "online")
            await _charge(csms, control)
            await sub.value(f"{BASE}/charging", "ON")
            await sim.agent.power_cut()
            await sim.agent.power_on()
            done = await sub.wait(lambda m: m.topic == f"{BASE}/sessions", "the cut session",
                                  timeout=30)
            assert json.loads(done.payload)["reason"] == "PowerLoss"
            stop = await csms.wait_call("StopTransaction")
            assert stop.payload["reason"] == "PowerLoss"
    finally:
        sub.close()


async def test_a_provisioned_prefix_mqtt_cannot_take_falls_back_to_the_default(
    csms: Csms, flash: Path, broker: Broker
) -> None:
    # The same check as BorneMqttPrefix's: a control character in the topics would have the
    # broker hang up at every attempt; the charger says so and publishes under "borne".
    opts = MqttOptions(broker.url, USER, PASSWORD, prefix="home\tev")
    sub = Subscriber(broker, [f"{BASE}/#"])
    try:
        async with running(_sim(csms, flash, opts)) as sim:
            await sim.agent.wait_line(r"W mqtt: topic prefix refused")
            await sub.value(f"{BASE}/availability", "online", timeout=30)
    finally:
        sub.close()


async def test_a_setting_changed_while_connecting_is_taken(
    csms: Csms, flash: Path, broker: Broker
) -> None:
    # The CSMS changes the topic prefix while the charger resolves the broker's name (a slow
    # resolver). The change closed the connection before it was open, and the opening forgot
    # it: the link came up with the old settings and nothing fed it, so nothing but
    # "online" was ever published, until the broker went away.
    dns = DnsServer({"mqtt.home.test": "127.0.0.1"})
    dns_addr = await dns.start()
    dns.hold()
    opts = MqttOptions(f"mqtt://mqtt.home.test:{broker.port}", USER, PASSWORD, dns=dns_addr)
    sub = Subscriber(broker, [f"home/ev/{CP_ID}/#", f"{BASE}/#"])
    try:
        async with running(_sim(csms, flash, opts)):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            cp = csms.charge_points[CP_ID]
            dns.queries.clear()
            await dns.wait_query("mqtt.home.test")  # an attempt is resolving
            res = await cp.call(call.ChangeConfiguration(key="BorneMqttPrefix", value="home/ev"))
            assert res.status == "Accepted"
            await asyncio.sleep(0.7)  # the feeder's turn (500 ms) while the name resolves
            dns.release()
            await sub.value(f"home/ev/{CP_ID}/availability", "online", timeout=30)
            await sub.wait(lambda m: m.topic == f"home/ev/{CP_ID}/status", "the status", 10)
    finally:
        sub.close()
        dns.stop()
