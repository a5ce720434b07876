# On-target tests for store.journal.Journal: the OCPP transaction queue and the event log rely
# on records surviving power cuts, in order, without duplicates, in bounded flash.
import store.journal as journal_mod
from store.journal import Journal
from mphelp import Logs, Cut, Power, powered, unpowered, read, write, exists

P = "q.log"


def objs(it):
    return [o for _, o in it]


def seqs(it):
    return [s for s, _ in it]


def nlines(p=P):
    return read(p).count(b"\n")


def test_append_records_in_order_across_reopen():
    j = Journal(P, 50)
    assert len(j) == 0 and list(j.records()) == []
    assert [j.append({"n": i}) for i in range(5)] == [1, 2, 3, 4, 5]
    assert len(j) == 5
    j2 = Journal(P, 50)  # reboot
    assert list(j2.records()) == [(i + 1, {"n": i}) for i in range(5)]
    assert j2.append({"n": 5}) == 6  # seqs resume after the highest found
    assert seqs(Journal(P, 50).records()) == [1, 2, 3, 4, 5, 6]


def test_line_format():
    j = Journal(P, 50)
    j.append({"action": "StartTransaction", "id": "é"})
    ln = read(P)
    assert ln.endswith(b"\n") and ln.count(b"\n") == 1
    seq, crc, body = ln[:-1].split(b" ", 2)
    assert seq == b"1" and len(crc) == 8
    assert body == b'{"action": "StartTransaction", "id": "\xc3\xa9"}' or body.startswith(b"{")


