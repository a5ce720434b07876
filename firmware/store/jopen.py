# Opening a journal (store/journal.py), loaded for it and out of the heap after (journals are
# opened at boot, and by a feature as it starts): a compaction a power cut left unfinished is
# completed or dropped, then the file is read once for the counters.
import os

import log

_TAG = "journal"
_ACK = const(b"A")


def prepare(j):
    _recover_tmp(j)
    _scan(j)


def _recover_tmp(j):
    tmp = j.path + ".tmp"
    try:
        os.stat(tmp)
    except OSError:
        return
    try:
        os.stat(j.path)
    except OSError:
        os.rename(tmp, j.path)  # cut between remove and rename: the .tmp is complete
        return
    os.remove(tmp)  # compaction cut before its rename: the main file is intact
    log.info(_TAG, "%s: dropped a partial compaction", j.path)


def _scan(j):
    # One pass for the counters, then one to count what is still pending (the final ack
    # watermark is only known at the end of the first).
    nlines = nrec = top = acked = 0
    nbad = 0
    why = None
    torn = False
    for p, ln in j._lines():
        nlines += 1
        torn = ln[-1:] != b"\n"
        if p is None:
            nbad += 1
            why = "torn last line" if torn else "corrupt line %d" % nlines
            continue
        seq, payload = p
        if seq > top:
            top = seq
        if payload == _ACK:
            if seq > acked:
                acked = seq
        else:
            nrec += 1
    if nbad:
        log.warn(_TAG, "%s: %d bad line(s) skipped (last: %s)", j.path, nbad, why)
    j._nlines = nlines
    j._nrec = nrec
    j._seq = top
    j._acked = acked
    j._torn = torn
    j._count_pending()
