# A download's way onto flash, for net/http.py and net/ftp.py: each chunk written as it comes,
# the file flushed every `sync_every` bytes (LittleFS keeps nothing of an open file's new data
# through a power cut until it is flushed or closed), and a server that trickles, fewer than
# MIN_RATE bytes in a RATE_WINDOW_MS window, refused. Loaded with them, on use.
import time

RATE_WINDOW_MS = const(10000)
MIN_RATE = const(512)  # bytes per window: ~50 B/s, far below any working link


class Sink:
    def __init__(self, f, sync_every=0, rate=None):
        # rate: (bytes, per ms) instead of the default minimum
        self.f = f
        self.sync_every = sync_every
        self.min_rate, self.window = rate or (MIN_RATE, RATE_WINDOW_MS)
        self._unsynced = self._win_bytes = 0
        self._win_start = time.ticks_ms()

    def put(self, mv, k):
        # Writes mv[:k]. -> None, or why the server is too slow (the caller raises its error).
        self.f.write(mv[:k] if k < len(mv) else mv)
        self._unsynced += k
        self._win_bytes += k
        if self.sync_every and self._unsynced >= self.sync_every:
            self.f.flush()
            self._unsynced = 0
        if time.ticks_diff(time.ticks_ms(), self._win_start) >= self.window:
            if self._win_bytes < self.min_rate:
                return "server too slow: %d bytes in %d ms" % (self._win_bytes, self.window)
            self._win_start = time.ticks_ms()
            self._win_bytes = 0
        return None
