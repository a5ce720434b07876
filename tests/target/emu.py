# The host's device emulators, from on-target tests (files marked "# emulators: host"): their
# ports come in BORNE_EMU; ctl() sends one control line (borne.sim.emu_serve) and returns "ok".
import os
import json
import socket

CFG = json.loads(os.getenv("BORNE_EMU") or "{}")
_ctl = None


def _connect(port, blocking):
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.setblocking(blocking)
    return s


def pn532():
    # The reader's UART: a raw non-blocking socket, as the unix_sim board hands it out.
    return _connect(CFG["pn532"], False)


def meter(model):
    return _connect(CFG["meters"][model], False)


def ctl(line):
    global _ctl
    if _ctl is None:
        _ctl = _connect(CFG["control"], True)
    _ctl.write(line.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        b = _ctl.read(1)
        if not b:
            raise OSError("emulator control socket closed")
        reply += b
    reply = reply.decode().strip()
    if reply != "ok":
        raise AssertionError("emulator: %s -> %s" % (line, reply))
    return reply
