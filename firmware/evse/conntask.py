# The connector's (evse/connector.py) two tasks at a session's edges, out of the heap between
# them: a tap's decision (Authorize may take a round trip) and a stopped session's final meter
# reading. Each coroutine is made by connector.py's _rare(), the module dropped at once: the
# running task holds its code (and this small module's globals) until it ends. Without the
# memory to load it, the tap is lost as without memory for its task (the next one tries again),
# and the stop is journaled at once, at the last reading (connector _stop()). A stop decided
# here is connector._stop(): the relay opens first, there.
import log

_TAG = "evse"
_STOPPING_DOC = const("stopping")


async def authorize_tag(c, id_tag):
    # A tap decided (connector.on_tag() made the task; the same card's stop is there): the
    # parent's card stops the running session, an accepted one starts a session (or waits for
    # the plug), a refused one is signalled.
    s = c.session
    r = c.reservations
    if (r is not None and (s is None or s.get("stopped")) and not r.may_start(id_tag)
            and not r.applying(1)["parentIdTag"]):
        # Reserved for another tag, with no parent that could admit this one: refused here,
        # without an Authorize (1.6 5.13; OCTT TC_046_1_CS step 5). With a parentIdTag the
        # tag's parent must be learnt first (below: local list, cache, then Authorize).
        log.info(_TAG, "tag %s refused: connector reserved", id_tag)
        c._feedback(False)
        return
    if (s is None or s.get("stopped")) and _cannot_start(c, id_tag):
        return  # (no Authorize: nothing it answers could start a session)
    if s and not s.get("stopped") and not s.get("parent"):
        # Not the session's card (on_tag), and the session has no group: nothing an Authorize
        # answers lets this card stop it, so none is sent (OCTT TC_068_CS step 1).
        log.info(_TAG, "tag %s does not stop the session: not its card, it has no group", id_tag)
        c._feedback(False)
        return
    c.authorizing = True
    try:
        status, parent = await c.authorizer(id_tag)
    finally:
        c.authorizing = False
    s = c.session
    if s and not s.get("stopped"):
        if (status == "Accepted" and parent and s.get("parent")
                and parent.upper() == s["parent"].upper()):  # CiString20: any case
            # StopTransaction's idTag is the card that asked to stop (OCTT TC_069_CS): kept in
            # the session, so the stopping document has it for a power cut before the journal.
            s["by"] = id_tag
            c._stop("Local")
        else:
            # Neither the session's card nor one of its group: it stops nothing, and says so
            # (without a signal the owner could not tell a wrong card from a reader that missed it).
            log.info(_TAG, "tag %s does not stop the session: %s, not of its group", id_tag, status)
            c._feedback(False)
        return
    if status != "Accepted":
        log.info(_TAG, "tag %s refused: %s", id_tag, status)
        c.events.add("tag_refused", tag=id_tag, status=status)
        c._feedback(False)
        return
    if not c._may_start(id_tag, parent):
        log.info(_TAG, "tag %s refused: connector reserved", id_tag)
        c._feedback(False)
        return
    if _cannot_start(c, id_tag):  # (it changed during the Authorize)
        return
    # The accepted signal promises the charge: with the EV plugged in the session starts here,
    # on flash with its StartTransaction, and the signal follows (a power cut after it ends a
    # billed session); a start the flash refused was signalled refused (connrare.refuse_start).
    c._authorized(id_tag, parent, "tag")
    if c.session is not None or c.pending is not None:
        c._feedback(True)


def _cannot_start(c, id_tag):
    # Unavailable, Faulted, a reset coming, a power cut's sessions still being ended: the
    # accepted signal would promise a charge that never comes (connector._authorized() starts
    # nothing then). The card is refused at the charger instead. -> True when refused.
    if c.can_start():
        return False
    log.info(_TAG, "tag %s refused: no session can start now", id_tag)
    c._feedback(False)
    return True


async def finish_stop(c, s, reason):
    # A stopped session's final meter reading, then its StopTransaction's journal (connector
    # _stop(): the relay is open and the stop on flash meanwhile).
    try:
        e = await c.meter.fresh()
        if e is not None and e >= s["meter_start"]:
            s["meter_stop"] = e
    except Exception as ex:
        log.exc(_TAG, "final meter reading", ex)
    try:
        c._journal_stop(s, reason, _STOPPING_DOC)
    finally:  # (starts wait on it: connector._try_start)
        c.finishing_stops -= 1
    c._try_start()  # a start authorized meanwhile (an idTag again in Finishing)
