# On-target test: an owner's MQTT command (pause, current limit) is "done" for the log, the
# event log and the answer on <base>/result once it is on flash (it survives a reboot:
# Commands.restore), not before: a power cut after the line "command done" lost the pause, and
# with the flash full the log and the event log said done (and the pause was in force) while
# the answer said it failed.
from mphelp import Logs
from mqtt.commands import DOC, Commands
from store import Store


class Conn:
    # What the owner controls (evse/connrare.py) change on the connector.
    owner_paused = False
    owner_limit_a = None
    offer_a = 16

    def _compute_offer(self):
        return 0 if self.owner_paused else 16

    def _apply(self):
        pass


class Events:
    def __init__(self):
        self.added = []

    def add(self, kind, **kw):
        self.added.append(kind)


class Watched(Store):
    # The store, noting what the log and the event log had said when the command was saved.
    def __init__(self, root, logs, events, full=False):
        super().__init__(root)
        self.logs = logs
        self.events = events
        self.full = full
        self.seen = None

    def save(self, name, data):
        if name == DOC:
            self.seen = (self.logs.said("command done"), list(self.events.added))
            if self.full:
                raise OSError(28)  # ENOSPC
        return super().save(name, data)


def _command(root, full=False):
    ev = Events()
    with Logs() as logs:
        st = Watched(root, logs, ev, full)
        c = Conn()
        ans = Commands(c, ev, st, True, lambda: 32).handle(b'{"id": "p1", "pause": true}')
    return ans, st, logs, ev, c


def test_a_command_is_said_done_once_it_is_on_flash():
    ans, st, logs, ev, c = _command("mqttcmd")
    assert ans == {"id": "p1", "ok": True}, ans
    assert st.seen == (False, []), st.seen  # nothing said done before the save
    assert logs.said("command done") and ev.added == ["mqtt_command"], (logs.lines, ev.added)
    assert Store("mqttcmd").load(DOC, {}) == {"paused": True, "limit": None}


def test_a_command_the_flash_refuses_is_not_said_done():
    ans, st, logs, ev, c = _command("mqttcmd_full", True)
    assert ans["ok"] is False, ans
    assert c.owner_paused is False  # the answer says it failed: not in force either
    assert not logs.said("command done") and ev.added == [], (logs.lines, ev.added)
