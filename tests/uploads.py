"""Real file servers for diagnostics and firmware tests: an FTP server (pyftpdlib, passive mode,
one user with a password; uploads and downloads, REST and SIZE) and an HTTP server taking PUT and
POST, each in a thread on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler, ThrottledDTPHandler
from pyftpdlib.servers import ThreadedFTPServer

FTP_USER = "borne-diag"
FTP_PASSWORD = "ftp-Pa55-w0rd-x9"


@dataclass
class Ftp:
    root: Path
    port: int
    logins: list[tuple[str, bool]] = field(default_factory=list)
    rests: list[int] = field(default_factory=list)  # the REST offsets asked for, in order

    def url(self, path: str = "/", password: str = FTP_PASSWORD) -> str:
        return f"ftp://{FTP_USER}:{password}@127.0.0.1:{self.port}{path}"

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())


@contextmanager
def ftp_server(root: Path, rate: int = 0, cut: int = 0) -> Iterator[Ftp]:
    """`rate`: bytes per second the server reads an upload at (0: unthrottled). `cut`: every
    download's data connection is dropped after that many bytes (426 on the control
    connection), as a network cut would (0: never)."""
    root.mkdir(parents=True, exist_ok=True)
    auth = DummyAuthorizer()
    auth.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elradfmwMT")
    seen: list[tuple[str, bool]] = []
    rests: list[int] = []

    class Handler(FTPHandler):
        authorizer = auth
        banner = "borne test ftp"

        def on_login(self, username: str) -> None:
            seen.append((username, True))

        def on_login_failed(self, username: str, password: str) -> None:
            seen.append((username, False))

        def ftp_REST(self, line: str) -> None:
            if line.isdigit():
                rests.append(int(line))
            super().ftp_REST(line)

    base: type[DTPHandler] = DTPHandler
    if rate:
        class Throttled(ThrottledDTPHandler):
            read_limit = rate

        base = Handler.dtp_handler = Throttled
    if cut:
        class Cut(base):  # type: ignore[valid-type,misc]
            def send(self, data: bytes) -> int:
                left = cut - self.tot_bytes_sent
                if left <= 0:
                    self.handle_close()  # data still queued: 426 Transfer aborted
                    return 0
                sent: int = super().send(data[:left])
                return sent

        Handler.dtp_handler = Cut
        Handler.use_sendfile = False  # sendfile() would bypass send()
    server = ThreadedFTPServer(("127.0.0.1", 0), Handler)
    port = server.socket.getsockname()[1]
    t = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    t.start()
    try:
        yield Ftp(root, port, seen, rests)
    finally:
        server.close_all()
        t.join(5)


@dataclass
class PostOnly:
    """An HTTP server that takes uploads by POST only (PUT: 405), with HTTP Basic."""

    port: int
    bodies: dict[str, bytes] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)

    def url(self, path: str = "/incoming/", cred: str = "") -> str:
        return f"http://{cred + '@' if cred else ''}127.0.0.1:{self.port}{path}"


@contextmanager
def post_only_server() -> Iterator[PostOnly]:
    state = PostOnly(0)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_PUT(self) -> None:
            state.methods.append("PUT")
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(405)
            self.send_header("Allow", "POST")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            state.methods.append("POST")
            state.auth.append(self.headers.get("Authorization", ""))
            state.bodies[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)
