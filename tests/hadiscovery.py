"""Home Assistant's MQTT discovery schema, the part our payloads use, as data.

Encoded from Home Assistant core (github.com/home-assistant/core, homeassistant/components/):
- mqtt/abbreviations.py: ABBREVIATIONS and DEVICE_ABBREVIATIONS (the short keys discovery
  accepts), and mqtt/discovery.py: the "~" base topic (a topic value starting or ending with "~"
  has it replaced by the value of "~");
- mqtt/entity.py + mqtt/schemas.py: MQTT_ENTITY_COMMON_SCHEMA (name, unique_id, device,
  availability_topic, payload_available/not_available, entity_category, icon, json_attributes_*,
  enabled_by_default, ...) and MQTT_ENTITY_DEVICE_INFO_SCHEMA (identifiers or connections
  required);
- mqtt/sensor.py, binary_sensor.py, switch.py, number.py: each platform's PLATFORM_SCHEMA
  (the keys it takes, which are required) and sensor.py's checks (an enum sensor takes `options`
  and neither state_class nor unit; a unit must fit the device class);
- sensor/const.py: SensorDeviceClass, SensorStateClass, DEVICE_CLASS_UNITS and
  DEVICE_CLASS_STATE_CLASSES for the classes we use; binary_sensor/__init__.py:
  BinarySensorDeviceClass; number/const.py: NumberMode, NumberDeviceClass units.
The abbreviations were taken from a stored copy of HA core's abbreviations.py; the platform and
device-class rules follow the modules named above and HA's sensor.mqtt documentation ("the
entity category must be diagnostic for sensors"), encoded by hand: a later HA release may add
keys or units, or deprecate some (as it did `object_id`), so this is a snapshot.
`check()` is stricter than HA in one way: an unknown key is an error here, where HA's discovery
schemas drop extra keys (a misspelt key would silently lose its setting there).
"""

from __future__ import annotations

from typing import Any

ABBREVIATIONS = {
    "avty_t": "availability_topic", "cmd_t": "command_topic", "cmd_tpl": "command_template",
    "dev": "device", "dev_cla": "device_class", "ent_cat": "entity_category",
    "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template",
    "max": "max", "min": "min", "mode": "mode", "name": "name", "ops": "options",
    "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off", "pl_on": "payload_on", "stat_cla": "state_class",
    "stat_off": "state_off", "stat_on": "state_on", "stat_t": "state_topic", "step": "step",
    "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template",
    "ic": "icon", "exp_aft": "expire_after", "frc_upd": "force_update", "qos": "qos",
    "ret": "retain", "opt": "optimistic", "en": "enabled_by_default", "obj_id": "object_id",
}
DEVICE_ABBREVIATIONS = {
    "ids": "identifiers", "cns": "connections", "name": "name", "mf": "manufacturer",
    "mdl": "model", "sw": "sw_version", "hw": "hw_version", "sn": "serial_number",
    "sa": "suggested_area", "cu": "configuration_url", "via_device": "via_device",
}
TOPIC_KEYS = {"state_topic", "command_topic", "availability_topic", "json_attributes_topic"}

STR, NUM, BOOL, LIST, DICT, INT = str, (int, float), bool, list, dict, int
COMMON = {
    "name": STR, "unique_id": STR, "device": DICT, "availability_topic": STR,
    "payload_available": STR, "payload_not_available": STR, "entity_category": STR, "icon": STR,
    "json_attributes_topic": STR, "json_attributes_template": STR, "enabled_by_default": BOOL,
    "qos": INT, "object_id": STR, "encoding": STR,
}
RO = {"state_topic": STR, "value_template": STR, "expire_after": INT, "force_update": BOOL}
PLATFORMS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "sensor": ({**COMMON, **RO, "device_class": STR, "state_class": STR,
                "unit_of_measurement": STR, "options": LIST,
                "suggested_display_precision": INT}, {"state_topic"}),
    "binary_sensor": ({**COMMON, **RO, "device_class": STR, "payload_on": STR,
                       "payload_off": STR, "off_delay": INT}, {"state_topic"}),
    "switch": ({**COMMON, "state_topic": STR, "command_topic": STR, "payload_on": STR,
                "payload_off": STR, "state_on": STR, "state_off": STR, "optimistic": BOOL,
                "retain": BOOL, "value_template": STR, "device_class": STR}, {"command_topic"}),
    "number": ({**COMMON, "state_topic": STR, "command_topic": STR, "command_template": STR,
                "min": NUM, "max": NUM, "step": NUM, "mode": STR, "unit_of_measurement": STR,
                "device_class": STR, "optimistic": BOOL, "retain": BOOL, "value_template": STR,
                "payload_reset": STR}, {"command_topic"}),
}
ENTITY_CATEGORIES = {"config", "diagnostic"}
SENSOR_STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
# DEVICE_CLASS_UNITS / DEVICE_CLASS_STATE_CLASSES for the sensor classes a wallbox uses.
SENSOR_UNITS = {
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal",
               "Mcal", "Gcal"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "current": {"A", "mA"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
}
SENSOR_STATE_CLASSES_BY_CLASS = {
    "energy": {"total", "total_increasing"},
    "power": {"measurement"},
    "current": {"measurement"},
    "voltage": {"measurement"},
    "duration": {"measurement", "total", "total_increasing"},
    "enum": set(),
}
SENSOR_DEVICE_CLASSES = set(SENSOR_UNITS) | {"enum", "timestamp", "temperature", "frequency"}
BINARY_SENSOR_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
}
SWITCH_DEVICE_CLASSES = {"outlet", "switch"}
NUMBER_MODES = {"auto", "box", "slider"}
NUMBER_UNITS = {"current": {"A", "mA"}}


