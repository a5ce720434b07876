# The public keys this charger trusts for firmware bundles, and the rule that changes them.
#
# The keyring lives in one file beside main.py (`ota_keys.json`: {"keys": [{"id", "n", "e"}]}),
# outside both application slots: installing a bundle writes only inside a slot folder, so no
# file of an update can replace it. It is written at provisioning (`borne deploy`, or the
# simulation's flash), and changes only by a bundle whose manifest carries "keys":
#   - the bundle verified under a key trusted now (like any bundle),
#   - the new ring keeps at least one key trusted now (a single bundle cannot hand the charger to
#     keys it never trusted: a stolen key can add one, not throw out its owner's),
#   - it is applied when the new version commits (after it proved itself), logged with the old
#     and new key ids and written to the event log.
# Without a keyring no update is accepted: there is no unsigned path.
import json

import log
from ota import slots

_TAG = "ota"
FILE = "ota_keys.json"


def _parse(data):
    ring = {}
    for k in data.get("keys", ()):
        kid, n, e = k["id"], int(k["n"], 16), int(k["e"])
        ring[kid] = (n, e)
    return ring


def load(root=""):
    # -> {key id: (n, e)}; {} when missing or unreadable (logged).
    p = (root.rstrip("/") + "/" if root else "") + FILE
    try:
        with open(p) as f:
            return _parse(json.load(f))
    except OSError:
        return {}
    except (ValueError, KeyError, TypeError) as e:
        log.warn(_TAG, "%s unreadable (%s): no update can be accepted", FILE, type(e).__name__)
        return {}


def check_rotation(current, new):
    # A manifest's "keys": -> the parsed ring, or raises ValueError with the reason.
    try:
        ring = _parse(new)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError("key rotation: malformed keyring")
    if not ring:
        raise ValueError("key rotation: empty keyring")
    if not any(k in current for k in ring):
        raise ValueError("key rotation: the new keyring keeps none of the trusted keys")
    for n, e in ring.values():
        if n >> 2047 != 1 or e != 65537:
            raise ValueError("key rotation: only RSA-2048 keys with e = 65537")
    return ring


def apply_rotation(new, root=""):
    old = sorted(load(root))
    p = (root.rstrip("/") + "/" if root else "") + FILE
    slots.write(p, json.dumps(new))
    log.warn(_TAG, "trusted firmware keys changed: %s -> %s", ",".join(old),
             ",".join(sorted(_parse(new))))
