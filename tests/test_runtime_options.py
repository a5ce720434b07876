"""How the agent's interpreter runs (`borne sim --compiled / --rom / --frozen`, the workloads'
runtimes): one way at a time, and a frozen interpreter that cannot be used is refused with the
reason, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from borne import cli, paths, workload
from borne.sim.cli import runtime_from
from borne.sim.options import Runtime


def _args(*argv: str) -> object:
    return cli.build_parser().parse_args(["sim", *argv])


def test_a_runtime_runs_one_application(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of"):
        Runtime(compiled=tmp_path, frozen=tmp_path / "micropython")
    with pytest.raises(ValueError, match="one of"):
        Runtime(rom=tmp_path, frozen=tmp_path / "micropython")


def test_frozen_runs_that_interpreter_on_main_alone(tmp_path: Path) -> None:
    interp = tmp_path / "micropython-borne"
    rt = Runtime(heapsize="64wK", frozen=interp)
    cmd = rt.interpreter()
    assert cmd[0] == str(interp) and cmd[1:3] == ["-X", "heapsize=64wK"]
    main = Path(cmd[-1])
    # The script's folder heads sys.path: nothing but main.py may be there, or the firmware's
    # sources would be imported instead of the frozen modules.
    assert main.read_bytes() == (paths.FIRMWARE / "main.py").read_bytes()
    assert [p.name for p in main.parent.iterdir()] == ["main.py"]
    assert rt.micropypath("unix_sim") == f".frozen:{paths.MPLIB}"


def test_sim_refuses_a_frozen_interpreter_it_cannot_use(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(ValueError, match="not an executable"):
        runtime_from(_args("--frozen", str(missing)))  # type: ignore[arg-type]
    interp = tmp_path / "micropython-borne"
    interp.write_text("#!/bin/sh\n")
    interp.chmod(0o755)
    with pytest.raises(ValueError, match="unix_sim board"):
        runtime_from(_args("--frozen", str(interp), "--board", "esp32_wallbox"))  # type: ignore[arg-type]
    rt = runtime_from(_args("--frozen", str(interp), "--heapsize", "70wK"))  # type: ignore[arg-type]
    assert rt.frozen == interp.resolve() and rt.heapsize == "70wK"


def test_the_frozen_workload_runtime_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(workload.FROZEN_ENV, raising=False)
    with pytest.raises(ValueError, match=r"boards/unix_sim/manifest\.py"):
        workload.build("frozen", Path("unused"))
