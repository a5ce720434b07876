"""borne provision: give a charger its factory identity and per-device secrets, once.

It creates, for one charger on the serial line:

  charge point id   <prefix>-<NNNNNN>: the prefix (--prefix, default "borne") and the next
                    sequence number of the register, six digits (or --id ID)
  serial            BW<YY><NNNNNN>: year of provisioning, same sequence number
  hotspot key       the WPA2 key of the claim hotspot: 16 symbols from a 32-symbol alphabet
                    (80 bits, from the operating system's CSPRNG), printed in groups of four
  conn. password    the password the owner's app logs in with: the same shape, 80 bits
  SP3 (--sp3)       an EC P-256 key and a client certificate (CN = charge point id,
                    serialNumber = serial) signed by the installer's CA (--ca DIR; create one
                    with --create-ca DIR)

and then:

 1. asks the running application to end any session, open the contactor and restart into a
    maintenance boot (as `borne deploy` does), or stops what runs with Ctrl-C;
 2. checks the device is an ESP32 with NVS and reads what it holds already;
 3. records the charger in the register (--register FILE, default ./borne-register.json, kept
    by the installer, mode 0600: it holds the secrets so labels can be printed again);
 4. writes the provisioning into NVS (namespace "borne", key "prov", JSON, at most 2048 bytes:
    what boards/esp32_wallbox/board.py reads), commits, reads it back and compares its SHA-256;
 5. prints the label (SVG and PNG, mode 0600: --label PATH without extension, .svg and .png
    added; `borne label` reprints), before the restart, so a charger that does not come back
    still has it;
 6. with installation options (--meter-model, --phases, --grid-meter-model, ...: `borne
    install --help`), sets the installation as `borne install` does (NVS key "inst", its own:
    the identity and secrets are not rewritten; options left out keep what the charger has);
 7. restarts the charger, and if an application is installed, checks it reports the new id.

The register is read and saved under an exclusive lock (<register>.lock): two provisionings at
once never choose the same id nor lose each other's charger.

Safe to repeat: run again on the same charger, it verifies what is there and says so; on a chip
the register knows (by its factory MAC) whose NVS was erased, it writes the same identity again,
so the printed label stays right. It refuses
to reuse an id of the register, to overwrite a charger provisioned by someone else (unless
--force), and a register it cannot read. Secrets never go to the terminal or a log, except
with --show-secrets.

Exit status: 0 done (or already done); 1 the device, the register or the CA failed; 2 bad
arguments (an installation value or combination refused).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borne import install
from borne.devlink import Device, DeviceError, add_line_args

ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols (5 bits), no 0/o or 1/l
SECRET_SYMBOLS = 16  # 80 bits
PROV_MAX = 2048  # what the ESP32 board reads (boards/esp32_wallbox/board.py)
NVS_NAMESPACE = "borne"
NVS_KEY = "prov"
MODEL = "borne-wallbox"
VENDOR = "borne"
_ID_RX = re.compile(r"^[A-Za-z0-9._-]{1,48}$")

Say = Callable[[str], None]


class RegisterError(Exception):
    pass


def make_secret(symbols: int = SECRET_SYMBOLS) -> str:
    """``symbols`` CSPRNG symbols of 5 bits each, in dash-separated groups of four."""
    s = "".join(secrets.choice(ALPHABET) for _ in range(symbols))
    return "-".join(s[i:i + 4] for i in range(0, len(s), 4))


def secret_bits(secret: str) -> int:
    return 5 * len(secret.replace("-", ""))


# ---- the register ----------------------------------------------------------------------------
@dataclass
class Register:
    path: Path
    devices: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> Register:
        if not path.exists():
            return cls(path, [])
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            devices = doc["devices"]
            if not isinstance(devices, list) or not all(
                isinstance(d, dict) and isinstance(d.get("cp_id"), str) for d in devices
            ):
                raise ValueError("'devices' is not a list of chargers")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RegisterError(
                f"the register {path} is corrupt ({e}): nothing was written to the charger; "
                "restore the file from your backup, or name another with --register"
            ) from None
        return cls(path, devices)

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "devices": self.devices}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @staticmethod
    @contextlib.contextmanager
    def locked(path: Path) -> Iterator[Register]:
        """The register read under an exclusive lock (fcntl.flock on ``<register>.lock``), held
        until the block ends: two provisionings at once, in two terminals, never choose the
        same id nor save over each other's charger. Re-read under the lock before every
        choice and every save; never held while the charger is spoken to."""
        lock = path.with_name(path.name + ".lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise RegisterError(f"cannot create the register's lock {lock} ({e.strerror}): "
                                "check that its folder exists and is writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield Register.load(path)
        finally:
            os.close(fd)  # releases the lock

    def find(self, cp_id: str) -> dict[str, Any] | None:
        return next((d for d in self.devices if d["cp_id"] == cp_id), None)

    def by_chip(self, unique_id: str | None) -> dict[str, Any] | None:
        if not unique_id:
            return None
        return next((d for d in self.devices if d.get("unique_id") == unique_id), None)

    def next_seq(self) -> int:
        return max((int(d.get("seq", 0)) for d in self.devices), default=0) + 1


# ---- the installer's CA and the SP3 client certificate ----------------------------------------
def create_ca(folder: Path, name: str) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / "ca.key.pem", folder / "ca.cert.pem"
    if key_path.exists() or cert_path.exists():
        raise RegisterError(f"{folder} holds a CA already: keep it (every charger you provisioned "
                            "trusts it), or name another folder")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=20 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def client_cert(ca_dir: Path, cp_id: str, serial: str) -> tuple[str, str]:
    """(key PEM, certificate PEM) for the charger, signed by the CA in ``ca_dir``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    try:
        ca_key = serialization.load_pem_private_key((ca_dir / "ca.key.pem").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.cert.pem").read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise RegisterError(f"cannot use the CA in {ca_dir} ({e}): create one with "
                            "--create-ca DIR, or name its folder with --ca") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise RegisterError(f"the CA key in {ca_dir} is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, cp_id),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, VENDOR),
        ]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=10 * 365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


