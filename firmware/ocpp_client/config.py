# OCPP configuration keys (GetConfiguration / ChangeConfiguration): type, default, access. Only
# changed values are persisted (one small document), so a firmware update can change defaults;
# read-only keys cannot be changed over OCPP. A key that is one of the charger's settings
# (SETTINGS below) is read from and written to the settings, its default there: one value,
# whichever side changes it. What runs only for a change or a listing (the checks a new value
# must pass, the listing's text) is in configuration.py, loaded for it (set(), entries()).
import settings as _settings

# kinds: "i" integer, "b" boolean, "s" string, "m" measurand list (CSL), "l" other CSL
# access: "r" read-only, "w" read-write, "x" write-only (never returned)
# One line a key: "<name> <kind><access> <default>", the default as text: "-" = none (None),
# booleans 0 / 1, integers in decimal (none negative), strings as they are (up to the end of
# the line). One string constant, so that with the code in flash (frozen, ROMFS) the table takes
# no heap (a dict of tuples took ~5 KB of it on the 64-bit unix port); get() reads an integer or
# boolean default from the text without allocating, spec() and GetConfiguration parse lines.
_TABLE = const((
    "\n"
    "AllowOfflineTxForUnknownId bw 0\n"
    "AuthorizationCacheEnabled bw 1\n"
    "AuthorizeRemoteTxRequests bw 1\n"
    "BlinkRepeat iw 3\n"
    "ClockAlignedDataInterval iw 0\n"
    "ConnectionTimeOut iw 60\n"
    "ConnectorPhaseRotation lw 0.RST,1.RST\n"
    "ConnectorPhaseRotationMaxLength ir 2\n"
    "GetConfigurationMaxKeys ir 64\n"
    "HeartbeatInterval iw 86400\n"
    "LightIntensity iw -\n"
    "LocalAuthorizeOffline bw 1\n"
    "LocalPreAuthorize bw 0\n"
    "MaxEnergyOnInvalidId iw 0\n"
    "MeterValuesAlignedData mw Energy.Active.Import.Register\n"
    "MeterValuesAlignedDataMaxLength ir 8\n"
    "MeterValuesSampledData mw Energy.Active.Import.Register,Power.Active.Import\n"
    "MeterValuesSampledDataMaxLength ir 8\n"
    "MeterValueSampleInterval iw 60\n"
    "MinimumStatusDuration iw 0\n"
    "NumberOfConnectors ir 1\n"
    "ResetRetries iw 1\n"
    "StopTransactionOnEVSideDisconnect bw 1\n"
    "StopTransactionOnInvalidId bw 1\n"
    "StopTransactionMaxMeterValues ir 20\n"
    "StopTxnAlignedData mw \n"
    "StopTxnAlignedDataMaxLength ir 8\n"
    "StopTxnSampledData mw \n"
    "StopTxnSampledDataMaxLength ir 8\n"
    "SupportedFeatureProfiles lr Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger\n"
    # All three both ways (net/ftp.py, net/http.py): GetDiagnostics and GetLog upload over them,
    # UpdateFirmware and SignedUpdateFirmware download over them (ota/update.py's fetch).
    "SupportedFileTransferProtocols lr FTP,HTTP,HTTPS\n"
    "TransactionMessageAttempts iw 3\n"
    "TransactionMessageRetryInterval iw 60\n"
    # RW as 1.6's key table has it (OCTT TC_019_CS); a fixed cable has no lock, so either value
    # is true of it.
    "UnlockConnectorOnEVSideDisconnect bw 0\n"
    "WebSocketPingInterval iw 30\n"
    "LocalAuthListEnabled bw 1\n"
    "LocalAuthListMaxLength ir 1000\n"
    # 1,000 entries in one SendLocalList (~55-100 KB of JSON): a message over the WebSocket's RAM
    # limit is spooled to flash and the list streamed from there (ws.py, spooled.py).
    "SendLocalListMaxLength ir 1000\n"
    "ReserveConnectorZeroSupported br 0\n"
    "ChargeProfileMaxStackLevel ir 8\n"
    "ChargingScheduleAllowedChargingRateUnit lr Current,Power\n"
    "ChargingScheduleMaxPeriods ir 24\n"
    "MaxChargingProfilesInstalled ir 10\n"
    "ConnectorSwitch3to1PhaseSupported br 0\n"
    "SecurityProfile iw -\n"
    "AuthorizationKey sx -\n"
    "CpoName sw \n"
    # Vendor keys: the owner app's settings, changeable from the cloud.
    "BorneFreeCharging bw 0\n"
    "BorneFreeChargingIdTag sw FREECHARGING\n"
    # The circuit's rating (cable, breaker): the offer's cap and the meter's plausibility limits.
    # The installer's: set on site only.
    "BorneMaxCurrent ir 32\n"
    # Load balancing, from the installation settings (shown, never changed over OCPP):
    "BorneGridMeter sr -\n"  # the supply-side meter's model, "" = none
    "BorneMainFuse ir -\n"  # the supply's main fuse per phase, A
    "BorneGridFallback ir -\n"  # the headroom while the grid meter is silent, A
    # Firmware updates (ota/): true lets UpdateFirmware install an older version than the running
    "BorneAllowDowngrade bw 0\n"
    # The security extension's certificate store (diag/certs.py):
    "CertificateStoreMaxLength ir 8\n"  # installed certificates, both kinds together
    "CertificateSignedMaxChainSize ir 5500\n"  # bytes of a CertificateSigned chain
    "AdditionalRootCertificateCheck br 0\n"
    # MQTT (mqtt/): the owner's broker, from the settings; the password write-only, the controls
    # read-only (the installation decides). Their checks and the start of the feature are in
    # mqtt/keys.py, loaded only when a broker is configured or one of these keys is changed.
    "BorneMqttUrl sw \n"
    "BorneMqttUser sw \n"
    "BorneMqttPassword sx \n"
    "BorneMqttPrefix sw borne\n"
    "BorneMqttControls br 0\n"
))
# The key tables: this one, then those a feature module adds, in the same format (at most 8
# tables, see _at()).
TABLES = [_TABLE]
# Keys that are settings (settings.py: the connection credentials, the installation, the LED):
# key -> setting. Their default is the setting's.
SETTINGS = {
    "SecurityProfile": "security_profile",
    "AuthorizationKey": "auth_key",
    "LightIntensity": "led_brightness",
    "BorneGridMeter": "grid_meter_model",
    "BorneMainFuse": "main_fuse_a",
    "BorneGridFallback": "grid_fallback_a",
    "BorneMqttUrl": "mqtt_url",
    "BorneMqttUser": "mqtt_user",
    "BorneMqttPassword": "mqtt_pass",
    "BorneMqttPrefix": "mqtt_prefix",
    "BorneMqttControls": "mqtt_controls",
}
# Feature modules add their key tables to TABLES and their checks here (key -> fn(value), ValueError
# when refused). The BorneMqtt* keys are checked by mqtt/keys.py, loaded for the change
# (configuration.py), and MQTT_DEPS is what mqtt/keys.py starts the feature with (set by app.py).
CHECKS = {}
MQTT_DEPS = None
DOC = "ocpp_config"


