"""The simulator's control protocol (DESIGN.md section 4), driven over its real socket, and
`borne sim`'s refusal of bad arguments before anything starts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from borne.csms import Csms
from borne.sim.simulator import Simulator
from simctl import Control

STATE_KEYS = {"cp", "relay", "pwm_duty", "led", "ocpp", "energy_wh", "power_w", "session"}


async def test_state_has_every_documented_field(control: Control, csms: Csms) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    st = await control.wait_state(lambda s: s["ocpp"]["connected"], "the charger online")
    assert st["ok"] is True
    assert set(st) >= STATE_KEYS
    assert st["cp"] == "A" and st["relay"] is False and st["pwm_duty"] == 100
    assert set(st["led"]) == {"color", "pattern", "brightness"}
    assert set(st["ocpp"]) == {"connected", "status", "queued"}
    assert st["ocpp"]["status"] == "Available"
    assert st["energy_wh"] == 0 and st["power_w"] == 0


async def test_plug_and_unplug_change_pilot_and_ocpp_status(control: Control, csms: Csms) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    assert (await control("plug"))["ok"]
    await control.wait_state(lambda s: s["cp"] == "B", "pilot state B")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    assert (await control("unplug"))["ok"]
    n = len(csms.frames)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)
    st = await control.wait_state(lambda s: s["cp"] == "A", "pilot state A")
    assert st["relay"] is False


async def test_relay_stays_open_without_a_session(control: Control, csms: Csms) -> None:
    # The EV asking for energy is not enough: no authorization, no relay.
    await control("plug")
    await control("charge")
    await control("load", amps=16)
    st = await control.wait_state(lambda s: s["cp"] == "C", "pilot state C")
    assert st["relay"] is False and st["power_w"] == 0


async def test_bad_requests_get_clear_errors_and_the_socket_survives(control: Control) -> None:
    bad = [
        (b"this is not json\n", "not valid JSON"),
        (b"[1, 2]\n", '"cmd"'),
        (b'{"cmd": "explode"}\n', "unknown command"),
        (b'{"cmd": "load"}\n', "amps"),
        (b'{"cmd": "load", "amps": -3}\n', "amps"),
        (b'{"cmd": "load", "amps": true}\n', "amps"),
        (b'{"cmd": "fault", "kind": "gremlins"}\n', "kind"),
        (b'{"cmd": "net", "up": "yes"}\n', "up"),
        (b'{"cmd": "tap", "uid": "not hex!"}\n', "uid"),
    ]
    for line, why in bad:
        reply = await control.raw(line)
        assert reply["ok"] is False, line
        assert why in reply["error"], (line, reply)
    assert (await control("state"))["ok"] is True


async def test_faults_are_injected_and_cleared(control: Control) -> None:
    for kind in ("rcd", "weld", "diode", "pilot_short"):
        assert (await control("fault", kind=kind))["ok"]
    st = await control("state")
    assert st["cp"] == "E"
    assert (await control("fault", kind="clear"))["ok"]
    st = await control.wait_state(lambda s: s["cp"] == "A", "faults cleared")
    assert st["relay"] is False


async def test_power_cut_and_power_on(control: Control, csms: Csms, sim: Simulator) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    assert (await control("power_cut"))["ok"]
    st = await control("state")
    assert st["ocpp"]["connected"] is False and st["led"]["pattern"] == "off"
    assert (await control("power_on"))["ok"]
    await csms.wait_for(lambda: len(csms.calls("BootNotification")) == 2, 20, "a second boot")
    await control.wait_state(lambda s: s["ocpp"]["connected"], "online after power on")


async def test_network_cut_and_restore(control: Control, csms: Csms) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    assert (await control("net", up=False))["ok"]
    assert (await control("state"))["net"] is False
    connects = csms.connects
    assert (await control("net", up=True))["ok"]
    await csms.wait_for(lambda: csms.connects > connects, 30, "a reconnect after the cut")
    await control.wait_state(lambda s: s["ocpp"]["connected"], "online again")
    assert len(csms.calls("BootNotification")) == 1, "a reconnect is not a reboot"


def _borne_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "borne.cli", "sim", "--no-screen", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )


def test_bad_csms_url_is_refused_before_start(tmp_path: Path) -> None:
    for url in ("http://example.invalid/ocpp", "ws://", "ws://host:99999/x", "nonsense"):
        r = _borne_sim("--csms", url, "--flash", str(tmp_path / "f"))
        assert r.returncode == 2, (url, r.stdout, r.stderr)
        assert "--csms" in r.stderr and "agent started" not in r.stdout


def test_bad_flash_dir_is_refused_before_start(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    r = _borne_sim("--flash", str(not_a_dir))
    assert r.returncode == 2 and "--flash" in r.stderr and "not a directory" in r.stderr


def test_csms_on_a_taken_port_says_so_in_one_line() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "borne.cli", "csms", "--port", str(port)],
                           capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 1, r.stderr
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "in use" in err


def test_bad_sim_options_are_refused_before_start(tmp_path: Path) -> None:
    # Each would otherwise start an agent that fails at every boot, or a hotspot no one sees.
    flash = str(tmp_path / "f")
    bad_env = tmp_path / "wifi.json"
    bad_env.write_text('{"networks": [{"ssid": "Home", ')
    no_list = tmp_path / "wifi2.json"
    no_list.write_text('{"networks": "Home"}')
    big = tmp_path / "bundle.pem"  # a system's CA bundle: ~200 KB
    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    big.write_text("-----BEGIN CERTIFICATE-----\n" + "A" * 200_000 + "\n")
    for argv, words in [
        (("--heapsize", "100"), "smaller than the 700 bytes"),
        (("--heapsize", "abc"), "not a MicroPython heap size"),
        (("--heapsize", "100kw"), "not a MicroPython heap size"),
        (("--profile", "2", "--auth-key", "k"), "--profile 2 connects over TLS"),
        (("--profile", "3", "--cert", str(pem), "--key", str(pem)), "--profile 3 connects"),
        (("--claim", "--wifi-env", str(bad_env)), "not JSON"),
        (("--csms", "wss://localhost:9/ocpp"), "give it with --ca PEM"),
        (("--csms", "wss://localhost:9/ocpp", "--ca", str(big)), "not a system bundle"),
        (("--csms", "ws://CP1:pw@localhost:9/ocpp", "--id", "CP1", "--ca", "/nonexistent"),
         "--ca /nonexistent: no such file"),
        (("--claim", "--wifi-env", str(no_list)), "expected"),
    ]:
        r = _borne_sim("--flash", flash, *argv)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr, (argv, r.stderr)
        assert "agent started" not in r.stdout
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = _borne_sim("--flash", flash, "--claim", "--http-port", str(port))
    assert r.returncode == 1, r.stderr
    assert f"--http-port {port}" in r.stderr and "in use" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_sim_heapsize_forms() -> None:
    from borne.sim.cli import heapsize
    from borne.sim.romboot import heap_bytes

    for ok in ("100wK", "100WK", "64k", "2M", "1024", "1000w"):
        assert heapsize(ok) == ok
    assert heap_bytes("100WK") == heap_bytes("100wK")


def test_a_claim_held_in_the_flash_is_found(tmp_path: Path) -> None:
    from borne.sim.cli import held_csms
    from flashdoc import seed

    assert held_csms(tmp_path) is None
    seed(tmp_path, "settings", {"csms_url": "ws://old.example/ocpp", "claimed": True})
    assert held_csms(tmp_path) == "ws://old.example/ocpp"


async def _sim_process(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "borne.cli", "sim", "--no-screen", "--control", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def _ended(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """SIGINT (Ctrl-C) -> (exit status, everything it printed)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_credentials_in_the_csms_url_are_sent_as_http_basic(tmp_path: Path) -> None:
    # A CSMS's URL as its operator hands it out, SteVe's shape with its trailing slash and the
    # Basic credentials in it: the charger connects as CP1 with them (OCPP 1.6 security
    # profile 1), instead of refusing the URL at every attempt, and no password is printed.
    csms = Csms(basic_auth={"CP1": "s3cret-pass"})
    base = await csms.start()
    port = base.rsplit(":", 1)[1].split("/")[0]
    url = f"ws://CP1:s3cret-pass@127.0.0.1:{port}/steve/websocket/CentralSystemService/"
    proc = await _sim_process("--flash", str(tmp_path / "f"), "--csms", url)
    try:
        await csms.wait_call("BootNotification", timeout=30)
        assert ("CP1", True) in csms.auth_results
        assert set(csms.links) == {"CP1"}
    finally:
        rc, out = await _ended(proc)
        await csms.stop()
    assert rc == 0, out
    assert "s3cret-pass" not in out, out
    assert "Traceback" not in out, out[-4000:]
    for url, words in [(f"ws://CP1:pw@127.0.0.1:{port}/", "not the charge point id"),
                       (f"ws://X:@127.0.0.1:{port}/", "no password")]:
        r = _borne_sim("--id", "CP2", "--csms", url, "--flash", str(tmp_path / "g"))
        assert r.returncode == 2 and words in r.stderr, (url, r.stderr)


