# A Reset is the operator's remedy for a charger in trouble, low memory included: when its feature
# (ocpp_client/remote.py, loaded on use) finds no memory to load, the Reset is still Accepted and
# carried out: the session stopped with the reset's reason (relay open first, the StopTransaction
# journaled), then the reboot. The other actions of that feature answer InternalError, and a
# RemoteStopTransaction (transactions.py, attached at boot) needs no load at all.
import asyncio
import sys

import micropython

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
        self.reboot = None
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

    def reset(hard):
        # The board's reset: what it saw (the relay then), then the reboot (the process ends).
        resets.append((hard, w.relay))
        raise SystemExit(4)

    w.reset = reset
    return w, c, rec, resets


def _served(name, charging=True):
    # A connector (charging, or idle), its session and the RPC layer answering the CSMS with the
    # remote feature's table: (world, connector, its stops, its resets, rpc).
    w, c, rec, resets = _world(name)
    if charging:
        _charging(w, c)
    s = Session(c, w)
    rpc = Rpc(features.handlers(s, REMOTE))
    rpc.after_reply = s._after_reply
    return w, c, rec, resets, rpc


async def _rebooted(resets):
    # The follow's task runs the board's reset: the process ends there (asyncio.run raises it).
    for _ in range(50):
        await asyncio.sleep_ms(20)
    raise AssertionError("no reboot: %s" % resets)


def _run(coro):
    try:
        asyncio.run(coro)
        raise AssertionError("no reboot")
    except SystemExit as e:
        assert e.args[0] == 4


async def _reset_without_its_feature(kind, name):
    sys.modules["ocpp_client.remote"] = NoRoom
    try:
        w, c, rec, resets, rpc = _served(name)
        c.meter.wh = 1500
        with Logs() as logs:
            sent, _ = await serve_all(rpc, '[2, "r1", "Reset", {"type": "%s"}]' % kind)
            assert sent == [[3, "r1", {"status": "Accepted"}]], sent
            assert not w.relay, "the relay opens at once"
            assert [ln for ln in logs.warnings() if "reset without its feature" in ln], logs.lines
        assert "remote" not in rpc.handlers.s.features  # (not loaded: the next CALL tries again)
        try:
            await _rebooted(resets)
        finally:
            # the stop journaled with the reset's reason (its final reading taken first), the
            # relay open at the reboot
            assert rec.stops == [(rec.stops[0][0], kind + "Reset", 1500)], rec.stops
            assert resets == [(kind == "Hard", False)], resets
    finally:
        del sys.modules["ocpp_client.remote"]


def test_a_hard_reset_without_memory_for_its_feature_is_accepted_and_carried_out():
    _run(_reset_without_its_feature("Hard", "rst_hard"))


def test_a_soft_reset_without_memory_for_its_feature_is_accepted_and_carried_out():
    _run(_reset_without_its_feature("Soft", "rst_soft"))


def test_a_reset_whose_work_finds_no_memory_gets_the_resident_reset():
    # remote.py loaded, but no block for its reset's coroutine (368 bytes once, in a squeezed
    # heap): Accepted by the resident reset, not an Accepted that nothing carried out.
    import supervisor

    supervisor.drop("ocpp_client.remote")  # (the earlier tests' stand-in out)
    from ocpp_client import remote

    def no_room(s, kind):
        raise MemoryError("memory allocation failed, allocating 368 bytes")

    async def run():
        w, c, rec, resets, rpc = _served("rst_work")
        c.meter.wh = 1400
        real, remote._reset = remote._reset, no_room
        try:
            with Logs():
                sent, _ = await serve_all(rpc, '[2, "r3", "Reset", {"type": "Hard"}]')
        finally:
            remote._reset = real
        assert sent == [[3, "r3", {"status": "Accepted"}]], sent
        assert not w.relay
        try:
            await _rebooted(resets)
        finally:
            assert [r[1] for r in rec.stops] == ["HardReset"], rec.stops
            assert resets == [(True, False)], resets

    _run(run())


def test_a_reset_while_idle_without_memory_for_its_feature_still_reboots():
    async def run():
        sys.modules["ocpp_client.remote"] = NoRoom
        try:
            w, c, rec, resets, rpc = _served("rst_idle", charging=False)
            with Logs():
                sent, _ = await serve_all(rpc, '[2, "r2", "Reset", {"type": "Soft"}]')
            assert sent == [[3, "r2", {"status": "Accepted"}]], sent
            try:
                await _rebooted(resets)
            finally:
                assert rec.stops == [] and resets == [(False, False)], (rec.stops, resets)
        finally:
            del sys.modules["ocpp_client.remote"]

    _run(run())


def test_the_other_remote_actions_without_memory_answer_internal_error_and_charging_goes_on():
    # TriggerMessage, UnlockConnector (a fixed cable: never a way to stop) and ChangeAvailability
    # (Inoperative during a session is only Scheduled, 1.6 5.2) stop nothing: InternalError, the
    # CSMS may ask again; the way to stop a session is RemoteStopTransaction, attached at boot.
    async def run():
        sys.modules["ocpp_client.remote"] = NoRoom
        try:
            w, c, rec, resets, rpc = _served("rst_other")
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


def test_a_reset_whose_reboot_finds_no_memory_for_its_task_still_reboots():
    # The Reset answered Accepted and the session stopped, then no room in the heap at all for
    # the reboot's follow-up task (its coroutine, the Task, the list of follow-ups): the charger
    # reboots all the same, from what was set while the answer was made, allocating nothing.
    # (Before, the task's MemoryError was logged and the charger, its session stopped, never
    # rebooted.)
    from ocpp_client.client import OcppClient

    async def run():
        sys.modules["ocpp_client.remote"] = NoRoom
        try:
            w, c, rec, resets, rpc = _served("rst_notask")
            s = rpc.handlers.s
            real = w.reset

            def reset(hard):
                micropython.heap_unlock()  # (the reboot's own bookkeeping, the test's)
                real(hard)

            w.reset = reset

            def no_heap(action, req, res):
                # After the answer: the heap without a free byte (locked) for the follow-up.
                micropython.heap_lock()
                try:
                    OcppClient._after_reply(s, action, req, res)
                except Exception:
                    micropython.heap_unlock()
                    raise
                micropython.heap_unlock()

            rpc.after_reply = no_heap
            with Logs():
                sent, _ = await serve_all(rpc, '[2, "r4", "Reset", {"type": "Hard"}]')
            assert sent == [[3, "r4", {"status": "Accepted"}]], sent
            assert not w.relay
            await _rebooted(resets)
        finally:
            sys.modules.pop("ocpp_client.remote", None)
            assert resets == [(True, False)], resets

    _run(run())
