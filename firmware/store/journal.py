# An append-only record log for what must survive power cuts, in order: the OCPP transaction
# message queue (records acked once the CSMS answered) and the event log (ring=True).
#
# One line per entry:
#   <seq> <crc32hex> <json>\n     a record
#   <seq> <crc32hex> A\n          an ack: every record with seq <= <seq> is done
# The crc covers the seq text and what follows it, so a flipped digit in either is caught.
# A line is appended with open("ab") / write / close: it is durable once append() returns. A
# power cut mid-write leaves a torn last line, which is skipped (and fenced off before the next
# append so it cannot swallow the next record).
#
# Bounds: a queue (ring=False) never drops a pending record; once more than max_records lines are
# on flash and at least half of them are dead (acked records, ack lines, bad lines) it compacts.
# If the CSMS stays away, pending records can outgrow max_records: the caller watches len() and
# decides what may go (e.g. intermediate MeterValues). A ring (ring=True) shows only its newest
# max_records and compacts when the file reaches 2 x max_records lines.
#
# Compaction rewrites the live records to <path>.tmp and renames it over <path>; until the rename
# the old file is whole, after it the new one is. At open a leftover .tmp is either a partial
# rewrite (the main file still exists: dropped) or a finished one whose rename was cut on a
# filesystem that cannot rename over a file (main missing: completed). A rewrite that fails
# (flash full) removes its .tmp and waits _AGAIN more lines before the next try.
#
# Flash full or failing: append() raises OSError with nothing on flash (a torn part is fenced
# off); ack() marks the records done in RAM and raises after (see ack()).
#
# No memory: append() and ack() retry a MemoryError after a collection (_TRIES in all) and raise
# it only when nothing reached flash, so a caller may try again later without a duplicate; what
# may run after the line is on flash (compaction, a ring's recount) never raises it. A record's
# JSON text is written as it is, not copied into one line first (a third of the peak).
#
# Flash budget: an append or an ack writes one short line (LittleFS rewrites the file's last
# block: ~1 erase). Compaction rewrites the live records, at most once every ~max_records/2
# appends, because it waits until at least half the file is dead lines.
import gc
import os
import json
from binascii import crc32

import log

_TAG = const("journal")
_ACK = const(b"A")
# Longest line append() writes; a longer one on flash is garbage. Lines are read in chunks
# (readline(n) allocates n bytes up front), so a corrupt file without newlines cannot exhaust
# the heap and a usual line costs one small allocation.
_MAX_LINE = const(8192)
_CHUNK = const(256)
_TRIES = const(3)
_AGAIN = const(32)  # lines appended after a failed compaction before the next try
_EEXIST = const(17)


def _drop(p):
    try:
        os.remove(p)
    except OSError:
        pass


def _crc(seq, payload):
    return crc32(payload, crc32(b"%d" % seq))


def _line(seq, payload):
    return b"%d %08x %s\n" % (seq, _crc(seq, payload), payload)


def _retry(fn, arg):
    # fn(arg), tried _TRIES times with a collection between: MemoryError only if the last fails.
    tries = _TRIES
    while True:
        try:
            return fn(arg)
        except MemoryError:
            tries -= 1
            if not tries:
                raise
            gc.collect()


