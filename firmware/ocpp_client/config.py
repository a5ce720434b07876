# OCPP configuration keys (GetConfiguration / ChangeConfiguration): type, default, access, and
# the check a new value must pass. Only changed values are persisted (one small document), so a
# firmware update can change defaults; read-only keys cannot be changed over OCPP. A key that
# is one of the charger's settings (SETTINGS below) is read from and written to the settings, its
# default there: one value, whichever side changes it.
import log
from settings import DEFAULTS as _SETTINGS_DEFAULTS

# kinds: "i" integer, "b" boolean, "s" string, "m" measurand list (CSL), "l" other CSL
# access: "r" read-only, "w" read-write, "x" write-only (never returned)
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Current.Offered",
    "Power.Offered",
    "Voltage",
    "Frequency",
)
_MAX_MEASURANDS = const(8)
PROFILES = "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"

KEYS = {
    "AllowOfflineTxForUnknownId": ("b", False, "w"),
    "AuthorizationCacheEnabled": ("b", True, "w"),
    "AuthorizeRemoteTxRequests": ("b", True, "w"),
    "BlinkRepeat": ("i", 3, "w"),
    "ClockAlignedDataInterval": ("i", 0, "w"),
    "ConnectionTimeOut": ("i", 60, "w"),
    "ConnectorPhaseRotation": ("l", "0.RST,1.RST", "w"),
    "ConnectorPhaseRotationMaxLength": ("i", 2, "r"),
    "GetConfigurationMaxKeys": ("i", 64, "r"),
    "HeartbeatInterval": ("i", 86400, "w"),
    "LightIntensity": ("i", None, "w"),
    "LocalAuthorizeOffline": ("b", True, "w"),
    "LocalPreAuthorize": ("b", False, "w"),
    "MaxEnergyOnInvalidId": ("i", 0, "w"),
    "MeterValuesAlignedData": ("m", "Energy.Active.Import.Register", "w"),
    "MeterValuesAlignedDataMaxLength": ("i", _MAX_MEASURANDS, "r"),
    "MeterValuesSampledData": ("m", "Energy.Active.Import.Register,Power.Active.Import", "w"),
    "MeterValuesSampledDataMaxLength": ("i", _MAX_MEASURANDS, "r"),
    "MeterValueSampleInterval": ("i", 60, "w"),
    "MinimumStatusDuration": ("i", 0, "w"),
    "NumberOfConnectors": ("i", 1, "r"),
    "ResetRetries": ("i", 1, "w"),
    "StopTransactionOnEVSideDisconnect": ("b", True, "w"),
    "StopTransactionOnInvalidId": ("b", True, "w"),
    "StopTransactionMaxMeterValues": ("i", 20, "r"),
    "StopTxnAlignedData": ("m", "", "w"),
    "StopTxnAlignedDataMaxLength": ("i", _MAX_MEASURANDS, "r"),
    "StopTxnSampledData": ("m", "", "w"),
    "StopTxnSampledDataMaxLength": ("i", _MAX_MEASURANDS, "r"),
    "SupportedFeatureProfiles": ("l", PROFILES, "r"),
    "TransactionMessageAttempts": ("i", 3, "w"),
    "TransactionMessageRetryInterval": ("i", 60, "w"),
    "UnlockConnectorOnEVSideDisconnect": ("b", False, "r"),  # fixed cable: nothing to unlock
    "WebSocketPingInterval": ("i", 30, "w"),
    "LocalAuthListEnabled": ("b", True, "w"),
    "LocalAuthListMaxLength": ("i", 1000, "r"),
    # 1,000 entries in one SendLocalList (~55-100 KB of JSON): a message over the WebSocket's RAM
    # limit is spooled to flash and the list streamed from there (ws.py, spooled.py).
    "SendLocalListMaxLength": ("i", 1000, "r"),
    "ReserveConnectorZeroSupported": ("b", False, "r"),
    "ChargeProfileMaxStackLevel": ("i", 8, "r"),
    "ChargingScheduleAllowedChargingRateUnit": ("l", "Current,Power", "r"),
    "ChargingScheduleMaxPeriods": ("i", 24, "r"),
    "MaxChargingProfilesInstalled": ("i", 10, "r"),
    "ConnectorSwitch3to1PhaseSupported": ("b", False, "r"),
    "SecurityProfile": ("i", None, "w"),
    "AuthorizationKey": ("s", None, "x"),
    "CpoName": ("s", "", "w"),
    # Vendor keys: the owner app's settings, changeable from the cloud.
    "BorneFreeCharging": ("b", False, "w"),
    "BorneFreeChargingIdTag": ("s", "FREECHARGING", "w"),
    # The circuit's rating (cable, breaker): the offer's cap and the meter's plausibility limits.
    # The installer's: set on site only.
    "BorneMaxCurrent": ("i", 32, "r"),
    # Load balancing, from the installation settings (shown, never changed over OCPP):
    "BorneGridMeter": ("s", None, "r"),  # the supply-side meter's model, "" = none
    "BorneMainFuse": ("i", None, "r"),  # the supply's main fuse per phase, A
    "BorneGridFallback": ("i", None, "r"),  # the headroom while the grid meter is silent, A
    # Firmware updates (ota/): true lets UpdateFirmware install an older version than the running
    "BorneAllowDowngrade": ("b", False, "w"),
    # The security extension's certificate store (diag/certs.py):
    "CertificateStoreMaxLength": ("i", 8, "r"),  # installed certificates, both kinds together
    "CertificateSignedMaxChainSize": ("i", 5500, "r"),  # bytes of a CertificateSigned chain
    "AdditionalRootCertificateCheck": ("b", False, "r"),
}
# Keys that are settings (settings.py: the connection credentials, the installation, the LED):
# key -> setting. Their default is the setting's.
SETTINGS = {
    "SecurityProfile": "security_profile",
    "AuthorizationKey": "auth_key",
    "LightIntensity": "led_brightness",
    "BorneGridMeter": "grid_meter_model",
    "BorneMainFuse": "main_fuse_a",
    "BorneGridFallback": "grid_fallback_a",
}
# Feature modules add their keys to KEYS and their checks here (key -> fn(value), ValueError
# when refused): mqtt/keys.py.
CHECKS = {}
_DOC = "ocpp_config"
_ALIGN = ("MeterValuesAlignedData", "StopTxnAlignedData")


