# Home Assistant MQTT discovery: one device, its sensors, binary sensors and (when the
# installation enables them) controls. Messages use HA's abbreviations and the "~" base topic
# (HA's MQTT integration, "Discovery messages"), so each fits the link's buffer; they are made
# one at a time (messages() is a generator) and published retained, so HA finds the charger
# after a restart of either. tests/test_mqtt_discovery.py checks each against HA's schema.
import json

from mqtt import topics

PREFIX = "homeassistant"
STATUSES = ("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing",
            "Reserved", "Unavailable", "Faulted")


def _entities(max_a):
    # (key, component, name, extra fields), one at a time: the table lives only while the
    # messages are being made, not in the heap for the charger's lifetime.
    yield "status", "sensor", "Status", {"dev_cla": "enum", "ops": STATUSES}
    yield "energy", "sensor", "Energy", {"dev_cla": "energy", "stat_cla": "total_increasing",
                                         "unit_of_meas": "kWh"}
    yield "power", "sensor", "Power", {"dev_cla": "power", "stat_cla": "measurement",
                                       "unit_of_meas": "W"}
    for i in "123":
        yield "current_l" + i, "sensor", "Current L" + i, {
            "dev_cla": "current", "stat_cla": "measurement", "unit_of_meas": "A"}
    for i in "123":
        yield "voltage_l" + i, "sensor", "Voltage L" + i, {
            "dev_cla": "voltage", "stat_cla": "measurement", "unit_of_meas": "V"}
    yield "session_energy", "sensor", "Session energy", {
        "dev_cla": "energy", "stat_cla": "total_increasing", "unit_of_meas": "kWh",
        "stat_t": "~/session", "val_tpl": "{{ value_json.energy_kwh }}"}
    yield "offer", "sensor", "Offered current", {
        "dev_cla": "current", "stat_cla": "measurement", "unit_of_meas": "A",
        "ent_cat": "diagnostic"}
    yield "pilot", "sensor", "Control pilot", {"dev_cla": "enum", "ops": "ABCDEF",
                                               "ent_cat": "diagnostic"}
    yield "firmware", "sensor", "Firmware", {"ent_cat": "diagnostic"}
    yield "plugged", "binary_sensor", "Plugged in", {"dev_cla": "plug"}
    yield "charging", "binary_sensor", "Charging", {"dev_cla": "battery_charging"}
    yield "ocpp", "binary_sensor", "Online", {"dev_cla": "connectivity", "pl_on": "online",
                                              "pl_off": "offline", "ent_cat": "diagnostic"}
    yield "fault", "binary_sensor", "Fault", {
        "dev_cla": "problem", "json_attr_t": "~/faults",
        "json_attr_tpl": "{{ {'faults': value_json} | tojson }}"}
    # the owner's controls (only when the installation enables them)
    yield "paused", "switch", "Pause charging", {
        "cmd_t": "~/set", "pl_on": '{"pause":true}', "pl_off": '{"pause":false}',
        "stat_on": "ON", "stat_off": "OFF"}
    yield "limit", "number", "Current limit", {
        "cmd_t": "~/set", "cmd_tpl": '{"current_limit":{{ value }}}', "min": 6, "max": max_a,
        "step": 1, "unit_of_meas": "A", "dev_cla": "current", "mode": "slider"}
    yield "free", "switch", "Free charging", {
        "cmd_t": "~/set", "pl_on": '{"free_charging":true}', "pl_off": '{"free_charging":false}',
        "stat_on": "ON", "stat_off": "OFF"}


def node_id(cp_id):
    out = []
    for c in cp_id:
        out.append(c if c.isalpha() or c.isdigit() or c in "_-" else "_")
    return "borne_" + "".join(out)


def messages(base, cp_id, device, controls, max_a):
    # -> (topic, payload bytes), one at a time. device: name, manufacturer, model, sw, serial.
    node = node_id(cp_id)
    dev = {"ids": [node], "name": device["name"], "mf": device["mf"], "mdl": device["mdl"],
           "sw": device["sw"]}
    if device.get("sn"):
        dev["sn"] = device["sn"]
    for key, comp, name, extra in _entities(max_a):
        topic = "%s/%s/%s/%s/config" % (PREFIX, comp, node, key)
        if comp in ("switch", "number") and not controls:
            # Controls off: an empty retained message removes them from HA (and the broker),
            # should an earlier configuration have had them.
            yield topic, b""
            continue
        d = {"~": base, "name": name, "uniq_id": "%s_%s" % (node, key),
             "stat_t": "~/" + key, "avty_t": "~/" + topics.AVAILABILITY, "dev": dev}
        d.update(extra)
        if "ops" in d:
            d["ops"] = list(d["ops"])  # a string of one-letter options, or the tuple
        yield topic, json.dumps(d).encode()


def cleared(node):
    # The retained configs of a node no longer ours (another charge point id, discovery turned
    # off), emptied: HA removes those entities, the broker the messages (else a ghost charger).
    for key, comp, _, _ in _entities(6):
        yield "%s/%s/%s/%s/config" % (PREFIX, comp, node, key), b""
