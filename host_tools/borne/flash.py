"""borne flash: the whole first install of a charger, in one command, over its USB serial line.

 0. checks the image (an ESP32 image; its MicroPython version, from the ESP-IDF application
    description, must be 1.28 unless --any-micropython; unreadable: a warning, and the
    charger's own version is checked after writing), the register, CA and keyring; then
    esptool flash-id: a plain ESP32 (esptool refuses another chip) whose flash holds the image
    (the size its header names and its partition table's end: an 8 MiB image on a 4 MiB
    module would never boot), else refused with nothing written; so is a stock image whose
    heap cannot hold the .mpy application (no SPIRAM support: see step 4);
 1. esptool erase-flash: wipes everything, the filesystem and NVS (unless --no-erase);
 2. esptool write-flash at 0x1000: the MicroPython image (--firmware: stock ESP32_GENERIC
    1.28, or the image built with boards/esp32_wallbox/manifest.py); esptool's output is
    shown as it comes;
 3. waits for MicroPython to answer on the line (esptool resets the chip after writing), checks
    its version, and asks it whether the image carries the application frozen in (its
    `version` module outside the filesystem);
 4. frozen image: writes main.py and slotchoice.py only (no /boot_slot: the frozen application
    runs, no slot shadows it). Stock image: installs the application as `borne deploy` does
    (built for the chip, copied, verified, /boot_slot switched), which refuses a heap too small
    for it (a plain ESP32: flash the frozen image; --allow-small-heap overrides);
 5. provisions the charger as `borne provision` does (identity and secrets into NVS, register,
    label; same options);
 6. restarts it and checks that the application reports the new id and the firmware version.

--dry-run checks the image and the provisioning's files, then prints every step and the exact
command lines, touching nothing.

esptool needs the ESP32's ROM bootloader: on most boards it resets into it by itself through the
USB adapter's RTS/DTR lines; if it cannot ("Failed to connect"), hold BOOT, press and release EN,
release BOOT, and run the command again.

Exit status: 0 installed and checked; 1 a step failed (the message names it and the state the
charger is left in); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from borne import paths
from borne import provision as prov
from borne.build import MPY_CROSS_VERSION
from borne.deploy import (
    add_check_args,
    check_micropython,
    deploy,
    install_keys,
    local_version,
    make_safe,
    read_keyring,
    use_frozen,
    wait_for_app,
)
from borne.devlink import Device, DeviceError, add_line_args

ESP32_CHIP = "esp32"
ESP32_FIRMWARE_OFFSET = 0x1000  # plain ESP32 (S3/C3 images start at 0x0)
ESP_IMAGE_MAGIC = 0xE9
PARTITION_TABLE = 0x8000  # flash offset of the partition table of a MicroPython ESP32 image
APP_DESC_MAGIC = 0xABCD5432  # esp_app_desc_t.magic_word
# In an image that carries the application: BORNE_WALLBOX's board name, a frozen board module.
FROZEN_MARKS = (b"borne wallbox", b"boardonce.py")
DEFAULT_BAUD = 460800
BOOT_WAIT_S = 30.0

Say = Callable[[str], None]

# esptool's words -> (cause, what to do); checked in order against its output.
_ESPTOOL_CAUSES = (
    ("exclusively lock", "the port is in use by another program (a monitor?): close it"),
    ("No such file or directory", "no device on that port: plug the charger's USB cable in, "
     "check --port"),
    ("port is busy", "the port is in use by another program (a monitor?) or is gone: close "
     "the other program, check the cable and --port"),
    ("Permission denied", "no permission to open the port: add your user to the 'dialout' group"),
    ("Wrong --chip argument", "this is not a plain ESP32 (see esptool's message): wrong board"),
    ("This chip is", "this is not a plain ESP32 (see esptool's message): wrong board"),
    ("Failed to connect", "the ESP32 did not answer in its bootloader: hold BOOT, press and "
     "release EN, release BOOT, then run again (or check the USB cable)"),
    ("Invalid head of packet", "the ESP32 did not answer in its bootloader: hold BOOT, press "
     "and release EN, release BOOT, then run again (or check the USB cable)"),
    ("Timed out", "the ESP32 stopped answering: check the USB cable and power, then run again"),
)


def esptool() -> list[str]:
    from borne.deploy import tool

    return [tool("esptool")]


def flash_commands(firmware: Path, port: str | None = None, baud: int = DEFAULT_BAUD,
                   erase: bool = True, esptool_cmd: list[str] | None = None,
                   connect_attempts: int | None = None) -> list[list[str]]:
    """The esptool command lines that check the chip and its flash size (flash-id), (erase and)
    write a MicroPython image to an ESP32."""
    base = [*(esptool_cmd or esptool()), "--chip", ESP32_CHIP]
    if port:
        base += ["--port", port]
    base += ["--baud", str(baud)]
    if connect_attempts is not None:
        base += ["--connect-attempts", str(connect_attempts)]
    cmds = [[*base, "flash-id"]]
    if erase:
        cmds.append([*base, "erase-flash"])
    cmds.append([*base, "write-flash", "-z", hex(ESP32_FIRMWARE_OFFSET), str(firmware)])
    return cmds


def explain_esptool(output: str, rc: int, step: str, erased: bool) -> str:
    cause = next((why for words, why in _ESPTOOL_CAUSES if words in output), None)
    if cause is None:
        last = [ln.strip() for ln in output.splitlines() if "error" in ln.lower()]
        cause = (last[-1] if last else f"esptool exited with {rc}") + ": see esptool's output"
    state = ("the flash is ERASED: the charger runs nothing until `borne flash` completes"
             if erased else "nothing was written: the charger is as it was")
    return f"esptool {step} failed: {cause}; {state}"


def run_esptool(cmd: list[str], step: str, erased: bool, say: Say) -> str:
    """Run esptool, showing its output; that output, or DeviceError naming the cause."""
    say("$ " + shlex.join(cmd))
    out: list[str] = []
    try:
        # Shown line by line as esptool prints them (its progress lines end in "\r": universal
        # newlines make each one a line): a long write is seen moving.
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace") as p:
            assert p.stdout is not None  # stdout=PIPE
            for line in p.stdout:
                line = line.rstrip("\n")
                if line:
                    out.append(line)
                    say("  " + line)
            rc = p.wait()
    except OSError as e:
        raise DeviceError(f"cannot run esptool ({e}): run `make setup`") from None
    if rc != 0:
        raise DeviceError(explain_esptool("\n".join(out), rc, step, erased))
    return "\n".join(out)


def partitions(data: bytes) -> list[tuple[int, int, int, int]]:
    """(type, subtype, flash offset, size) of each entry in the partition table of an ESP32 image
    written at 0x1000 (the table at 0x8000; 32-byte entries of magic 0xAA50, type, subtype,
    offset, size, ...). [] without a table."""
    out = []
    table = PARTITION_TABLE - ESP32_FIRMWARE_OFFSET
    for at in range(table, min(len(data), table + 0xC00), 32):
        entry = data[at:at + 32]
        if entry[:2] != b"\xaa\x50":  # the entries' magic; the table ends at the first other
            break
        out.append((entry[2], entry[3], int.from_bytes(entry[4:8], "little"),
                    int.from_bytes(entry[8:12], "little")))
    return out


def app_entries(data: bytes) -> list[tuple[int, int]]:
    """(subtype, offset in the image) of each app partition (type 0). Subtype 0 is a factory
    app, 0x10 + n is ota_n."""
    return [(sub, off - ESP32_FIRMWARE_OFFSET) for kind, sub, off, _ in partitions(data)
            if kind == 0]


def filesystem_bytes(data: bytes) -> int | None:
    """The filesystem's size on a module of the flash size the image's header names (its fourth
    byte's high nibble: 1 MiB << n): its "vfs" partition, or (MicroPython's tables leave it out)
    the flash past the last partition, which MicroPython's main.c registers as "vfs" (up to
    the chip's physical size: a larger module gives more). None without a table or a size."""
    parts = partitions(data)
    code = data[3] >> 4 if len(data) > 3 else 0xF
    if not parts or code > 4:
        return None
    data_fat = [size for kind, sub, _, size in parts if kind == 1 and sub == 0x81]
    if data_fat:
        return max(data_fat)
    return max(0, (1 << (20 + code)) - max(off + size for _, _, off, size in parts))


