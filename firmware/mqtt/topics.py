# The topics under <prefix>/<cp_id>/ and how each is published: name -> (QoS, retain).
# Retained: a subscriber that comes later (Home Assistant after a restart) gets the latest value
# at once. QoS 1 where a message must not be lost (availability, finished sessions); QoS 0 for
# values that the next publish replaces anyway. README "MQTT" lists them for owners.
STATE = {
    "status": (0, True),  # OCPP connector status: Available, Preparing, Charging, ...
    "error": (0, True),  # OCPP ChargePointErrorCode: NoError, GroundFailure, ...
    "pilot": (0, True),  # control pilot state A-F
    "relay": (0, True),  # ON / OFF
    "plugged": (0, True),  # ON / OFF (pilot B, C or D)
    "charging": (0, True),  # ON / OFF (relay closed)
    "fault": (0, True),  # ON / OFF (any fault or device fault)
    "faults": (0, True),  # JSON list of active faults, e.g. ["GroundFailure"]
    "offer": (0, True),  # A offered to the EV through the pilot
    "power": (0, True),  # W
    "current_l1": (0, True),  # A
    "current_l2": (0, True),
    "current_l3": (0, True),
    "voltage_l1": (0, True),  # V
    "voltage_l2": (0, True),
    "voltage_l3": (0, True),
    "energy": (0, True),  # kWh, the meter's import register
    "session": (0, True),  # JSON: the running session ({"active": false} when none)
    "firmware": (0, True),
    "ocpp": (0, True),  # online / offline: the link to the CSMS
    "paused": (0, True),  # ON / OFF: the owner's pause (controls)
    "limit": (0, True),  # A: the owner's current limit (the installer's maximum when none)
    "free": (0, True),  # ON / OFF: free charging
}
# The meter's measurements: "None" (unknown) while the meter fails (feature.py)
MEASURED = ("power", "current_l1", "current_l2", "current_l3", "voltage_l1", "voltage_l2",
            "voltage_l3")
AVAILABILITY = "availability"  # online / offline; QoS 1, retained, also the last will
SESSIONS = "sessions"  # each finished session, JSON; QoS 1, not retained (an event)
RESULT = "result"  # the answer to each command, JSON; QoS 0, not retained
SET = "set"  # commands, JSON (subscribed, QoS 0)
SESSION_QOS = const(1)


def base(prefix, cp_id):
    return "%s/%s" % (prefix, cp_id)


def mask(tag):
    # An id tag as published: enough to tell one's cards apart, not enough to clone one.
    if not tag:
        return ""
    n = len(tag)
    if n <= 4:
        return "*" * n
    return tag[:2] + "*" * (n - 4) + tag[-2:]


def onoff(v):
    return "ON" if v else "OFF"
