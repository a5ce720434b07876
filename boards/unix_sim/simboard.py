# The unix_sim board's parts used once or seldom, imported on use and dropped after (board.py's
# _on_use()), so that only what runs all the time stays in the heap: the arguments and the
# provisioning read at boot with the per-device secrets, the hotspot's test knobs, and the heap
# squeeze of the low-memory tests (board.py's header: "squeeze <bytes>"; self is the Board).
import asyncio
import gc
import json
import os
import sys


def args(argv=None):
    # Board(): --key value pairs after the script name, or in BORNE_ARGS one a line, as the
    # simulation passes them (the unix port would intern each command-line argument as a qstr,
    # which a charger never holds: the memory figures would count some 40 of them)
    if argv is None:
        env = os.getenv("BORNE_ARGS")
        argv = ["main.py"] + env.split("\n") if env else sys.argv
    out = {}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and i + 1 < len(argv):
            out[a[2:]] = argv[i + 1]
            i += 2
        else:
            i += 1
    return out


# The arguments Board keeps (its .args) for what it reads after boot: the flash folder, the
# sockets and their addresses, the meter model, the radio's world and the hotspot's knobs.
KEPT = ("flash", "io", "rfid", "meter", "meter-model", "dns", "gate", "wifi-env", "http-port",
        "dns-port", "hotspot-idle-s", "lockout-base-ms", "close-grace-ms")


def kept(a):
    return {k: a[k] for k in KEPT if k in a}


def hotspot_options(a):
    # Board.hotspot_options(): the test knobs (idle timeout, lockout base, grace before closing
    # after a claim) from the arguments.
    out = {}
    for k in ("hotspot-idle-s", "lockout-base-ms", "close-grace-ms"):
        if k in a:
            out[k.replace("-", "_")] = int(a[k])
    return out


def provisioning(a):
    # Board.provisioning(): the factory's data, from the simulation's arguments (a: --key value).
    p = {
        "cp_id": a.get("id", "borne-sim-0001"),
        "serial": a.get("serial", "SIM0001"),
        "model": "borne-sim",
        "vendor": "borne",
    }
    if "csms" in a:
        p["csms_url"] = a["csms"]
    # Security profile and credentials (`borne sim --profile N --auth-key K --ca/--cert/--key
    # FILE`); certificate files are PEM, read here once.
    if "profile" in a:
        p["security_profile"] = int(a["profile"])
    if "auth-key" in a:
        p["auth_key"] = a["auth-key"]
    for arg, key in (("ca", "ca_pem"), ("cert", "cert_pem"), ("key", "key_pem")):
        if arg in a:
            with open(a[arg]) as f:
                p[key] = f.read()
    p.update(_factory_secrets(a))
    if "meter-model" in a:
        p["meter_model"] = a["meter-model"]
    if "meter-baud" in a:
        p["meter_baud"] = int(a["meter-baud"])
    if "phases" in a:  # the installation's (the sim's supply)
        p["phases"] = int(a["phases"])
    # Load balancing: the grid meter on the same RS-485 socket ("" = none), the main fuse.
    if "grid-meter-model" in a:
        p["grid_meter_model"] = a["grid-meter-model"]
    for arg, key in (("grid-meter-addr", "grid_meter_addr"), ("main-fuse", "main_fuse_a"),
                     ("grid-fallback", "grid_fallback_a")):
        if arg in a:
            p[key] = int(a[arg])
    # MQTT (`borne sim --mqtt URL`, mqtt/): the owner's broker, credentials, CA; controls.
    for arg, key in (("mqtt", "mqtt_url"), ("mqtt-user", "mqtt_user"),
                     ("mqtt-pass", "mqtt_pass"), ("mqtt-prefix", "mqtt_prefix")):
        if arg in a:
            p[key] = a[arg]
    if "mqtt-ca" in a:
        with open(a["mqtt-ca"]) as f:
            p["mqtt_ca_pem"] = f.read()
    if "mqtt-controls" in a:
        p["mqtt_controls"] = a["mqtt-controls"] == "1"
    return p


_PIECE = const(96)  # what a cap is taken in (smaller holes stay free, as in a fragmented heap)


def squeeze(self, block, cap=0):
    # Takes every free block of at least `block` bytes (as a fragmented heap would have none
    # left), then, with a `cap`, small pieces until at most `cap` bytes stay free (a heap short
    # of memory in total, not only of large blocks), and goes on taking what frees up (a
    # collection every 20 ms: what the application lets go must not leave a block or room),
    # until -1 gives them back. Chained (each holds the one before): a list's growing array
    # would need bigger and bigger blocks.
    # (The board's _ballast, _squeeze_block, _squeeze_cap and _squeeze_mod are made by the first
    # squeeze.)
    self._ballast = None
    self._squeeze_block = block
    self._squeeze_cap = cap
    gc.collect()
    held = _take(self) if block > 0 else 0
    self.telemetry("squeeze", {"held": held, "free": gc.mem_free()})
    if block > 0 and not getattr(self, "_squeezing", False):
        self._squeezing = True
        asyncio.create_task(_squeezer(self))


def _take(self):
    held = _fill(self, self._squeeze_block, 0)
    if self._squeeze_cap:
        held += _fill(self, _PIECE, self._squeeze_cap)
    return held


def _fill(self, n, cap):
    # Blocks of n bytes onto the ballast until none fits (or, with a cap, at most cap stay free).
    held = 0
    try:
        while not cap or gc.mem_free() > cap:
            self._ballast = (self._ballast, bytearray(n - 32))  # (32: the objects)
            held += n
    except MemoryError:
        pass
    return held


async def _squeezer(self):
    while self._squeeze_block > 0:
        await asyncio.sleep_ms(20)
        if self._squeeze_block > 0:
            gc.collect()
            _take(self)
    self._squeezing = False


_KEY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols: 5 bits each, no 0/o, 1/l


def make_secret(groups):
    # groups of 4 symbols: 4 groups = 80 bits of entropy
    out = []
    for i, b in enumerate(os.urandom(groups * 4)):
        if i and i % 4 == 0:
            out.append("-")
        out.append(_KEY_ALPHABET[b & 31])
    return "".join(out)


def _factory_secrets(a):
    # Per-device secrets set at provisioning. The simulation keeps them in <flash>/factory.json,
    # outside the store (the factory partition survives a factory reset), creating them on the
    # first boot; --hotspot-key / --conn-password override (and are written there).
    path = a.get("flash", ".") + "/factory.json"
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        d = {}
    want = dict(d)
    if "hotspot-key" in a:
        want["hotspot_key"] = a["hotspot-key"]
    if "conn-password" in a:
        want["conn_password"] = a["conn-password"]
    if not want.get("hotspot_key"):
        want["hotspot_key"] = make_secret(4)
    if not want.get("conn_password"):
        want["conn_password"] = make_secret(3)
    if want != d:
        with open(path, "w") as f:
            json.dump(want, f)
    return {"hotspot_key": want["hotspot_key"], "conn_password": want["conn_password"]}