# ---- the device ------------------------------------------------------------------------------
def prov_doc(entry: dict[str, Any]) -> bytes:
    """The NVS blob: the identity, the secrets, SP3 credentials if any (compact JSON)."""
    keys = ("cp_id", "serial", "model", "vendor", "hotspot_key", "conn_password",
            "security_profile", "cert_pem", "key_pem")
    doc = {k: entry[k] for k in keys if entry.get(k) not in (None, "")}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def read_device_prov(dev: Device) -> tuple[str | None, str | None]:
    """(cp_id, sha256) of the provisioning the device holds, (None, None) if none."""
    dev.step = "reading the charger's NVS"
    v = dev.eval(f"""import esp32, json, hashlib, binascii
b = bytearray({PROV_MAX})
try:
    n = esp32.NVS({NVS_NAMESPACE!r}).get_blob({NVS_KEY!r}, b)
except OSError:
    n = -1
if n < 0:
    print(repr((None, None)))
else:
    try:
        i = json.loads(bytes(b[:n])).get("cp_id")
    except Exception:
        i = "?"
    print(repr((i, binascii.hexlify(hashlib.sha256(b[:n]).digest()).decode())))""")
    if not (isinstance(v, tuple) and len(v) == 2):
        raise DeviceError(f"the charger answered {v!r} when asked for its NVS provisioning: "
                          "is this the borne esp32_wallbox board?")
    return v[0], v[1]


def write_device_prov(dev: Device, blob: bytes) -> None:
    dev.step = "writing the provisioning into NVS"
    install.set_blob(dev, NVS_KEY, blob)
    _, digest = read_device_prov(dev)
    if digest != hashlib.sha256(blob).hexdigest():
        raise DeviceError("the provisioning read back from NVS differs from what was written: "
                          "run the command again (the register keeps this charger's identity)")


# ---- the command -----------------------------------------------------------------------------
def precheck(args: argparse.Namespace) -> Register:
    """What can be refused before touching a charger: the register, the id, the CA."""
    reg = Register.load(Path(args.register))
    if args.id and not _ID_RX.match(args.id):
        raise RegisterError(f"--id {args.id!r}: a charge point id is 1-48 of A-Z a-z 0-9 . _ -")
    if args.sp3:
        if not args.ca:
            raise RegisterError("--sp3 needs the installer's CA: --ca DIR (create one with "
                                "--create-ca DIR)")
        client_cert(Path(args.ca), "check", "check")  # the CA can sign
    folder = Path(args.label).parent if args.label else Path(".")
    if not folder.is_dir():
        raise RegisterError(f"--label {args.label}: no folder {folder} to write the label in; "
                            "nothing was done")
    return reg


