# What the firmware updater (ota/update.py Updater) works with, faked for on-target tests: a board
# whose restart raises Reset, a connector that remembers its holds, an event log that forgets.
from fakeboard import FakeBoard


class Reset(Exception):
    pass


class Board(FakeBoard):
    def reset(self, hard):
        raise Reset()


class Conn:
    # No session, unless a test gives it one (between the hold and the restart: no real
    # connector lets one start then; the updater checks all the same).
    session = None

    def __init__(self):
        self.held = []

    def started(self):
        return True

    def hold(self, on):
        self.held.append(on)


class Events:
    def add(self, kind, **kw):
        pass
