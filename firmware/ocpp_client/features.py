# The feature table and its loader: which module of ocpp_client/ answers which CALLs of the CSMS.
#
# A feature module defines one function, `attach(s)`: s is the session (client.OcppClient), the
# result a dict {action: async fn(payload) -> .conf payload}. In attach() a feature may keep its
# state object in s.features[name] (others get it with s.feature(name)), listen to the connector
# (s.connector.listen(obj)) or the configuration (s.config.listen(obj)), offer a TriggerMessage
# (s.triggers[message] = async fn(connector_id)), add to s.tasks a coroutine (run once) or a
# (name, async fn) (supervised: restarted after a failure, supervisor.py), eager features only:
# started with the session, and do work after a .conf with s.after(async fn, *args). The
# payload a handler gets is already checked against the 1.6 rules (validate.py); raising
# errors.Reject answers a CALLERROR. Actions attach() leaves out are answered by the handler
# its state object's handler(action) makes at each use, if it has one (security_ext), else
# NotSupported. Adding a feature: its module and one line of TABLE.
# ARCHITECTURE.md ("OCPP client") shows the path of a new message.
#
# An eager feature is attached at boot (it listens to the connector from the start); a lazy one
# at the first CALL of one of its actions, or when another asks for it (s.feature(name)). A
# feature that cannot be loaded (file missing on a damaged filesystem, no memory) is logged
# once; its actions are answered NotSupported (missing) or InternalError (anything else) from
# then on, except for want of memory: that call is answered as any CALL that ran out of memory
# (rpc.py: InternalError, SendLocalList Failed) and the next one tries to load it again; but a
# Reset, the operator's remedy for a charger in trouble, is carried out all the same (reset()).
# Charging never depends on a feature: the connector runs the relay on its own.
import sys

import log
from supervisor import code_in_heap, drop  # noqa: F401  (features.drop: the one unload)

# One line a feature: "<module in ocpp_client/> <e: attached at boot | l: on use> <the CSMS's
# actions it answers...>". One string constant, no tuples in the heap (rows() reads it; a table
# may also be given as (name, eager, actions) tuples, as the tests do).
TABLE = (
    "transactions e RemoteStartTransaction RemoteStopTransaction\n"
    "metering e\n"
    "authorization l ClearCache GetLocalListVersion SendLocalList\n"  # loaded by a tap too
    "smartcharging l SetChargingProfile ClearChargingProfile GetCompositeSchedule\n"
    "reservations l ReserveNow CancelReservation\n"
    "remote l Reset TriggerMessage UnlockConnector ChangeAvailability\n"
    "configuration l GetConfiguration ChangeConfiguration\n"
    "vendor l DataTransfer\n"
    "firmware l UpdateFirmware\n"
    "fwboot e\n"  # after "firmware": attaches it at boot when an update left work
    # Its actions answered by its state object's handler(action) (diag/secevents.py), made on use:
    "security_ext e GetDiagnostics GetLog ExtendedTriggerMessage InstallCertificate"
    " GetInstalledCertificateIds DeleteCertificate CertificateSigned SignedUpdateFirmware\n"
)
# Transient features: attached for one CALL (or from a need() to its release()) and dropped
# once it is answered and no one holds them (their module out of the heap: drop(), with the
# modules its OWN names). They keep no state of their own in RAM (it lives in config.py, evse/,
# the store) and listen to nothing; work left for after the .conf (s.after) runs.
# Their handlers are not kept in the session's dict: a stub made at each use calls them.
TRANSIENT = ("configuration", "remote", "vendor", "smartcharging", "reservations")
# Authorization (a tap, its CALLs; with its cache and the list's reader ~3 KB) is one only where
# the bytecode is out of the heap (frozen, or a ROMFS image): there a load makes small objects
# only. With .mpy files in the heap, a tap or its CALLs in a fragmented heap must not need a
# load of five modules, whose code may find no block (tests/test_low_memory.py): kept there.
if not code_in_heap():
    TRANSIENT += ("authorization",)
_TAG = const("ocpp")


def rows(table=TABLE):
    # (name, eager, actions) of each feature of a table, one at a time.
    if not isinstance(table, str):
        for row in table:
            yield row
        return
    i = 0
    while True:
        j = table.find("\n", i)
        if j < 0:
            return
        parts = table[i:j].split(" ")
        yield parts[0], parts[1] == "e", tuple(parts[2:])
        i = j + 1


class Handlers(dict):
    # The session's action -> handler dict (rpc.py reads it with get() and `in`): the attached
    # features' handlers. A lazy feature's action not attached yet gets a stub made when asked
    # for (it attaches the feature), and an attached feature's action it left out gets its state
    # object's handler(action) if it has one: nothing in the heap per action until it is used.
    def __init__(self, s, table=TABLE):
        super().__init__()
        self.s = s
        self.table = table
        self.held = {}  # a transient feature attached: name -> [users, its handlers]

    def get(self, action, default=None):
        h = super().get(action)
        if h is None:
            h = _on_use(self, action)
        return default if h is None else h

    def __contains__(self, action):
        return self.get(action) is not None


