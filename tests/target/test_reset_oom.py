# A Reset is the operator's remedy for a charger in trouble, low memory included: when its feature
# (ocpp_client/remote.py, loaded on use) finds no memory to load, the Reset is still Accepted and
# carried out: the session stopped with the reset's reason (relay open first, the StopTransaction
# journaled), then the reboot. The other actions of that feature answer InternalError, and a
# RemoteStopTransaction (transactions.py, attached at boot) needs no load at all.
import asyncio
import sys

from mphelp import Logs
from ocpp_client import features
from ocpp_client.client import OcppClient
from ocpp_client.rpc import Rpc
from test_oom import Boom, Meter, Stops, _charging, _connector
from test_rpc import serve_all


class NoRoom:
    # ocpp_client.remote as the 142wK reference met it: its load ran out of memory.
    loads = 0

    @staticmethod
    def attach(s):
        NoRoom.loads += 1
        raise MemoryError("memory allocation failed, allocating 1168 bytes")


REMOTE = (("remote", False, ("Reset", "TriggerMessage", "UnlockConnector", "ChangeAvailability")),)


class Session:
    # What the fallback uses of the session: its connector, board, queue, online() and the
    # client's own work after a .conf (after(), _after_reply(), _run_follow()).
    after = OcppClient.after
    _after_reply = OcppClient._after_reply
    _run_follow = OcppClient._run_follow
    queue = None

    def __init__(self, connector, board):
        self.features = {}
        self._follow = []
        self.connector = connector
        self.board = board

    def online(self):
        return False


def _world(name):
    w, c = _connector(name, Boom())
    c.meter = Meter()
    rec = Stops()
    c.listen(rec)
    resets = []
    # The board's reset: what it saw (the relay then) instead of the reboot.
    w.reset = lambda hard: resets.append((hard, w.relay))
    return w, c, rec, resets


async def _reset_without_its_feature(kind, name):
    sys.modules["ocpp_client.remote"] = NoRoom
    try:
        w, c, rec, resets = _world(name)
        _charging(w, c)
        c.meter.wh = 1500
        s = Session(c, w)
        rpc = Rpc(features.handlers(s, REMOTE))
        rpc.after_reply = s._after_reply
        with Logs() as logs:
            sent, _ = await serve_all(rpc, '[2, "r1", "Reset", {"type": "%s"}]' % kind)
            assert sent == [[3, "r1", {"status": "Accepted"}]], sent
            assert not w.relay, "the relay opens at once"
            for _ in range(50):
                if resets:
                    break
                await asyncio.sleep_ms(20)
        assert rec.stops == [(rec.stops[0][0], kind + "Reset", 1500)], rec.stops
        assert resets == [(kind == "Hard", False)], resets
        assert [ln for ln in logs.warnings() if "reset without its feature" in ln], logs.lines
        assert "remote" not in s.features  # (not loaded: the next CALL tries again)
        return rpc, w, c
    finally:
        del sys.modules["ocpp_client.remote"]


def test_a_hard_reset_without_memory_for_its_feature_is_accepted_and_carried_out():
    asyncio.run(_reset_without_its_feature("Hard", "rst_hard"))


def test_a_soft_reset_without_memory_for_its_feature_is_accepted_and_carried_out():
    asyncio.run(_reset_without_its_feature("Soft", "rst_soft"))


def test_a_reset_while_idle_without_memory_for_its_feature_still_reboots():
    async def run():
        sys.modules["ocpp_client.remote"] = NoRoom
        try:
            w, c, rec, resets = _world("rst_idle")
            s = Session(c, w)
            rpc = Rpc(features.handlers(s, REMOTE))
            rpc.after_reply = s._after_reply
            sent, _ = await serve_all(rpc, '[2, "r2", "Reset", {"type": "Soft"}]')
            assert sent == [[3, "r2", {"status": "Accepted"}]], sent
            await asyncio.sleep_ms(50)
            assert rec.stops == [] and resets == [(False, False)], (rec.stops, resets)
        finally:
            del sys.modules["ocpp_client.remote"]

    asyncio.run(run())


def test_the_other_remote_actions_without_memory_answer_internal_error_and_charging_goes_on():
    # TriggerMessage, UnlockConnector (a fixed cable: never a way to stop) and ChangeAvailability
    # (Inoperative during a session is only Scheduled, 1.6 5.2) stop nothing: InternalError, the
    # CSMS may ask again; the way to stop a session is RemoteStopTransaction, attached at boot.
    async def run():
        sys.modules["ocpp_client.remote"] = NoRoom
        try:
            w, c, rec, resets = _world("rst_other")
            _charging(w, c)
            s = Session(c, w)
            rpc = Rpc(features.handlers(s, REMOTE))
            rpc.after_reply = s._after_reply
            sent, _ = await serve_all(
                rpc,
                '[2, "t", "TriggerMessage", {"requestedMessage": "Heartbeat"}]',
                '[2, "u", "UnlockConnector", {"connectorId": 1}]',
                '[2, "a", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}]')
            assert [(m[0], m[1], m[2]) for m in sent] == [
                (4, "t", "InternalError"), (4, "u", "InternalError"),
                (4, "a", "InternalError")], sent
            await asyncio.sleep_ms(50)
            assert w.relay and rec.stops == [] and resets == [], (rec.stops, resets)
        finally:
            del sys.modules["ocpp_client.remote"]

    asyncio.run(run())
