# Updates of the Local Authorization List (locallist.py: the list and its lookup), loaded for a
# SendLocalList, or to finish an update a power cut left (LocalList.unfinished), not with every
# tap.
#
# Updates stream their entries (a list, or a generator reading a message spooled to flash) with
# bounded RAM, and are all or nothing: everything is written into a fresh folder (ll.new) first,
# and only once it is complete and within LocalAuthListMaxLength is it marked done and moved in.
# A Full update swaps the folders; a Differential one moves its rewritten buckets into the list.
# An update that fails (too many entries, a bad entry, flash full) leaves the old list as it was;
# a power cut (or no memory) after the done mark is finished at the next update or boot, one
# before it leaves the old list.
#
# Flash budget: a Full update writes the whole list twice (sorted by group, then by bucket:
# _spread); a Differential one writes each entry three times (then merged) and rewrites each
# bucket it touches. Updates come from the CSMS, rarely.
import json
import os
import time

import log
from ocpp_client.locallist import BUCKETS, DOC, bucket, exists
from store.wipe import rmtree

_TAG = const("locallist")
# A Differential update merges a bucket's changes this many at a time, in two lists allocated
# once per bucket (no growing table: on a fragmented heap a 2 KB merge buffer, or a dict's table,
# found no block where 256-byte ones did); a bucket with more changes is merged in several
# portions, each rewriting the bucket (a 1,000-tag update gives a bucket ~31).
_PORTION = const(32)
_GROUP = const(6)  # buckets per group file (_spread)
_GROUPS = const(6)  # group files: BUCKETS / _GROUP, rounded up
_SLICE_MS = const(20)  # apply(): longest stretch of work between two turns of the other tasks


class TooLong(ValueError):
    # More entries than a maximum allows: the update fails, the old list stays.
    pass


def update(ll, version, kind, entries):
    # ll: a locallist.LocalList; entries: an iterable of {"idTag", "idTagInfo"?} (a list, or a
    # generator reading them from flash). -> Accepted / Failed / VersionMismatch. In one go;
    # see apply().
    for st in steps(ll, version, kind, entries):
        pass
    return st


async def apply(ll, version, kind, entries):
    # update() in slices of about _SLICE_MS with the rest of the charger running between them:
    # 1,000 tags take seconds on the charger, and the relay must not wait that long.
    import asyncio

    for st in steps(ll, version, kind, entries):
        if st is None:
            await asyncio.sleep_ms(0)
    return st


def steps(ll, version, kind, entries):
    # The update; yields None between slices, the status last.
    new = ll.dir + ".new"
    done = False
    try:
        recover(ll)  # first one accepted but not moved in yet (no memory then)
        if kind == "Differential" and version <= ll.version:
            yield "VersionMismatch"
            return
        os.mkdir(new)
        try:
            if kind == "Full":
                count = yield from _spread(ll, entries, new, True)
            else:
                staged = yield from _spread(ll, entries, new, False)
                count = yield from _merge_all(ll, staged, new)
        except BaseException:
            rmtree(new)
            raise
        ll.store.save(DOC + "_new", {"version": version, "count": count})
        with open(new + "/done", "wb") as f:
            f.write(b"F" if kind == "Full" else b"D")
        done = True  # from here on the update happens (now, else at the next update or boot)
        recover(ll)
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
                recover(ll)
            except MemoryError:
                log.warn(_TAG, "%s update: finished at the next update or boot (no "
                         "memory)", kind)
            yield "Accepted"
            return
        log.warn(_TAG, "%s update failed: no memory for it; the list stays as it was", kind)
        yield "Failed"
        return
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        if done:  # marked done (the flash full after it): as without memory above
            log.exc(_TAG, "%s update: finished at the next update or boot" % kind, e)
            yield "Accepted"
            return
        log.exc(_TAG, "%s update failed" % kind, e)
        yield "Failed"
        return
    log.info(_TAG, "%s update: version %d, %d tags", kind, ll.version, ll.count)
    yield "Accepted"


def _spread(ll, entries, base, full):
    # Stream the entries into per-bucket files under base. Full: the list's own lines
    # ("<IDTAG>\t<json idTagInfo>"), entries without idTagInfo left out; a tag listed twice
    # is kept once (the lookup finds the first line). Differential: change lines in "NN.c",
    # "<IDTAG>\t" for a removal. -> number of lines written
    #
    # Every file is written in one go, open from its first line to its last: on LittleFS an
    # append to a closed file rewrites its last block, so flushing a RAM buffer into the 32
    # files every 2 KiB cost ~750 block erases and ~880 KB of writes for 1,000 tags
    # (measured on LittleFS over a counting block device). An open file costs the charger
    # ~240 bytes of heap (its object and a 128-byte cache): the 32 bucket files open at once
    # were ~8 KB. So in two steps: the entries into _GROUPS group files, then each group
    # into its _GROUP buckets; at most 1 + _GROUP files open, the list written twice (~61
    # erases for 1,000 tags: `borne bench local-list`).
    n = yield from _group(ll, entries, base, full)
    for g in range(_GROUPS):
        yield from _split(ll, g, base, "" if full else ".c")
    return n


