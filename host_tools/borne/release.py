"""`borne keygen` and `borne release`: signed firmware update bundles.

``borne keygen --out DIR`` makes an RSA-2048 signing key pair: ``DIR/<id>.key`` (private, PKCS#8
PEM, mode 0600: keep it offline) and ``DIR/keys.json`` (the public keyring a charger trusts, this
key added to any already there). The key id is the first 8 bytes of SHA-256 of the modulus, hex.

``borne release --board B --key DIR/<id>.key`` builds the application with the pinned mpy-cross
(``borne build``), writes the manifest and signs it (RSA PKCS#1 v1.5, SHA-256), into one file
``build/B/borne-<version>-B.fw``. Signing is not optional: there is no unsigned bundle.

Bundle layout (all integers big-endian), read by firmware/ota/bundle.py as a stream::

    b"BORNEFW1"  key id (8 bytes)  manifest length (u32)  manifest (JSON, UTF-8)
    signature length (u16)  signature (over the manifest bytes)
    the files' contents, one after the other, in the manifest's order

Manifest: ``{"format": 1, "version": "0.2.0", "micropython": "1.28", "board": "esp32_wallbox",
"created": ISO time, "files": [[slot path, size, sha256 hex], ...], "keys"?: keyring}``. The
signature covers the manifest, the manifest covers every file by size and hash, so the bundle is
checked file by file against one signature. ``keys`` (optional, ``--rotate KEYRING``) asks the
charger to replace its trusted keyring (see firmware/ota/keys.py for the rule). ``--image
firmware.bin`` makes an interpreter bundle instead (``"kind": "image"``, the one file
``firmware.bin``: MicroPython with the application frozen in it), written by the charger into
its next OTA app partition (firmware/ota/image.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import struct
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from borne import paths
from borne.build import MPY_CROSS_VERSION, BuildError, compile_file, compile_tree, mpy_cross

MAGIC = b"BORNEFW1"
# A release's version: written into version.py's source and into the bundle's file name, so
# digits and dots, then an optional -/+ suffix of letters, digits and dots ("0.2.0-rc.1").
VERSION_RX = re.compile(r"^[0-9]+(\.[0-9]+){1,3}([-+][0-9A-Za-z.]{1,32})?$")
FORMAT = 1


def key_id(pub: rsa.RSAPublicKey) -> str:
    n = pub.public_numbers().n
    return hashlib.sha256(n.to_bytes(256, "big")).hexdigest()[:16]


def public_entry(pub: rsa.RSAPublicKey) -> dict[str, Any]:
    nums = pub.public_numbers()
    return {"id": key_id(pub), "n": f"{nums.n:x}", "e": nums.e}


def generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise ValueError(f"{path}: the key is password-protected; `borne release` signs with "
                         "an unencrypted key (as `borne keygen` writes it: keep it offline)"
                         ) from None
    except ValueError as e:
        raise ValueError(f"{path}: not a PEM private key ({e})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != 2048:
        raise ValueError(f"{path}: not an RSA-2048 private key")
    return key


def keyring(keys: Sequence[rsa.RSAPublicKey]) -> dict[str, Any]:
    return {"keys": [public_entry(k) for k in keys]}


def pack(files: Sequence[tuple[str, bytes]], key: rsa.RSAPrivateKey, *, version: str,
         board: str, micropython: str = MPY_CROSS_VERSION,
         extra: dict[str, Any] | None = None) -> bytes:
    """A signed bundle of (slot path, content) files. `extra` adds or overrides manifest fields
    (tests use it to make bad bundles that are still properly signed)."""
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": version,
        "micropython": micropython,
        "board": board,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": [[p, len(b), hashlib.sha256(b).hexdigest()] for p, b in files],
    }
    manifest.update(extra or {})
    body = json.dumps(manifest, separators=(",", ":")).encode()
    sig = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    head = MAGIC + bytes.fromhex(key_id(key.public_key()))
    return (head + struct.pack(">I", len(body)) + body + struct.pack(">H", len(sig)) + sig
            + b"".join(b for _, b in files))


def slot_files(board: str, version: str | None, out: Path) -> tuple[list[tuple[str, bytes]], str]:
    """`borne build` for the board into `out`; -> (slot files, version). With `version`, the
    slot's version module says so (a release names its version)."""
    slot = compile_tree(board, out=out)
    if version is None:
        ns: dict[str, Any] = {}
        exec((paths.FIRMWARE / "version.py").read_text(), ns)
        version = str(ns["VERSION"])
    else:
        src = out / "version.py"
        src.write_text(f'VERSION = "{version}"\n')
        compile_file(mpy_cross(), src, slot / "version.mpy", "version")
    files = sorted(p for p in slot.rglob("*") if p.is_file())
    return [(p.relative_to(slot).as_posix(), p.read_bytes()) for p in files], version