def image_version(data: bytes) -> str | None:
    """The version string of a MicroPython ESP32 image (written at 0x1000: the bootloader, the
    partition table at 0x8000, the application), from the ESP-IDF application description of
    its first app partition: after the 24-byte image header and the 8-byte segment header,
    esp_app_desc_t = magic 0xABCD5432, secure_version, 8 reserved bytes, version[32]. An
    application image alone (its description at 0) is read too. None if there is none."""
    starts = [at for _, at in app_entries(data)]
    for start in (*starts, 0):
        desc = data[start + 32:start + 80]
        if len(desc) == 48 and int.from_bytes(desc[:4], "little") == APP_DESC_MAGIC:
            return desc[16:48].split(b"\0")[0].decode("ascii", errors="replace")
    return None


def image_flash_bytes(data: bytes) -> int:
    """The flash an image needs: the size its header names (the bootloader refuses to start on
    a smaller chip: "Detected size smaller than the size in the binary image header") and the
    end of its partition table's last partition. 0 when it names neither."""
    code = data[3] >> 4 if len(data) > 3 else 0xF
    header = (1 << (20 + code)) if code <= 4 else 0  # ESP32: 1, 2, 4, 8, 16 MiB
    return max([header, *(off + size for _, _, off, size in partitions(data))])