def _group_path(base, g):
    return "%s/g%d" % (base, g)


def _group(ll, entries, base, full):
    # The entries as bucket lines, each after its bucket's two digits, into group files
    # "gN". -> number of lines written
    files = [None] * _GROUPS
    n = 0
    t = time.ticks_ms()
    try:
        for e in entries:
            if time.ticks_diff(time.ticks_ms(), t) >= _SLICE_MS:
                yield
                t = time.ticks_ms()
            info = e.get("idTagInfo")
            if info is None and full:
                # 1.6: idTagInfo is required in a Full update; Failed, the list as it was
                raise ValueError("an entry without idTagInfo in a Full update")
            tag = e["idTag"]
            if "\t" in tag or "\n" in tag:
                raise ValueError("idTag with a tab or a line break")  # would break the lines
            n += 1
            if full and n > ll.max:
                raise TooLong("more than LocalAuthListMaxLength (%d) tags" % ll.max)
            b = bucket(tag)
            g = b // _GROUP
            f = files[g]
            if f is None:
                f = files[g] = open(_group_path(base, g), "wb")
            f.write(b"%02d" % b)
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


def _split(ll, g, base, ext):
    # Group file g's lines into its buckets' files (without the two digits), then gone.
    src = _group_path(base, g)
    try:
        f = open(src, "rb")
    except OSError:
        return  # no entry in this group
    files = [None] * _GROUP
    first = g * _GROUP
    t = time.ticks_ms()
    try:
        with f:
            while True:
                line = f.readline()
                if not line:
                    break
                b = int(line[:2])
                out = files[b - first]
                if out is None:
                    out = files[b - first] = open(ll.path(b, base) + ext, "wb")
                out.write(line[2:])
                if time.ticks_diff(time.ticks_ms(), t) >= _SLICE_MS:
                    yield
                    t = time.ticks_ms()
    finally:
        for out in files:
            if out is not None:
                out.close()
    os.remove(src)


def _merge_all(ll, staged, new):
    # Differential: each bucket with changes merged into new/NN. -> the list's new length
    count = ll.count
    if staged:
        for b in range(BUCKETS):
            chg = ll.path(b, new) + ".c"
            if exists(chg):
                count += _merge(ll, b, new, chg)
                os.remove(chg)
                yield
    if count > ll.max:
        raise TooLong("the list would hold %d tags, over LocalAuthListMaxLength (%d)"
                      % (count, ll.max))
    return count


def _merge(ll, b, new, chg):
    # Bucket b's changes applied to its current file, into new/NN, at most _PORTION changes
    # in RAM at a time (one portion as a rule; more are applied one after the other, in
    # order). -> tags added - removed
    out = ll.path(b, new)
    alt = out + ".t"
    cur = ll.path(b)
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
            delta += _copy(cur, dst, tags, lines, n)
            cur = dst
    if cur == alt:
        _remove(out)
        os.rename(alt, out)
    return delta


def _copy(src, dst, tags, lines, n):
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


def recover(ll, boot=False):
    # Move in an update marked done (at a load: one cut short by a power cut), drop one that
    # is not.
    ll.unfinished = False
    new, old = ll.dir + ".new", ll.dir + ".old"
    kind = _read(new + "/done")
    if kind is not None and boot:
        log.warn(_TAG, "finishing an update cut short by a power cut")
    if kind == b"D":
        # Differential: its merged buckets replace theirs one by one (a cut mid-way leaves
        # the rest in ll.new, still marked done, for the next update or boot).
        try:
            os.mkdir(ll.dir)
        except OSError:
            pass
        for b in range(BUCKETS):  # (no listing: its list is a 512-byte block)
            src = ll.path(b, new)
            if exists(src):
                p = ll.path(b)
                _remove(p)  # FAT cannot rename over a file
                os.rename(src, p)
    elif kind is not None:  # Full (written empty by earlier firmware)
        if exists(ll.dir):
            rmtree(old)
            os.rename(ll.dir, old)
        os.rename(new, ll.dir)
    rmtree(old)  # first: its space back before the version is saved (a full flash)
    if kind is not None or exists(ll.dir + "/done"):
        # (ll/done: a Full update moved in, its version not saved: a cut, or the flash full)
        meta = ll.store.load(DOC + "_new", {})
        if meta:
            ll.version, ll.count = meta["version"], meta["count"]
            try:
                _save_meta(ll)
            except OSError as e:
                # Flash full or failing: the list is live, its version in RAM; its done marker
                # stays (ll/done, or ll.new/done for a Differential), so the next update or boot
                # saves it. The list's users go on.
                log.exc(_TAG, "list version %d not saved" % ll.version, e)
                return
            ll.store.remove(DOC + "_new")
    rmtree(new)
    if exists(ll.dir + "/done"):
        os.remove(ll.dir + "/done")


def _save_meta(ll):
    ll.store.save(DOC, {"version": ll.version, "count": ll.count})


def _find(tags, n, tag):
    # -> index of tag among the first n of tags, else n
    i = 0
    while i < n and tags[i] != tag:
        i += 1
    return i


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
