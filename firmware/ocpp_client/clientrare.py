# The session's (client.py) seldom-run paths, out of the heap between their calls: its set-up at
# boot, the start of the features' tasks, the BootNotification (once per power cycle, or a
# retry while the CSMS has not accepted it) and the probe of a link on which a CALL of ours went
# unanswered (answers()). Each is a function of the session `cl`, loaded by
# supervisor.rare() for the call and dropped after it (with .mpy files, a module's bytecode is in
# the heap while it is imported). A MemoryError loading it reaches the caller: the boot fails as
# it would have, the session's worker pauses and boots again (client.py _work).
import asyncio

import log
from ocpp_client import client, features
from ocpp_client.errors import CallError, CallTimeout, Disconnected
from ocpp_client.rpc import Rpc

_TAG = "ocpp"
_REJECTED_RETRY_S = const(60)  # if the CSMS gives no usable interval with Rejected/Pending


def init(cl, settings, config, board, connector, events, store, limits, tls):
    cl.settings = settings
    cl.config = config
    cl.board = board
    cl.connector = connector
    cl.events = events
    cl.store = store
    cl.limits = limits  # evse.limits.Limits: smart charging (the reservations: connector)
    # the peripherals, built after the session (they need the status light, which needs it):
    # app.py sets them
    cl.meter = None  # the energy meter (meter.latest, energy_wh())
    cl.reader = None  # rfid.reader.Reader, for tag learning
    cl.restart_tune = None  # fn(): the buzzer's restart tune
    cl.connected = False
    cl.registration = None  # None until the first answer, then Accepted/Pending/Rejected
    cl.queue = None  # the transaction queue (transactions.py): client.py _work's order
    cl.features = {}  # feature name -> its state object, where it keeps one
    # (idTag, idTagInfo) the authorization cache holds as the CSMS last gave it (auth.py
    # remember()): the same again (a session's StartTransaction.conf after its Authorize) needs
    # no load of the feature (transactions.py).
    cl.cached = None
    cl.tasks = []  # coroutines of eager features, started by run()
    cl.on_link_error = None  # fn(exception): an attempt failed; fn(None): one succeeded
    # the TLS context, kept from one connection to the next (security.py); from app.py, the
    # block reserved for it at boot; a claim hands over its own (hotspot/claim.py)
    cl.tls_keep = [] if tls is None else tls
    cl.dns_memo = [None, None, 0]  # the CSMS's address while its TTL lasts (net/dns.py)
    # TriggerMessage: requestedMessage -> async fn(connector_id or None)
    cl.triggers = {"BootNotification": cl._boot,
                   "Heartbeat": cl._heartbeat,
                   "StatusNotification": cl._trigger_status}
    cl._boot_due_ms = 0
    cl._status_dirty = {}  # connector id -> (status, error_code) not yet reported
    # per connector: ticks_ms of its last change (None: due at once, as at boot), and the
    # (status, error_code) last reported (MinimumStatusDuration: client.py _due)
    cl._since = [None, None]
    cl._sent = [None, None]
    cl._kick = asyncio.Event()  # work for the session: a status, a queued message, a claim
    cl._follow = []
    cl.reboot = None  # a Reset's kind (hard: True) once features.reset accepted it
    cl._idle_ms = None  # ticks_ms since the worker waits for a kick (None: busy)
    cl._beat = False  # the watchdog found a heartbeat due (_beat_due)
    cl.spool = store.spool("rx")  # long incoming messages; drops one left by a reboot
    cl.rpc = Rpc(features.Handlers(cl))  # a feature's handlers made on use
    cl.rpc.timeout_ms = settings.get("call_timeout_s", 30) * 1000
    cl.rpc.after_reply = cl._after_reply
    cl.rpc.on_dead = cl._stop  # a CALL the link would not take: the session ends
    connector.listen(cl)
    connector.authorizer = cl.authorize  # authorization.py, loaded at the first tap
    for cid in (0, 1):
        cl._status_dirty[cid] = connector.status_of(cid)
    features.handlers(cl, out=cl.rpc.handlers)


def start_tasks(cl):
    # The eager features' tasks, each taken out of cl.tasks once started (a restart of run()
    # starts the rest): (name, async fn) supervised, restarted after a failure; a coroutine once.
    from supervisor import start

    ts = cl.tasks
    while ts:
        t = ts[0]
        if isinstance(t, tuple):
            start(*t)
        else:
            asyncio.create_task(t)
        ts.pop(0)


