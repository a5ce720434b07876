# Helpers for on-target tests (MicroPython): log capture, file bytes, power-cut injection, and
# connects that hang or are refused (with the process's open fds to see a socket kept).
import asyncio
import os
import time

import log

# A throwaway self-signed CA (test_security.py's), for TLS contexts whose
# connects never get to check a certificate.
CA = """-----BEGIN CERTIFICATE-----
MIIBNDCB3KADAgECAgEHMAoGCCqGSM49BAMCMBkxFzAVBgNVBAMMDm9uLXRhcmdl
dCB0ZXN0MCAXDTI1MDEwMTAwMDAwMFoYDzIwOTkwMTAxMDAwMDAwWjAZMRcwFQYD
VQQDDA5vbi10YXJnZXQgdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABF6S
FcsxmGhPy7KQAwYlYUI3fFiJeI8VvzJdK1c3WHgsHNBSI6U6EnGU+8FblmWtBLRH
UY1aE4KNEfJCaVYHSFOjEzARMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
RwAwRAIgbR2/lzjSoR8gebuA6aZhJeQPvRMw0nHd1puhOIc43VoCIAEQtoTG34Gf
IG6qGCqzbcWC/OhJLoQhaDWla2NogSgY
-----END CERTIFICATE-----
"""


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, b):
    with open(p, "wb") as f:
        f.write(b)


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


async def until(pred, what, ms=3000):
    # A bounded wait for an event a test cannot await directly; fails naming it.
    t0 = time.ticks_ms()
    while not pred():
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep_ms(5)


class Logs:
    # Captures log lines: log.warn/info call log._emit through the module's globals.
    def __init__(self):
        self.lines = []
        self.dropped = 0
        self._old = log._emit

    def __enter__(self):
        def emit(lvl, tag, msg, args):
            try:
                self.lines.append((lvl, tag, msg % args if args else msg))
            except MemoryError:  # as log._emit: a line with no memory is dropped, not raised
                self.dropped += 1

        log._emit = emit
        return self

    def __exit__(self, *a):
        log._emit = self._old

    def warned(self, *words):
        for lvl, _, text in self.lines:
            if lvl >= log.WARN and all(w in text for w in words):
                return True
        return False

    def said(self, *words):
        # Any level: a line carrying all the words.
        return any(all(w in t for w in words) for _, _, t in self.lines)

    def warnings(self):
        return [t for lvl, _, t in self.lines if lvl >= log.WARN]


class Cut(Exception):
    pass


class Power:
    # Runs the real file system until the k-th mutating step, then "cuts the power": that step
    # happens only halfway (a write lands partly) and every later mutation is refused.
    def __init__(self, k, fat=False):
        self.k = k
        self.fat = fat  # like FAT: rename onto an existing file fails
        self.n = 0
        self.dead = False
        self.closed = []  # paths closed for writing before the cut

    def step(self):
        if self.dead:
            raise Cut()
        if self.n == self.k:
            self.dead = True
            return False
        self.n += 1
        return True

    # os-like
    def rename(self, a, b):
        if self.fat and exists(b):
            raise OSError(17)  # EEXIST, and nothing changed
        if not self.step():
            raise Cut()
        os.rename(a, b)

    def remove(self, p):
        if not self.step():
            raise Cut()
        os.remove(p)

    def stat(self, p):
        return os.stat(p)

    def mkdir(self, p):
        return os.mkdir(p)

    def open(self, p, mode="r"):
        if "w" not in mode and "a" not in mode:
            return open(p, mode)
        if not self.step():
            raise Cut()
        return PFile(self, p, open(p, mode))


class PFile:
    def __init__(self, pw, p, f):
        self.pw, self.p, self.f = pw, p, f

    def write(self, b):
        if isinstance(b, str):
            b = b.encode()
        if not self.pw.step():
            self.f.write(b[: len(b) // 2])
            raise Cut()
        return self.f.write(b)

    def seek(self, *a):  # moves nothing on flash: no step
        return self.f.seek(*a)

    def close(self):
        self.f.close()
        if not self.pw.dead:
            self.pw.closed.append(self.p)


def powered(mod, pw):
    # Route a module's file-system calls through pw (the module looks up os/open at call time).
    mod.os = pw
    mod.open = pw.open


def unpowered(mod):
    mod.os = os
    del mod.open


def hanging_listener():
    # A listener whose accept queue is full: a connect to it hangs (its SYN dropped, as a
    # black-holed host's) until given up. -> (its sockets, to close; port)
    import socket

    for port in range(47310, 47400):
        srv = socket.socket()
        try:
            srv.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        except OSError:
            srv.close()
            continue
        srv.listen(0)
        held = [srv]
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            except OSError:
                pass
            held.append(c)
        return held, port
    raise OSError("no free port")


def closed_port():
    # -> a loopback port nothing listens on (a connect to it is refused): one free to bind
    import socket

    for port in range(47400, 47500):
        s = socket.socket()
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise OSError("no free port")


def open_fds():
    # -> how many file descriptors the process holds (the unix port: sockets are fds; a TLS
    # socket's is closed by a collection too, as the ESP32 closes any socket: too late)
    return len(os.listdir("/proc/self/fd"))
