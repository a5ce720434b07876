# The charger's own settings: identity from provisioning, and the cloud endpoint from the claim
# (or, in the simulation, from `borne sim --csms`). Persisted through the store; secrets are kept
# here and never logged.
import log

_DOC = "settings"
DEFAULTS = {
    "cp_id": "",
    "serial": "",
    "model": "",
    "vendor": "borne",
    "csms_url": "",
    "security_profile": 0,
    "auth_key": "",  # secret: the OCPP AuthorizationKey (profiles 1 and 2)
    "ca_pem": "",
    "name": "",
    # installation (factory provisioning or the installer): what the meter and the limits are
    "meter_model": "sdm630",  # meter.maps.MODELS, or "pulse" for an S0 meter
    "meter_addr": 1,
    "meter_baud": 9600,
    "meter_wh_per_pulse": 1.0,
    "max_current_a": 32,  # the circuit's rating: plausibility limits for meter readings
    "phases": 3,
    "led_brightness": 80,  # 0-100: the OCPP LightIntensity / app LED brightness
}
_IDENTITY = ("cp_id", "serial", "model", "vendor")
_INSTALLATION = ("meter_model",)


class Settings:
    def __init__(self, store, provisioning):
        self.store = store
        d = store.load(_DOC, DEFAULTS)
        changed = False
        for k in _IDENTITY:
            v = provisioning.get(k)
            if v and d.get(k) != v:
                d[k] = v
                changed = True
        for k in _INSTALLATION:
            v = provisioning.get(k)
            if v and d.get(k) != v:
                d[k] = v
                changed = True
        url = provisioning.get("csms_url")
        if url and d.get("csms_url") != url:
            d["csms_url"] = url
            changed = True
        self.d = d
        if changed:
            store.save(_DOC, d)
        log.info("settings", "charge point %s, CSMS %s", d["cp_id"], d["csms_url"] or "(none)")

    def __getitem__(self, k):
        return self.d[k]

    def get(self, k, default=None):
        return self.d.get(k, default)

    def update(self, **kw):
        self.d.update(kw)
        self.store.save(_DOC, self.d)
