"""What the simulated charger is told about the owner's MQTT broker (`borne sim --mqtt URL`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def check_mqtt_url(url: str) -> None:
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"--mqtt {url!r}: the URL must start with mqtt:// or mqtts://")
    if not u.hostname:
        raise ValueError(f"--mqtt {url!r}: the URL has no host")
    if u.username or u.password:
        raise ValueError(f"--mqtt {url!r}: give credentials with --mqtt-user/--mqtt-pass")
    try:
        u.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"--mqtt {url!r}: the port is not a number from 1 to 65535") from None


@dataclass(frozen=True)
class MqttOptions:
    """The broker URL (mqtt:// or mqtts://), its credentials and CA (PEM file), the topic
    prefix, whether the installation enables the owner's controls, and the DNS resolver
    ("host:port") the charger asks for the broker's name."""

    url: str
    user: str | None = None
    password: str | None = None
    ca: Path | None = None
    prefix: str | None = None
    controls: bool = False
    dns: str | None = None

    def argv(self) -> list[str]:
        out = ["--mqtt", self.url, "--mqtt-controls", "1" if self.controls else "0"]
        for name, val in (("--mqtt-user", self.user), ("--mqtt-pass", self.password),
                          ("--mqtt-prefix", self.prefix), ("--dns", self.dns)):
            if val is not None:
                out += [name, val]
        if self.ca is not None:
            out += ["--mqtt-ca", str(Path(self.ca).resolve())]
        return out