def _on_use(out, action):
    s = out.s
    for name, _, actions in rows(out.table):
        if action in actions:
            if name not in s.features or name in out.held:
                return _stub(s, out, name, actions, action)
            fn = getattr(s.features[name], "handler", None)
            return fn(action) if fn is not None else None
    return None


def handlers(s, table=TABLE, out=None):
    # -> the action -> handler dict of the session (`out`, a Handlers, filled): eager features
    # attached; lazy ones attach on first use (Handlers.get).
    out = Handlers(s, table) if out is None else out
    for name, eager, actions in rows(table):
        if eager:
            load(s, out, name, actions)
    return out


def need(s, out, name, table=None):
    # Feature `name` attached now if it never was (s.feature() asks for a lazy one it needs); a
    # transient one stays attached until release() (one release() a need(), whatever it gave).
    if name not in s.features:
        for n, _, actions in rows(out.table if table is None else table):
            if n == name:
                load(s, out, name, actions)
    e = out.held.get(name)
    if e is not None:
        e[0] += 1


def release(s, out, name):
    # The end of a need(): a transient feature no one needs any more is dropped.
    e = out.held.get(name)
    if e is not None:
        e[0] -= 1
        if e[0] <= 0:
            unload(s, out, name)


def load(s, out, name, actions):
    # Attaches feature `name`, its handlers into `out`; on failure its actions answer the error.
    # s.features gets an entry either way (None for a failed one or one that keeps no state).
    s.features.setdefault(name, None)
    for a in actions:
        out.pop(a, None)  # an action attach() does not answer is NotSupported
    try:
        mod = __import__("ocpp_client." + name, None, None, ("attach",))
        h = mod.attach(s)
        if name in TRANSIENT:
            out.held[name] = [0, h]
        else:
            out.update(h)
        return True
    except ImportError as e:
        code = "NotSupported"
        log.warn(_TAG, "feature %s missing (%s): its messages are answered %s", name, e, code)
    except MemoryError as e:
        # No memory now: this call is answered InternalError (logged once per feature), and
        # the next one (or the next s.feature()) tries again, so the feature comes back once
        # memory frees.
        s.features.pop(name, None)
        if name not in _NO_MEMORY:
            _NO_MEMORY.append(name)
            log.exc(_TAG, "feature %s failed to load: its messages are answered InternalError "
                    "until it loads" % name, e)
        for a in actions:
            out[a] = _stub(s, out, name, actions, a)
        return None
    except Exception as e:  # a damaged file: it may work after a reboot
        code = "InternalError"
        log.exc(_TAG, "feature %s failed to load: its messages are answered %s" % (name, code), e)
    for a in actions:
        out[a] = _failed(code, name)
    return False


_NO_MEMORY = []  # features that failed to load for want of memory (logged once)


def _stub(s, out, name, actions, action):
    async def first(p):
        # A CALL of this feature: attached first if it is not, then answered by its own
        # handler. A transient one is dropped after, unless held (one that failed to load
        # stays failed, logged once).
        if name not in s.features and load(s, out, name, actions) is None:
            if action == "Reset":
                return reset(s, p["type"] == "Hard")
            # No memory: the RPC layer answers as for any CALL that ran out of it (InternalError;
            # SendLocalList: Failed); the next call tries again.
            raise MemoryError("feature %s not loaded" % name)
        e = out.held.get(name)
        h = out.get(action) if e is None else e[1].get(action)
        if h is None:
            from ocpp_client.errors import Reject

            raise Reject("NotSupported", "%s is not supported" % action)
        if e is None:
            return await h(p)
        e[0] += 1
        try:
            return await h(p)
        finally:
            release(s, out, name)

    return first


def reset(s, hard):
    # A Reset without memory for its feature (remote.py: to load it, or for its work's
    # coroutine): the operator's remedy for a charger in trouble, low memory included, so carried
    # out with what is resident and no coroutine of its own. The session's stop now (relay open;
    # the StopTransaction journaled, or its "stopping" document on flash, which the next boot
    # ends it from with this reason), the reboot once the answer is out. Left out: what a reset
    # only tells (event log line, tune, a soft one's 1001 close and the queue's delivery first).
    ok = {"status": "Accepted"}  # (no memory for these: InternalError, nothing done)
    s.after(s.board.reset, hard)  # (called by the follow's task, never returns: no coroutine)
    s.reboot = hard  # (the reboot when that task finds no memory: client._after_reply)
    s.connector.stop_for("HardReset" if hard else "SoftReset")
    log.warn(_TAG, "reset without its feature")
    return ok


def unload(s, out, name):
    # A transient feature dropped: its handlers out (stubs again on use), its modules out of
    # the heap.
    if name not in s.features:
        return
    del s.features[name]
    out.held.pop(name, None)
    for n, _, actions in rows(out.table):
        if n == name:
            for a in actions:
                out.pop(a, None)  # (stubs left by a load that lacked memory)
    mod = "ocpp_client." + name
    drop(mod, *getattr(sys.modules.get(mod), "OWN", ()))


def _failed(code, name):
    async def answer(p):
        from ocpp_client.errors import Reject

        raise Reject(code, "feature %s is not available" % name)

    return answer
