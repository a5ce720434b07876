# The charger's own settings: identity from provisioning, and the cloud endpoint from the claim
# (or, in the simulation, from `borne sim --csms`). Persisted through the store; secrets are kept
# here and never logged.
# Claim (hotspot/): the owner's name for the charger, home Wi-Fi and cloud endpoint. The
# factory identity (cp_id from provisioning) stays; a claim may give another OCPP charge point id
# ("claim_cp_id"), which then replaces cp_id. wipe_owner() is the unclaim / factory reset.
# What runs only at boot or for a wipe (the defaults, which keys provisioning sets, which the
# owner's) is in settingsdoc.py, loaded for it and dropped after. The PEM texts (the CSMS's and
# the broker's CA, a client certificate and key: KBs) stay on flash: the document in RAM holds
# True for one that is set, and get() reads it from flash (a connection's set-up, security.py).

_PEMS = const(("ca_pem", "cert_pem", "key_pem", "mqtt_ca_pem"))


def defaults():
    # Every setting and its default: a new dict at each call (settingsdoc.py).
    return _doc().defaults()


class Settings:
    def __init__(self, store, provisioning):
        self.store = store
        self.factory_id = ""  # the cp_id provisioning gave (a claim may give another)
        self.preset = False  # an endpoint set at the factory (`borne sim --csms`): claimed
        self.d = None
        # the document, merged with provisioning (the PEM texts kept in RAM when not saved)
        if _doc().load(self, provisioning, DOC):
            self._shelve()

    def __getitem__(self, k):
        v = self.d[k]
        return self._pems()[k] if v is True and k in _PEMS else v

    def get(self, k, default=None):
        v = self.d.get(k, default)
        return self._pems().get(k, default) if v is True and k in _PEMS else v

    def update(self, **kw):
        d = self.d
        f = None
        for k in _PEMS:  # the PEM texts back from flash for the save
            if d.get(k) is True:
                f = f or self._pems()
                d[k] = f.get(k, "")
        f = None
        try:  # saved first, in effect after: a failed save (flash full) changes nothing
            self.store.save(DOC, dict(d, **kw))
            d.update(kw)
        finally:
            self._shelve()

    def _pems(self):
        # The document as on flash (a set PEM's text is only there).
        return self.store.load(DOC, {})

    def _shelve(self):
        d = self.d
        for k in _PEMS:
            if d.get(k):
                d[k] = True

    def is_claimed(self):
        return bool(self.d.get("claimed")) or self.preset

    def wipe_owner(self):
        # Unclaim / factory reset: the owner's data and secrets go, the factory identity stays.
        _doc().wipe_owner(self, DOC)


DOC = "settings"


def _doc():
    import settingsdoc
    from supervisor import drop

    drop("settingsdoc")
    return settingsdoc