def expand(payload: dict[str, Any]) -> dict[str, Any]:
    """What HA's discovery does to a payload: abbreviations expanded, "~" replaced."""
    out: dict[str, Any] = {}
    base = payload.get("~")
    for k, v in payload.items():
        if k == "~":
            continue
        if k not in ABBREVIATIONS and k not in ABBREVIATIONS.values():
            raise ValueError(f"unknown key {k!r}")
        key = ABBREVIATIONS.get(k, k)
        if key in out:
            raise ValueError(f"{key!r} given twice")
        if key == "device":
            if not isinstance(v, dict):
                raise ValueError("device must be an object")
            dev = {}
            for dk, dv in v.items():
                if dk not in DEVICE_ABBREVIATIONS and dk not in DEVICE_ABBREVIATIONS.values():
                    raise ValueError(f"unknown device key {dk!r}")
                dev[DEVICE_ABBREVIATIONS.get(dk, dk)] = dv
            v = dev
        if key in TOPIC_KEYS and isinstance(v, str) and base is not None:
            if v.startswith("~"):
                v = base + v[1:]
            elif v.endswith("~"):
                v = v[:-1] + base
        out[key] = v
    return out


def _topic_ok(t: str) -> bool:
    return bool(t) and "+" not in t and "#" not in t and "\0" not in t and len(t.encode()) < 65536


def check(component: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Raises ValueError with the reason when HA would refuse the discovery payload."""
    if component not in PLATFORMS:
        raise ValueError(f"component {component!r} not covered")
    cfg = expand(payload)
    keys, required = PLATFORMS[component]
    for k, v in cfg.items():
        if k not in keys:
            raise ValueError(f"{component} takes no {k!r}")
        want = keys[k]
        if want is INT and (isinstance(v, bool) or not isinstance(v, int)):
            raise ValueError(f"{k} must be an integer")
        if not isinstance(v, want) or (want in (NUM, STR) and isinstance(v, bool)):
            raise ValueError(f"{k} has the wrong type ({type(v).__name__})")
        if k in TOPIC_KEYS and not _topic_ok(v):
            raise ValueError(f"{k} is not a valid topic: {v!r}")
    for k in required:
        if k not in cfg:
            raise ValueError(f"{component} needs {k!r}")
    if "unique_id" not in cfg:
        raise ValueError("a discovered entity needs unique_id to belong to a device")
    dev = cfg.get("device")
    if dev is not None:
        ids = dev.get("identifiers")
        if not ids and not dev.get("connections"):
            raise ValueError("device needs identifiers or connections")
        if ids is not None and not (isinstance(ids, str) or (
                isinstance(ids, list) and all(isinstance(i, str) for i in ids))):
            raise ValueError("device identifiers must be a string or a list of strings")
        for k in ("name", "manufacturer", "model", "sw_version", "serial_number"):
            if k in dev and not isinstance(dev[k], str):
                raise ValueError(f"device {k} must be a string")
    ec = cfg.get("entity_category")
    if ec is not None and ec not in ENTITY_CATEGORIES:
        raise ValueError(f"entity_category {ec!r}")
    dc = cfg.get("device_class")
    if component == "sensor":
        if ec == "config":
            raise ValueError("a sensor cannot have entity_category config")
        sc = cfg.get("state_class")
        unit = cfg.get("unit_of_measurement")
        if dc is not None and dc not in SENSOR_DEVICE_CLASSES:
            raise ValueError(f"sensor device_class {dc!r}")
        if sc is not None and sc not in SENSOR_STATE_CLASSES:
            raise ValueError(f"state_class {sc!r}")
        if "options" in cfg:
            if dc not in (None, "enum"):
                raise ValueError("options need device_class enum")
            if not cfg["options"] or not all(isinstance(o, str) for o in cfg["options"]):
                raise ValueError("options must be a non-empty list of strings")
        if dc == "enum":
            if "options" not in cfg:
                raise ValueError("an enum sensor needs options")
            if sc is not None or unit is not None:
                raise ValueError("an enum sensor takes neither state_class nor unit")
        if dc in SENSOR_UNITS and unit not in SENSOR_UNITS[dc]:
            raise ValueError(f"unit {unit!r} is not valid with device class {dc}")
        if dc in SENSOR_STATE_CLASSES_BY_CLASS and sc is not None and (
                sc not in SENSOR_STATE_CLASSES_BY_CLASS[dc]):
            raise ValueError(f"state_class {sc} is not valid with device class {dc}")
    elif component == "binary_sensor":
        if dc is not None and dc not in BINARY_SENSOR_DEVICE_CLASSES:
            raise ValueError(f"binary_sensor device_class {dc!r}")
    elif component == "switch":
        if dc is not None and dc not in SWITCH_DEVICE_CLASSES:
            raise ValueError(f"switch device_class {dc!r}")
    elif component == "number":
        mode = cfg.get("mode", "auto")
        if mode not in NUMBER_MODES:
            raise ValueError(f"number mode {mode!r}")
        if cfg.get("min", 1) > cfg.get("max", 100):
            raise ValueError("number min is over max")
        if dc is not None and (
                dc not in NUMBER_UNITS or cfg.get("unit_of_measurement") not in NUMBER_UNITS[dc]):
            raise ValueError(f"number device_class {dc!r} with its unit")
    return cfg
