# Loaded on use: the checks of the MQTT settings' OCPP vendor keys and the start of the feature
# (mqtt/feature.py). The keys themselves (BorneMqttUrl, BorneMqttUser, BorneMqttPassword
# (write-only), BorneMqttPrefix, BorneMqttControls (read-only: the installation decides)) are in
# ocpp_client/config.py's table, mapped to the settings (the one source: given at the claim, by
# provisioning or `borne sim --mqtt`), so reading them needs nothing here. This module is
# imported at boot only when a broker is configured, by a change of one of the keys
# (configuration.py) and by the claim; it leaves the heap again while no broker runs (idle()).
import log

_TAG = "mqtt"
feature = None  # the running Mqtt, once started


def check(key, v):
    # ChangeConfiguration of a BorneMqtt* key: ValueError when the value is refused.
    if key == "BorneMqttUrl":
        if v:
            from mqtt.url import parse_url

            parse_url(v)
    elif key == "BorneMqttPrefix":
        from mqtt.url import check_prefix

        check_prefix(v)
    elif len(v) > 64:  # user, password
        raise ValueError("too long")


def url_change(v, settings):
    # A new BorneMqttUrl over OCPP -> the settings saved with it. The owner's broker password
    # (from the claim or provisioning) goes to the broker it was given for only: another
    # endpoint (scheme, host, port; none too) clears it (the user is readable over OCPP
    # anyway), so a CSMS that points the charger at its own listener learns nothing. A
    # password the CSMS set (BorneMqttPassword: mqtt_pass_ocpp) is its own and follows its
    # URL. mqtts:// is never lowered to mqtt:// over OCPP (ValueError).
    old = settings.get("mqtt_url", "") if settings is not None else ""
    if not old or old == v:
        return {}
    from mqtt.url import parse_url

    try:
        was = parse_url(old)
    except ValueError:
        was = None
    now = parse_url(v) if v else None
    if was is not None and was[0] and now is not None and not now[0]:
        raise ValueError("mqtts:// is not lowered to mqtt:// over OCPP")
    if now != was and settings.get("mqtt_pass") and not settings.get("mqtt_pass_ocpp"):
        log.info(_TAG, "broker endpoint changed over OCPP: its password cleared")
        return {"mqtt_pass": ""}
    return {}


def _deps():
    # (board, settings, config, connector, ocpp, events, store), or None before app.py set it.
    # Looked up, not imported: config.py's configuration.py imports this module.
    import sys

    c = sys.modules.get("ocpp_client.config")
    return c.MQTT_DEPS if c is not None else None


def changed():
    # The settings changed (a key, the claim): reconnect, or start now that a broker is set;
    # out of the heap again when none runs.
    d = _deps()
    if feature is not None:
        feature.reload()
    elif d is not None and d[1].get("mqtt_url"):
        start(d)
    idle()


def start(deps):
    global feature
    try:
        from mqtt.feature import Mqtt

        feature = Mqtt(*deps)
    except Exception as e:  # a damaged file or no memory: charging goes on without MQTT
        log.exc(_TAG, "MQTT could not start", e)
        return
    import supervisor

    supervisor.start("mqtt", feature.run)  # restarted after a failure


def idle():
    # No broker running: this module (and the URL parser a check loaded) leaves the heap.
    if feature is None:
        from supervisor import drop

        drop("mqtt.keys", "mqtt.url", "mqtt.feature", "mqtt")
