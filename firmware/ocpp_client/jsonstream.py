# Streaming JSON reader over a file: a text far larger than the heap (a 1,000-entry SendLocalList
# spooled to flash) is walked in place through one buffer, value by value. Only small values are
# ever materialised: value() hands out the text of one value as a memoryview of the buffer (for
# json.loads), skip() passes over a value of any size.
#
# Speed without per-byte Python: string contents (most of the bytes) are crossed with
# bytearray.find for the closing quote and any backslash; long runs of structure between strings
# (numbers, indentation) with bytearray.count. Python steps byte by byte only over the short runs
# where a value may end (`}}`, `":{`, a number) and over blanks between values.
#
# The reader checks the structure it walks (brackets, commas, colons); the values it hands out
# are checked by whoever parses them (json.loads). Skipped values are only bracket-matched.
# Malformed or oversized text raises ValueError, as json.loads does (no class of its own to load).
import json

_BUF = const(2048)  # buffer when the caller has none to lend: the longest value it can hand out
_QUOTE = const(0x22)
_COMMA = const(0x2C)
_COLON = const(0x3A)
_LBRACKET = const(0x5B)
_RBRACKET = const(0x5D)
_LBRACE = const(0x7B)
_RBRACE = const(0x7D)


class Reader:
    # `f`: a file open for reading (binary); `buf`: a bytearray to work in (the WebSocket's idle
    # receive buffer), or None for a fresh one.
    def __init__(self, f, buf=None):
        self.f = f
        self.b = buf if buf is not None else bytearray(_BUF)
        self.mv = memoryview(self.b)
        self.n = 0  # bytes of the file in the buffer
        self.i = 0  # read position in the buffer
        self.base = 0  # file offset of the buffer's first byte
        self.eof = False
        # scan state, kept across refills: nesting depth, inside a string, inside a scalar,
        # where to go on
        self._d = 0
        self._q = False
        self._s = False
        self._r = 0

    # -- position --------------------------------------------------------------------------
    def tell(self):
        return self.base + self.i

    def seek(self, pos):
        if self.base <= pos <= self.base + self.n:
            self.i = pos - self.base
            return
        self.f.seek(pos)
        self.base = pos
        self.n = self.i = 0
        self.eof = False

    def _more(self, keep):
        # Slide b[keep:n] to the front and read more after it. -> False at the end of the file.
        # `keep` is where the value being read starts: it stays in one piece.
        if self.eof:
            return False
        k = self.n - keep
        if k >= len(self.b):
            raise ValueError("a value over %d bytes" % len(self.b))
        if keep:
            if k:
                self.mv[:k] = self.mv[keep : self.n]
            self.base += keep
            self.i -= keep
            self.n = k
        got = self.f.readinto(self.mv[k:])
        if not got:
            self.eof = True
            return False
        self.n = k + got
        return True

    # -- tokens ----------------------------------------------------------------------------
    def peek(self):
        # The next non-blank byte (not consumed), or -1 at the end of the text.
        while True:
            b = self.b
            i = self.i
            n = self.n
            while i < n:
                c = b[i]
                if c != 0x20 and c != 0x0A and c != 0x0D and c != 0x09:
                    self.i = i
                    return c
                i += 1
            self.i = n
            if not self._more(n):
                return -1

    def next_is(self, c):
        # Consume the next non-blank byte if it is c.
        if self.peek() == c:
            self.i += 1
            return True
        return False

    def expect(self, c):
        if self.peek() != c:
            raise ValueError("'%s' expected at byte %d" % (chr(c), self.tell()))
        self.i += 1

    def end(self):
        # Only blanks are left.
        return self.peek() < 0

    # -- values ----------------------------------------------------------------------------
    def value(self, limit):
        # The text of the next value, at most `limit` bytes (and the buffer's size), as a
        # memoryview of the buffer: valid until the reader moves on.
        s, e = self._walk(limit)
        return self.mv[s:e]

    def load(self, limit):
        # The next value, parsed (at most `limit` bytes of text).
        return json.loads(self.value(limit))

    def skip(self):
        # Pass over the next value, whatever its size.
        self._walk(0)

    def items(self, limit):
        # At '[': the text of each element in turn (as value() gives it), then past the ']'.
        self.expect(_LBRACKET)
        if self.next_is(_RBRACKET):
            return
        while True:
            yield self.value(limit)
            if not self.next_is(_COMMA):
                self.expect(_RBRACKET)
                return

    def members(self, limit):
        # At '{': each key in turn (a str of at most `limit` bytes of text); the caller reads or
        # skips its value before asking for the next one. Ends past the '}'.
        self.expect(_LBRACE)
        if self.next_is(_RBRACE):
            return
        while True:
            if self.peek() != _QUOTE:
                raise ValueError("a key expected at byte %d" % self.tell())
            k = self.load(limit)
            self.expect(_COLON)
            yield k
            if not self.next_is(_COMMA):
                self.expect(_RBRACE)
                return

    def _walk(self, limit):
        # Find the end of the value at the next non-blank byte; with limit > 0 the value is kept
        # whole in the buffer. -> (start, end) indices in the buffer; the reader is left past it.
        c = self.peek()
        if c < 0:
            raise ValueError("the text ends where a value was expected")
        if c == _COMMA or c == _COLON or c == _RBRACKET or c == _RBRACE:
            raise ValueError("a value expected at byte %d" % self.tell())
        self._q = c == _QUOTE
        self._s = not self._q and c != _LBRACE and c != _LBRACKET
        self._d = 0 if self._q or self._s else 1
        start = self.base + self.i
        i = self.i if self._s else self.i + 1
        while True:
            j = self._scan(i)
            s = start - self.base
            if j >= 0:
                if limit and j - s > limit:
                    raise ValueError("a value over %d bytes at byte %d" % (limit, start))
                self.i = j
                return s, j
            if limit and self.n - s > limit:
                raise ValueError("a value over %d bytes at byte %d" % (limit, start))
            resume = self.base + self._r
            if not self._more(s if limit else min(self._r, self.n)):
                if self._s:  # a scalar that runs to the end of the text ends there
                    self.i = self.n
                    return start - self.base, self.n
                raise ValueError("the text ends inside a value")
            i = resume - self.base

    def _scan(self, i):
        # Go on scanning the value from b[i]. -> the index just past its end, or -1 when the
        # buffer ends first (then go on from self._r once more is read).
        b = self.b
        n = self.n
        d = self._d
        if self._s:
            # a number, true, false or null: ends at a delimiter
            while i < n:
                c = b[i]
                if c == _COMMA or c == _RBRACKET or c == _RBRACE or c <= 0x20:
                    return i
                i += 1
            self._r = i
            return -1
        while i < n:
            if self._q:
                q = b.find(b'"', i, n)
                e = b.find(b"\\", i, n if q < 0 else q)
                if e >= 0:
                    i = e + 2  # the escaped byte is skipped, whatever it is (a quote too)
                    continue
                if q < 0:
                    i = n
                    break
                i = q + 1
                self._q = False
                if d == 0:
                    return i  # a string value
                continue
            q = b.find(b'"', i, n)
            if q < 0:
                q = n
            if q - i > 8:
                # A long run without strings: if it cannot close the value, count, don't step.
                cl = b.count(b"}", i, q) + b.count(b"]", i, q)
                if cl < d:
                    d += b.count(b"{", i, q) + b.count(b"[", i, q) - cl
                    i = q
            while i < q:
                c = b[i]
                i += 1
                if c == _LBRACE or c == _LBRACKET:
                    d += 1
                elif c == _RBRACE or c == _RBRACKET:
                    d -= 1
                    if d == 0:
                        self._d = 0
                        return i
            if q < n:
                self._q = True
                i = q + 1
        self._d = d
        self._r = i
        return -1