class Config:
    def __init__(self, store, settings=None):
        self.store = store
        self.settings = settings  # settings.Settings (the keys in SETTINGS), or None: defaults
        self.changed = store.load(DOC, {})
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
            return _settings.defaults()[name] if v is None else v
        if key in self.changed:
            return self.changed[key]
        return _default(key)

    def measurands(self, key):
        v = self.get(key)
        return [m for m in v.split(",") if m] if v else []

    def set(self, key, value):
        # ChangeConfiguration: validates and stores; returns the OCPP ConfigurationStatus.
        return _on_use().set_key(self, _keys(), key, value)

    def set_runtime(self, key, value):
        # A value the CSMS gives outside ChangeConfiguration (the boot interval): kept in RAM.
        self.runtime[key] = value

    def entries(self, keys=None, each=False):
        # (configurationKey list, unknownKey list), or one at a time (configuration.py entries());
        # write-only keys never.
        return _on_use().entries(self, _keys(), keys, each)


def _keys():
    # This module, handed to configuration.py (which does not import it back).
    import sys

    return sys.modules[__name__]


def _on_use():
    # configuration.py (the Get/ChangeConfiguration feature) does the checks and the listing:
    # loaded for the call and out of the heap again after (features.drop).
    from ocpp_client import configuration, features

    features.drop("ocpp_client.configuration")
    return configuration


def _at(key):
    # Where a key's line is: its table's number + 8 x the index of its kind letter in it, or -1.
    # (One small int, and no iterator: get() reads defaults without allocating.)
    if type(key) is not str or " " in key or "\n" in key:
        return -1
    n = len(key)
    k = 0
    while k < len(TABLES):
        t = TABLES[k]
        i = t.find(key)
        while i > 0 and (t[i - 1] != "\n" or t[i + n] != " "):  # a whole name: its line's start
            i = t.find(key, i + 1)
        if i > 0:
            return k + 8 * (i + n + 1)
        k += 1
    return -1


def _default(key):
    # A key's default; KeyError when the charger has no such key. Integers and booleans are
    # read without allocating (called every second by the session and metering loops).
    p = _at(key)
    if p < 0:
        raise KeyError(key)
    t = TABLES[p & 7]
    i = p >> 3
    kind = t[i]
    i += 3
    c = t[i]
    if c == "-":
        return None
    if kind == "b":
        return c == "1"
    if kind == "i":
        v = 0
        while c != "\n":
            v = v * 10 + ord(c) - 48
            i += 1
            c = t[i]
        return v
    return t[i:t.find("\n", i)]


def spec(key):
    # -> (kind, default, access) of a key, or None when the charger has no such key.
    p = _at(key)
    if p < 0:
        return None
    t = TABLES[p & 7]
    i = p >> 3
    return t[i], _default(key), t[i + 1]


def names():
    # Every key, in table order, one at a time (a full listing keeps no list of them).
    for t in TABLES:
        i = 0
        while True:
            j = t.find(" ", i + 1)
            if j < 0:
                break
            yield t[i + 1:j]
            i = t.find("\n", j)
