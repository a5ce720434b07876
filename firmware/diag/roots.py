# The central system roots every wss:// connection trusts, as a connection reads them
# (security.connect_args through diag/secevents.py): straight from the certificate store's
# document (diag/certs.py keeps it), so a connection loads this, not the store. None when ca_pem
# was provisioned anew since the document was written: certs.py then makes the roots follow it.
DOC = "certs"


def load(store):
    return store.load(DOC, {"base": None, "cs": [], "mfr": []})


def pem(d, settings):
    # -> the PEM text of the central roots in document d, or None if they no longer follow ca_pem.
    if d["base"] != settings.get("ca_pem", ""):
        return None
    return "".join(d["cs"])
