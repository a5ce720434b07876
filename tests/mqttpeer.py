"""The MQTT peers of the tests: a real mosquitto broker started per test on free loopback ports
(username/password, a plain and a TLS listener), and a paho-mqtt subscriber that records every
message with its retained flag and QoS.

`make test` installs Debian's mosquitto when it is missing (like Chromium).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho

MOSQUITTO = os.environ.get("BORNE_MOSQUITTO") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
USER, PASSWORD = "borne-owner", "s3cret-broker-pw"


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


@dataclass
class Msg:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A paho-mqtt client on the plain listener, subscribed to `topics` (QoS 1)."""

    def __init__(self, broker: Broker, topics: list[str], user: str = USER,
                 password: str = PASSWORD, client_id: str = "test-sub") -> None:
        self.msgs: list[Msg] = []
        self._cond = threading.Condition()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.c.username_pw_set(user, password)
        self.c.on_message = self._on_message
        self._subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, qos=1) for t in topics]
        self.c.on_subscribe = lambda *a: self._subscribed.set()
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        assert self._subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        with self._cond:
            self.msgs.append(Msg(m.topic, bytes(m.payload), bool(m.retain), m.qos))

    def publish(self, topic: str, payload: str | bytes, qos: int = 0) -> None:
        self.c.publish(topic, payload, qos=qos).wait_for_publish(5)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()

    def latest(self, topic: str) -> Msg | None:
        with self._cond:
            for m in reversed(self.msgs):
                if m.topic == topic:
                    return m
        return None

    async def wait(self, pred: Callable[[Msg], bool], what: str, timeout: float = 20,
                   after: int = 0) -> Msg:
        """The first message (from index `after`) for which pred holds: a bounded wait."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                for m in self.msgs[after:]:
                    if pred(m):
                        return m
            await asyncio.sleep(0.05)
        with self._cond:
            tail = [(m.topic, m.payload[:80]) for m in self.msgs[-20:]]
        raise AssertionError(f"no MQTT message {what} within {timeout} s; last: {tail}")

    async def value(self, topic: str, want: str, timeout: float = 20, after: int = 0) -> Msg:
        return await self.wait(lambda m: m.topic == topic and m.text == want,
                               f"{topic} = {want!r}", timeout, after)