class Config:
    def __init__(self, store, settings=None):
        self.store = store
        self.settings = settings  # settings.Settings (the keys in SETTINGS), or None: defaults
        self.changed = store.load(_DOC, {})
        self.runtime = {}
        self.listeners = []  # objects with on_config(key, value), told after a change

    def listen(self, obj):
        self.listeners.append(obj)

    def get(self, key):
        if key in self.runtime:
            return self.runtime[key]
        name = SETTINGS.get(key)
        if name is not None:
            st = self.settings
            v = st.get(name) if st is not None else None
            return _SETTINGS_DEFAULTS[name] if v is None else v
        if key in self.changed:
            return self.changed[key]
        return KEYS[key][1]

    def measurands(self, key):
        v = self.get(key)
        return [m for m in v.split(",") if m] if v else []

    def set(self, key, value):
        # ChangeConfiguration: validates and stores; returns the OCPP ConfigurationStatus.
        spec = KEYS.get(key)
        if spec is None:
            return "NotSupported"
        kind, _, access = spec
        if access == "r":
            return "Rejected"
        try:
            v = _parse(kind, value)
            _check(key, v, self)
        except ValueError as e:
            log.info("config", "%s: value refused (%s)", key, e)
            return "Rejected"
        log.info("config", "%s changed", key)  # never the value: it may be a secret
        self.runtime.pop(key, None)
        name = SETTINGS.get(key)
        if name is not None and self.settings is not None:
            self.settings.update(**{name: v})  # a secret is stored once, in the settings
        elif name is not None:
            self.runtime[key] = v
        else:
            self.changed[key] = v
            self.store.save(_DOC, self.changed)
        for lst in self.listeners:
            lst.on_config(key, v)
        return "Accepted"

    def set_runtime(self, key, value):
        # A value the CSMS gives outside ChangeConfiguration (the boot interval): kept in RAM.
        self.runtime[key] = value

    def entries(self, keys=None):
        # GetConfiguration: (configurationKey list, unknownKey list). Write-only keys are left out
        # of a full listing and reported unknown when asked by name, so they never leak.
        known, unknown = [], []
        names = keys if keys else [k for k in KEYS if KEYS[k][2] != "x"]
        for k in names:
            spec = KEYS.get(k)
            if spec is None or spec[2] == "x":
                unknown.append(k)
                continue
            known.append({"key": k, "readonly": spec[2] == "r", "value": show(spec[0], self.get(k))})
        return known, unknown


def _parse(kind, value):
    if not isinstance(value, str):
        raise ValueError("not a string")
    if kind == "i":
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("not an integer")
    if kind == "b":
        lv = value.strip().lower()
        if lv not in ("true", "false"):
            raise ValueError("not true/false")
        return lv == "true"
    if kind == "m":
        items = [m.strip() for m in value.split(",") if m.strip()]
        for m in items:
            if m not in MEASURANDS:
                raise ValueError("unsupported measurand %s" % m)
        if len(items) > _MAX_MEASURANDS:
            raise ValueError("too many measurands")
        return ",".join(items)
    return value


def _check(key, v, cfg):
    if isinstance(v, int) and not isinstance(v, bool) and v < 0:
        raise ValueError("negative")
    if key == "LightIntensity" and v > 100:
        raise ValueError("over 100 %")
    if key in ("HeartbeatInterval", "TransactionMessageRetryInterval") and v == 0:
        raise ValueError("zero")
    if key == "TransactionMessageAttempts" and v > 100:
        raise ValueError("too many")
    if key == "SecurityProfile":
        if v > 3 or v < cfg.get("SecurityProfile"):
            raise ValueError("the security profile is never lowered")
    if key == "AuthorizationKey":
        if not 16 <= len(v) <= 40:
            raise ValueError("length")
    if key == "ConnectorPhaseRotation" and len(v.split(",")) > 2:
        raise ValueError("too many entries")
    if key in _ALIGN and v and cfg.get("ClockAlignedDataInterval") < 0:
        raise ValueError("bad interval")
    chk = CHECKS.get(key)
    if chk is not None:
        chk(v)


def show(kind, v):
    if kind == "b":
        return "true" if v else "false"
    return str(v)