async def test_two_simulations_on_one_flash_folder_are_refused(tmp_path: Path) -> None:
    # A second `borne sim` on the folder a running one uses would boot a second charger on its
    # files: the first's running session ended as a power loss under it. It is refused before
    # any agent starts; so is a control port in use.
    flash = str(tmp_path / "f")
    first = await _sim_process("--flash", flash)
    try:
        assert first.stdout is not None
        while b"agent started" not in await asyncio.wait_for(first.stdout.readline(), 30):
            pass
        r = _borne_sim("--flash", flash, "--control", "0")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "another simulation runs" in r.stderr and "--flash" in r.stderr
        assert "agent started" not in r.stdout
    finally:
        rc, out = await _ended(first)
    assert rc == 0, out
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = _borne_sim("--flash", flash, "--control", str(port))
    assert r.returncode == 1 and "agent started" not in r.stdout, (r.stdout, r.stderr)
    assert f"--control {port}" in r.stderr and "in use" in r.stderr


async def test_ctrl_c_ends_the_simulation_cleanly(tmp_path: Path) -> None:
    # `nc 127.0.0.1 7700` left open, as the README drives it, then Ctrl-C: the simulation ends
    # with status 0, no traceback (Python 3.11 reported the cancelled connection handler), and
    # no agent process left behind.
    proc = await _sim_process("--flash", str(tmp_path / "f"))
    try:
        assert proc.stdout is not None
        port = pid = 0
        while not pid:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            if m := re.search(r"control protocol on 127\.0\.0\.1:(\d+)", line):
                port = int(m[1])
            if m := re.search(r"agent started \(boot 1, pid (\d+)\)", line):
                pid = int(m[1])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b'{"cmd": "state"}\n')
        assert b'"ok": true' in await asyncio.wait_for(r.readline(), 10)
    finally:
        rc, out = await _ended(proc)
    assert rc == 0 and "Traceback" not in out, out[-3000:]
    w.close()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 0)
        raise AssertionError(f"the agent (pid {pid}) outlived the simulation")


