# On-target tests for diag/agentlog.py: the agent log on flash (a bounded ring of files, written
# in batches).
import os

import log
from diag.agentlog import AgentLog


def _files(d):
    return sorted(os.listdir(d))


def test_lines_reach_flash_in_batches_not_one_write_each():
    a = AgentLog("fa", buf_bytes=1024)
    for i in range(10):
        a.write(log.INFO, "t", "line %d" % i)
    assert a.flushes == 0, "ten short lines must stay in RAM"
    for i in range(10, 40):
        a.write(log.INFO, "t", "line %d with some more text to fill" % i)
    assert 1 <= a.flushes <= 2
    got = [ln.decode() for ln in a.lines()]
    assert len(got) == 40 and got[0].split(" ", 1)[1] == "I t: line 0\n"


def test_the_buffer_is_one_preallocated_block_and_keeps_every_line():
    # Buffering allocates nothing that stays (the lines are copied into one bytearray), a line
    # that does not fit flushes what is buffered first, and a line longer than the whole buffer
    # (multi-byte text) goes to flash on its own: none is lost or cut off mid-way.
    import gc

    a = AgentLog("fg", buf_bytes=512)
    a.write(log.INFO, "t", "warm-up")
    gc.collect()
    before = gc.mem_alloc()
    for i in range(20):
        a.write(log.INFO, "t", "line %d" % i)
    gc.collect()
    # (20 lines kept as str objects: 640 bytes or more; a stale pointer may keep the last one)
    assert a.flushes == 0 and gc.mem_alloc() - before <= 96, gc.mem_alloc() - before
    a.write(log.INFO, "t", "z" * 150)  # does not fit: the buffer goes to flash first
    a.write(log.INFO, "t", "y" * 150)
    a.write(log.WARN, "t", "\u00e9" * 240)  # 480 bytes of UTF-8 and more: over the whole buffer
    a.write(log.INFO, "t", "after")
    want = ["I t: warm-up"] + ["I t: line %d" % i for i in range(20)] + [
        "I t: " + "z" * 150, "I t: " + "y" * 150, "W t: " + "\u00e9" * 240, "I t: after"]
    got = b"".join(a.lines()).decode().split("\n")
    assert [ln.split(" ", 1)[1] for ln in got[:-1]] == want and got[-1] == ""


def test_error_lines_are_written_at_once():
    a = AgentLog("fb")
    a.write(log.ERROR, "t", "bad thing")
    assert a.flushes == 1
    assert b"E t: bad thing" in AgentLog("fb").lines().__next__()


def test_survives_a_restart_and_keeps_counting():
    a = AgentLog("fc")
    a.write(log.INFO, "t", "before")
    a.flush()
    b = AgentLog("fc")
    b.write(log.WARN, "t", "after")
    assert [ln.split(b" ", 1)[1] for ln in b.lines()] == [b"I t: before\n", b"W t: after\n"]


def test_ring_is_bounded_and_drops_the_oldest():
    a = AgentLog("fd", files=3, file_bytes=1000, buf_bytes=200)
    for i in range(500):
        a.write(log.INFO, "t", "n=%d" % i)
    a.flush()
    names = _files("fd/agentlog")
    assert len(names) <= 3, names
    total = sum(os.stat("fd/agentlog/" + n)[6] for n in names)
    assert total <= 3 * 1000 + 200
    got = [ln for ln in a.lines()]
    assert got[-1].endswith(b"n=499\n") and not any(ln.endswith(b"n=0\n") for ln in got)


def test_time_window_filter_and_long_lines_cut():
    a = AgentLog("fe")
    a.write(log.INFO, "t", "x" * 1000)
    a.flush()
    lines = list(a.lines())
    assert len(lines) == 1 and len(lines[0]) < 300
    t = int(lines[0].split(b" ")[0])
    assert list(a.lines(since=t + 1)) == [] and list(a.lines(until=t - 1)) == []
    assert len(list(a.lines(since=t, until=t))) == 1


def test_sink_gets_every_printed_line_and_a_broken_flash_breaks_nothing():
    a = AgentLog("ff")
    old = log.sink
    log.sink = a.write
    try:
        log.info("tag", "hello %d", 5)
        a.flush()
        a.dir = "ff/missing/deeper"  # flash failing: appends raise OSError
        log.error("tag", "still fine")
        assert a.failed
    finally:
        log.sink = old
    a.dir = "ff/agentlog"
    assert any(b"I tag: hello 5" in ln for ln in a.lines())
