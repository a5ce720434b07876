# The Local Authorization List (OCPP 1.6 Local Auth List Management), kept on flash, not in RAM:
# the tags are spread over _BUCKETS small files by a hash of the idTag, one line per tag
# ("<IDTAG>\t<json idTagInfo>\n"). A lookup reads one bucket line by line (about 1/32 of the
# list); nothing holds the whole list in memory.
#
# Updates stream their entries (a list, or a generator reading a message spooled to flash) with
# bounded RAM, and are all or nothing: everything is written into a fresh folder (ll.new) first,
# and only once it is complete and within LocalAuthListMaxLength is it marked done and moved in.
# A Full update swaps the folders; a Differential one moves its rewritten buckets into the list.
# An update that fails (too many entries, a bad entry, flash full) leaves the old list as it was;
# a power cut (or no memory) after the done mark is finished at the next update or boot, one
# before it leaves the old list.
#
# Flash budget: a Full update writes the whole list once; a Differential one writes each entry
# twice (sorted by bucket into a change file, then merged) and rewrites each bucket it touches.
# Updates come from the CSMS, rarely.
import os
import time
from binascii import crc32
import json

import log

_TAG = "locallist"
_BUCKETS = const(32)
_DOC = "locallist"
# A Differential update merges a bucket's changes this many at a time, in two lists allocated
# once per bucket (no growing table: on a fragmented heap a 2 KB merge buffer, or a dict's table,
# found no block where 256-byte ones did); a bucket with more changes is merged in several
# portions, each rewriting the bucket (a 1,000-tag update gives a bucket ~31).
_PORTION = const(32)
_SLICE_MS = const(20)  # apply(): longest stretch of work between two turns of the other tasks


class TooLong(ValueError):
    # More entries than a maximum allows: the update fails, the old list stays.
    pass


def _bucket(id_tag):
    return crc32(id_tag.upper().encode()) % _BUCKETS