def detected_flash_bytes(esptool_output: str) -> int | None:
    """The chip's flash size from esptool flash-id's "Detected flash size: 4MB"; None when
    esptool could not tell ("Unknown") or said nothing."""
    m = re.search(r"Detected flash size:\s*(\d+)\s*([KM])B", esptool_output)
    return int(m[1]) << (10 if m[2] == "K" else 20) if m else None


def check_flash_size(firmware: Path, esptool_output: str, say: Say) -> None:
    """Refuse, before anything is erased, an image that needs more flash than the chip has."""
    need = image_flash_bytes(firmware.read_bytes())
    have = detected_flash_bytes(esptool_output)
    if have is None:
        say("warning: esptool did not say the module's flash size: not checked against the "
            f"image's {need >> 20} MiB")
    elif need > have:
        raise DeviceError(
            f"{firmware.name} is laid out for {need >> 20} MiB of flash (its header and "
            f"partition table), this module has {have >> 20} MiB: it would never boot; flash "
            f"an image for {have >> 20} MiB (ESP32_GENERIC-SPIRAM-v{MPY_CROSS_VERSION}.x.bin) "
            "or fit the module the board needs (boards/micropython/BORNE_WALLBOX: 8 MiB); "
            "nothing was written: the charger is as it was")


def check_heap_fits(data: bytes, name: str, say: Say, allow_small_heap: bool) -> None:
    """Refuse, before anything is erased, a stock image whose heap cannot hold the .mpy
    application: deploy's heap check would refuse it only once the flash is erased and written.
    The image carries the application when it names borne's board (BORNE_WALLBOX's board name,
    or a board module among its frozen ones); a stock image built without SPIRAM support (no
    "SPIRAM" anywhere: MicroPython names such builds "... with SPIRAM") gives ~110-160 KiB of
    heap on any module, under the budget. A SPIRAM build needs PSRAM on the module, which
    esptool cannot see: its heap is checked once MicroPython runs."""
    if FROZEN_MARKS[0] in data or FROZEN_MARKS[1] in data or allow_small_heap:
        return
    if b"SPIRAM" not in data:
        raise DeviceError(
            f"{name} is a MicroPython image without the application frozen in and without "
            "SPIRAM support: its heap cannot hold the application as .mpy files (`borne "
            "deploy` would refuse it after the erase); flash the frozen image "
            "(boards/micropython/BORNE_WALLBOX), or ESP32_GENERIC-SPIRAM on a module with "
            "PSRAM, or pass --allow-small-heap; nothing was written: the charger is as it was")
    say(f"note: {name} is a stock SPIRAM image: the heap is checked once it runs; a module "
        "without PSRAM (ESP32-WROOM) is refused then, with the flash already erased: flash "
        "the frozen image (boards/micropython/BORNE_WALLBOX) on one")