def test_ack_and_pending_across_reopen():
    j = Journal(P, 50)
    for i in range(6):
        j.append({"n": i})
    j.ack(2)
    assert seqs(j.pending()) == [3, 4, 5, 6] and len(j) == 4
    assert seqs(j.records()) == [1, 2, 3, 4, 5, 6]  # acked records stay until compaction
    j.ack(1)  # an older ack changes nothing and writes nothing
    assert len(j) == 4
    j2 = Journal(P, 50)
    assert objs(j2.pending()) == [{"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}] and len(j2) == 4
    j2.ack(5)
    assert seqs(Journal(P, 50).pending()) == [6]
    j2.ack(6)
    j3 = Journal(P, 50)
    assert len(j3) == 0 and list(j3.pending()) == []
    assert j3.append({"n": 6}) == 7


def test_draining_a_queue_reads_on_from_its_oldest_pending_record():
    # The transaction queue asks for its oldest record once per message sent: each pass starts
    # where the last one found it, so draining stays linear in the file (a whole pass per
    # message would read ~10,000 lines here).
    read_lines = [0]

    class Counted(Journal):
        def _lines(self, start=0):
            for x in Journal._lines(self, start):
                read_lines[0] += 1
                yield x

    j = Counted(P, 500)
    for i in range(100):
        j.append({"n": i})
    got = []
    while True:
        g = j.pending()
        item = None
        for item in g:
            break
        g.close()
        if item is None:
            break
        got.append(item[1]["n"])
        j.ack(item[0])
    assert got == list(range(100))
    assert read_lines[0] < 400, read_lines[0]
    j.append({"n": 100})  # a record after the queue ran dry is found
    assert objs(j.pending()) == [{"n": 100}]


def test_a_queue_file_replaced_behind_the_journal_is_read_whole():
    j = Journal(P, 50)
    for i in range(5):
        j.append({"n": i})
    j.ack(3)
    assert seqs(j.pending()) == [4, 5]
    for lines in (b"", b"a line of something else\n"):
        write(P, lines)  # removed behind it (a reset), then written again
        new = [j.append({"n": 9}), j.append({"n": 9}), j.append({"n": 9})]
        assert seqs(j.pending()) == new
        j.ack(new[-1])


def test_ack_beyond_last_is_clamped():
    j = Journal(P, 50)
    j.append({"a": 1})
    j.ack(99)  # must not pre-ack records appended later
    assert j.append({"a": 2}) == 2
    assert seqs(Journal(P, 50).pending()) == [2]


def test_torn_last_line_ignored_and_fenced():
    j = Journal(P, 50)
    j.append({"n": 1})
    j.append({"n": 2})
    whole = read(P)
    write(P, whole + b'3 1234abcd {"n": 3, "tr')  # power cut mid-append
    with Logs() as lg:
        j2 = Journal(P, 50)
    assert objs(j2.records()) == [{"n": 1}, {"n": 2}]
    assert lg.warned(P, "torn"), lg.lines
    assert len([1 for t in lg.warnings()]) == 1  # once, not per line read
    # the next append must not be glued onto the torn bytes
    assert j2.append({"n": 3}) == 3
    j3 = Journal(P, 50)
    assert objs(j3.records()) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert j3.append({"n": 4}) == 4


def test_torn_line_missing_only_its_newline():
    # Cut right before the final newline: the record never "happened" (append did not return),
    # and it must not come back once the next append completes its line.
    j = Journal(P, 50)
    j.append({"n": 1})
    j.append({"n": 2})
    write(P, read(P)[:-1])
    j2 = Journal(P, 50)
    assert objs(j2.records()) == [{"n": 1}]
    assert j2.append({"n": "new"}) == 2
    j3 = Journal(P, 50)
    assert list(j3.records()) == [(1, {"n": 1}), (2, {"n": "new"})]


def test_corrupt_line_skipped_with_reason():
    j = Journal(P, 50)
    for i in range(4):
        j.append({"n": i})
    b = bytearray(read(P))
    i = b.find(b'"n": 1')
    b[i + 5] = ord("7")  # 1 -> 7 in the second record: crc no longer matches
    write(P, b)
    with Logs() as lg:
        j2 = Journal(P, 50)
    assert objs(j2.records()) == [{"n": 0}, {"n": 2}, {"n": 3}]
    assert lg.warned(P, "corrupt line 2"), lg.lines
    assert j2.append({"n": 4}) == 5
    # a flipped digit in the seq is caught too
    b = bytearray(read(P))
    b[0] = ord("9")
    write(P, b)
    assert seqs(Journal(P, 50).records()) == [3, 4, 5]


def test_garbage_file():
    write(P, b"\x00\xff\xfe hello\nnot a record\n12\n12 zz {}\n\n")
    j = Journal(P, 50)
    assert list(j.records()) == [] and len(j) == 0
    assert j.append({"ok": 1}) == 1
    assert objs(Journal(P, 50).records()) == [{"ok": 1}]


def test_long_records_across_read_chunks():
    # Lines are read in 256-byte chunks: records of every length around the chunk edges.
    j = Journal(P, 500)
    sizes = list(range(228, 244)) + list(range(484, 500)) + [3000, 8000]
    for k in sizes:
        j.append({"s": "x" * k})
    assert [len(o["s"]) for o in objs(Journal(P, 500).records())] == sizes
    write(P, read(P)[:-1])  # a long torn last line
    j2 = Journal(P, 500)
    assert [len(o["s"]) for o in objs(j2.records())] == sizes[:-1]
    j2.append({"s": "end"})
    assert objs(Journal(P, 500).records())[-1] == {"s": "end"}


def test_overlong_garbage_line_and_record_size_limit():
    j = Journal(P, 50)
    j.append({"n": 1})
    write(P, read(P) + b"x" * 20000 + b"\n")
    j2 = Journal(P, 50)
    assert j2.append({"n": 2}) == 2
    assert objs(Journal(P, 50).records()) == [{"n": 1}, {"n": 2}]
    write(P, read(P) + b"y" * 20000)  # and as a torn end
    j3 = Journal(P, 50)
    assert j3.append({"n": 3}) == 3
    assert objs(Journal(P, 50).records()) == [{"n": 1}, {"n": 2}, {"n": 3}]
    try:
        j3.append({"big": "z" * 9000})
        raise AssertionError("no error for a record over the line limit")
    except ValueError:
        pass
    assert j3.append({"n": 4}) == 4


def test_queue_compaction_keeps_pending_in_order_and_bounds_file():
    j = Journal(P, 10)
    sent = 0
    for i in range(200):
        j.append({"n": i})
        if i % 3 != 2:  # the CSMS answers most at once, some later
            sent = j.last_seq() - 1
            j.ack(sent)
        assert nlines() <= 2 * 10 + 2, (i, nlines())
    pend = list(Journal(P, 10).pending())
    assert seqs(pend) == list(range(sent + 1, 201)), (sent, seqs(pend))
    assert objs(pend) == [{"n": s - 1} for s in range(sent + 1, 201)]
    assert Journal(P, 10).append({"n": 200}) == 201


def test_queue_all_acked_keeps_seq_after_compaction():
    j = Journal(P, 4)
    for i in range(8):
        j.append({"n": i})
        j.ack(j.last_seq())
        assert nlines() <= 5
    assert nlines() == 1  # compacted down to the watermark line
    j2 = Journal(P, 4)
    assert len(j2) == 0 and list(j2.records()) == []
    assert j2.append({"n": 8}) == 9  # seqs never restart: acks must not hit a new record
    assert seqs(Journal(P, 4).pending()) == [9]


def test_queue_never_drops_pending():
    # Offline for a long time: the queue outgrows max_records but loses nothing.
    j = Journal(P, 5)
    for i in range(30):
        j.append({"n": i})
    assert len(j) == 30
    assert objs(Journal(P, 5).pending()) == [{"n": i} for i in range(30)]
    j.ack(28)
    assert objs(Journal(P, 5).pending()) == [{"n": 28}, {"n": 29}]
    assert nlines() <= 5 + 1  # compacted once the acked lines dominated


def test_ring_drops_oldest():
    j = Journal(P, 5, ring=True)
    for i in range(23):
        j.append({"n": i})
        assert len(j) == min(i + 1, 5)
        assert objs(j.records()) == [{"n": k} for k in range(max(0, i - 4), i + 1)]
        assert nlines() <= 2 * 5 + 1
    j2 = Journal(P, 5, ring=True)
    assert seqs(j2.records()) == [19, 20, 21, 22, 23]
    assert j2.append({"n": 23}) == 24


def test_compaction_drops_stale_tmp_and_completes_unfinished_rename():
    j = Journal(P, 50)
    j.append({"n": 1})
    write(P + ".tmp", b"1 0000 {partial")  # cut while rewriting: main file intact
    assert objs(Journal(P, 50).records()) == [{"n": 1}]
    assert not exists(P + ".tmp")
    # cut after removing the old file on a filesystem that cannot rename over one
    import os

    os.rename(P, P + ".tmp")
    assert objs(Journal(P, 50).records()) == [{"n": 1}]
    assert exists(P) and not exists(P + ".tmp")


def _fill(k):
    # Records 1..7, 1..2 acked, max_records 8: appending 8 and acking 6 triggers a compaction.
    p = "run%d.log" % k
    j = Journal(p, 8)
    for i in range(7):
        j.append({"n": i})
    j.ack(2)
    assert nlines(p) == 8
    return p, j


def test_power_cut_at_every_step_of_append_ack_and_compaction():
    _cut_every_step(False)


def test_power_cut_at_every_step_on_fat():
    # FAT cannot rename over a file: compaction removes the old file first, then renames.
    _cut_every_step(True)


def _cut_every_step(fat):
    # Whatever step the power dies at, the reboot sees every unacked record exactly once, in
    # order; a record whose append returned is never lost; an ack that returned stays done.
    k = 0
    while True:
        p, j = _fill(k)
        pw = Power(k, fat)
        powered(journal_mod, pw)
        appended = acked = False
        try:
            j.append({"n": 7})  # seq 8
            appended = True
            j.ack(6)  # 10 lines > 8, 8 of them dead: compaction
            acked = True
            assert nlines(p) == 3  # watermark + records 7 and 8
            j.append({"n": 8})  # seq 9
        except Cut:
            pass
        finally:
            unpowered(journal_mod)
        done = not pw.dead
        j2 = Journal(p, 8)
        got = seqs(j2.pending())
        if done:
            assert got == [7, 8, 9], (k, got)
        else:
            # what was in flight may or may not have landed; everything else must be there
            assert got[0] == 7 if acked else got[0] in (3, 7), (k, got)
            assert got == list(range(got[0], got[0] + len(got))), (k, got)
            assert (8 if appended else 7) <= got[-1] <= 9, (k, got)
        assert objs(j2.pending()) == [{"n": s - 1} for s in got]
        # the rebooted charger goes on appending after the highest seq seen
        nxt = j2.append({"n": "after"})
        assert nxt == got[-1] + 1, (k, nxt, got)
        if done:
            break
        k += 1
    assert k >= 10, k  # 3 appends/acks of 2 steps, a rewrite of 4 steps, a rename
