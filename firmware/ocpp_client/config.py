# OCPP configuration keys (GetConfiguration / ChangeConfiguration): type, default, access.
# Only changed values are persisted, so a firmware update can change defaults.
import log

# kind: "i" integer, "b" boolean, "s" string, "l" comma-separated list
# access: "r" read-only, "w" read-write
KEYS = {
    "HeartbeatInterval": ("i", 86400, "w"),
    "ConnectionTimeOut": ("i", 60, "w"),
    "WebSocketPingInterval": ("i", 30, "w"),
    "ResetRetries": ("i", 1, "w"),
    "TransactionMessageAttempts": ("i", 3, "w"),
    "TransactionMessageRetryInterval": ("i", 60, "w"),
    "NumberOfConnectors": ("i", 1, "r"),
    "SupportedFeatureProfiles": ("l", "Core", "r"),
}
_DOC = "ocpp_config"


class Config:
    def __init__(self, store):
        self.store = store
        self.changed = store.load(_DOC, {})

    def get(self, key):
        if key in self.changed:
            return self.changed[key]
        return KEYS[key][1]

    def set(self, key, value):
        # Validates and stores; returns an OCPP ConfigurationStatus.
        spec = KEYS.get(key)
        if spec is None:
            return "NotSupported"
        kind, _, access = spec
        if access == "r":
            return "Rejected"
        try:
            v = _parse(kind, value)
        except ValueError:
            return "Rejected"
        self.changed[key] = v
        self.store.save(_DOC, self.changed)
        log.info("config", "%s set", key)
        return "Accepted"

    def set_runtime(self, key, value):
        # A value the CSMS gives outside ChangeConfiguration (the boot interval): kept in RAM.
        self.changed[key] = value


def _parse(kind, value):
    if not isinstance(value, str):
        raise ValueError
    if kind == "i":
        n = int(value)
        if n < 0:
            raise ValueError
        return n
    if kind == "b":
        lv = value.lower()
        if lv not in ("true", "false"):
            raise ValueError
        return lv == "true"
    return value


def show(kind, v):
    if kind == "b":
        return "true" if v else "false"
    return str(v)
