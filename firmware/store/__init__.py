# The one module that persists state. Everything the charger must remember across a power cut
# (settings, OCPP configuration, the transaction queue, the event log) goes through here.
#
# A document <name> lives in up to three files under root:
#   <name>.json   the current copy
#   <name>.bak    the copy before it
#   <name>.tmp    a save in progress (or an interrupted one)
# Each starts with a header line "B1 <seq> <version> <crc32hex> <bodylen>\n", then the JSON body
# (save() zero-pads the length; any width loads).
# load() takes the valid file with the highest seq, so a power cut at any step of save() leaves
# either the old or the new copy readable, never a half-written one as the only copy.
#
# Flash write budget: a save writes one new small file and renames twice: about 1-2 erase blocks
# (4 KiB) of wear on LittleFS. Flash lasts ~100k erase cycles per block and LittleFS spreads the
# wear, so callers save on events (a setting changed, a session started or ended), never on
# timers; fast-moving values stay in RAM and are checkpointed at most about once a minute.
import io
import os
import json
from binascii import crc32

import log

_TAG = const("store")
_EXTS = const((".json", ".tmp", ".bak"))
# Documents and journals, in remove()'s order: the copies a load (or a journal's open) falls
# back to go first, so a power cut leaves the document as it was or none of it.
_ALL = const((".bak", ".json", ".tmp", ".log.tmp", ".log"))
_MAX_BODY = const(65536)  # a corrupt length must not ask the heap for megabytes
_PIECE = const(128)  # bytes of a document's body checked at a time


_BLANK = const("00000000 0000000000\n")  # a header's checksum and length before they are known
_CHUNK = const(256)  # bytes of a saved body per write (json.dump writes it in small pieces)


class _Summed(io.IOBase):
    # What json.dump writes, gathered into _CHUNK-byte writes to the file (a few per document,
    # not one per piece) with its CRC-32 and length summed on the way; done() writes the rest.
    def __init__(self, f):
        self.f = f
        self.crc = 0
        self.n = 0
        self.buf = bytearray(_CHUNK)
        self.k = 0

    def write(self, b):
        n = len(b)
        k = self.k
        if k + n > _CHUNK:
            self.done()
            k = 0
            if n > _CHUNK:
                self._out(b)
                return n
        self.buf[k:k + n] = b
        self.k = k + n
        return n

    def done(self):
        if self.k:
            self._out(memoryview(self.buf)[:self.k])
            self.k = 0

    def _out(self, b):
        self.crc = crc32(b, self.crc)
        self.n += self.f.write(b)


def _makedirs(path):
    # os.makedirs does not exist in MicroPython: create each missing level.
    cur = "" if path[:1] != "/" else "/"
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if cur in ("", "/") else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # exists (or a real failure, which the first open will report)


def _remove(p):
    try:
        os.remove(p)
        return True
    except OSError:
        return False


def _copy(v):
    # Defaults must never be shared with (and mutated through) a loaded document.
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _read(p):
    # -> (seq, version, data, None) for a valid file, (None, None, None, reason) otherwise.
    # A bad file is a reason, not an error; only a MemoryError goes through.
    try:
        f = open(p, "rb")
    except OSError:
        return None, None, None, "missing"
    try:
        head = f.readline(64)  # bounded: a garbage file may have no newline at all
        parts = head.split()
        if len(parts) != 5 or parts[0] != b"B1" or head[-1:] != b"\n":
            return None, None, None, "bad header"
        seq = int(parts[1])
        ver = int(parts[2])
        crc = int(parts[3], 16)
        n = int(parts[4])
        if n > _MAX_BODY:
            return None, None, None, "bad length"
        # The body is checked in small pieces, then parsed from the file: no block of its length
        # (a document holding certificates is a few KB, and the heap may be fragmented then).
        buf = bytearray(_PIECE)
        got = 0
        c = 0
        while True:
            k = f.readinto(buf)
            if not k:
                break
            got += k
            if got > n:  # more than promised: trailing junk
                return None, None, None, "length mismatch"
            c = crc32(memoryview(buf)[:k], c)
        if got < n:
            return None, None, None, "truncated"
        if c != crc:
            return None, None, None, "checksum mismatch"
        buf = None
        f.seek(len(head))
        data = json.load(f)
        if not isinstance(data, dict):
            return None, None, None, "not an object"
        return seq, ver, data, None
    except MemoryError:
        # Not the file's fault: counted as unreadable, an older copy would be used in its place
        # and the good one dropped at the next save. The caller runs out of memory instead.
        raise
    except (ValueError, OSError) as e:
        # int() on garbage, invalid JSON, a flash read error
        return None, None, None, "unreadable (%s)" % type(e).__name__
    finally:
        f.close()


