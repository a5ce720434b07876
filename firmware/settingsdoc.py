# The settings document's defaults and what provisioning and a wipe change in it (settings.py
# loads this module at boot and for an unclaim / factory reset, and drops it after: none of it
# stays in the heap). self: the settings.Settings; doc: the name of its document.
import log


def defaults():
    # Every setting and its default: a new dict at each call (made from the code, which stays in
    # flash: no module-level dict kept in the heap for what is read at boot and at a reset).
    return {
        "cp_id": "",
        "serial": "",
        "model": "",
        "vendor": "borne",
        "csms_url": "",
        "security_profile": 0,
        # the profile a ChangeConfiguration raised security_profile from, kept until a connection
        # with the new one succeeds, then -1; the one it falls back to if it never does
        # (ocpp_client/proftrial.py, written in the same save as the profile)
        "profile_fallback": -1,
        "auth_key": "",  # secret: the OCPP AuthorizationKey (profiles 1 and 2)
        "ca_pem": "",  # the CSMS's root CA(s), PEM: wss:// is checked against it
        "cert_pem": "",  # the charger's client certificate (profile 3), PEM
        "key_pem": "",  # secret: its private key, PEM
        # the SHA-256 (hex) of the provisioned cert_pem a certificate renewed over OCPP replaced
        # (diag/csr.py): provisioning that still gives that one leaves the renewed pair alone
        "cert_prov": "",
        # a client certificate renewed at profile 3 that has not connected yet: the old pair kept
        # beside it (diag/csr.py, ocpp_client/proftrial.py)
        "cert_trial": False,
        "call_timeout_s": 30,  # how long a CALL of ours waits for the CSMS's answer
        "name": "",
        # -- claim (hotspot/) --
        "claimed": False,
        "claim_cp_id": "",  # OCPP charge point id given at claim; "" = the factory id
        "wifi_ssid": "",
        "wifi_pass": "",  # secret: home Wi-Fi password
        # installation (factory provisioning or the installer): what the meter and the limits are
        "meter_model": "sdm630",  # meter.models.names(), or "pulse" for an S0 meter
        "meter_addr": 1,
        "meter_baud": 9600,
        "meter_parity": "E",  # RS-485 line: 8 data bits, this parity ("N", "E", "O"), 1 stop bit
        "meter_wh_per_pulse": 1.0,
        "phases": 3,
        # load balancing (supply.py): a supply-side meter on the same RS-485 bus as the charger's
        "grid_meter_model": "",  # meter.models.names(); "" = none, no load balancing
        "grid_meter_addr": 2,
        "main_fuse_a": 25,  # the supply's main fuse, per phase
        "grid_fallback_a": 6,  # the headroom while the grid meter is silent (0: pause)
        "led_brightness": 80,  # 0-100: the OCPP LightIntensity / app LED brightness
        # MQTT (mqtt/): the owner's broker; "" = off. mqtt:// or mqtts:// (TLS, checked against
        # mqtt_ca_pem). Given at the claim, by provisioning, or by the OCPP vendor keys BorneMqtt*.
        "mqtt_url": "",
        "mqtt_user": "",
        "mqtt_pass": "",  # secret: the broker password
        "mqtt_pass_ocpp": False,  # that password came over OCPP (the CSMS's own: mqtt/keys.py)
        "mqtt_ca_pem": "",
        "mqtt_prefix": "borne",  # topics: <prefix>/<cp_id>/...
        "mqtt_discovery": True,  # Home Assistant discovery messages under homeassistant/
        # "<node> <mqtt_url>": the node id discovery last published under on that broker ("": none),
        # emptied there once the charger has another id (mqtt/feature.py)
        "mqtt_ha": "",
        "mqtt_controls": False,  # installation: pause, current limit, free charging over MQTT
    }


# What an unclaim / factory reset clears: everything the owner gave (secrets included).
_OWNER = const(("csms_url", "security_profile", "profile_fallback", "auth_key", "ca_pem",
                "cert_pem", "key_pem", "cert_prov", "cert_trial",
                "name", "claimed", "claim_cp_id", "wifi_ssid", "wifi_pass",
                "mqtt_url", "mqtt_user", "mqtt_pass", "mqtt_pass_ocpp", "mqtt_ca_pem",
                "mqtt_prefix", "mqtt_discovery", "mqtt_ha"))