def check_image(firmware: Path, say: Say, any_micropython: bool = False,
                allow_small_heap: bool = False) -> None:
    """An ESP32 image, of the MicroPython this firmware targets when the image says which."""
    try:
        data = firmware.read_bytes()
    except OSError as e:
        raise DeviceError(f"cannot read the firmware image {firmware} ({e.strerror})") from None
    if data[:1] != bytes([ESP_IMAGE_MAGIC]):
        raise DeviceError(
            f"{firmware} is not an ESP32 firmware image (no 0xE9 header): download "
            f"ESP32_GENERIC-SPIRAM-v{MPY_CROSS_VERSION}.x.bin, or build the frozen image from "
            "boards/esp32_wallbox/manifest.py"
        )
    version = image_version(data)
    m = re.search(r"(\d+)\.(\d+)", version or "")
    if m is None:
        say(f"warning: {firmware.name} does not say its MicroPython version (no ESP-IDF "
            "application description with one): the charger's is checked after writing")
    elif f"{m[1]}.{m[2]}" != MPY_CROSS_VERSION:
        if not any_micropython:
            raise DeviceError(
                f"{firmware} is MicroPython {version}, this firmware targets "
                f"{MPY_CROSS_VERSION}: download ESP32_GENERIC-SPIRAM-v{MPY_CROSS_VERSION}.x.bin "
                "(or build the frozen image against it), or pass --any-micropython; nothing was "
                "written"
            )
        say(f"warning: {firmware.name} is MicroPython {version}, not {MPY_CROSS_VERSION} "
            "(--any-micropython)")
    check_heap_fits(data, firmware.name, say, allow_small_heap)
    apps = app_entries(data)
    if apps and not any(sub == 0x10 for sub, _ in apps):
        # (stock ESP32_GENERIC's table: one factory app) application bundles still install
        say(f"warning: {firmware.name}'s partition table has no OTA app partitions (ota_0, "
            "ota_1): the charger will refuse interpreter updates (image bundles, `borne "
            "release --image`), which a plain ESP32 running the frozen image needs; build "
            "that image with borne's board definition, boards/micropython/BORNE_WALLBOX")
        return
    fs = filesystem_bytes(data)
    slot = max((size for kind, sub, _, size in partitions(data) if kind == 0 and sub == 0x10),
               default=0)
    if fs is not None and slot and fs < slot:
        # (ESP32_GENERIC-OTA on 4 MiB: 960 KiB left for the filesystem)
        say(f"warning: on the {1 << (data[3] >> 4)} MiB module its header names, "
            f"{firmware.name}'s layout leaves {fs // 1024} KiB of filesystem, less than its "
            f"{slot // 1024} KiB app partition: an interpreter update (an image bundle) waits "
            "on the filesystem before it is written, so none would fit; build the image with "
            "borne's board definition, boards/micropython/BORNE_WALLBOX (8 MiB flash)")


def wait_for_micropython(port: str, timeout: float, say: Say) -> None:
    say("waiting for MicroPython to answer on the line")
    deadline = time.monotonic() + timeout
    last: DeviceError | None = None
    while time.monotonic() < deadline:
        try:
            with Device(port, timeout=2) as dev:
                dev.raw()
                dev.probe()
                return
        except DeviceError as e:
            last = e
            time.sleep(0.5)
    raise DeviceError(f"MicroPython did not answer within {timeout:.0f} s after flashing "
                      f"({last}): power-cycle the charger and run `borne flash --no-erase` "
                      "again")


class Progress:
    """Where a flash stands, for the message of an interruption (Ctrl-C)."""

    state = "nothing was written: the charger is as it was"
    # Where a failure after esptool leaves the charger (a refusal's own words do not say it:
    # deploy's heap check says "nothing was copied"); None once the provisioning is done.
    failed: str | None = None


