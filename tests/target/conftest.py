"""On-target tests: tests/target/test_*.py are MicroPython code, run inside the unix port.

CPython never imports them. For each file pytest gets a collector that lists the file's
``test_*`` functions with ``ast``; the first test to run starts the whole file once in
``micropython`` (mprunner.py), and every item then reports its own line of the result.
A ``# heapsize: 64wK`` comment in a test file runs it with ``-X heapsize=64wK``.
A ``# emulators: host`` comment starts the host's device emulators (``borne.sim.emu_serve``:
the PN532 and the pymodbus meters on loopback sockets) for that file; their ports reach the
MicroPython side in the ``BORNE_EMU`` environment variable (see emu.py).
A ``# servers: http`` comment starts a real HTTP(S) file server (``borne.sim.filesrv``, its own CA)
for that file; its ports, CA and document root reach MicroPython in ``BORNE_FILESRV``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNNER = HERE / "mprunner.py"
TIMEOUT_S = 120
TAIL = 3000  # characters of output shown when a test has no result line
_HEAPSIZE = re.compile(r"^#\s*heapsize:\s*(\d+w?[kKmM]?)\s*$", re.MULTILINE)
_EMULATORS = re.compile(r"^#\s*emulators:\s*host\s*$", re.MULTILINE)
_FILESRV = re.compile(r"^#\s*servers:\s*http\s*$", re.MULTILINE)


def micropython() -> Path:
    # The unix port installed in the same venv as this pytest (not resolved: a venv's python is a
    # symlink to the base interpreter).
    return Path(sys.executable).parent / "micropython"


def mp_env() -> dict[str, str]:
    paths = [".frozen", REPO / "firmware", REPO / "boards/unix_sim", REPO / "build/mplib", HERE,
             REPO / "host_tools/borne/sim/chips"]  # chip models shared with the ESP32 emulation
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(p) for p in paths)
    return env


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent):
    if module_path.parent == HERE and module_path.name.startswith("test_"):
        return MpFile.from_parent(parent, path=module_path)
    return None


class MpFailure(Exception):
    def __init__(self, summary: str, detail: str):
        super().__init__(summary)
        self.summary = summary
        self.detail = detail


class MpFile(pytest.File):
    _results: dict[str, tuple[str, str]] | None = None
    _problem: str = ""

    def collect(self):
        for name in self._names():
            yield MpItem.from_parent(self, name=name)

    def _names(self) -> list[str]:
        """The module-level test_* functions (sync or async), in source order."""
        tree = ast.parse(self.path.read_text(encoding="utf-8"), filename=str(self.path))
        funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
        return [n.name for n in tree.body if isinstance(n, funcs) and n.name.startswith("test_")]

    def _scratch(self) -> Path:
        factory = getattr(self.config, "_tmp_path_factory", None)
        if factory is not None:
            return factory.mktemp("mp-" + self.path.stem)
        return Path(tempfile.mkdtemp(prefix="mp-" + self.path.stem))

    def results(self) -> tuple[dict[str, tuple[str, str]], str]:
        """Run the file once; -> ({name: (status, detail)}, problem text for missing ones)."""
        if self._results is not None:
            return self._results, self._problem
        self._results = {}
        mp = micropython()
        if not mp.exists():
            self._problem = f"{mp} not found: run `make setup` first"
            return self._results, self._problem
        cmd = [str(mp)]
        m = _HEAPSIZE.search(self.path.read_text(encoding="utf-8"))
        if m:
            cmd += ["-X", "heapsize=" + m.group(1)]
        scratch = self._scratch()
        cmd += [str(RUNNER), str(self.path), str(scratch), *self._names()]
        env = mp_env()
        emu = None
        if _EMULATORS.search(self.path.read_text(encoding="utf-8")):
            emu, env["BORNE_EMU"] = start_emulators()
        srv = None
        if _FILESRV.search(self.path.read_text(encoding="utf-8")):
            srv, env["BORNE_FILESRV"] = start_filesrv(scratch / "www")
        try:
            proc = subprocess.run(
                cmd,
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=TIMEOUT_S,
                check=False,
            )
            out, err, rc = proc.stdout, proc.stderr, proc.returncode
            why = f"micropython exited with code {rc}"
        except subprocess.TimeoutExpired as e:
            out = _text(e.stdout)
            err = _text(e.stderr)
            why = f"micropython timed out after {TIMEOUT_S} s (a test hangs?)"
        finally:
            if emu is not None:
                stop_emulators(emu)
            if srv is not None:
                stop_emulators(srv)
        self._results = parse_output(out)
        running = self._results.pop("@@running", None)
        if running:
            why += f" while {running[1]} was running"
        self._problem = f"{why}\n{_tail(out, err)}"
        return self._results, self._problem


class MpItem(pytest.Item):
    def runtest(self):
        results, problem = self.parent.results()
        if "@@import" in results:
            tb = results["@@import"][1]
            raise MpFailure("import failed: " + _last_line(tb), tb)
        if not results.get(self.name):
            raise MpFailure("no result: " + problem.splitlines()[0], problem)
        status, detail = results[self.name]
        if status != "PASS":
            raise MpFailure(_last_line(detail), detail)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, MpFailure):
            # First line: the exception itself, so pytest's one-line summary is useful.
            return f"MicroPython: {excinfo.value.summary}\n{excinfo.value.detail}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name}"


def start_emulators() -> tuple[subprocess.Popen[str], str]:
    """The host's device emulators in a process of their own; -> (process, their JSON line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "borne.sim.emu_serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("{"):
        stop_emulators(proc)
        raise RuntimeError(f"the device emulators did not start: {line!r}")
    return proc, line.strip()


def start_filesrv(root: Path) -> tuple[subprocess.Popen[str], str]:
    """The HTTP(S) file server in a process of its own; -> (process, its JSON line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "borne.sim.filesrv", "--tls", "--root", str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("{"):
        stop_emulators(proc)
        raise RuntimeError(f"the file server did not start: {line!r}")
    return proc, line.strip()


def stop_emulators(proc: subprocess.Popen[str]) -> None:
    if proc.stdin:
        proc.stdin.close()  # asks it to end
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def parse_output(out: str) -> dict[str, tuple[str, str]]:
    """mprunner lines -> {name: (PASS|FAIL, traceback + what the test printed)}."""
    results: dict[str, tuple[str, str]] = {}
    printed: list[str] = []
    running = None
    for line in out.splitlines():
        if line.startswith("@@START "):
            printed = []
            running = line.split(" ", 1)[1]
        elif line.startswith("@@RESULT "):
            parts = line.split(" ", 3)
            if len(parts) < 3:
                continue
            name, status = parts[1], parts[2]
            detail = ""
            if len(parts) == 4:
                try:
                    detail = json.loads(parts[3])
                except ValueError:
                    detail = parts[3]
            if printed:
                detail += "--- output ---\n" + "\n".join(printed[-40:])
            results[name] = (status, detail)
            running = None
        elif line.startswith("@@IMPORTERROR "):
            results["@@import"] = ("FAIL", json.loads(line.split(" ", 1)[1]))
        else:
            printed.append(line)
    if running:
        results["@@running"] = ("CRASH", running)
    return results


def _last_line(tb: str) -> str:
    lines = tb.split("--- output ---")[0].strip().splitlines()
    return lines[-1] if lines else "failed"


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode("utf-8", "replace")


def _tail(out: str, err: str) -> str:
    return f"--- stdout (tail) ---\n{out[-TAIL:]}\n--- stderr (tail) ---\n{err[-TAIL:]}"