def _rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        try:
            os.remove(path + "/" + n)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _read(path):
    # -> the file's bytes, or None when it does not exist
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class LocalList:
    def __init__(self, store, max_length=1000):
        self.store = store
        self.max = max_length
        self.dir = store.path("ll", "")
        meta = store.load(_DOC, {"version": 0, "count": 0})
        self.version = meta["version"]
        self.count = meta["count"]
        self._recover(True)
        try:
            os.mkdir(self.dir)
        except OSError:
            pass

    def _recover(self, boot=False):
        # Move in an update marked done (at boot: one cut short by a power cut), drop one that
        # is not.
        new, old = self.dir + ".new", self.dir + ".old"
        kind = _read(new + "/done")
        if kind is not None and boot:
            log.warn(_TAG, "finishing an update cut short by a power cut")
        if kind == b"D":
            # Differential: its merged buckets replace theirs one by one (a cut mid-way leaves
            # the rest in ll.new, still marked done, for the next update or boot).
            try:
                os.mkdir(self.dir)
            except OSError:
                pass
            for b in range(_BUCKETS):  # (no listing: its list is a 512-byte block)
                src = self._path(b, new)
                if _exists(src):
                    p = self._path(b)
                    _remove(p)  # FAT cannot rename over a file
                    os.rename(src, p)
        elif kind is not None:  # Full (written empty by earlier firmware)
            if _exists(self.dir):
                _rmtree(old)
                os.rename(self.dir, old)
            os.rename(new, self.dir)
        if kind is not None:
            meta = self.store.load(_DOC + "_new", {})
            if meta:
                self.version, self.count = meta["version"], meta["count"]
                self._save_meta()
                self.store.remove(_DOC + "_new")
        _rmtree(new)
        _rmtree(old)
        if _exists(self.dir + "/done"):
            os.remove(self.dir + "/done")

    def _save_meta(self):
        self.store.save(_DOC, {"version": self.version, "count": self.count})

    def _path(self, b, base=None):
        return "%s/%02d" % (base or self.dir, b)

    def lookup(self, id_tag):
        # -> idTagInfo dict, or None when the tag is not on the list
        if not self.count:
            return None
        key = id_tag.upper().encode() + b"\t"
        try:
            f = open(self._path(_bucket(id_tag)), "rb")
        except OSError:
            return None
        with f:
            while True:
                line = f.readline()
                if not line:
                    return None
                if line.startswith(key):
                    try:
                        return json.loads(line[len(key):])
                    except ValueError:
                        log.warn(_TAG, "bad line for %s: treated as not listed", id_tag)
                        return None

    # -- SendLocalList -----------------------------------------------------------------------
    def update(self, version, kind, entries):
        # entries: an iterable of {"idTag", "idTagInfo"?} (a list, or a generator reading them
        # from flash). -> Accepted / Failed / VersionMismatch. In one go; see apply().
        for st in self._steps(version, kind, entries):
            pass
        return st

    async def apply(self, version, kind, entries):
        # update() in slices of about _SLICE_MS with the rest of the charger running between
        # them: 1,000 tags take seconds on the charger, and the relay must not wait that long.
        import asyncio

        for st in self._steps(version, kind, entries):
            if st is None:
                await asyncio.sleep_ms(0)
        return st

    def _steps(self, version, kind, entries):
        # The update; yields None between slices, the status last.
        new = self.dir + ".new"
        done = False
        try:
            self._recover()  # first one accepted but not moved in yet (no memory then)
            if kind == "Differential" and version <= self.version:
                yield "VersionMismatch"
                return
            os.mkdir(new)
            try:
                if kind == "Full":
                    count = yield from self._spread(entries, new, True)
                else:
                    staged = yield from self._spread(entries, new, False)
                    count = yield from self._merge_all(staged, new)
            except BaseException:
                _rmtree(new)
                raise
            self.store.save(_DOC + "_new", {"version": version, "count": count})
            with open(new + "/done", "wb") as f:
                f.write(b"F" if kind == "Full" else b"D")
            done = True  # from here on the update happens (now, else at the next update or boot)
            self._recover()
        except TooLong as e:
            log.warn(_TAG, "%s update refused: %s", kind, e)
            yield "Failed"
            return
        except MemoryError:
            # (ll.new is dropped here, or at the next update or boot: never moved in)
            import gc

            gc.collect()
            if done:  # marked done: moved in now, or at the next update or boot
                try:
                    self._recover()
                except MemoryError:
                    log.warn(_TAG, "%s update: finished at the next update or boot (no "
                             "memory)", kind)
                yield "Accepted"
                return
            log.warn(_TAG, "%s update failed: no memory for it; the list stays as it was", kind)
            yield "Failed"
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.exc(_TAG, "%s update failed" % kind, e)
            yield "Failed"
            return
        log.info(_TAG, "%s update: version %d, %d tags", kind, self.version, self.count)
        yield "Accepted"

    def _spread(self, entries, base, full):
        # Stream the entries into per-bucket files under base. Full: the list's own lines
        # ("<IDTAG>\t<json idTagInfo>"), entries without idTagInfo left out; a tag listed twice
        # is kept once (the lookup finds the first line). Differential: change lines in "NN.c",
        # "<IDTAG>\t" for a removal. -> number of lines written
        #
        # Each bucket file is opened once and stays open until the end: on LittleFS an append
        # to a closed file rewrites its last block, so flushing a RAM buffer into the 32 files
        # every 2 KiB cost ~750 block erases and ~880 KB of writes for 1,000 tags (measured on
        # LittleFS over a counting block device); kept open, each file fills its blocks in
        # order: ~34 erases, about the list's own size written (`borne bench local-list`). The
        # price: 32 open files at once (~8 KB of file objects and 128-byte caches on the
        # charger's LittleFS), only during the update.
        files = [None] * _BUCKETS
        n = 0
        ext = "" if full else ".c"
        t = time.ticks_ms()
        try:
            for e in entries:
                if time.ticks_diff(time.ticks_ms(), t) >= _SLICE_MS:
                    yield
                    t = time.ticks_ms()
                info = e.get("idTagInfo")
                if info is None and full:
                    continue  # Full: an entry without info is not on the list
                tag = e["idTag"]
                if "\t" in tag or "\n" in tag:
                    raise ValueError("idTag with a tab or a line break")  # would break the lines
                n += 1
                if full and n > self.max:
                    raise TooLong("more than LocalAuthListMaxLength (%d) tags" % self.max)
                b = _bucket(tag)
                f = files[b]
                if f is None:
                    f = files[b] = open(self._path(b, base) + ext, "wb")
                f.write(tag.upper().encode())
                f.write(b"\t")
                if info is not None:
                    f.write(json.dumps(info).encode())
                f.write(b"\n")
        finally:
            for f in files:
                if f is not None:
                    f.close()
        return n

    def _merge_all(self, staged, new):
        # Differential: each bucket with changes merged into new/NN. -> the list's new length
        count = self.count
        if staged:
            for b in range(_BUCKETS):
                chg = self._path(b, new) + ".c"
                if _exists(chg):
                    count += self._merge(b, new, chg)
                    os.remove(chg)
                    yield
        if count > self.max:
            raise TooLong("the list would hold %d tags, over LocalAuthListMaxLength (%d)"
                          % (count, self.max))
        return count

    def _merge(self, b, new, chg):
        # Bucket b's changes applied to its current file, into new/NN, at most _PORTION changes
        # in RAM at a time (one portion as a rule; more are applied one after the other, in
        # order). -> tags added - removed
        out = self._path(b, new)
        alt = out + ".t"
        cur = self._path(b)
        delta = 0
        tags = [None] * _PORTION
        lines = [None] * _PORTION
        with open(chg, "rb") as cf:
            while True:
                n = 0
                while n < _PORTION:
                    line = cf.readline()
                    if not line:
                        break
                    tag = line[: line.find(b"\t")]
                    i = _find(tags, n, tag)
                    tags[i] = tag
                    lines[i] = line  # the later change to a tag wins
                    if i == n:
                        n += 1
                if not n:
                    break
                dst = alt if cur == out else out
                delta += self._apply(cur, dst, tags, lines, n)
                cur = dst
        if cur == alt:
            _remove(out)
            os.rename(alt, out)
        return delta

    def _apply(self, src, dst, tags, lines, n):
        # Copy bucket file src to dst without the n tags of the portion, then add its lines (a
        # tag with nothing after its tab removes). -> tags added - removed
        d = 0
        with open(dst, "wb") as out:
            try:
                f = open(src, "rb")
            except OSError:
                f = None
            if f is not None:
                with f:
                    while True:
                        line = f.readline()
                        if not line:
                            break
                        if _find(tags, n, line[: line.find(b"\t")]) < n:
                            d -= 1  # replaced or removed below
                            continue
                        out.write(line)
            for i in range(n):
                line = lines[i]
                if len(line) > len(tags[i]) + 2:  # "<IDTAG>\t\n": a removal
                    out.write(line)
                    d += 1
        return d


def _find(tags, n, tag):
    # -> index of tag among the first n of tags, else n
    i = 0
    while i < n and tags[i] != tag:
        i += 1
    return i
