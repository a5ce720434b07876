# A TCP or TLS connection made as asyncio.open_connection makes it, but whose socket is closed
# when the connect is given up (the caller's wait_for_ms or within() cancels it: a host that
# drops SYNs) or fails: open_connection leaves it to the GC (lwIP has ~10 sockets on the ESP32;
# the unix port never closes one), and a connection retried through an outage ran out of them.
# Loaded with those that connect (ocpp_client/wsopen.py, net/http.py, net/ftp.py, diag/certs.py,
# mqtt/link.py) and dropped with them.
import asyncio
import socket
from errno import EINPROGRESS

from asyncio import core


def connect(host, port, ctx=None, hostname=None):
    # -> (reader, writer): one asyncio Stream. `host`: an IP (getaddrinfo on a name blocks the
    # loop: net/dns.py resolves it first); `ctx`: an SSLContext, the TLS handshake (checking
    # `hostname`) then runs at the first write, whose caller closes the stream if it fails.
    # A generator, as open_connection is: the loop's poller waits for the connect.
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    raw = s = socket.socket(ai[0], ai[1], ai[2])
    try:
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != EINPROGRESS:
                raise
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname=hostname or host, do_handshake_on_connect=False)
            s.setblocking(False)
        yield core._io_queue.queue_write(s)
    except BaseException:
        s.close()
        raw.close()  # (already closed with s unless a TLS socket let it go)
        raise
    w = asyncio.StreamWriter(s, {})
    w.raw = raw
    return w, w


def close(w):
    # Closes a stream from connect() (MicroPython's Stream.close() does nothing): its socket, and
    # the TCP one under a TLS one, which a failed handshake cuts loose (modtls forgets it: the
    # TLS socket's close() then leaves it open). A second close() of a socket does nothing.
    for s in (getattr(w, "s", w), getattr(w, "raw", None)):
        try:
            s.close()
        except Exception:
            pass