def provision(args: argparse.Namespace, say: Say = print) -> int:
    from borne import paths
    from borne.deploy import make_safe, wait_for_app

    path = Path(args.register)
    precheck(args)
    try:
        changes = install.from_args(args)  # bad installation values: refused before the charger
    except install.InstallError as e:
        raise install.InstallError(f"{e}: nothing was written") from None
    with Device(args.port, args.timeout) as dev:
        make_safe(dev, paths.BOARDS / "esp32_wallbox", say)
        facts = dev.probe()
        if not facts.has_nvs:
            raise DeviceError(
                f"this device runs MicroPython on {facts.platform} ({facts.machine}) without "
                "esp32.NVS: it is not an ESP32 charger; check --port"
            )
        held_id, held_hash = read_device_prov(dev)
        with Register.locked(path) as reg:
            mine = reg.by_chip(facts.unique_id) or (reg.find(held_id) if held_id else None)
            done = False
            if mine is not None and held_id and mine["cp_id"] == held_id and \
                    mine.get("state") == "done":
                entry, done = mine, True
            else:
                if held_id and not args.force:
                    raise DeviceError(
                        f"the charger is provisioned already as {held_id}"
                        f"{'' if mine else ' (not in this register)'}: nothing was changed; use "
                        "--force to replace its identity (its printed label becomes invalid)"
                    )
                entry = _new_entry(reg, args, facts.unique_id, mine)
                blob = prov_doc(entry)
                if len(blob) > PROV_MAX:
                    raise RegisterError(f"the provisioning is {len(blob)} bytes, the board reads "
                                        f"at most {PROV_MAX}: nothing was written")
                reg.save()  # reserved first: a cut cable now leaves the id kept for a re-run
        if done:
            if held_hash != hashlib.sha256(prov_doc(entry)).hexdigest():
                raise DeviceError(
                    f"the charger holds id {held_id} but not the secrets this register has for "
                    "it: someone re-provisioned it; use --force to write the register's again"
                )
            say(f"already provisioned as {held_id} (serial {entry['serial']}); NVS verified")
        else:
            write_device_prov(dev, blob)
            entry["state"] = "done"
            with Register.locked(path) as reg:
                reg.devices = [d for d in reg.devices if d["cp_id"] != entry["cp_id"]]
                reg.devices.append(entry)
                reg.save()
            say(f"provisioned {entry['cp_id']} (serial {entry['serial']}): written to NVS "
                f"{NVS_NAMESPACE}/{NVS_KEY} ({len(blob)} bytes), read back and verified; "
                f"recorded in {path}")
        # The label now, before the restart: an application that does not come back must not
        # leave the technician without it.
        _label(entry, args, path, say)
        if changes:
            try:
                install.apply(dev, changes, say)
            except install.InstallError as e:
                dev.reset()
                raise install.InstallError(
                    f"{e} ({entry['cp_id']} is provisioned; the charger restarts with its "
                    "installation unchanged: set it with `borne install`)") from None
        if args.show_secrets:
            say(f"hotspot key: {entry['hotspot_key']}  connection password: "
                f"{entry['conn_password']}")
        app = facts.boot_slot is not None or dev.frozen_version() is not None
        dev.reset()
        if app:
            try:
                ident = wait_for_app(dev, say)
            except DeviceError as e:
                raise DeviceError(
                    f"{entry['cp_id']} is provisioned (NVS verified, recorded, label written), "
                    f"but {e}; `borne provision` again verifies it once the application runs"
                ) from None
            if ident.get("cp_id") != entry["cp_id"]:
                raise DeviceError(
                    f"the application reports id {ident.get('cp_id')!r}, not {entry['cp_id']!r}:"
                    " its board does not read the NVS provisioning; deploy the esp32_wallbox "
                    "application"
                )
            say(f"the application reports {entry['cp_id']}")
        else:
            say("no application on the charger yet: install it with `borne deploy`")
    return 0


