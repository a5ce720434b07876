# The emulated ESP32's wires to the host simulation (host side only, never shipped).
#
# The simulation starts the agent with the same arguments as for the unix_sim board (--io,
# --rfid, --meter, --gate, --sntp, --wifi-env, --http-port, --dns-port, ...); the board itself
# ignores them, the emulated chip reads them here: they are the printed circuit board around it.
#
# One I/O socket carries the pin-level signals as text lines (the protocol of unix_sim):
#   host -> chip: "cp <high_mv> <low_mv>" (the pilot's levels), "fb 0|1", "rcd 0|1",
#                 "btn <ms>" (the setup button held that long), "s0 <pulses>" (the S0 meter's
#                 total), "card <hex>|-" (a card in the MFRC522's field), "stall <ms>" (the
#                 chip's loop blocked that long, for safety tests)
#   chip -> host: "relay 0|1 <monotonic us>", "pwm <duty %>", "pixel <rrggbb>",
#                 "tone <hz> <ms>", "reset 0|1"
# A thread reads the socket: it is the chip's interrupt controller and the circuit around it.
# The circuit (machine.py: the relay's interlock) reacts on that thread at once, whatever the
# main thread is doing; a pin's IRQ handler is scheduled (micropython.schedule), as the ESP32
# port's ISR does, and runs between the main thread's bytecodes.
import usocket as _so  # the host's sockets: the wires are not the chip's network
import os
import sys
import utime

import _thread

_args = {}
# BORNE_ARGS, one a line, when the simulation passes them so (it keeps them off the command
# line, which the unix port interns as qstrs); else the command line
_argv = os.getenv("BORNE_ARGS")
_argv = ["main.py"] + _argv.split("\n") if _argv else sys.argv
_i = 1
while _i < len(_argv):
    a = _argv[_i]
    if a.startswith("--") and _i + 1 < len(_argv):
        _args[a[2:]] = _argv[_i + 1]
        _i += 2
    else:
        _i += 1


def arg(name, default=None):
    return _args.get(name, default)


def hostport(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


def connect(name):
    # A blocking TCP connection to the simulation's socket for `name` (--rfid, --meter, --io),
    # or None when the simulation has none.
    addr = arg(name)
    if not addr:
        return None
    s = _so.socket()
    s.connect(_so.getaddrinfo(*hostport(addr))[0][-1])
    return s


_io = None
_lock = _thread.allocate_lock()
_handlers = {}  # first word of a host line -> fn(words); registered by the emulated devices


def on(word, fn):
    _handlers[word] = fn
    _start()


_deferred = [0, None]  # a stall (ms) that found its own thread inside send(), and that thread


def send(line):
    # One line to the host; safe from any thread. Without a simulation, nothing is sent.
    s = _start()
    if s is None:
        return
    b = line.encode() + b"\n"
    with _lock:
        while b:
            n = s.send(b)
            b = b[n:]
    ms, who = _deferred
    if ms and who == _thread.get_ident():
        _deferred[0] = 0
        utime.sleep_ms(ms)


def stall(ms):
    # The chip's loop blocked for `ms` (machine.py: "stall", run between the main thread's
    # bytecodes). Never while the lock of send() is held: the watchdog's reset line needs it, and
    # a real chip's watchdog does not wait for its loop. Another thread lets it go at once; if it
    # stays taken, this thread is the one inside send(), and the stall starts as that send ends.
    for _ in range(50):
        if _lock.acquire(0):
            _lock.release()
            utime.sleep_ms(ms)
            return
        utime.sleep_ms(1)
    _deferred[0] = ms
    _deferred[1] = _thread.get_ident()


def die():
    # The chip stops at once, from any thread (the unix port has no os._exit): a SIGKILL to
    # this process, as a power cut or a reset would stop the real chip mid-instruction.
    import os

    os.system("kill -9 $PPID")


def _start():
    global _io
    if _io is None and arg("io"):
        _io = connect("io")
        _thread.start_new_thread(_reader, (_io,))
    return _io


def _reader(s):
    buf = b""
    while True:
        try:
            chunk = s.recv(256)
        except OSError:
            chunk = b""
        if not chunk:
            # The simulation went away: that is the power going off.
            die()
        buf += chunk
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            words = line.split()
            if not words:
                continue
            fn = _handlers.get(words[0].decode())
            if fn is not None:
                try:
                    fn(words)
                except Exception as e:  # a bad line must not stop the interrupt controller
                    sys.print_exception(e)
