"""Power cuts at 100 seeded random instants of a firmware update (download from a real HTTP or
FTP server, check, install, trial boot, commit): after each, and after every boot that follows,
what main.py boots is a complete version whose every file matches a manifest signed by a trusted
key, and the update then completes. The cut falls at the k-th file-system mutation (a write lands
only halfway, nothing after it happens: tests/target/mphelp.Power) of the whole sequence,
k drawn from a fixed seed; the update runs in the unix port (tests/target/ota_power.py). Over
FTP a download cut short resumes from the bytes on flash (REST) at the boot after."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from borne import paths, release
from borne.sim.filesrv import FileServer
from uploads import ftp_server

SEED = 20261202
ROUNDS = 100
TARGET = Path(__file__).parent / "target"


def _bundle() -> tuple[bytes, dict[str, Any]]:
    key = release.generate()
    rng = random.Random(SEED)
    files = [("app.mpy", rng.randbytes(9000)), ("version.mpy", b"v" * 40),
             ("ocpp_client/client.mpy", rng.randbytes(14000)),
             ("ota/update.mpy", rng.randbytes(7000)), ("board.mpy", rng.randbytes(3000))]
    return (release.pack(files, key, version="0.2.0", board="unix_sim"),
            release.keyring([key.public_key()]))


async def _run(scratch: Path, url: str, ring: Path, ks: list[int]) -> list[dict[str, Any]]:
    env = dict(os.environ, MICROPYPATH=":".join(
        [".frozen", str(paths.FIRMWARE), str(paths.BOARDS / "unix_sim"), str(TARGET)]))
    proc = await asyncio.create_subprocess_exec(
        paths.micropython(), str(TARGET / "ota_power.py"), str(scratch), url, str(ring),
        *map(str, ks), cwd=scratch, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode(errors="replace")
    assert "DONE" in text, text[-3000:]
    return [json.loads(ln[6:]) for ln in text.splitlines() if ln.startswith("ROUND ")]


async def _cuts(tmp_path: Path, url: str) -> tuple[int, list[int], list[dict[str, Any]]]:
    # A clean run counts the update's file-system mutations; then one round per cut.
    scratch = tmp_path / "mp"
    scratch.mkdir()
    keys = tmp_path / "keys.json"
    clean = (await _run(scratch, url, keys, [10**9]))[0]
    assert clean.get("final") == "Installed" and clean["cut"] == 0, clean
    total = clean["ops"]
    ks = sorted(random.Random(SEED).sample(range(total), min(ROUNDS, total)))
    return total, ks, await _run(scratch, url, keys, ks)


@pytest.mark.parametrize("scheme", ["http", "ftp"])
async def test_power_cut_at_100_random_instants_of_an_update(tmp_path: Path, scheme: str
                                                             ) -> None:
    data, ring = _bundle()
    (tmp_path / "keys.json").write_text(json.dumps(ring))
    if scheme == "ftp":
        with ftp_server(tmp_path / "ftp") as ftp:
            (ftp.root / "fw.bin").write_bytes(data)
            total, ks, rounds = await _cuts(tmp_path, ftp.url("/fw.bin"))
        # Cuts that fell while the file was coming in: the boot after went on from its bytes.
        assert ftp.rests and all(0 < r < len(data) for r in ftp.rests), ftp.rests
    else:
        srv = FileServer(tmp_path / "www")
        await srv.start()
        try:
            (srv.root / "fw.bin").write_bytes(data)
            total, ks, rounds = await _cuts(tmp_path, srv.url("fw.bin"))
        finally:
            await srv.stop()
    assert len(rounds) == len(ks)
    # A cut before UpdateFirmware was answered may leave the old version and nothing to do (the
    # CSMS, unanswered, asks again) or the job stored; once answered, the update completes.
    done = ("Installed", "0.2.0")
    bad = [r for r in rounds if "error" in r or "ota_bundle.fw" in r["left"]
           or ((r["final"], r["version"]) != done if r["accepted"]
               else (r["final"], r["version"]) not in (done, ("Idle", "factory")))]
    assert not bad, "\n".join(json.dumps(r) for r in bad)
    assert sum(r["accepted"] for r in rounds) > 90
    # Every boot ran either the factory version or the complete signed new one.
    assert all(v in ("factory", "0.2.0") for r in rounds for v in r["boots"])
    print(f"{len(ks)} cuts over {total} file-system mutations; boots after a cut: "
          f"max {max(len(r['boots']) for r in rounds)}")
