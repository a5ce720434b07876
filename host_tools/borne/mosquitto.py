"""A real mosquitto broker on free loopback ports, for the tests and the benchmarks: a password
file (one user), a plain listener and, with `tls`, a TLS listener. Started per test.

`make test` (and `make bench`) install Debian's mosquitto when it is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

USER, PASSWORD = "borne-owner", "s3cret-broker-pw"
MOSQUITTO = os.environ.get("BORNE_MOSQUITTO") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """mosquitto with a password file; `tls` = (certificate, key) PEM files for a TLS listener."""

    def __init__(self, folder: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.folder = folder
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert Path(MOSQUITTO).exists(), (
            f"{MOSQUITTO} is missing: `make test` installs Debian's mosquitto")
        self.folder.mkdir(parents=True, exist_ok=True)
        pw = self.folder / "passwd"
        if not pw.exists():
            pw.write_text("")
            subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), USER, PASSWORD], check=True,
                           capture_output=True)
            pw.chmod(0o600)
        conf = [
            "per_listener_settings false", "allow_anonymous false", f"password_file {pw}",
            "persistence false", f"log_dest file {self.log}", "log_type all",
            f"listener {self.port} 127.0.0.1",
        ]
        if os.geteuid() == 0:
            conf.append("user root")  # else it drops to `mosquitto`, who cannot read tmp_path
        if self.tls:
            conf += [f"listener {self.tls_port} 127.0.0.1", f"certfile {self.tls[0]}",
                     f"keyfile {self.tls[1]}"]
        cfg = self.folder / "mosquitto.conf"
        cfg.write_text("\n".join(conf) + "\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"mosquitto exited at start: {err}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise AssertionError("mosquitto did not listen within 10 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