async def test_the_screen_says_how_to_drive_the_simulation(control: Control, csms: Csms,
                                                           sim: Simulator) -> None:
    # `make sim` shows its status screen: a newcomer must learn there how to drive it. Every
    # request it shows as an example works as shown, the commands it names are the protocol's
    # (and the README's table's), and an unknown command's error names them.
    from borne.sim import screen
    from borne.sim.simulator import COMMANDS

    text = screen.render(sim, 7700)
    assert """echo '{"cmd": "plug"}' | nc -q 1 127.0.0.1 7700""" in text
    assert all(c in text for c in COMMANDS) and "Ctrl-C" in text
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    examples = re.findall(r"\{[^{}]*\}", "\n".join(screen.how_to_drive(7700)))
    assert len(examples) >= 5
    for req in examples:
        assert (await control.raw(req.encode() + b"\n"))["ok"], req
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("| cmd | arguments | effect |", 1)[1].split("\n\n", 1)[0]
    named = {c for row in table.splitlines()[2:] for c in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert named == set(COMMANDS)
    reply = await control("explode")
    assert all(c in reply["error"] for c in COMMANDS)


async def test_no_screen_prints_the_log_without_the_boards_telemetry(tmp_path: Path) -> None:
    # --no-screen --board esp32_wallbox: the emulated board's console telemetry (a meter
    # reading a second, LED changes) feeds `state`; the terminal shows the agent's log.
    proc = await _sim_process("--flash", str(tmp_path / "f"), "--board", "esp32_wallbox")
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        while "boot Accepted" not in (seen or [""])[-1]:
            seen.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
        await asyncio.sleep(2.5)  # a few meter polls
    finally:
        rc, out = await _ended(proc)
    text = "".join(seen) + out
    assert rc == 0 and "I periph: meter" in text
    assert not [x for x in text.splitlines() if x.startswith(("@tel ", "@led "))], text[-2000:]


def test_the_screen_shows_the_log_without_the_boards_telemetry(tmp_path: Path) -> None:
    from borne.sim import screen
    from borne.sim.agent import Agent

    sim = Simulator(tmp_path / "f")
    sim.agent = Agent(tmp_path / "f", [])
    sim.agent.lines.extend(["I app: borne up", *["@tel meter {}", "@led 00ff00 solid 80"] * 20])
    text = screen.render(sim, 7700)
    assert "I app: borne up" in text and "@tel" not in text and "@led" not in text


def test_the_screen_says_where_the_claim_page_is(tmp_path: Path) -> None:
    # `borne sim --claim` on its live screen: the claim page's address (a port chosen at start
    # when asked) and where the secrets to log in with are; not "CSMS None".
    from borne.sim import screen
    from borne.sim.options import Fitted
    from borne.sim.simulator import ClaimOptions

    for board, where in (("unix_sim", "factory.json"), ("esp32_wallbox", "nvs.json")):
        sim = Simulator(tmp_path / board, claim=ClaimOptions(http_port=8123),
                        fitted=Fitted(board=board))
        text = screen.render(sim, 7700)
        assert "claim page and API on http://127.0.0.1:8123/" in text
        assert f"{tmp_path / board}/{where}" in text and "borne label --flash" in text
        assert "CSMS none until claimed" in text and "None" not in text
    sim = Simulator(tmp_path / "f", http_port=8124)
    assert "hotspot (a 3 s press) serves on http://127.0.0.1:8124/" in screen.render(sim, 7700)
