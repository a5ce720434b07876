# Always loaded, small: the MQTT settings as OCPP vendor configuration keys (added to the key
# table here, so the feature owns them), and the start of the feature (mqtt/feature.py) once a
# broker is configured. The settings are the one source (given at the claim, by provisioning or
# `borne sim --mqtt`); the keys show them and a CSMS may change them: BorneMqttUrl,
# BorneMqttUser, BorneMqttPassword (write-only), BorneMqttPrefix, and BorneMqttControls
# (read-only: the installation decides).
import log

_TAG = "mqtt"
_KEYS = {"BorneMqttUrl": "mqtt_url", "BorneMqttUser": "mqtt_user",
         "BorneMqttPassword": "mqtt_pass", "BorneMqttPrefix": "mqtt_prefix",
         "BorneMqttControls": "mqtt_controls"}
# Their lines in ocpp_client/config.py's table format ("<key> <kind><access> <default>"); the
# password is write-only, the controls read-only (the installation decides)
_TABLE = (
    "\nBorneMqttUrl sw "
    "\nBorneMqttUser sw "
    "\nBorneMqttPassword sx "
    "\nBorneMqttPrefix sw borne"
    "\nBorneMqttControls br 0"
    "\n"
)
feature = None  # the running Mqtt, once started
_deps = None


def _check_url(v):
    if v:
        from mqtt.url import parse_url  # loaded on use: a charger without a broker never does

        parse_url(v)


def _check_prefix(v):
    if not 0 < len(v) <= 32 or "+" in v or "#" in v or v[0] == "/" or v[-1] == "/":
        raise ValueError("prefix: 1-32 characters, no + # and no leading or trailing /")


def _check_secret(v):
    if len(v) > 64:
        raise ValueError("too long")


class _Listener:
    # The configuration's listener (on_config): a key of ours changed (config.py has already
    # written it to the settings): reconnect, or start now that a broker is set.
    def on_config(self, key, value):
        if key in _KEYS:
            changed()


def attach(board, settings, config, connector, ocpp, events, store):
    global _deps
    _deps = (board, settings, config, connector, ocpp, events, store)
    from ocpp_client import config as config_mod

    if _TABLE not in config_mod.TABLES:
        config_mod.TABLES.append(_TABLE)
    config_mod.SETTINGS.update(_KEYS)  # the settings hold the values: one source
    config_mod.CHECKS.update({"BorneMqttUrl": _check_url, "BorneMqttPrefix": _check_prefix,
                              "BorneMqttUser": _check_secret,
                              "BorneMqttPassword": _check_secret})
    config.listen(_Listener())
    if settings.get("mqtt_url"):
        start(_deps)


def changed():
    # The settings changed outside OCPP (the claim): reconnect, or start now that a broker is set.
    if feature is not None:
        feature.reload()
    elif _deps is not None and _deps[1].get("mqtt_url"):
        start(_deps)


def start(deps):
    global feature
    try:
        from mqtt.feature import Mqtt

        feature = Mqtt(*deps)
    except Exception as e:  # a damaged file or no memory: charging goes on without MQTT
        log.exc(_TAG, "MQTT could not start", e)
        return
    from supervisor import start

    start("mqtt", feature.run)  # restarted after a failure
