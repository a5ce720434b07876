"""MicroPython libraries that the unix port does not ship, fetched by name from the package index.

The stock ESP32 firmware freezes ``umqtt.simple``; the unix port lacks it. Its distribution on the
index is a bare tarball (no setup script), so pip cannot install it: we look it up through the
index's simple API (the same index pip is configured with), check the pinned SHA-256 and unpack
only the module files into the build's library folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path


@dataclass(frozen=True)
class MpLib:
    project: str
    version: str
    filename: str
    sha256: str
    members: dict[str, str]  # path inside the archive -> path under the library folder


PINNED: tuple[MpLib, ...] = (
    MpLib(
        project="micropython-umqtt.simple",
        version="1.3.4",
        filename="micropython-umqtt.simple-1.3.4.tar.gz",
        sha256="b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f",
        members={"micropython-umqtt.simple-1.3.4/umqtt/simple.py": "umqtt/simple.py"},
    ),
)


def index_url() -> str:
    """The primary index pip uses here: PIP_INDEX_URL, pip's configuration, or pip's default."""
    env = os.environ.get("PIP_INDEX_URL")
    if env:
        return env.rstrip("/")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip().rstrip("/")
    from pip._internal.models.index import PyPI  # pip's own default, not a host we name

    return PyPI.simple_url.rstrip("/")


def _normalise(name: str) -> str:
    return "-".join(name.lower().replace("_", "-").replace(".", "-").split("-"))


class _Links(HTMLParser):
    """Anchors of a PEP 503 (HTML) simple-index page: filename -> href."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._href:
            self.links[data.strip()] = self._href

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def _file_url(index: str, lib: MpLib) -> str:
    page = f"{index}/{_normalise(lib.project)}/"
    req = urllib.request.Request(
        page, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        kind = resp.headers.get("content-type", "")
        body = resp.read().decode()
    if "json" in kind:  # PEP 691
        links = {f["filename"]: f["url"] for f in json.loads(body).get("files", [])}
    else:  # PEP 503
        parser = _Links()
        parser.feed(body)
        links = parser.links
    if lib.filename not in links:
        raise SystemExit(f"mplib: {lib.filename} is not on the index {index}")
    return urllib.parse.urljoin(page, links[lib.filename].split("#", 1)[0])


def fetch(dest: Path, index: str | None = None) -> list[Path]:
    """Fetch every pinned library into ``dest``; skip those already there. Returns written paths."""
    written: list[Path] = []
    for lib in PINNED:
        targets = {src: dest / rel for src, rel in lib.members.items()}
        if all(p.exists() for p in targets.values()):
            continue
        url = _file_url(index or index_url(), lib)
        with urllib.request.urlopen(url, timeout=120) as resp:
            blob = resp.read()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != lib.sha256:
            raise SystemExit(
                f"mplib: {lib.filename} has SHA-256 {digest}, pinned {lib.sha256}: refusing it"
            )
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            for src, path in targets.items():
                member = tar.extractfile(src)
                if member is None:
                    raise SystemExit(f"mplib: {src} missing from {lib.filename}")
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(member.read())
                tmp.replace(path)
                written.append(path)
        for pkg_dir in {p.parent for p in targets.values()}:
            init = pkg_dir / "__init__.py"
            if not init.exists():
                init.write_text("")
    return written