async def boot(cl, triggered=False):
    # The worker's BootNotification, after the interval the last answer gave. A TriggerMessage
    # (only taken while not Accepted) ends that wait: 1.6 4.2 lets a trigger have it sent
    # earlier. The worker sends it, so it goes once, not beside the worker's own.
    wake = getattr(cl, "_boot_wake", None)
    if triggered:
        if wake is not None:
            wake.set()
        return
    wait_ms = cl._boot_due_ms
    if wait_ms:
        cl._boot_wake = wake = asyncio.Event()
        try:
            await asyncio.wait_for_ms(wake.wait(), wait_ms)
        except asyncio.TimeoutError:
            pass
        finally:
            cl._boot_wake = None
    from supervisor import fw_version

    s = cl.settings
    req = {"chargePointVendor": s["vendor"][:20], "chargePointModel": s["model"][:20]}
    if s.get("serial"):
        req["chargePointSerialNumber"] = s["serial"][:25]
    req["firmwareVersion"] = fw_version()
    try:
        conf = await cl.rpc.call("BootNotification", req)
    except CallError as e:
        log.warn(_TAG, "BootNotification answered %s", e.code)
        cl._boot_due_ms = _REJECTED_RETRY_S * 1000
        return
    status = conf.get("status")
    interval = conf.get("interval")
    client.apply_time(conf.get("currentTime"))
    if status not in ("Accepted", "Pending", "Rejected"):
        log.warn(_TAG, "BootNotification answer not understood: %r", conf)
        cl._boot_due_ms = _REJECTED_RETRY_S * 1000
        return
    if type(interval) is not int:
        # A loosely typed backend's "300" or 300.0, or none: the status is the CSMS's word all
        # the same. Refused, an Accepted charger booted every minute for ever and never
        # reported nor delivered anything. Read as a number where it is one, else as 0 (the
        # heartbeat interval kept; Pending, Rejected: retried after _REJECTED_RETRY_S).
        log.warn(_TAG, "BootNotification interval %r is not an integer", interval)
        try:
            interval = int(float(interval)) if type(interval) in (str, float) else 0
        except (ValueError, OverflowError):
            interval = 0
    cl.registration = status
    cl.rpc.deaf = status == "Rejected"
    cl._publish()
    log.info(_TAG, "boot %s, interval %d s", status, interval)
    if status == "Accepted":
        if interval > 0:
            cl.config.set_runtime("HeartbeatInterval", interval)
        cl.events.add("boot_accepted")
        cl._boot_due_ms = 0
    else:
        # (a day at most: ticks_diff's range ends after some 6 days on a charger)
        cl._boot_due_ms = (min(interval, 86400) if interval > 0 else _REJECTED_RETRY_S) * 1000


async def answers(cl, e):
    # A CALL of ours got no answer within its timeout (e: its CallTimeout): is the link dead, or
    # does the CSMS ignore that message (no security extension, a SecurityEventNotification; a
    # StartTransaction it drops)? Asked again after every reconnection, an ignored message would
    # otherwise cost the link for ever, and nothing behind it would get through. The probe is a
    # Heartbeat: a pong proves only the WebSocket layer, a Heartbeat the CSMS's OCPP side.
    # -> False when it is not answered: the link is dead (half-open), a reconnect follows and
    # nothing is counted, so no billing data is lost to a dead link. -> the message's own answer
    # ([3 or 4, id, ...], rpc.py late) when it came after the timeout, before the Heartbeat's
    # (the link stalled: it is the answer). -> True when only the Heartbeat is answered (a
    # CALLERROR too): the link lives and the message counts as a failed attempt (txqrare.py: a
    # transaction message retried under the SAME id, for TransactionMessageAttempts, any other
    # dropped; client.py: a StatusNotification dropped). Not for a BootNotification (nothing
    # else before it is Accepted) nor a Heartbeat (the probe itself): those reconnect.
    what = e.args[0] if e.args else "a call"
    log.warn(_TAG, "%s unanswered: probing the link with a Heartbeat", what)
    try:
        await cl._heartbeat()
    except CallError:
        pass
    except (CallTimeout, Disconnected):
        return False
    late = cl.rpc.late
    if late is not None:
        cl.rpc.late = None
        return late
    log.warn(_TAG, "the link lives (Heartbeat answered): %s was ignored", what)
    return True
