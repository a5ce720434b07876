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


class _Cut(Exception):
    pass


def test_a_power_cut_in_a_factory_reset_wipe_leaves_nothing_of_the_old_owner():
    # A factory reset saves the settings unclaimed, then removes the owner's documents
    # (hotspot/reset.py). The power goes between the two (here: the removal is cut): the boot
    # finds an unclaimed charger, and none of the old owner's documents for the next owner's
    # claim to take over (their local list, CSMS roots and CSR key, queued transactions).
    import os

    from hotspot import reset
    from store import wipe

    store = Store("flash/r")
    s = Settings(store, {"cp_id": "CP1"})
    s.update(claimed=True, csms_url="ws://old/ocpp", auth_key="k" * 20)
    store.save("certs", {"central": ["x"]})
    store.save("csrkey", {"d": "00"})
    store.save("locallist", {"version": 3, "count": 1})
    store.journal("txq", 10).append({"m": "StopTransaction"})
    os.mkdir(store.path("ll", ""))

    class Hs:
        pass

    hs = Hs()
    hs.store, hs.settings = store, s
    keep = wipe.remove

    def cut(*a, **k):
        raise _Cut()

    wipe.remove = cut
    try:
        reset.wipe(hs, True)
        raise AssertionError("not cut")
    except _Cut:
        pass
    finally:
        wipe.remove = keep
    assert store.load("certs", {}) == {"central": ["x"]}  # the cut came before the removal
    again = Settings(Store("flash/r"), {"cp_id": "CP1"})  # the boot
    assert not again.is_claimed() and again.get("auth_key") == ""
    st = Store("flash/r")
    for name in ("certs", "csrkey", "locallist"):
        assert st.load(name, {}) == {}, name
    assert len(st.journal("txq", 10)) == 0
    try:
        os.stat(st.path("ll", ""))
        raise AssertionError("the local list's folder left")
    except OSError:
        pass
    assert not st.load("settings", {}).get("rewipe")


def test_a_factory_reset_finished_leaves_no_wipe_for_the_boot():
    # The reset's last wipe (just before its reboot) clears the mark: the boot wipes nothing
    # and says nothing of a reset cut short.
    from hotspot import reset

    store = Store("flash/r2")
    s = Settings(store, {"cp_id": "CP1"})
    s.update(claimed=True, csms_url="ws://old/ocpp")

    class Hs:
        pass

    hs = Hs()
    hs.store, hs.settings = store, s
    reset.wipe(hs, True)
    assert store.load("settings", {}).get("rewipe")  # until the last wipe
    reset.wipe(hs, False)
    assert not store.load("settings", {}).get("rewipe")
    assert not Settings(Store("flash/r2"), {"cp_id": "CP1"}).is_claimed()


class _CutOs:
    # The os module, cut (a _Cut raised) at the n-th change to the flash: a power cut there.
    def __init__(self, real, n):
        self.real = real
        self.n = n

    def __getattr__(self, k):
        return getattr(self.real, k)

    def step(self):
        self.n -= 1
        if self.n < 0:
            raise _Cut()

    def rename(self, a, b):
        self.step()
        self.real.rename(a, b)

    def remove(self, p):
        self.step()
        self.real.remove(p)

    def rmdir(self, p):
        self.step()
        self.real.rmdir(p)


def test_a_factory_reset_cut_at_every_step_boots_claimed_with_all_or_unclaimed_with_none():
    import os

    import store as storemod
    from hotspot import reset
    from store import wipe

    docs = ("certs", "csrkey", "locallist", "ocpp_config", "authc3", "smart0")
    n = 0
    while True:
        wipe.rmtree("flash/rc")
        st = Store("flash/rc")
        s = Settings(st, {"cp_id": "CP1"})
        s.update(claimed=True, csms_url="ws://old/ocpp", auth_key="k" * 20)
        for d in docs:
            st.save(d, {"x": 1})
            st.save(d, {"x": 2})  # a .bak too
        st.journal("txq", 10).append({"m": 1})
        os.mkdir(st.path("ll", ""))

        class Hs:
            pass

        hs = Hs()
        hs.store, hs.settings = st, s
        cut = storemod.os = wipe.os = _CutOs(os, n)
        try:
            reset.wipe(hs, True)
            reset.wipe(hs, False)
        except _Cut:
            pass
        finally:
            storemod.os = wipe.os = os
        b = Settings(Store("flash/rc"), {"cp_id": "CP1"})  # the boot
        st = Store("flash/rc")
        left = [d for d in docs if st.load(d, {})]
        queued = len(st.journal("txq", 10))
        if b.is_claimed():  # cut before the settings' save: nothing wiped yet
            assert b.get("auth_key") == "k" * 20 and left == list(docs) and queued, n
        else:
            assert b.get("auth_key") == "" and not left and not queued, (n, left, queued)
        if cut.n >= 0:
            break  # not cut: every step was
        n += 1
    assert n > 20, n