def release(board: str, key: rsa.RSAPrivateKey, version: str | None = None,
            out: Path | None = None, rotate: dict[str, Any] | None = None,
            image: Path | None = None, micropython: str = MPY_CROSS_VERSION) -> Path:
    if version is not None and not VERSION_RX.match(version):
        raise ValueError(f"--version {version!r}: a version is digits and dots with an optional "
                         "-/+ suffix of letters, digits and dots (e.g. 0.2.0, 0.2.0-rc.1)")
    extra: dict[str, Any] = {"keys": rotate} if rotate else {}
    if image is not None:
        # MicroPython itself with the application frozen in it: one file, an ESP32 app image.
        data = image.read_bytes()
        if data[:1] != b"\xe9":
            raise ValueError(f"{image}: not an ESP32 app image (no 0xE9 magic byte)")
        if version is None:
            raise ValueError("an image release needs --version")
        files = [("firmware.bin", data)]
        extra["kind"] = "image"
    else:
        with tempfile.TemporaryDirectory(prefix="borne-release-") as tmp:
            files, version = slot_files(board, version, Path(tmp))
    data = pack(files, key, version=version, board=board, micropython=micropython,
                extra=extra or None)
    dest = out or paths.BUILD / board / f"borne-{version}-{board}.fw"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("keygen", help="make an RSA-2048 firmware signing key pair",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="keys", help="folder for <id>.key and keys.json")
    p.set_defaults(func=_cmd_keygen)
    p = sub.add_parser("release", help="build and sign a firmware update bundle",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", default="esp32_wallbox")
    p.add_argument("--key", required=True, help="the signing key (from borne keygen)")
    p.add_argument("--version", help="the release's version (default: firmware/version.py)")
    p.add_argument("--out", help="bundle file (default build/<board>/borne-<version>-<board>.fw)")
    p.add_argument("--rotate", help="a keyring (keys.json) the charger should trust from now on")
    p.add_argument("--image", help="release a whole firmware image (MicroPython with the app "
                   "frozen, built from boards/<board>/manifest.py) instead of the app slot")
    p.add_argument("--micropython", default=MPY_CROSS_VERSION,
                   help="the MicroPython version the image runs (with --image)")
    p.set_defaults(func=_cmd_release)


def _cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = generate()
    kid = key_id(key.public_key())
    priv = out / f"{kid}.key"
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    ring_path = out / "keys.json"
    ring = json.loads(ring_path.read_text()) if ring_path.exists() else {"keys": []}
    ring["keys"].append(public_entry(key.public_key()))
    ring_path.write_text(json.dumps(ring, indent=1) + "\n")
    print(f"keygen: key {kid}: private {priv} (keep it offline), public keyring {ring_path}")
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    try:
        key = load_key(Path(args.key))
        rotate = json.loads(Path(args.rotate).read_text()) if args.rotate else None
        dest = release(args.board, key, args.version, Path(args.out) if args.out else None,
                       rotate, Path(args.image) if args.image else None, args.micropython)
    except (BuildError, ValueError, OSError) as e:
        print(f"release: {e}", file=sys.stderr)
        return 1
    print(f"release: {dest} ({dest.stat().st_size} bytes, key {key_id(key.public_key())})")
    return 0