class Journal:
    def __init__(self, path, max_records, ring=False):
        self.path = path
        self.max = max_records
        self.ring = ring
        # Where a queue's reading may start: the offset of a line that held its oldest pending
        # record at the last pass. Every line before it is acked, an ack or bad, and the file
        # only grows until a compaction (which resets it), so a pass over a queue being drained
        # reads a few lines, not the whole file. _at: the offset of the line _lines() yielded.
        self._from = self._from_seq = 0
        self._at = 0
        self._again = 0  # no compaction before this many lines (after a failed one)
        # A compaction cut short completed or dropped, then the counters read from the file
        # (store/jopen.py: loaded for the opening, out of the heap after it).
        from supervisor import rare

        rare("store.jopen", "prepare", self)

    # -- opening -----------------------------------------------------------------------------

    def _lines(self, start=0):
        # -> (seq, payload or None for a bad line, raw line) one line at a time, from byte
        # offset start; never the whole file in RAM.
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        try:
            if start:
                f.seek(start)
            while True:
                self._at = f.tell()
                ln = f.readline(_CHUNK)
                if not ln:
                    break
                part = ln
                over = False
                while len(part) == _CHUNK and part[-1:] != b"\n":
                    part = f.readline(_CHUNK)
                    if over or len(ln) + len(part) > _MAX_LINE:
                        over = True  # longer than any record: corrupt; read on to its end
                    else:
                        ln += part
                if over:
                    yield None, part or b"?"  # ends without a newline only at a torn end
                else:
                    yield self._parse(ln), ln
        finally:
            f.close()

    @staticmethod
    def _parse(ln):
        # -> (seq, payload) or None; payload is _ACK or the JSON text: a view into the line, not
        # a copy (a record's ~0.4 KB, a second block as long as the line, which a heap short of
        # memory may lack while the session delivers the queue: json.loads and crc32 read it).
        if ln[-1:] != b"\n":
            return None
        i = ln.find(b" ")
        j = ln.find(b" ", i + 1)
        if i <= 0 or j < 0:
            return None
        try:
            seq = int(ln[:i])
            crc = int(ln[i + 1 : j], 16)
        except ValueError:
            return None
        payload = memoryview(ln)[j + 1 : -1]
        if _crc(seq, payload) != crc:
            return None
        if len(payload) == 1 and ln[j + 1] == _ACK[0]:
            payload = _ACK  # (compared with ==, which a view does not do)
        return seq, payload

    def _count_pending(self):
        if self.ring and not self._acked:
            self._npend = min(self._nrec, self.max)  # the usual ring: no acks, no reading
            return
        n = 0
        for _ in self.pending():
            n += 1
        self._npend = n

    # -- reading -----------------------------------------------------------------------------

    def records(self):
        # (seq, obj) in order, acked or not; a ring shows only its newest max_records.
        skip = self._nrec - self.max if self.ring else 0
        for p, _ in self._lines():
            if p is None or p[1] == _ACK:
                continue
            if skip > 0:
                skip -= 1
                continue
            try:
                obj = json.loads(p[1])
            except ValueError:
                continue  # crc matched but not JSON: written by something else; skip it
            yield p[0], obj

    def pending(self):
        # Unacked records in order. Do not append or ack while iterating; close() an iteration
        # left early. A queue being drained is read again and again: each pass starts where the
        # last found its oldest pending record (_from), and skips acked lines unparsed.
        w = self._acked
        if self.ring:
            for seq, obj in self.records():
                if seq > w:
                    yield seq, obj
            return
        start = self._from
        while True:
            check = bool(start)  # the line at start must be the record line it was
            found = False
            lines = self._lines(start)
            try:
                for p, _ in lines:
                    if check:
                        check = False
                        if p is None or p[0] != self._from_seq:
                            break
                    if p is None or p[1] == _ACK or p[0] <= w:
                        continue
                    if not found:
                        found = True
                        self._from = self._at
                        self._from_seq = p[0]
                    try:
                        obj = json.loads(p[1])
                    except ValueError:
                        continue
                    yield p[0], obj
                else:
                    if not check:
                        return
            finally:
                lines.close()  # the file, now, not at a collection: it may be appended next
            # No line, or not the record (seq) it was, where the last pass left off: the file
            # was replaced behind this object (removed by a reset). Read it all.
            start = self._from = 0

    def __len__(self):
        return self._npend

    def last_seq(self):
        return self._seq

    # -- writing -----------------------------------------------------------------------------

    def _append_ack(self, seq):
        self._append_line(_line(seq, _ACK))

    def _append_line(self, line, payload=None):
        # line, then payload (the record's JSON, str or bytes) and its newline if given
        f = open(self.path, "ab")
        done = False
        try:
            if self._torn:
                # Fence off a torn line left by a power cut. The extra byte spoils its crc even
                # if only the newline was missing: an append that never returned stays void.
                f.write(b"~\n")
                self._nlines += 1
                self._torn = False
            f.write(line)
            if payload is not None:
                f.write(payload)
                f.write(b"\n")
            done = True
        finally:
            f.close()
            if not done:
                self._torn = True  # whatever part reached flash is fenced off by the next one
        self._nlines += 1

    def append(self, obj):
        # -> seq, once the record is on flash. ValueError if its line exceeds _MAX_LINE bytes.
        # MemoryError only when the record is not on flash (see the header).
        seq = _retry(self._append, obj)
        self._after_write(not self.ring)
        return seq

    def _append(self, obj):
        seq = self._seq + 1
        payload = json.dumps(obj)  # str: crc32() and write() take its UTF-8 bytes as they are
        head = b"%d %08x " % (seq, _crc(seq, payload))
        if len(head) + len(payload) + 1 > _MAX_LINE:
            raise ValueError("record too big")
        self._append_line(head, payload)
        self._seq = seq
        self._nrec += 1
        return seq

    def _after_write(self, counted):
        # The line is on flash: bookkeeping that may allocate, never raising MemoryError.
        try:
            if counted:
                self._npend += 1
            elif self.ring or self._npend < 0:
                self._count_pending()
            self._maybe_compact()
        except MemoryError:
            gc.collect()  # a ring's count stays as it was; the trim waits for the next write

    def ack(self, seq, flash=True):
        # Everything up to seq is done. Never beyond the last record: a later append must not
        # be born acked. MemoryError only when the ack is not on flash. flash=False: done in
        # RAM only (as when the flash refuses the ack line, below).
        if seq > self._seq:
            seq = self._seq
        if seq <= self._acked:
            return
        err = None
        try:
            if flash:
                _retry(self._append_ack, seq)
        except OSError as e:
            # Flash full or failing: done in RAM all the same (pending() skips it: a queue is
            # not sent the same record again and again), raised after; the next ack line or
            # compaction carries it to flash, a reboot before that repeats it (at least once).
            err = e
        old, self._acked = self._acked, seq
        # Record seqs are consecutive, so the count moves by arithmetic, not by a rescan (an ack
        # per delivered message would make draining a queue quadratic). A skipped corrupt
        # record can make this undercount; the next open recounts.
        self._npend -= seq - old
        if err is not None:
            raise err
        self._after_write(False)

    def _maybe_compact(self):
        n = self._nlines
        if n > self.max and n >= self._again and (n - self._npend) * 2 >= n:
            try:
                self.compact()
            except (OSError, MemoryError) as e:
                # The record is already durable; a failed rewrite only postpones the trim, by
                # _AGAIN lines (a full flash: not one failed rewrite per append).
                self._again = n + _AGAIN
                log.exc(_TAG, "%s: compaction" % self.path, e)

    def compact(self):
        # Rewrite: one ack line carrying the watermark (so seqs keep counting up after a restart
        # even when nothing is pending), then the live records, unchanged byte for byte.
        tmp = self.path + ".tmp"
        top = self._seq
        w = self._acked
        n = 1
        try:
            f = open(tmp, "wb")
            try:
                # The watermark line keeps the top seq when every record is acked.
                f.write(_line(top if self._npend == 0 else w, _ACK))
                for ln in self._live_lines():
                    f.write(ln)
                    n += 1
            finally:
                f.close()
            os.rename(tmp, self.path)
        except Exception as e:
            if not (isinstance(e, OSError) and e.errno == _EEXIST):
                _drop(tmp)  # partial, or whole but not renamed: its space back (a full flash)
                raise
            # A filesystem that cannot rename over a file (EEXIST; MicroPython's FAT renames
            # over one itself): the main file goes first, the next open (jopen.py) completes
            # this if cut here. Should the rename fail still, the .tmp holds every record and
            # is the journal from now on (appends go there: a new main file would make the
            # next open drop the .tmp as a partial rewrite; with no main file it renames it).
            os.remove(self.path)
            try:
                os.rename(tmp, self.path)
            except OSError:
                self.path = tmp
                raise
        self._again = 0
        self._nlines = n
        self._nrec = n - 1
        self._torn = False
        self._from = 0
        if self._npend == 0:
            self._acked = top

    def _live_lines(self):
        skip = self._nrec - self.max if self.ring else 0
        w = self._acked
        for p, ln in self._lines():
            if p is None or p[1] == _ACK:
                continue
            if skip > 0:
                skip -= 1
                continue
            if p[0] > w:
                yield ln
