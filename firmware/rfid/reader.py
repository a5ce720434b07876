# The tag-event task: polls the reader chip, turns card presentations into idTag events.
#
# - One event per presentation: a card held to the reader is reported once; it must be gone
#   for gone_ms before the same card counts again.
# - A different card while the last one is still in the field and within hold_ms of its event
#   is ignored: a card swapped in a flash, or noise producing "a different card every poll",
#   cannot flood the charger with events (at most one per hold_ms).
# - A new card counts once the same UID was read on `confirm` polls in a row (the charger uses
#   2): line noise that passes a frame's checksum (the PN532's is an 8-bit sum, which two flips
#   that cancel pass) does not repeat itself, so it cannot start a session with a tag nobody
#   presented (found by `borne chaos noise`). It costs one poll of latency.
# - idTag: the UID as upper-case hex, at most 20 characters (10-byte UIDs).
# - A reader that stops answering (fail_after failed exchanges in a row) is reported once
#   through on_failure(True) (OCPP ReaderFailure), then re-initialised until it answers again
#   (on_failure(False)).
# - Learning mode (the app's "Scan Physical Tag"): learn(cb) makes the next card go to cb
#   instead of on_tag, confirmed by a buzzer click; cb(None) when nobody presented one in time.
# The driver (rfid.pn532.Pn532 or rfid.mfrc522.Mfrc522) needs: async init() -> firmware text,
# async poll(uid_buf) -> UID length (4, 7, 10) or 0.
import asyncio
import time
import binascii

import log

_TAG = const("rfid")
_UID_MAX = const(10)


def id_tag(uid, n):
    # The OCPP idTag of a UID: upper-case hex (<= 20 chars for the longest, 10-byte UIDs).
    return binascii.hexlify(memoryview(uid)[:n]).decode().upper()


