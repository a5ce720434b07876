"""`borne bench ota`: a firmware update inside MicroPython (host_tools/borne/mp_ota.py): the
real updater downloads a signed esp32_wallbox release from a real HTTP server, checks it and
installs it into a slot on LittleFS over a counting RAM block device."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from borne import paths, release
from borne.bench import _ERASE_MS, _PAGE_MS, bench
from borne.sim.filesrv import FileServer

BOARD = "esp32_wallbox"


async def ota_figures() -> dict[str, int]:
    key = release.generate()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        files, version = await asyncio.get_running_loop().run_in_executor(
            None, release.slot_files, BOARD, "9.9.9", t / "build")
        srv = FileServer(t / "www")
        await srv.start()
        try:
            (srv.root / "fw.bin").write_bytes(release.pack(files, key, version=version,
                                                           board=BOARD))
            (t / "keys.json").write_text(json.dumps(release.keyring([key.public_key()])))
            env = dict(os.environ, MICROPYPATH=paths.micropypath())
            proc = await asyncio.create_subprocess_exec(
                paths.micropython(), "-X", "heapsize=8M",
                str(Path(__file__).with_name("mp_ota.py")), srv.url("fw.bin"),
                str(t / "keys.json"), BOARD, cwd=tmp, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 300)
        finally:
            await srv.stop()
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"mp_ota failed: {out.decode(errors='replace')[-2000:]}")
    figures: dict[str, int] = json.loads(lines[-1])
    return figures


@bench("ota")
async def ota() -> list[str]:
    f = await ota_figures()
    phases = ("download", "check", "install")
    erases = sum(f[p + "_erases"] for p in phases) + f["boot_commit_erases"]
    programmed = sum(f[p + "_programmed"] for p in phases)
    flash_s = (erases * _ERASE_MS + programmed / 256 * _PAGE_MS) / 1000
    return [
        f"ota: {BOARD} release, {f['bundle_bytes']} bytes ({f['files']} files, "
        f"{f['app_bytes']} bytes unpacked), from a real HTTP server on loopback",
        f"ota: heap high-water over the idle heap: download {f['download_heap']} B, "
        f"check (signature + every file's SHA-256) {f['check_heap']} B, "
        f"install {f['install_heap']} B",
        f"ota: time on this host's unix port: download {f['download_ms']} ms, check "
        f"{f['check_ms']} ms, install (write + read back) {f['install_ms']} ms; "
        f"RSA-2048 signature check alone {f['rsa_us']} us",
        f"ota: flash (LittleFS, 4 KiB blocks): download {f['download_erases']} erases, check "
        f"{f['check_erases']}, install {f['install_erases']}, trial record + commit "
        f"{f['boot_commit_erases']}: {erases} block erases and {programmed // 1024} KiB "
        f"programmed per update (~{flash_s:.1f} s of flash time at a W25Q32's typical figures)",
    ]