def flash(args: argparse.Namespace, say: Say = print, progress: Progress | None = None) -> int:
    progress = progress or Progress()
    esp = shlex.split(args.esptool) if args.esptool else None
    cmds = flash_commands(args.firmware, args.port, args.baud, erase=not args.no_erase,
                          esptool_cmd=esp, connect_attempts=args.connect_attempts)
    check_image(args.firmware, say, args.any_micropython, args.allow_small_heap)
    prov.precheck(args)  # a bad register or CA is refused before anything is erased
    if args.ota_keys is not None:
        read_keyring(args.ota_keys)  # a missing or bad keyring: refused before the erase
    if args.port.startswith("/") and not os.path.exists(args.port):
        raise DeviceError(f"no device on that port ({args.port}): plug the charger's USB cable "
                          "in, check --port; nothing was written")
    erased = False
    for cmd in cmds:
        step = next(s for s in ("flash-id", "erase-flash", "write-flash") if s in cmd)
        say(f"== {step}")
        if step == "flash-id":  # the chip and its flash, before anything is erased
            check_flash_size(args.firmware, run_esptool(cmd, step, erased, say), say)
            continue
        progress.state = ("the flash may be ERASED or half written: the charger runs nothing "
                          "until `borne flash` completes; run it again")
        run_esptool(cmd, step, erased, say)
        erased = erased or step == "erase-flash"
    progress.state = ("MicroPython is written but the installation is incomplete: run "
                      "`borne flash --no-erase` again (the register keeps the charger's identity)")
    progress.failed = (("the charger's flash was ERASED: it holds MicroPython only, no "
                        "application and no identity" if erased else "the charger holds the new "
                        "MicroPython, no application installed") + "; fix the cause, then run "
                       "`borne flash` again (the register keeps the charger's identity)")
    wait_for_micropython(args.port, args.boot_wait, say)
    say("== application")
    with Device(args.port, args.timeout) as dev:
        make_safe(dev, paths.BOARDS / args.board, say)
        facts = dev.probe()
        note = check_micropython(facts, args.any_micropython)
        if note:
            say(note)
        frozen = dev.frozen_version()
        if frozen is not None:
            say(f"the image carries the application frozen in (version {frozen}): no .mpy "
                "application is installed, no slot shadows it")
            use_frozen(dev, say)
            if args.ota_keys is not None:
                install_keys(dev, args.ota_keys, say)
    if frozen is None:
        deploy(args.port, args.board, no_build=args.no_build, reset=False, timeout=args.timeout,
               ota_keys=args.ota_keys, any_micropython=args.any_micropython,
               allow_small_heap=args.allow_small_heap, say=say)
    say("== provisioning")
    progress.failed = ("the application is installed, the charger not provisioned: fix the "
                       "cause, then run `borne flash --no-erase` again")
    prov.provision(args, say=say)
    progress.failed = None
    with Device(args.port, args.timeout) as dev:
        ident = wait_for_app(dev, say, timeout=args.boot_wait)
    want = frozen or local_version()
    if ident.get("firmware") != want:
        fix = "a slot shadows the frozen application" if frozen else "run `borne deploy`"
        raise DeviceError(f"the charger reports firmware {ident.get('firmware')!r}, not "
                          f"{want!r}: {fix}")
    if frozen and frozen != local_version():
        say(f"note: the image's application is version {frozen}, this checkout's "
            f"{local_version()}")
    say(f"installed: {ident.get('cp_id')} (serial {ident.get('serial')}), firmware {want}"
        f"{' (frozen)' if frozen else ''}, board {ident.get('board')}")
    return 0


