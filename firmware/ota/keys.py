# The public keys this charger trusts for firmware bundles, and the rule that changes them.
#
# The keyring lives in one file beside main.py (`ota_keys.json`: {"keys": [{"id", "n", "e"}]}),
# outside both application slots: installing a bundle writes only inside a slot folder, so no
# file of an update can replace it. It is written at provisioning (`borne deploy`, or the
# simulation's flash), and changes only by a bundle whose manifest carries "keys":
#   - the bundle verified under a key trusted now (like any bundle),
#   - the new ring keeps at least one key trusted now, the same modulus under the same id (a
#     single bundle cannot hand the charger to keys it never trusted; a stolen trusted key can
#     still keep itself and drop the others, as it can sign any code: a key is revoked by a
#     rotation its owner signs first), and each id is its modulus's fingerprint (key_id), so a key
#     cannot pose under a trusted one's id,
#   - it is applied when the new version commits (after it proved itself), logged with the old
#     and new key ids and written to the event log.
# Without a keyring no update is accepted: there is no unsigned path.
import binascii
import hashlib
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


def key_id(n):
    # The first 8 bytes of SHA-256 over the 256-byte modulus, in hex (host_tools' release.key_id).
    return binascii.hexlify(hashlib.sha256(n.to_bytes(256, "big")).digest()[:8]).decode()


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
    for kid, (n, e) in ring.items():
        if n >> 2047 != 1 or e != 65537:
            raise ValueError("key rotation: only RSA-2048 keys with e = 65537")
        if kid != key_id(n):
            raise ValueError("key rotation: %s is not its key's id" % kid)
    if not any(current.get(k) == v for k, v in ring.items()):
        raise ValueError("key rotation: the new keyring keeps none of the trusted keys")
    return ring


def apply_rotation(new, root=""):
    old = sorted(load(root))
    p = (root.rstrip("/") + "/" if root else "") + FILE
    slots.write(p, json.dumps(new))
    log.warn(_TAG, "trusted firmware keys changed: %s -> %s", ",".join(old),
             ",".join(sorted(_parse(new))))
