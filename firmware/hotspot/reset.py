# The factory reset's wipe (unclaim, very long press of the setup button): loaded for it and out
# of the heap after (claim.Hotspot.factory_reset(); run by supervisor.rare). The owner gives the
# charger away: what the owner, their CSMS or their broker gave or left goes; what belongs to the
# device stays. Every document the firmware writes, and which it is:
#   owner (wiped): the settings' owner fields (settingsdoc.wipe_owner), _DOCS and the
#     authorization cache's (auth.docs()), _QUEUES, _FOLDERS, _EMPTIED
#   device (kept): settings' identity and installation (meter, fuse, phases), claim_guard (the
#     login lockout: it guards the label's password, not the owner's data), ota and signedfw
#     (a firmware job and the slots: the running code's business), pulse_meter (the meter's
#     register: energy readings never go back), diag_boot and seclog (the device's security
#     log: its events carry no tag and no secret, and the reset belongs in it), spools and
#     scratch files (dropped at boot or by their job).
import asyncio

import log

_TAG = "hotspot"
_DOCS = const((
    "ocpp_config",  # the CSMS's configuration keys (ocpp_client/config.py)
    "locallist", "locallist_new",  # the local authorization list's version and count
    "smart0", "smart1",  # charging profiles (evse/smart.py)
    "reservations",  # evse/reservation.py
    "availability",  # ChangeAvailability's (evse/connector.py)
    "session", "stopping",  # an open session: its tag; its StopTransaction would go nowhere
    "certs", "csrkey", "certold",  # the CSMS's installed roots, a pending CSR's key, the old pair
    "owner_controls",  # MQTT pause and limit (mqtt/commands.py)
    "events",  # the event log: the owner's tags, sessions, logbook (eventlog.py)
))  # and the authorization cache's, as its owner names them (ocpp_client/auth.py docs())
# Queues a live sender reads (ocpp_client/txqueue.py, its id map; mqtt/feature.py's finished
# sessions): removed only just before the reboot; gone from under it, a sender spun on records it
# still counted and hung the loop. A power cut in between leaves them.
_QUEUES = const(("txq", "txids", "txshift", "txshiftms", "txretry", "mqtt_sessions"))
_FOLDERS = const(("ll", "ll.new", "ll.old"))  # the local list's tags (ocpp_client/locallist.py)
_EMPTIED = const(("agentlog",))  # log lines name tags and the CSMS (diag/agentlog.py)


async def settle(hs):
    # Before the wipe: a session stopped for it (claim.Hotspot._stop_session) waits for its
    # final meter reading, then its StopTransaction and what else is queued go to the CSMS while
    # the link allows, a few seconds at most (as at a soft Reset: ocpp_client/remote.py). What
    # is left is dropped by the wipe, said.
    conn, s = hs.connector, hs.ocpp
    for _ in range(30):
        if conn is None or not conn.finishing_stops:
            break
        await asyncio.sleep_ms(100)
    for _ in range(50):
        if s is None or s.queue is None or not len(s.queue) or not s.online():
            break
        await asyncio.sleep_ms(100)


def wipe(hs, first, settings=True):
    # first: at the reset's request; again (not first) just before the reboot, with no await
    # between, so nothing a task wrote meanwhile (a meter checkpoint, an event, an Authorize's
    # cache entry) outlives it. settings False: the owner's settings stay (a claim for another
    # CSMS saved the new ones, marked `rewipe`: claim.Hotspot.wipe_old()). The settings' save
    # marks `rewipe` too (a factory reset: settingsdoc.wipe_owner); the last wipe clears it.
    st = hs.store
    if first:
        # Messages for the old CSMS still undelivered (billing data) cannot go to the next one:
        # said, then dropped with the rest.
        from ocpp_client.txqueue import MAX_RECORDS  # (resident: the client's)

        n = len(st.journal("txq", MAX_RECORDS))
        if n:
            log.warn(_TAG, "factory reset: %d queued message(s) never delivered to the "
                     "old CSMS dropped", n)
    if settings:
        hs.settings.wipe_owner()
    _remove(st, not first)
    if not first:
        hs.settings.update(rewipe=False)  # all gone: the boot has nothing left to wipe


def leftovers(store):
    # At boot (settingsdoc.load), before anything reads them: a claim for another CSMS or a
    # factory reset saved its settings (marked `rewipe`) and the power cut before its restart's
    # wipe; what is left of the old owner's documents goes (their queued transactions never
    # reach the new CSMS, their cards never charge for the next owner).
    log.warn(_TAG, "a claim for another CSMS or a factory reset was cut short: the previous "
             "owner's data wiped")
    _remove(store, True)


def _remove(st, queues):
    import sys

    loaded = () if "ocpp_client.auth" in sys.modules else ("ocpp_client.auth",)
    from ocpp_client import auth  # (loaded for it where it is not: dropped again below)
    from store import wipe as w

    docs = _DOCS + auth.docs()
    w.remove(st, docs + _QUEUES if queues else docs, _FOLDERS, _EMPTIED)
    from supervisor import drop

    drop("store.wipe", *loaded)