def _new_entry(reg: Register, args: argparse.Namespace, unique_id: str | None,
               mine: dict[str, Any] | None) -> dict[str, Any]:
    if mine is not None and not args.id and (
        mine.get("state") == "writing" or (unique_id and mine.get("unique_id") == unique_id)
    ):
        # An interrupted run on this charger, or this chip again after a full erase (a second
        # `borne flash`): the same identity, so its label stays right.
        return mine
    seq = reg.next_seq()
    cp_id = args.id or f"{args.prefix}-{seq:06d}"
    same = reg.find(cp_id)
    if same is not None and same.get("state") == "writing" and unique_id and \
            same.get("unique_id") == unique_id:
        return same  # this id was being written to this very chip when the run stopped
    if same is not None:
        raise RegisterError(
            f"{cp_id} is in the register {reg.path} already: a charge point id is used once; "
            "choose another --id (or leave it out for the next free one)"
        )
    now = dt.datetime.now(dt.UTC)
    serial = f"BW{now:%y}{seq:06d}"
    entry: dict[str, Any] = {
        "cp_id": cp_id, "serial": serial, "seq": seq, "model": MODEL, "vendor": VENDOR,
        "unique_id": unique_id, "provisioned_at": now.isoformat(timespec="seconds"),
        "hotspot_key": make_secret(), "conn_password": make_secret(), "state": "writing",
    }
    if args.sp3:
        entry["key_pem"], entry["cert_pem"] = client_cert(Path(args.ca), cp_id, serial)
        entry["security_profile"] = 3
    reg.devices.append(entry)
    return entry


def _label(entry: dict[str, Any], args: argparse.Namespace, register: Path, say: Say) -> None:
    from borne.label import Label, write_label

    out = Path(args.label or f"{entry['cp_id']}-label")
    try:
        svg, png = write_label(Label(entry["cp_id"], entry["hotspot_key"],
                                     entry["conn_password"]), out)
    except OSError as e:
        raise RegisterError(
            f"cannot write the label {out}.svg ({e.strerror}): {entry['cp_id']} is provisioned "
            "and recorded, the charger stays stopped until it is reset or power-cycled; print "
            f"the label with `borne label --register {register} --id {entry['cp_id']}`"
        ) from None
    say(f"label: {svg} and {png} (they carry the secrets: print them, then delete them)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "provision",
        help="give a charger its identity and per-device secrets (NVS), record it, print the "
        "label",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_line_args(p, required=False)
    p.add_argument("--register", default="borne-register.json", metavar="FILE",
                   help="the installer's register of provisioned chargers")
    p.add_argument("--prefix", default="borne", help="charge point id prefix (default borne)")
    p.add_argument("--id", help="this charge point id instead of the next in the register")
    p.add_argument("--sp3", action="store_true",
                   help="also a client key and certificate for OCPP security profile 3")
    p.add_argument("--ca", metavar="DIR", help="the installer's CA (ca.key.pem, ca.cert.pem)")
    p.add_argument("--create-ca", metavar="DIR",
                   help="create the installer's CA in DIR (EC P-256) and stop")
    p.add_argument("--ca-name", default="borne installer CA", help="the new CA's name")
    p.add_argument("--label", metavar="PATH", help="label file without extension "
                   "(default <id>-label)")
    p.add_argument("--force", action="store_true",
                   help="replace the identity of a charger provisioned before")
    p.add_argument("--show-secrets", action="store_true",
                   help="print the hotspot key and connection password on the terminal")
    install.add_install_args(p)
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    try:
        if args.create_ca:
            cert = create_ca(Path(args.create_ca), args.ca_name)
            print(f"provision: created the CA {cert} (keep ca.key.pem secret and backed up)")
            return 0
        if not args.port:
            print("provision: --port is required (the charger's serial port)", file=sys.stderr)
            return 2
        return provision(args)
    except install.InstallError as e:
        print(f"provision: {e}", file=sys.stderr)
        return 2
    except (DeviceError, RegisterError) as e:
        print(f"provision: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("provision: interrupted: the charger may be left stopped (contactor open) until "
              "it is reset or power-cycled; run the same command again: the register keeps "
              "the identity reserved for this charger and the run completes it", file=sys.stderr)
        return 1