def dry_run(args: argparse.Namespace) -> None:
    """The checks a flash makes before touching the charger, then its steps."""
    check_image(args.firmware, print, args.any_micropython, args.allow_small_heap)
    prov.precheck(args)
    if args.ota_keys is not None:
        read_keyring(args.ota_keys)
    esp = shlex.split(args.esptool) if args.esptool else None
    cmds = flash_commands(args.firmware, args.port, args.baud, erase=not args.no_erase,
                          esptool_cmd=esp, connect_attempts=args.connect_attempts)
    deploy_cmd = ["borne", "deploy", "--port", args.port, "--board", args.board, "--no-reset"]
    deploy_cmd += ["--no-build"] if args.no_build else []
    deploy_cmd += ["--ota-keys", str(args.ota_keys)] if args.ota_keys else []
    deploy_cmd += ["--any-micropython"] if args.any_micropython else []
    deploy_cmd += ["--allow-small-heap"] if args.allow_small_heap else []
    prov_cmd = ["borne", "provision", "--port", args.port, "--register", str(args.register)]
    prov_cmd += ["--id", args.id] if args.id else []
    prov_cmd += ["--sp3", "--ca", str(args.ca)] if args.sp3 else []
    prov_cmd += ["--label", str(args.label)] if args.label else []
    steps = [shlex.join(c) for c in cmds]
    steps[0] += (f"  (a plain ESP32 with the {image_flash_bytes(args.firmware.read_bytes()) >> 20}"
                 " MiB of flash the image needs, else nothing is written)")
    steps += [
        f"wait up to {args.boot_wait:.0f} s for MicroPython's raw REPL on {shlex.quote(args.port)}"
        f"; check it is MicroPython {MPY_CROSS_VERSION}; ask whether the image carries the "
        "application frozen in",
        "frozen image: write /main.py and /slotchoice.py, remove any /boot_slot"
        f"{', install the keyring' if args.ota_keys else ''}; otherwise: "
        f"{shlex.join(deploy_cmd)}  (heap checked; build for the chip, copy to /app_a, verify "
        "SHA-256, switch /boot_slot)",
        f"{shlex.join(prov_cmd)}  (identity and secrets into NVS, read back, register, label; "
        "restarts the charger)",
        "ask the application for its identity: the provisioned id and firmware "
        f"{local_version()} (or the frozen image's version)",
    ]
    for i, step in enumerate(steps, 1):
        print(f"{i:2}. {step}")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "flash",
        help="first install of a charger: MicroPython (esptool), the application, the "
        "provisioning, then a check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_line_args(p)
    p.add_argument("--firmware", required=True, type=Path, metavar="FILE",
                   help="the MicroPython ESP32 image (.bin)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="baud rate while writing")
    p.add_argument("--no-erase", action="store_true",
                   help="keep the filesystem and NVS; write the image only")
    p.add_argument("--board", default="esp32_wallbox", help="board folder under boards/")
    p.add_argument("--no-build", action="store_true", help="copy the existing build as it is")
    p.add_argument("--ota-keys", type=Path, metavar="FILE",
                   help="the firmware-update keyring to install (`borne keygen`'s keys.json)")
    p.add_argument("--esptool", metavar="CMD", help="the esptool to run (default: this venv's)")
    p.add_argument("--connect-attempts", type=int, metavar="N",
                   help="esptool's attempts to reach the bootloader (default esptool's, 7)")
    p.add_argument("--boot-wait", type=float, default=BOOT_WAIT_S, metavar="S",
                   help="how long to wait for MicroPython, then the application, to answer")
    add_check_args(p)
    p.add_argument("--dry-run", action="store_true",
                   help="check the image and the files, print every step, touch nothing")
    g = p.add_argument_group("provisioning (as `borne provision`)")
    g.add_argument("--register", default="borne-register.json", metavar="FILE")
    g.add_argument("--prefix", default="borne")
    g.add_argument("--id")
    g.add_argument("--sp3", action="store_true")
    g.add_argument("--ca", metavar="DIR")
    g.add_argument("--label", metavar="PATH")
    g.add_argument("--force", action="store_true")
    g.add_argument("--show-secrets", action="store_true")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    progress = Progress()
    try:
        if args.dry_run:
            dry_run(args)
            return 0
        return flash(args, progress=progress)
    except (DeviceError, prov.RegisterError) as e:
        state = progress.failed
        print(f"flash: {e}{'; ' + state if state else ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"flash: interrupted: {progress.state}", file=sys.stderr)
        return 1
