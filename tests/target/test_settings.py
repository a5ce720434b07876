# On-target tests for settings.Settings: the PEM texts stay on flash, read when asked for.
import gc

from settings import Settings
from store import Store

CA = "-----BEGIN CERTIFICATE-----\n" + "A" * 1200 + "\n-----END CERTIFICATE-----\n"


def test_a_pem_is_read_from_flash_and_kept_across_updates():
    store = Store("flash/state")
    s = Settings(store, {"cp_id": "CP1", "ca_pem": CA, "security_profile": 2})
    assert s.d["ca_pem"] is True and s.d["cert_pem"] == ""  # not in RAM: only "set"
    assert s.get("ca_pem") == CA and s["ca_pem"] == CA and s.get("cert_pem") == ""
    s.update(name="Garage")  # a save writes the text from flash back
    assert s.d["ca_pem"] is True and s.get("name") == "Garage"
    assert store.load("settings", {})["ca_pem"] == CA
    again = Settings(Store("flash/state"), {"cp_id": "CP1"})
    assert again.get("ca_pem") == CA and again.get("name") == "Garage"
    s.update(ca_pem="")  # cleared
    assert s.get("ca_pem") == "" and store.load("settings", {})["ca_pem"] == ""
    gc.collect()


def test_wipe_owner_clears_the_pems():
    store = Store("flash/w")
    s = Settings(store, {"cp_id": "CP1"})
    s.update(mqtt_ca_pem=CA)
    assert s.d["mqtt_ca_pem"] is True and s.get("mqtt_ca_pem") == CA
    s.wipe_owner()
    assert s.get("mqtt_ca_pem") == "" and store.load("settings", {})["mqtt_ca_pem"] == ""


def test_provisioning_never_lowers_the_security_profile():
    # A profile raised over OCPP (ChangeConfiguration SecurityProfile, OCTT TC_083_CS) outlives
    # the reboot: the factory's (or the simulation's) lower one, applied at every boot, does
    # not take it back; a higher one still raises it.
    store = Store("flash/p")
    s = Settings(store, {"cp_id": "CP1", "security_profile": 1})
    assert s.get("security_profile") == 1
    s.update(security_profile=2)
    again = Settings(Store("flash/p"), {"cp_id": "CP1", "security_profile": 1})
    assert again.get("security_profile") == 2
    again = Settings(Store("flash/p"), {"cp_id": "CP1", "security_profile": 3})
    assert again.get("security_profile") == 3


def test_a_profile_provisioned_anew_ends_an_upgrade_trial():
    # An upgrade on trial (ocpp_client/proftrial.py) keeps the profile it came from; a higher
    # profile given by provisioning is the installer's: no fallback from it.
    store = Store("flash/t")
    s = Settings(store, {"cp_id": "CP1", "security_profile": 1})
    s.update(security_profile=2, profile_fallback=1)
    again = Settings(Store("flash/t"), {"cp_id": "CP1", "security_profile": 1})
    assert (again.get("security_profile"), again.get("profile_fallback")) == (2, 1)
    again = Settings(Store("flash/t"), {"cp_id": "CP1", "security_profile": 3})
    assert (again.get("security_profile"), again.get("profile_fallback")) == (3, -1)
