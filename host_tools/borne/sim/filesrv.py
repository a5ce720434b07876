"""A real HTTP/1.1 file server for tests and the simulation (firmware bundles, diagnostics
uploads), over http:// and https://, with the misbehaviours a charger must survive.

Serves files under ``root`` (GET/HEAD with an ETag, ``Range: bytes=N-`` / ``N-M`` -> 206 unless
an ``If-Range`` names another ETag (RFC 9110 13.1.5: then 200, the whole file), past the end ->
416), takes uploads (``PUT``/``POST /upload/<name>`` -> ``root/uploads/<name>``, 201 with the
size and SHA-256). Misbehaviour is chosen by a path prefix, so any client can ask for it:

    /status/<code>/...        answers <code> with a short body
    /loop/...                 302 to itself, forever
    /redirect/<k>/<path>      k redirects (relative, then absolute), then <path>
    /elsewhere/<path>         302 to <path> on the other name of this server (127.0.0.1 <->
                              localhost): another origin
    /tohttps/<path>           301 to https://localhost:<https port>/<path> (a server that
                              forces TLS); an upload there: 308 (the method kept), body read
    /echo-auth                answers the Authorization header it was sent ("" without one)
    /trickle/<path>           the head at once, then the body one byte a second
    /trickle-head/<path>      even the status line one byte a second
    /cut/<n>/<path>           closes the connection after n bytes of the body (each request:
                              a resuming client gets n more each time)
    /norange/<path>           ignores Range (always 200, the whole file)
    /chunked/<path>           Transfer-Encoding: chunked
    /silent/<path>            accepts the connection, never answers
    /slowup/...               an upload that is answered only after 30 s

``python -m borne.sim.filesrv --root DIR [--tls]`` prints one JSON line ``{"http": port,
"https": port, "ca": path, "root": dir}`` and serves until its stdin closes. With ``--tls`` it
makes its own CA and a certificate for ``localhost`` / 127.0.0.1 (the CA in the JSON's ``ca``,
an unrelated CA beside it as ``other-ca.pem``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import ssl
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_HEAD_MAX = 16384
_UP_MAX = 64 * 1024 * 1024


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FileServer:
    root: Path
    ssl_ctx: ssl.SSLContext | None = None
    log: list[Req] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    _servers: list[asyncio.Server] = field(default_factory=list)
    _conns: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        s = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self._servers.append(s)
        self.ports["http"] = s.sockets[0].getsockname()[1]
        if self.ssl_ctx is not None:
            s = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.ssl_ctx)
            self._servers.append(s)
            self.ports["https"] = s.sockets[0].getsockname()[1]

    def url(self, path: str, tls: bool = False, host: str = "127.0.0.1") -> str:
        scheme = "https" if tls else "http"
        return f"{scheme}://{host}:{self.ports[scheme]}/{path.lstrip('/')}"

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for w in list(self._conns):
            w.close()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)

    def requests(self, method: str | None = None) -> list[Req]:
        return [r for r in self.log if method is None or r.method == method]

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self._conns.add(w)
        try:
            await self._serve(r, w)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ssl.SSLError, OSError):
            pass
        finally:
            self._conns.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        if len(head) > _HEAD_MAX:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        self.log.append(Req(method, target, headers))
        path = target.split("?")[0]
        parts = [p for p in path.split("/") if p]
        mode = parts[0] if parts else ""
        if method in ("PUT", "POST"):
            await self._upload(r, w, parts, headers)
            return
        if mode == "status":
            code = int(parts[1])
            await _answer(w, code, f"status {code}\n".encode())
        elif mode == "loop":
            await _answer(w, 302, b"", {"Location": path})
        elif mode == "redirect":
            k = int(parts[1])
            rest = "/".join(parts[2:])
            if k <= 0:
                loc = "/" + rest
            elif k % 2:
                loc = f"/redirect/{k - 1}/{rest}"
            else:
                host = headers.get("host", "127.0.0.1")
                scheme = "https" if w.get_extra_info("sslcontext") else "http"
                loc = f"{scheme}://{host}/redirect/{k - 1}/{rest}"
            await _answer(w, 302, b"", {"Location": loc})
        elif mode == "elsewhere":
            host, _, port = headers.get("host", "127.0.0.1").partition(":")
            other = "localhost" if host == "127.0.0.1" else "127.0.0.1"
            scheme = "https" if w.get_extra_info("sslcontext") else "http"
            rest = "/".join(parts[1:])
            await _answer(w, 302, b"", {"Location": f"{scheme}://{other}:{port}/{rest}"})
        elif mode == "tohttps" and "https" in self.ports:
            rest = "/".join(parts[1:])
            loc = f"https://localhost:{self.ports['https']}/{rest}"
            await _answer(w, 301, b"", {"Location": loc})
        elif mode == "echo-auth":
            await _answer(w, 200, headers.get("authorization", "").encode())
        elif mode == "silent":
            await asyncio.sleep(3600)
        elif mode == "trickle-head":
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx":
                w.write(bytes([b]))
                await w.drain()
                await asyncio.sleep(1)
        else:
            await self._file(w, mode, parts, headers, method == "HEAD")

    async def _file(self, w: asyncio.StreamWriter, mode: str, parts: list[str],
                    headers: dict[str, str], head_only: bool) -> None:
        cut = None
        if mode in ("trickle", "norange", "chunked"):
            parts = parts[1:]
        elif mode == "cut":
            cut = int(parts[1])
            parts = parts[2:]
        f = (self.root / "/".join(parts)).resolve()
        if not f.is_relative_to(self.root.resolve()) or not f.is_file():
            await _answer(w, 404, b"not found\n")
            return
        data = f.read_bytes()
        total = len(data)
        status, extra = 200, {}
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        rng = headers.get("range", "")
        if headers.get("if-range", etag) != etag:
            rng = ""  # the client's part is of another version of the file
        if rng.startswith("bytes=") and mode != "norange":
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = int(b) if b else total - 1
            if start >= total:
                await _answer(w, 416, b"", {"Content-Range": f"bytes */{total}"})
                return
            end = min(end, total - 1)
            data = data[start:end + 1]
            status, extra = 206, {"Content-Range": f"bytes {start}-{end}/{total}"}
        extra["ETag"] = etag
        if mode == "chunked":
            await _head(w, status, extra | {"Transfer-Encoding": "chunked"})
            for i in range(0, len(data), 700):
                piece = data[i:i + 700]
                w.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                await w.drain()
            w.write(b"0\r\n\r\n")
            await w.drain()
            return
        await _head(w, status, extra | {"Content-Length": str(len(data))})
        if head_only:
            return
        if mode == "trickle":
            for b in data:
                w.write(bytes([b]))
                await w.drain()
                await asyncio.sleep(1)
            return
        if cut is not None:
            w.write(data[:cut])
            await w.drain()
            w.transport.abort()
            return
        for i in range(0, len(data), 65536):
            w.write(data[i:i + 65536])
            await w.drain()

    async def _upload(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, parts: list[str],
                      headers: dict[str, str]) -> None:
        if "content-length" not in headers:
            await _answer(w, 411, b"length required\n")
            return
        n = int(headers["content-length"])
        if n > _UP_MAX:
            await _answer(w, 413, b"too large\n")
            return
        if parts and parts[0] == "status":
            await r.readexactly(n)
            await _answer(w, int(parts[1]), b"refused\n")
            return
        if parts and parts[0] == "tohttps" and "https" in self.ports:
            await r.readexactly(n)
            loc = f"https://localhost:{self.ports['https']}/{'/'.join(parts[1:])}"
            await _answer(w, 308, b"", {"Location": loc})
            return
        if parts and parts[0] == "slowup":
            await asyncio.sleep(30)
        name = "_".join(p for p in parts[1:] if p not in ("..", ".")) or "upload.bin"
        body = await r.readexactly(n)
        up = self.root / "uploads"
        up.mkdir(exist_ok=True)
        (up / name).write_bytes(body)
        reply = json.dumps({"size": n, "sha256": hashlib.sha256(body).hexdigest()}).encode()
        await _answer(w, 201, reply, {"Content-Type": "application/json"})


_REASONS = {200: "OK", 201: "Created", 206: "Partial Content", 301: "Moved Permanently",
            302: "Found", 308: "Permanent Redirect", 404: "Not Found",
            411: "Length Required", 413: "Payload Too Large", 416: "Range Not Satisfiable",
            500: "Internal Server Error"}


async def _head(w: asyncio.StreamWriter, status: int, headers: dict[str, str]) -> None:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await w.drain()


async def _answer(w: asyncio.StreamWriter, status: int, body: bytes,
                  headers: dict[str, str] | None = None) -> None:
    await _head(w, status, (headers or {}) | {"Content-Length": str(len(body))})
    w.write(body)
    await w.drain()


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A CA and a `localhost` server certificate made here: (server context, CA PEM path)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)

    def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Name, x509.Certificate]:
        k = ec.generate_private_key(ec.SECP256R1())
        n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        c = (x509.CertificateBuilder().subject_name(n).issuer_name(n)
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - day).not_valid_after(now + 30 * day)
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .sign(k, hashes.SHA256()))
        return k, n, c

    ca_key, ca_name, ca = make_ca("borne filesrv CA")
    other = make_ca("some other CA")[2]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + 30 * day)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca_pem = folder / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "other-ca.pem").write_bytes(other.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(folder / "server.pem", folder / "server.key")
    return ctx, ca_pem


async def _main(args: argparse.Namespace) -> None:
    root = Path(args.root or tempfile.mkdtemp(prefix="filesrv-"))
    ctx, ca = (None, None)
    if args.tls:
        ctx, ca = self_signed(root.parent / (root.name + "-tls"))
    srv = FileServer(root, ctx)
    await srv.start()
    print(json.dumps({**srv.ports, "ca": str(ca) if ca else None, "root": str(root)}),
          flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until stdin closes
    await srv.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--root")
    p.add_argument("--tls", action="store_true")
    asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
