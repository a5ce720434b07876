# The charger's own settings: identity from provisioning, and the cloud endpoint from the claim
# (or, in the simulation, from `borne sim --csms`). Persisted through the store; secrets are kept
# here and never logged.
# Claim (hotspot/): the owner's name for the charger, home Wi-Fi and cloud endpoint. The
# factory identity (cp_id from provisioning) stays; a claim may give another OCPP charge point id
# ("claim_cp_id"), which then replaces cp_id. wipe_owner() is the unclaim / factory reset.
# What runs only at boot or for a wipe (the defaults, which keys provisioning sets, which the
# owner's) is in settingsdoc.py, loaded for it and dropped after.


def defaults():
    # Every setting and its default: a new dict at each call (settingsdoc.py).
    return _doc().defaults()


class Settings:
    def __init__(self, store, provisioning):
        self.store = store
        self.factory_id = ""  # the cp_id provisioning gave (a claim may give another)
        self.preset = False  # an endpoint set at the factory (`borne sim --csms`): claimed
        self.d = None
        _doc().load(self, provisioning, DOC)  # the document, merged with provisioning

    def __getitem__(self, k):
        return self.d[k]

    def get(self, k, default=None):
        return self.d.get(k, default)

    def update(self, **kw):
        self.d.update(kw)
        self.store.save(DOC, self.d)

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
