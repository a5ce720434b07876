# The agent log on flash: what log.py prints, kept across reboots for diagnostics (GetDiagnostics,
# GetLog DiagnosticsLog). Separate from the event log (eventlog.py, the owner's "last operations").
#
# A ring of _FILES files, each closed at _FILE_BYTES: "<dir>/<seq>.log", the highest seq the one
# being written. Lines are "<unix seconds> <level> <tag>: <text>\n"; log.py's callers never pass
# secrets, and upload URLs are shown without their user:password (net/url.py).
#
# Flash-wear budget: lines gather in RAM (one preallocated buffer of _BUF_BYTES) and reach flash
# in one append when the next line would not fit, _FLUSH_S after its first line, at an ERROR line,
# and before a reset. A busy charger (~1 line/s, ~80 bytes) thus appends ~1 KiB every ~13 s; a
# quiet one once a minute at most. Each append rewrites the file's last LittleFS block (~1 erase
# of 4 KiB): at most ~6,600 erases a day, spread by LittleFS's wear levelling over the
# partition's ~500+ blocks (~13 erases per block a day against ~100,000 cycles: some 20 years).
# A power cut loses at most the buffered lines (_FLUSH_S worth). The ring holds _FILES x
# _FILE_BYTES (64 KiB) on flash; RAM: the buffer, 1 KiB whatever is in it (the lines kept as str
# objects took half as much again in headers and rounding, up to ~3 KiB at a busy boot).
import os
import time

import clock
import log

_FILES = const(4)
_FILE_BYTES = const(16384)
_BUF_BYTES = const(1024)
_FLUSH_S = const(60)
_LINE_MAX = const(240)  # a longer line is cut: one line never dominates the ring


def _seqs(d):
    try:
        names = os.listdir(d)
    except OSError:
        return []
    out = []
    for n in names:
        if n.endswith(".log") and n[:-4].isdigit():
            out.append(int(n[:-4]))
    out.sort()
    return out


class AgentLog:
    def __init__(self, root, files=_FILES, file_bytes=_FILE_BYTES, buf_bytes=_BUF_BYTES):
        self.dir = root + "/agentlog"
        self.files = files
        self.file_bytes = file_bytes
        from store import _makedirs

        _makedirs(self.dir)
        seqs = _seqs(self.dir)
        self.seq = seqs[-1] if seqs else 1
        self.size = self._size(self.seq)
        self._buf = bytearray(buf_bytes)
        self._n = 0  # bytes buffered
        self._first_ms = 0
        self.flushes = 0  # appends to flash since boot (the wear budget, for tests and bench)
        self.failed = False

    def _path(self, seq):
        return "%s/%d.log" % (self.dir, seq)

    def _size(self, seq):
        try:
            return os.stat(self._path(seq))[6]
        except OSError:
            return 0

    # -- writing (log.sink) ---------------------------------------------------------------
    def write(self, lvl, tag, text):
        # Called for every line log.py emits; must never raise nor log.
        if len(text) > _LINE_MAX:
            text = text[:_LINE_MAX] + "..."
        line = ("%d %s %s: %s\n" % (clock.now(), log.LETTERS[lvl // 10 - 1], tag, text)).encode()
        n = len(line)
        if self._n + n > len(self._buf):
            self.flush()
            if n > len(self._buf):  # (only a long line of multi-byte text): straight to flash
                self._append(line, n)
                return
        if not self._n:
            self._first_ms = time.ticks_ms()
        self._buf[self._n : self._n + n] = line
        self._n += n
        if lvl >= log.ERROR:
            self.flush()

    def due(self):
        # The periodic flush: _FLUSH_S after the first buffered line.
        return self._n and time.ticks_diff(time.ticks_ms(), self._first_ms) >= _FLUSH_S * 1000

    def flush(self):
        n, self._n = self._n, 0
        if n:
            self._append(memoryview(self._buf)[:n], n)

    def _append(self, data, n):
        try:
            if self.size + n > self.file_bytes and self.size:
                self._rotate()
            f = open(self._path(self.seq), "ab")
            try:
                f.write(data)
            finally:
                f.close()
            self.size += n
            self.flushes += 1
            self.failed = False
        except OSError:
            # Flash full or failing: the lines are lost (the console still had them); the next
            # flush tries again. Logging here would recurse.
            self.failed = True

    def _rotate(self):
        self.seq += 1
        self.size = 0
        for s in _seqs(self.dir):
            if s <= self.seq - self.files:
                try:
                    os.remove(self._path(s))
                except OSError:
                    pass

    async def run(self):
        import asyncio

        while True:
            await asyncio.sleep(5)
            if self.due():
                self.flush()

    # -- reading ----------------------------------------------------------------------------
    def lines(self, since=None, until=None):
        # The lines (bytes) on flash and those still buffered, oldest first, one at a time: bounded RAM.
        # since/until: unix seconds, inclusive; lines are kept in order within the window.
        self.flush()
        for s in _seqs(self.dir):
            try:
                f = open(self._path(s), "rb")
            except OSError:
                continue
            try:
                while True:
                    ln = f.readline(_LINE_MAX + 64)  # bounded even on a corrupt file
                    if not ln:
                        break
                    if since is not None or until is not None:
                        sp = ln.find(b" ")
                        try:
                            t = int(ln[:sp])
                        except ValueError:
                            continue
                        if (since is not None and t < since) or (until is not None and t > until):
                            continue
                    yield ln
            finally:
                f.close()

    def clear(self):
        self._n = 0
        for s in _seqs(self.dir):
            try:
                os.remove(self._path(s))
            except OSError:
                pass
        self.seq += 1
        self.size = 0


_log = None


def install(root):
    # The app's one agent log: log.py hands it every line it prints.
    global _log
    _log = AgentLog(root)
    log.sink = _log.write
    return _log


def get():
    return _log
