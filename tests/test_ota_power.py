"""Power cuts at 100 seeded random instants of a firmware update (download from a real HTTP
server, check, install, trial boot, commit): after each, and after every boot that follows, what
main.py boots is a complete version whose every file matches a manifest signed by a trusted key,
and the update then completes. The cut falls at the k-th file-system mutation (a write lands
only halfway, nothing after it happens: tests/target/mphelp.Power) of the whole sequence,
k drawn from a fixed seed; the update runs in the unix port (tests/target/ota_power.py)."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path
from typing import Any

from borne import paths, release
from borne.sim.filesrv import FileServer

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


async def test_power_cut_at_100_random_instants_of_an_update(tmp_path: Path) -> None:
    data, ring = _bundle()
    srv = FileServer(tmp_path / "www")
    await srv.start()
    try:
        (srv.root / "fw.bin").write_bytes(data)
        (tmp_path / "keys.json").write_text(json.dumps(ring))
        scratch = tmp_path / "mp"
        scratch.mkdir()
        url = srv.url("fw.bin")
        clean = (await _run(scratch, url, tmp_path / "keys.json", [10**9]))[0]
        assert clean.get("final") == "Installed" and clean["cut"] == 0, clean
        total = clean["ops"]
        ks = sorted(random.Random(SEED).sample(range(total), min(ROUNDS, total)))
        rounds = await _run(scratch, url, tmp_path / "keys.json", ks)
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
