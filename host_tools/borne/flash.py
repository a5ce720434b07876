"""borne flash: the whole first install of a charger, in one command, over its USB serial line.

 1. esptool erase-flash: wipes everything, the filesystem and NVS (unless --no-erase);
 2. esptool write-flash at 0x1000: the MicroPython image (--firmware: stock ESP32_GENERIC
    1.28, or the image built with boards/esp32_wallbox/manifest.py);
 3. waits for MicroPython to answer on the line (esptool resets the chip after writing);
 4. installs the application as `borne deploy` does (built for the chip, copied, verified,
    /boot_slot switched);
 5. provisions the charger as `borne provision` does (identity and secrets into NVS, register,
    label; same options);
 6. restarts it and checks that the application reports the new id and the firmware version.

--dry-run prints every step and the exact esptool command lines, touching nothing.

esptool needs the ESP32's ROM bootloader: on most boards it resets into it by itself through the
USB adapter's RTS/DTR lines; if it cannot ("Failed to connect"), hold BOOT, press and release EN,
release BOOT, and run the command again.

Exit status: 0 installed and checked; 1 a step failed (the message names it and the state the
charger is left in); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from borne import provision as prov
from borne.deploy import deploy, local_version, read_keyring
from borne.devlink import Device, DeviceError, add_line_args

ESP32_CHIP = "esp32"
ESP32_FIRMWARE_OFFSET = 0x1000  # plain ESP32 (S3/C3 images start at 0x0)
ESP_IMAGE_MAGIC = 0xE9
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
    """The esptool command lines that (erase and) write a MicroPython image to an ESP32."""
    base = [*(esptool_cmd or esptool()), "--chip", ESP32_CHIP]
    if port:
        base += ["--port", port]
    base += ["--baud", str(baud)]
    if connect_attempts is not None:
        base += ["--connect-attempts", str(connect_attempts)]
    cmds = []
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


def run_esptool(cmd: list[str], step: str, erased: bool, say: Say) -> None:
    say("$ " + shlex.join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise DeviceError(f"cannot run esptool ({e}): run `make setup`") from None
    out = p.stdout + p.stderr
    for line in out.splitlines():
        say("  " + line)
    if p.returncode != 0:
        raise DeviceError(explain_esptool(out, p.returncode, step, erased))


def check_image(firmware: Path) -> None:
    try:
        head = firmware.read_bytes()[:1]
    except OSError as e:
        raise DeviceError(f"cannot read the firmware image {firmware} ({e.strerror})") from None
    if head != bytes([ESP_IMAGE_MAGIC]):
        raise DeviceError(
            f"{firmware} is not an ESP32 firmware image (no 0xE9 header): download "
            "ESP32_GENERIC-v1.28.x.bin, or build the frozen image from "
            "boards/esp32_wallbox/manifest.py"
        )


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


def flash(args: argparse.Namespace, say: Say = print) -> int:
    esp = shlex.split(args.esptool) if args.esptool else None
    cmds = flash_commands(args.firmware, args.port, args.baud, erase=not args.no_erase,
                          esptool_cmd=esp, connect_attempts=args.connect_attempts)
    check_image(args.firmware)
    prov.precheck(args)  # a bad register or CA is refused before anything is erased
    if args.ota_keys is not None:
        read_keyring(args.ota_keys)  # a missing or bad keyring: refused before the erase
    if args.port.startswith("/") and not os.path.exists(args.port):
        raise DeviceError(f"no device on that port ({args.port}): plug the charger's USB cable "
                          "in, check --port; nothing was written")
    erased = False
    for cmd in cmds:
        step = "erase-flash" if "erase-flash" in cmd else "write-flash"
        say(f"== {step}")
        run_esptool(cmd, step, erased, say)
        erased = erased or step == "erase-flash"
    wait_for_micropython(args.port, args.boot_wait, say)
    say("== application")
    deploy(args.port, args.board, no_build=args.no_build, reset=False, timeout=args.timeout,
           ota_keys=args.ota_keys, say=say)
    say("== provisioning")
    prov.provision(args, say=say)
    with Device(args.port, args.timeout) as dev:
        from borne.deploy import wait_for_app

        ident = wait_for_app(dev, say, timeout=args.boot_wait)
    want = local_version()
    if ident.get("firmware") != want:
        raise DeviceError(f"the charger reports firmware {ident.get('firmware')!r}, not {want!r}"
                          ": run `borne deploy`")
    say(f"installed: {ident.get('cp_id')} (serial {ident.get('serial')}), firmware {want}, "
        f"board {ident.get('board')}")
    return 0


def dry_run(args: argparse.Namespace) -> None:
    esp = shlex.split(args.esptool) if args.esptool else None
    cmds = flash_commands(args.firmware, args.port, args.baud, erase=not args.no_erase,
                          esptool_cmd=esp, connect_attempts=args.connect_attempts)
    steps = [shlex.join(c) for c in cmds]
    steps += [
        f"wait up to {args.boot_wait:.0f} s for MicroPython's raw REPL on {args.port}",
        f"borne deploy --port {args.port} --board {args.board} --no-reset"
        f"{' --no-build' if args.no_build else ''}"
        f"{' --ota-keys ' + str(args.ota_keys) if args.ota_keys else ''}  (build for the chip, "
        "copy to /app_a, verify SHA-256, switch /boot_slot)",
        f"borne provision --port {args.port} --register {args.register}"
        f"{' --id ' + args.id if args.id else ''}"
        f"{' --sp3 --ca ' + str(args.ca) if args.sp3 else ''}"
        "  (identity and secrets into NVS, read back, register, label; restarts the charger)",
        f"ask the application for its identity: the provisioned id and firmware {local_version()}",
    ]
    for i, s in enumerate(steps, 1):
        print(f"{i:2}. {s}")


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
    p.add_argument("--dry-run", action="store_true", help="print every step, touch nothing")
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
    if args.dry_run:
        dry_run(args)
        return 0
    try:
        return flash(args)
    except (DeviceError, prov.RegisterError) as e:
        print(f"flash: {e}", file=sys.stderr)
        return 1
