# On-target tests for rfid.reader.Reader: one event per presentation, idTag format, flood
# protection, learning mode, and a reader that disappears and comes back.
import asyncio
import time

from link import Link
from rfid.pn532 import Pn532, Hsu
from rfid.reader import Reader, id_tag
from fakewire import Wire, MiniPn532
from mphelp import Logs, until

H = bytes.fromhex


class Beeps:
    def __init__(self):
        self.log = []

    def click(self):
        self.log.append("click")

    def tag_read(self):
        self.log.append("read")

    def feedback(self, accepted):
        self.log.append("accepted" if accepted else "refused")


def reader(**kw):
    tags = []
    r = Reader(None, tags.append, buzzer=Beeps(), **kw)
    return r, tags


def show(r, uid, now):
    # One poll that found this card (None: no card) at time `now` (ms).
    if uid is None:
        r.seen(0, now)
        return
    for i in range(len(uid)):
        r._uid[i] = uid[i]
    r.seen(len(uid), now)


def test_id_tag_is_upper_case_hex_of_at_most_20_chars():
    assert id_tag(H("04a2b3c4"), 4) == "04A2B3C4"
    u = H("0411223344556677889a")
    assert id_tag(u, 10) == "0411223344556677889A" and len(id_tag(u, 10)) == 20
    assert id_tag(bytearray(H("deadbeefff")), 4) == "DEADBEEF"


def test_held_card_is_one_event_and_a_new_presentation_another():
    r, tags = reader(gone_ms=500, hold_ms=1000)
    t = 100000
    for i in range(40):  # 6 s held, polled every 150 ms
        show(r, H("04a2b3c4"), t + 150 * i)
    assert tags == ["04A2B3C4"]
    t += 40 * 150
    show(r, None, t)
    show(r, H("04a2b3c4"), t + 150)  # a one-poll dropout is not a removal
    assert tags == ["04A2B3C4"]
    for i in range(5):
        show(r, None, t + 300 + 150 * i)  # gone for 750 ms
    show(r, H("04a2b3c4"), t + 2000)
    assert tags == ["04A2B3C4", "04A2B3C4"]
    assert r.buzzer.log == ["read", "read"]


def test_a_different_card_every_poll_cannot_flood():
    r, tags = reader(gone_ms=500, hold_ms=1000)
    with Logs() as logs:
        for i in range(100):  # 15 s of a different "card" on every poll
            show(r, bytes([4, i, i, i]), 100000 + 150 * i)
    assert 1 <= len(tags) <= 16, tags
    assert r.ignored >= 80
    assert logs.warned("ignored")


def test_next_card_after_the_first_is_removed_is_immediate():
    r, tags = reader(gone_ms=500, hold_ms=5000)
    show(r, H("04a2b3c4"), 1000)
    show(r, None, 1600)  # removed
    show(r, H("04112233445566"), 1750)
    assert tags == ["04A2B3C4", "04112233445566"]


def test_learning_mode_reports_the_next_card_to_the_callback_with_a_click():
    r, tags = reader()
    learned = []
    r.learn(learned.append, timeout_ms=60000)
    assert r.learning
    show(r, H("04a2b3c4"), time.ticks_ms())
    assert learned == ["04A2B3C4"] and tags == [] and not r.learning
    assert r.buzzer.log == ["click"]


def test_learning_mode_clicks_only_once_the_card_is_kept():
    # The click tells the owner the card was added: a power cut after it must lose nothing,
    # so it follows the callback (which journals the card); one that could not keep it
    # answers False and the owner hears the refusal instead.
    r, tags = reader()
    heard = []
    r.learn(lambda tag: heard.append(list(r.buzzer.log)), timeout_ms=60000)
    show(r, H("04a2b3c4"), time.ticks_ms())
    assert heard == [[]] and r.buzzer.log == ["click"]
    r, tags = reader()
    r.learn(lambda tag: False, timeout_ms=60000)
    show(r, H("04a2b3c4"), time.ticks_ms())
    assert r.buzzer.log == ["refused"] and tags == [] and not r.learning


def test_learning_mode_times_out_with_none():
    r, tags = reader()
    learned = []
    r.learn(learned.append, timeout_ms=50)
    now = time.ticks_add(time.ticks_ms(), 60)
    show(r, None, now)
    assert learned == [None] and not r.learning


async def test_reader_that_disappears_is_reported_and_reinitialised():
    c = MiniPn532()
    w = Wire(c)
    failures = []
    tags = []
    r = Reader(Pn532(Hsu(Link(w, baud=115200)), retries=0), tags.append,
               on_failure=failures.append, poll_ms=10, fail_after=3, retry_ms=20)
    task = asyncio.create_task(r.run())
    try:
        await until(lambda: r.ready, "first init")
        c.uid = H("04a2b3c4")
        await until(lambda: tags, "the card seen")
        c.silent = True
        await until(lambda: failures == [True], "ReaderFailure reported")
        assert not r.ready and r.failed
        await asyncio.sleep_ms(100)
        assert failures == [True], "reported once"
        c.power_cycle()  # back, in LowVbat: only a new init brings it up
        await until(lambda: failures == [True, False], "ReaderFailure cleared")
        assert r.ready and r.inits == 2
        assert tags == ["04A2B3C4"], "the card still held is not a new presentation"
    finally:
        task.cancel()



def test_with_confirm_a_new_card_counts_when_read_twice_in_a_row():
    # Line noise that passes the frame checksum gives a UID once; a card gives it every poll.
    r, tags = reader(gone_ms=500, hold_ms=1000, confirm=2)
    show(r, H("05a0b2c3"), 1000)  # noise: once
    show(r, H("04a1b2c3"), 1150)  # the card, first read
    assert tags == []
    show(r, H("04a1b2c3"), 1300)  # the card again: now it counts
    assert tags == ["04A1B2C3"]
    for i in range(10):
        show(r, H("04a1b2c3"), 1450 + 150 * i)
    assert tags == ["04A1B2C3"]
    for i in range(5):
        show(r, None, 3000 + 150 * i)  # gone
    show(r, H("04112233"), 4000)
    show(r, None, 4150)  # a dropout between two reads: not a confirmation
    show(r, H("04112233"), 4300)
    assert tags == ["04A1B2C3"]
    show(r, H("04112233"), 4450)
    assert tags == ["04A1B2C3", "04112233"]