class Reader:
    def __init__(self, driver, on_tag, on_failure=None, buzzer=None, poll_ms=150,
                 gone_ms=500, hold_ms=1000, fail_after=3, retry_ms=1000, confirm=1):
        self.drv = driver
        self.on_tag = on_tag
        self.on_failure = on_failure
        self.buzzer = buzzer
        self.poll_ms = poll_ms
        self.gone_ms = gone_ms
        self.hold_ms = hold_ms
        self.fail_after = fail_after
        self.retry_ms = retry_ms
        self.confirm = confirm
        self._cand = bytearray(_UID_MAX)  # a new UID read, waiting to be read again
        self._cand_len = 0
        self._cand_n = 0
        self.ready = False
        self.failed = False
        self.events = 0
        self.ignored = 0
        self.inits = 0
        self._uid = bytearray(_UID_MAX)
        self._cur = bytearray(_UID_MAX)
        self._cur_len = 0  # the card in the field now (0: none)
        self._seen_ms = 0
        self._event_ms = time.ticks_add(time.ticks_ms(), -hold_ms)
        self._errors = 0
        self._learn_cb = None
        self._learn_until = 0

    # -- learning mode -----------------------------------------------------------------
    def learn(self, cb, timeout_ms=60000):
        # The next card presented goes to cb(id_tag) instead of starting a session.
        self._learn_cb = cb
        self._learn_until = time.ticks_add(time.ticks_ms(), timeout_ms)
        log.info(_TAG, "learning mode: waiting for a card")

    @property
    def learning(self):
        return self._learn_cb is not None

    def _learn_check(self, now):
        if self._learn_cb and time.ticks_diff(now, self._learn_until) >= 0:
            cb, self._learn_cb = self._learn_cb, None
            log.info(_TAG, "learning mode: no card presented in time")
            cb(None)

    # -- health ------------------------------------------------------------------------
    def _fail(self, why, e):
        self._errors += 1
        if self._errors == 1 or self._errors == self.fail_after:
            # the type too: a driver error may have no text
            log.warn(_TAG, "%s: %s: %s (%d in a row)", why, type(e).__name__, e, self._errors)
        if self._errors >= self.fail_after:
            self.ready = False
            # The card in the field is kept (the same card still held after the reader comes
            # back is no new presentation), but a different card is welcome at once then.
            self._event_ms = time.ticks_add(time.ticks_ms(), -self.hold_ms)
            if not self.failed:
                self.failed = True
                log.error(_TAG, "reader not answering: ReaderFailure")
                if self.on_failure:
                    self.on_failure(True)

    def _recovered(self, fw):
        self.ready = True
        self._errors = 0
        self.inits += 1
        log.info(_TAG, "reader ready (firmware %s)", fw)
        if self.failed:
            self.failed = False
            log.info(_TAG, "reader answering again: ReaderFailure cleared")
            if self.on_failure:
                self.on_failure(False)

    # -- the task ----------------------------------------------------------------------
    async def run(self):
        while True:
            if not self.ready:
                try:
                    fw = await self.drv.init()
                except Exception as e:
                    self._fail("reader init failed", e)
                    self._learn_check(time.ticks_ms())
                    await asyncio.sleep_ms(self.retry_ms)
                    continue
                self._recovered(fw)
            try:
                n = await self.drv.poll(self._uid)
            except Exception as e:
                self._fail("poll failed", e)
                await asyncio.sleep_ms(self.poll_ms)
                continue
            self._errors = 0
            self.seen(n, time.ticks_ms())
            await asyncio.sleep_ms(self.poll_ms)

    # seen() runs after every poll: it and the helpers below keep their frames small, since
    # MicroPython heap-allocates a frame of more than ~11 slots of locals and stack at every call.
    def seen(self, n, now):
        # One poll's result: n = UID length in self._uid, 0 for no card.
        self._learn_check(now)
        if n:
            self._card(n, now)
            return
        self._cand_n = 0  # a confirmation is reads in a row
        if self._cur_len and time.ticks_diff(now, self._seen_ms) >= self.gone_ms:
            self._cur_len = 0  # the card left the field

    def _card(self, n, now):
        if self._is_current(n):
            self._seen_ms = now  # still held: no new event
            return
        if self._cur_len and time.ticks_diff(now, self._event_ms) < self.hold_ms:
            self.ignored += 1
            if self.ignored == 1 or self.ignored % 50 == 0:
                log.warn(_TAG, "another card within %d ms of the last one: ignored (%d)",
                         self.hold_ms, self.ignored)
            return
        if self.confirm > 1 and not self._confirmed(n):
            return
        self._presented(n, now)

    def _confirmed(self, n):
        # The same new UID on `confirm` polls in a row?
        uid = self._uid
        cand = self._cand
        same = n == self._cand_len and self._cand_n > 0
        for i in range(n if same else 0):
            if uid[i] != cand[i]:
                same = False
                break
        if not same:
            for i in range(n):
                cand[i] = uid[i]
            self._cand_len = n
            self._cand_n = 0
        self._cand_n += 1
        if self._cand_n < self.confirm:
            return False
        self._cand_n = 0
        return True

    def _is_current(self, n):
        # The UID read is the card already in the field.
        if n != self._cur_len:
            return False
        uid = self._uid
        cur = self._cur
        for i in range(n):
            if uid[i] != cur[i]:
                return False
        return True

    def _presented(self, n, now):
        for i in range(n):
            self._cur[i] = self._uid[i]
        self._cur_len = n
        self._seen_ms = now
        self._event_ms = now
        self.events += 1
        tag = id_tag(self._uid, n)
        if self._learn_cb:
            # The click tells the owner the card was added: it comes once the card is kept
            # (journaled by the callback), so a power cut after it loses nothing. A callback
            # that could not keep it answers False: the refusal tune instead.
            cb, self._learn_cb = self._learn_cb, None
            kept = cb(tag) is not False
            log.info(_TAG, "learned tag %s" if kept else "tag %s not learned", tag)
            if self.buzzer:
                if kept:
                    self.buzzer.click()
                else:
                    self.buzzer.feedback(False)
            return
        log.info(_TAG, "tag %s presented", tag)
        if self.buzzer:
            self.buzzer.tag_read()
        self.on_tag(tag)