_IDENTITY = const(("cp_id", "serial", "model", "vendor"))
# What provisioning (the factory, the claim, `borne sim`) may set besides the identity.
_PROVISIONED = const(("csms_url", "security_profile", "auth_key", "ca_pem", "cert_pem",
                      "key_pem", "mqtt_url", "mqtt_user", "mqtt_pass", "mqtt_ca_pem",
                      "mqtt_prefix"))
_INSTALLATION = const(("meter_model", "meter_addr", "meter_baud", "meter_parity",
                       "meter_wh_per_pulse", "phases", "grid_meter_model", "grid_meter_addr",
                       "main_fuse_a", "grid_fallback_a", "mqtt_controls"))


def load(self, provisioning, doc):
    # Settings(): the document (defaults for what it lacks), merged with provisioning.
    store = self.store
    d = store.load(doc, defaults())
    changed = False
    self.factory_id = provisioning.get("cp_id") or d["cp_id"]
    if d.get("unclaim"):
        # An unclaim / factory reset was answered (hotspot/claim.py factory_reset()) and a power
        # cut came before its wipe: done now, as wipe_owner() does (the documents go below).
        log.warn("settings", "a factory reset was cut short by a power cut: the owner's data "
                 "wiped now")
        _owner_out(self, d)
        changed = True
    if d.get("claim_cp_id"):
        provisioning = dict(provisioning, cp_id=d["claim_cp_id"])
    for k in _IDENTITY:
        v = provisioning.get(k)
        if v and d.get(k) != v:
            d[k] = v
            changed = True
    renewed = d.get("cert_prov")
    if renewed:
        # A client certificate renewed over OCPP (CertificateSigned, diag/csr.py) outlives the
        # reboot while provisioning gives the pair it replaced; a new provisioned one wins.
        if prov_hash(provisioning.get("cert_pem")) in (renewed, ""):
            provisioning = dict(provisioning, cert_pem=None, key_pem=None)
        else:
            d["cert_prov"] = ""
            d["cert_trial"] = False  # a new provisioned pair ends a renewal's trial
            changed = True
    for k in _PROVISIONED:
        v = provisioning.get(k)
        if k == "security_profile" and v is not None and v < d.get(k, 0):
            continue  # never lowered: an upgrade over OCPP (TC_083_CS) outlives the reboot
        if v is not None and v != "" and d.get(k) != v:
            d[k] = v
            if k == "security_profile":
                d["profile_fallback"] = -1  # a profile given anew ends an upgrade's trial
            changed = True
    # The simulation's --csms stands for an endpoint set at the factory: claimed already.
    self.preset = bool(provisioning.get("csms_url"))
    for k in _INSTALLATION:
        v = provisioning.get(k)  # "" and 0 are values here (no grid meter, pause)
        if v is not None and d.get(k) != v:
            d[k] = v
            changed = True
    if d.get("rewipe"):
        # A claim for another CSMS saved (hotspot/claim.py wipe_old()), or a factory reset's
        # settings wiped (wipe_owner()), the power cut before its restart: the old owner's data
        # it left goes now (a new claim kept).
        from supervisor import rare

        rare("hotspot.reset", "leftovers", store)
        d["rewipe"] = False
        changed = True
    self.d = d
    saved = True
    if changed:
        try:
            store.save(doc, d)
        except OSError as e:
            # Flash full or failing: in force from RAM (the PEM texts too: not on flash), merged
            # and saved again at the next boot; the boot goes on.
            log.exc("settings", "provisioning not saved", e)
            saved = False
    log.info("settings", "charge point %s, CSMS %s", d["cp_id"],
             log.url(d["csms_url"]) if d["csms_url"] else "(none)")
    return saved


def prov_hash(pem):
    # The SHA-256 (hex) of a PEM text, "" for none.
    if not pem:
        return ""
    import binascii
    import hashlib

    return binascii.hexlify(hashlib.sha256(pem).digest()).decode()


def wipe_owner(self, doc):
    # Settings.wipe_owner(): the owner's data and secrets go, the factory identity stays.
    _owner_out(self, self.d)
    self.preset = False
    self.store.save(doc, self.d)


def _owner_out(self, d):
    dflt = defaults()
    for k in _OWNER:
        d[k] = dflt[k]
    d["cp_id"] = self.factory_id
    d.pop("unclaim", None)
    # Marked: the owner's documents go after this save (hotspot/reset.py); a power cut before
    # they are all gone left an unclaimed charger with them, which the next owner's claim took
    # over (the old cards, CSMS roots, queued transactions). The boot wipes them (load()).
    d["rewipe"] = True