class Store:
    def __init__(self, root):
        self.root = root.rstrip("/") or "/"
        _makedirs(self.root)
        self._seq = {}  # name -> last seq written or read, so saves keep counting up
        self._bad = {}  # name -> True when <name>.json was invalid at load: don't rotate it
        # (only those: an entry for every valid or missing document was a table kept all run)
        # name -> times the document was saved or removed since boot: a reader that derived
        # something from it (security.py's TLS context from the PEMs) knows it did not change
        # while the count stays the same.
        self.changes = {}

    def path(self, name, ext=".json"):
        return "%s/%s%s" % (self.root, name, ext)

    def load(self, name, defaults, version=1):
        best = None  # (seq, ext, version, data)
        bad = []
        top = -1
        for ext in _EXTS:
            seq, ver, data, why = _read(self.path(name, ext))
            if why is None:
                if seq > top:
                    top = seq
                if best is None or seq > best[0]:
                    best = (seq, ext, ver, data)
            elif why != "missing" or ext == ".json":
                bad.append((ext, why))
        seen = name in self._seq  # loaded (or saved) before since boot
        self._seq[name] = max(top, 0)
        self._mark_bad(name, any(ext == ".json" and w != "missing" for ext, w in bad))
        fn = name + ".json"
        if best is None:
            why = "; ".join(name + e + ": " + w for e, w in bad if w != "missing")
            if why:
                log.warn(_TAG, "%s, using defaults", why)
            elif not seen:  # the normal state of many documents: said once a boot
                log.info(_TAG, "%s: not written yet, using defaults", fn)
            return _copy(defaults)
        seq, ext, ver, data = best
        for e, w in bad:
            if e == ".tmp":
                # The usual trace of a power cut during a save: the older copy is intact.
                log.info(_TAG, "%s.tmp: %s (interrupted save), ignored", name, w)
            elif ext == ".tmp" and w == "missing":
                pass  # the save was cut between its two renames; reported just below
            else:
                log.warn(_TAG, "%s%s: %s, using last good %s", name, e, w, ext)
        if ext == ".tmp":
            log.warn(_TAG, "%s: save was interrupted after writing its .tmp, finishing it", fn)
            self._finish(name)
        if ver > version:
            # Written by a newer firmware before a rollback: its meaning may differ; start clean.
            log.warn(_TAG, "%s: version %d is newer than %d, using defaults", fn, ver, version)
            return _copy(defaults)
        for k in defaults:
            if k not in data:
                data[k] = _copy(defaults[k])
        return data

    def _finish(self, name):
        # Complete an interrupted save whose .tmp is the newest valid copy, so the next save
        # (which overwrites .tmp) cannot destroy it. Each step keeps a valid copy, like save().
        try:
            self._rotate(name)
            os.rename(self.path(name, ".tmp"), self.path(name))
        except OSError as e:
            log.exc(_TAG, "%s: finishing interrupted save" % name, e)

    def _rotate(self, name):
        # .json -> .bak, dropping the old .bak first (FAT cannot rename over a file).
        # An invalid .json is dropped instead, keeping the good .bak as the fallback.
        cur = self.path(name)
        if self._bad.get(name):
            _remove(cur)
            del self._bad[name]
            return
        try:
            os.stat(cur)
        except OSError:
            return
        bak = self.path(name, ".bak")
        _remove(bak)
        os.rename(cur, bak)

    def _last_seq(self, name):
        seq = self._seq.get(name)
        if seq is None:
            # save() without load(): read the copies once to keep counting up.
            seq = 0
            for ext in _EXTS:
                s, _, _, why = _read(self.path(name, ext))
                if s is not None and s > seq:
                    seq = s
                if ext == ".json":
                    self._mark_bad(name, why is not None and why != "missing")
        return seq

    def _mark_bad(self, name, bad):
        if bad:
            self._bad[name] = True
        else:
            self._bad.pop(name, None)

    def save(self, name, data, version=1):
        # Raises (OSError: flash full or failing, TypeError: not JSON-able) with the previous
        # copy intact (a .tmp left unfinished, which load() passes over, or removed: one written
        # whole but not renamed would be taken). Atomic replace. The
        # states a power cut can leave, and what load() then finds:
        #  1. .tmp partly written          -> .json (old) is newest valid
        #  2. .tmp complete, .bak removed  -> .tmp (new) beats .json (old) by seq
        #  3. .json renamed to .bak        -> .tmp (new), .bak (old)
        #  4. .tmp renamed to .json        -> .json (new), .bak (old)
        seq = self._last_seq(name) + 1
        tmp = self.path(name, ".tmp")
        f = open(tmp, "wb")
        try:
            try:
                # The body streams from json.dump (no block of its length: a document holding
                # certificates is a few KB, and the heap may be fragmented then); the header
                # goes first with its checksum and length zero, and is written again once they
                # are known (the same width: zero-padded). A cut before that leaves a .tmp
                # load() rejects.
                head = "B1 %d %d " % (seq, version)
                f.write(head + _BLANK)
                w = _Summed(f)
                json.dump(data, w)
                w.done()
                f.seek(len(head))
                f.write("%08x %010d\n" % (w.crc, w.n))
            finally:
                f.close()  # closing flushes to flash on LittleFS
        except OSError:
            _remove(tmp)  # the partial copy would hold space a full flash lacks
            raise
        self._changed(name)  # before the renames: a save cut after one may have changed it
        try:
            self._rotate(name)
            os.rename(tmp, self.path(name))
        except OSError:
            # A rename refused (LittleFS without a block for the folder): the .tmp is whole and
            # the newest, and a load would take it; but the caller was told the save failed.
            _remove(tmp)
            raise
        self._seq[name] = seq

    def _changed(self, name):
        self.changes[name] = self.changes.get(name, 0) + 1

    def remove(self, name):
        # Every copy of the document and its journal (factory reset, unclaim, a session's end),
        # the older first (_ALL).
        self._changed(name)
        for ext in _ALL:
            _remove(self.path(name, ext))
        self._seq.pop(name, None)
        self._bad.pop(name, None)

    def spool(self, name):
        # A scratch file for one large incoming message (ws.py writes it, rpc.py reads it back);
        # any copy left by a reboot mid-message is dropped here, so call this once at boot.
        return Spool(self.path(name, ".spool"))

    def journal(self, name, max_records, ring=False):
        from store.journal import Journal  # lazy: not every caller needs it

        return Journal(self.path(name, ".log"), max_records, ring)


class Spool:
    # A message too long for RAM, on its way through flash: written once in chunks as it arrives,
    # read back once, removed. Not a document: no copies, no CRC (the WebSocket layer knows its
    # length, and a power cut makes it worthless anyway: the CSMS gets no answer and repeats).
    # Flash budget: one write of the message (at most the WebSocket's flash limit) per message
    # over the RAM limit; those are rare (a SendLocalList of more than ~200 tags).
    def __init__(self, path):
        self.path = path
        _remove(path)

    def create(self):
        return open(self.path, "wb")

    def open(self):
        return open(self.path, "rb")

    def remove(self):
        _remove(self.path)
