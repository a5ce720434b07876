# What the charger did, for the owner app's "last operations" and for support: boot, plug,
# authorization, session start/stop, faults, resets, updates. A bounded ring journal on flash,
# written once per event (never on a timer), so it survives power cuts and costs one short
# append per event (see store/journal.py for the flash budget).
import clock
import log

_NAME = const("events")


class EventLog:
    def __init__(self, store, max_events=200):
        self._j = store.journal(_NAME, max_events, True)

    def add(self, kind, **fields):
        # Callers pass ids and codes, never secrets: the log can be read by the cloud.
        # -> seq, or None when it could not be written: the log is best effort and must never
        # break the caller (the connector state machine logs through here).
        rec = {"t": clock.now(), "k": kind}
        rec.update(fields)
        try:
            return self._j.append(rec)
        except (OSError, ValueError, TypeError) as e:
            log.exc("eventlog", "add %s" % kind, e)
            return None

    def recent(self, n=20):
        # Newest first. Keeps only the last n in RAM while reading the file line by line.
        buf = []
        for _, rec in self._j.records():
            buf.append(rec)
            if len(buf) > n:
                buf.pop(0)
        buf.reverse()
        return buf

    def records(self):
        # Every record, oldest first, one at a time (bounded RAM): (seq, record).
        return self._j.records()

    def __len__(self):
        return len(self._j)
