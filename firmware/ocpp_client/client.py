# The OCPP 1.6J session: connect, boot, beat. It connects with backoff, sends BootNotification
# once per power cycle (nothing else before Accepted), reports connector statuses, delivers the
# transaction queue and heartbeats, and drops half-open sockets. Everything else the CSMS and the
# charger say to each other lives in a feature module (features.py: the table and the contract).
import asyncio
import gc
import os
import time

import clock
import log
from ocpp_client import ws as wsmod
from ocpp_client import features
from ocpp_client.errors import CallError, CallTimeout, Disconnected, NotSent
from ocpp_client.rpc import Rpc, load_checker  # (Rpc loaded at boot; clientrare.init uses it)

_TAG = const("ocpp")
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(120000)
_ECONNREFUSED = const(111)
_PROVEN_MS = const(60000)
_SILENCE_MIN_MS = const(5000)  # the half-open watch's least silence (_watch)


def _rare(name, *args):
    # A seldom-run path of the session (clientrare.py: the set-up, the BootNotification), loaded
    # for the call and out of the heap after it (supervisor.rare).
    from supervisor import rare

    return rare("ocpp_client.clientrare", name, *args)


def _rand_u16():
    b = os.urandom(2)
    return b[0] << 8 | b[1]


def backoff_ms(attempt):
    # Exponential with jitter drawn from the upper half: a fleet that lost the CSMS together does
    # not come back together, and no charger retries faster than the base.
    ceil = min(_BACKOFF_MAX_MS, _BACKOFF_MIN_MS << min(attempt, 16))
    return ceil // 2 + (ceil // 2) * _rand_u16() // 65535


def dead(e):
    # A path that gave no answer (timeout, reset, unreachable, no DNS answer, no memory to try)
    # costs the CSMS nothing: retried at the base (1-2 s) and not counted, so the charger is back
    # within ~2 s of the network however long it was gone (an attempt hanging on a dead path
    # ends at its own timeout). Anything else is a refusal, backed off exponentially: an HTTP
    # status, TLS, connection refused, a close after our request when it repeats (a CSMS that
    # read it; the first is taken as a reset, connect.py), and what a retry cannot mend soon
    # but costs a blocking SNTP ask each (SecurityError, ValueError: no clock).
    return isinstance(e, (OSError, asyncio.TimeoutError, MemoryError)) and not (
        e.args and e.args[0] == _ECONNREFUSED)


def retry_ms(e, attempt):
    # The pause before the next connection attempt; `attempt`: refusals and unproven sessions
    # in a row (run()).
    return backoff_ms(1 if dead(e) else attempt)


class OcppClient:
    # What a feature may use (features.py): settings, config, board, connector, events, store,
    # limits, meter, reader, restart_tune, rpc, features, triggers, tasks, queue;
    # online(), after(), send(), kick(), feature(); on_status() and _sent[0] (read): connector
    # 0's LocalListConflict (authorization.py).
    renew_next = 0  # check_cert()

    def __init__(self, *, settings, config, board, connector, events, store, limits=None,
                 tls=None):
        # limits: evse.limits.Limits (smart charging); tls: the TLS context's block reserved at
        # boot (app.py), kept across reconnects (tls_keep). The fields: clientrare.init().
        _rare("init", self, settings, config, board, connector, events, store, limits, tls)

    def feature(self, name):
        # A feature's state object, the feature attached first if it is a lazy one not loaded
        # yet; None if it failed or keeps none. A transient one stays attached until
        # features.release().
        features.need(self, self.rpc.handlers, name)
        return self.features.get(name)

    async def authorize(self, id_tag, ms=0):
        # A tap: the authorization feature attached for it (loaded at the first tap, kept).
        # ms: how long the CSMS is waited for (0: a tap's wait).
        a = self.feature("authorization")
        try:
            if a is None:
                return "Invalid", None  # cannot decide: no session starts
            return await a.authorize_now(id_tag, ms)
        finally:
            features.release(self, self.rpc.handlers, "authorization")

    # -- connector events (listener interface) ---------------------------------------------
    def on_status(self, cid, status, error_code):
        try:
            self._status_dirty[cid] = (status, error_code)
        except MemoryError:  # the connector's own (status, code): no new tuple
            self._status_dirty[cid] = self.connector.status_of(cid)
        self._since[cid] = time.ticks_ms()  # (MinimumStatusDuration counts from here)
        self._kick.set()
        self._publish()

    def _publish(self):
        q = self.queue
        self.board.telemetry(
            "ocpp",
            {"connected": self.connected, "status": self.connector.status_of(1)[0],
             "registration": self.registration, "queued": len(q) if q is not None else 0},
        )

    def wake(self):
        # Something changed the endpoint or the link (a claim, the home Wi-Fi came up).
        self._kick.set()

    kick = wake  # a feature queued something for the session to send

    def online(self):
        return self.connected and self.registration == "Accepted"

    async def send(self, action, req):
        # A CALL whose loss is only logged (not journaled): MeterValues off-session.
        try:
            return await self.rpc.call(action, req)
        except Exception as e:
            log.warn(_TAG, "%s not sent: %s", action, _why(e))

    # -- work after a .conf ------------------------------------------------------------------
    def after(self, fn, *args):
        # Runs `await fn(*args)` once the .conf of the CALL being handled has been sent.
        self._follow.append((fn, args))

    def _after_reply(self, action, req, res):
        # res None: the CALL was refused (its handler failed): the work it queued is dropped.
        try:
            items, self._follow = self._follow, []
            if res is None:
                return
            for fn, args in items:
                asyncio.create_task(self._run_follow(fn, args))
        except MemoryError:
            # No room for the follow-up's task: a Reset accepted without its feature
            # (features.reset, its session stopped already) reboots from here, allocating
            # nothing, or the charger would stay up, stopped, after saying yes.
            if self.reboot is not None:
                self.board.reset(self.reboot)
            raise

    async def _run_follow(self, fn, args):
        try:
            await fn(*args)
        except (Disconnected, CallTimeout, CallError) as e:
            log.warn(_TAG, "work after the answer failed: %s", _why(e))
        except Exception as e:  # a feature's bug: logged, the session goes on
            log.exc(_TAG, "work after the answer", e)

    # -- triggers the session itself answers -----------------------------------------------
    async def _heartbeat(self, cid=None):
        try:
            conf = await self.rpc.call("Heartbeat", {})
        except CallError as e:  # the CSMS is there all the same: no pause, no link lost
            log.warn(_TAG, "Heartbeat refused: %s", _why(e))
            return
        apply_time(conf.get("currentTime"))
        self.check_cert()

    def check_cert(self):
        # The client certificate's renewal at profile 3 (diag/csr.py renew(), loaded for its
        # task): after each connection and at heartbeats (a link may stay up for weeks), once
        # renew_next (clock seconds, set by renew()) has come.
        if self.settings.get("security_profile", 0) != 3 or clock.now() < self.renew_next:
            return
        self.renew_next = clock.now() + 3600  # one check at a time; one that died is retried
        from supervisor import rare

        try:
            asyncio.create_task(rare("diag.csr", "renew", self))
        except Exception as e:  # no memory for it: checked again at the next chance
            log.warn("certs", "client certificate not checked for renewal: %s", e)

    async def _trigger_status(self, cid):
        for c in (0, 1) if cid is None else (cid,):
            st, err = self.connector.status_of(c)
            await self._send_status(c, st, err)

    # -- connection ------------------------------------------------------------------------
    async def run(self):
        # Supervised by app.py: after a failure it runs again (the features' tasks start once).
        if self.tasks:  # the eager features' tasks, each started once
            _rare("start_tasks", self)
        self.tasks = None
        attempt = 0
        while True:
            url = self.settings.get("csms_url")
            if not url:
                log.warn(_TAG, "no CSMS endpoint configured; waiting for a claim")
                self._kick.clear()
                from supervisor import within

                try:  # the claim (hotspot/) calls wake() when it sets the endpoint
                    await within(self._kick.wait(), 30000)
                except asyncio.TimeoutError:
                    pass
                continue
            ws = await self._connect(url)
            if isinstance(ws, Exception):
                attempt += not dead(ws)
                delay = retry_ms(ws, attempt)
                log.warn(_TAG, "cannot connect to %s: %s; retry in %d ms", log.url(url), _why(ws),
                         delay)
                if self.on_link_error is not None:
                    self.on_link_error(ws)
                ws = None
                await asyncio.sleep_ms(delay)
                continue
            log.info(_TAG, "connected to %s", log.url(url))
            if self.on_link_error is not None:
                self.on_link_error(None)  # the failures' burst, if any, ended
            self.connected = True
            self._publish()
            t0 = time.ticks_ms()
            try:
                load_checker()  # (after the handshake: its peak is not the checker's too)
                reason = await self._session(ws)
            finally:  # a failure (no memory) leaves no socket open behind the restart
                ws.abort()
                self.connected = False
            ws = None  # its socket and TLS context are garbage through the pause
            self._publish()
            # The backoff goes on only past a session the CSMS itself closed (a close frame, or
            # a protocol violation of its: wsrare.fail) before it proved itself by lasting: one
            # that upgrades and closes at once (1008 for an unknown id, a draining balancer)
            # would otherwise be hit every 1-2 s for ever. A link the network took (silence, a
            # reset) restarts it: back in 1-2 s.
            if (time.ticks_diff(time.ticks_ms(), t0) >= _PROVEN_MS
                    or "by peer" not in str(reason)):
                attempt = 0
            attempt += 1
            delay = backoff_ms(attempt)
            log.warn(_TAG, "link lost: %s; reconnect in %d ms", _why(reason), delay)
            reason = None
            await asyncio.sleep_ms(delay)

    async def _connect(self, url):
        # One attempt (connect.py: the credentials, the TLS context and the handshake, loaded
        # for it and dropped after): -> the WebSocket, or the exception it failed with. Its own
        # frame, gone once connected: the session's long-lived run() holds none of this.
        from supervisor import drop_waits, rare

        try:
            attempt = rare("ocpp_client.connect", "attempt", self, url)
        except Exception as e:  # no memory to load it: a failed attempt, tried again later
            return e
        try:
            return await attempt
        finally:
            drop_waits()  # (its timeouts' wait_for_ms)

    async def _session(self, ws):
        # Three tasks share the link: the reader, the worker (boot, heartbeat, reports) and the
        # watchdog. The first to find the link dead ends the session; the others are cancelled.
        self._end = asyncio.Event()
        self._end_reason = None
        self._idle_ms = None
        self._beat = False
        tasks = (asyncio.create_task(self._read(ws)), asyncio.create_task(self._work()),
                 asyncio.create_task(self._watch(ws)))
        try:
            await self._end.wait()
        finally:
            for t in tasks:
                t.cancel()
            self.rpc.drop()
        return self._end_reason

    async def _read(self, ws):
        try:
            reason = await self.rpc.serve(ws)
        finally:
            ws = None  # as in _watch: a finished task's frame must not keep the connection
        self._stop(reason)

    def _stop(self, reason):
        if not self._end.is_set():
            self._end_reason = reason
            self._end.set()

    async def _watch(self, ws):
        # Ping at WebSocketPingInterval; nothing received for two intervals, 5 s at least (a
        # pong late from a loaded CSMS or over a mobile link is no dead link; 1.6 sets no
        # limit) (ws.last_rx_ms: any read, a long message arriving too) means the socket is
        # half-open: drop it rather than show "connected" on a dead link. Checked every second,
        # so a changed interval takes effect at once. The heartbeat's timer too (_beat_due): no
        # timeout task kept by the idle worker.
        from supervisor import within

        last_ping = time.ticks_ms()
        try:
            while True:
                await asyncio.sleep(1)
                try:
                    self._beat_due()
                    interval = self.config.get("WebSocketPingInterval")
                    if interval <= 0 or ws.closed:
                        continue
                    now = time.ticks_ms()
                    silent = time.ticks_diff(now, ws.last_rx_ms)
                    if silent > max(2 * interval * 1000, _SILENCE_MIN_MS):
                        log.warn(_TAG, "no frame for %d s: half-open socket, dropping it",
                                 silent // 1000)
                        self._stop(wsmod.WsError("half-open socket"))
                        return
                    if time.ticks_diff(now, last_ping) >= interval * 1000:
                        last_ping = now
                        # Its turn waited for 1 s at most: a writer stuck in drain() on a dead
                        # socket (lwIP gives up after minutes) holds it; the ping then counts as
                        # silence, which the check above ends, and the heartbeat timer runs on.
                        # Its own write is not cut at 1 s (a slow link's stall would leave half
                        # a frame out: ws.py then drops the link), only an interval after that.
                        try:
                            await within(ws.ping(b"", 1000), interval * 1000 + 1000)
                        except MemoryError:
                            raise
                        except asyncio.TimeoutError:
                            self._stop(wsmod.WsError("link stalled: a ping not out in %d s"
                                                     % (interval + 1)))
                            return
                        except Exception as e:
                            self._stop(e)
                            return
                except MemoryError:
                    gc.collect()  # the watch goes on: a ping missed is sent at the next second
        finally:
            # A finished task may stay referenced a while (asyncio's run queue can keep one: a
            # pairing heap's stale child_last), and its frame with it: not the connection.
            ws = None

    async def _work(self):
        # The session's worker: BootNotification until accepted (once per power cycle), then
        # report, deliver the queue, heartbeat. A MemoryError (or a bug) in it leaves the link
        # up: logged once per burst, the work resumes after a pause (what was not delivered is
        # still journaled or still marked to report). A dead link ends the session. One frame
        # for all of it: it lives as long as the session.
        fails = 0
        t0 = time.ticks_ms()
        # The CSMS must know of a transaction before it hears a status that names it
        # ("Charging", OCTT TC_037_1_CS) or says it ended ("Finishing", "Available"): the
        # messages queued by the time statuses are reported go first. Only those: newer ones
        # wait behind the statuses, so a busy queue cannot hold them back for good. A
        # reconnection (boot accepted in an earlier session) waits out a retry of the queue
        # it found; online, a message waiting for its retry holds no status back. After a
        # boot the statuses come first (1.6: BootNotification, then StatusNotification per
        # connector).
        q = self.queue
        first = len(q) if q is not None and self.registration == "Accepted" else 0
        booted = False
        while True:
            try:
                while self.registration != "Accepted":
                    await self._boot()
                    booted = True
                self._kick.clear()
                q = self.queue
                if first:
                    await q.deliver(self.rpc, first)
                    first = 0
                elif booted:
                    booted = False
                elif q is not None and len(q) and self._due() is not None:
                    await q.deliver(self.rpc, len(q), False)
                await self._report_statuses()
                if q is not None:
                    await q.deliver(self.rpc)
                self._publish()
                if self._due() is not None or (q is not None and len(q) and not q.waits()):
                    continue
                # Idle until a status changes or a message is queued (both set _kick), or until
                # the watchdog finds no kick came for HeartbeatInterval (it sets _kick, _beat).
                self._idle_ms = time.ticks_ms()
                await self._kick.wait()
                self._idle_ms = None
                if self._beat:
                    self._beat = False
                    await self._heartbeat()
            except (Disconnected, CallTimeout) as e:
                log.warn(_TAG, "call failed: %s", _why(e))
                self._stop(e)
                return
            except Exception as e:
                gc.collect()
                if time.ticks_diff(time.ticks_ms(), t0) >= 30000:
                    fails = 0
                if not fails:
                    log.exc(_TAG, "session work failed; resuming it", e)
                fails += 1
                e = None
                await asyncio.sleep_ms(min(5000, 250 << min(fails, 5)))
                t0 = time.ticks_ms()

    def _beat_due(self):
        # Called every second by the watchdog: the worker idle for HeartbeatInterval is woken
        # to send a heartbeat (at most a second late).
        idle = self._idle_ms
        if idle is None:
            return
        if self._status_dirty and self._due() is not None:
            self._kick.set()  # a status has held for MinimumStatusDuration: report it
        # (a day at most: ticks_diff's range ends after some 6 days on a charger)
        interval = min(self.config.get("HeartbeatInterval"), 86400)
        if time.ticks_diff(time.ticks_ms(), idle) >= (interval if interval > 0 else 86400) * 1000:
            self._idle_ms = None
            self._beat = True
            self._kick.set()

    async def _boot(self, cid=-1):
        # BootNotification (clientrare.py), sent once per power cycle until Accepted; also
        # TriggerMessage's (cid: its connectorId, None, 0 or 1; -1: the worker's own).
        await _rare("boot", self, cid != -1)

    async def _send_status(self, cid, status, err, since=None):
        # since: ticks_ms of the change being reported; its time is the status's (1.6: "the
        # time for which the status is reported"), not the sending's, which an outage or
        # MinimumStatusDuration can put seconds later. A trigger reports the status now.
        t = clock.now_ms()
        if since is not None:
            t -= time.ticks_diff(time.ticks_ms(), since)
        req = {"connectorId": cid, "status": status, "errorCode": err,
               "timestamp": clock.iso_ms(t)}
        vendor = self.connector.vendor_error(cid, status, err)
        if vendor:
            req["vendorErrorCode"] = vendor
            if vendor == "GridMeterFailure":
                req["info"] = "grid meter silent: offer at its fallback"
        await self.rpc.call("StatusNotification", req)
        self._sent[cid] = (status, err)

    def _due(self):
        # The lowest connector whose status is to be reported now, or None. With a
        # MinimumStatusDuration, only a status that has held that long (1.6): one that changed
        # back meanwhile is dropped by _report_statuses, never reported.
        dur = self.config.get("MinimumStatusDuration") * 1000
        now = time.ticks_ms()
        due = None
        stopping = self.connector.finishing_stops
        for cid in self._status_dirty:
            if stopping:
                # A StopTransaction not queued yet (the final reading) goes first: before the
                # connector's status, and the charge point's (an Unavailable scheduled for the
                # end of the transaction, 1.6 5.2)
                continue
            t = self._since[cid]
            if dur and t is not None and time.ticks_diff(now, t) < dur:
                continue
            if due is None or cid < due:
                due = cid
        return due

    async def _report_statuses(self):
        hold = self.config.get("MinimumStatusDuration")
        q = self.queue
        # What was queued before: after a boot it waits for every status (1.6 4.2), else the
        # worker delivered it just now; only a message queued meanwhile (a start) cuts in.
        n = len(q) if q is not None else 0
        sent = False
        while True:
            cid = self._due()
            if cid is None:
                return
            if sent and q is not None and len(q) > n and not q.waits():
                return  # queued while a status went out (a start): it goes before the next one
            sent = True
            st = self._status_dirty.pop(cid)
            if hold and self._since[cid] is not None and st == self._sent[cid]:
                continue  # back to what the CSMS was told before it held MinimumStatusDuration
            done = False
            try:
                await self._send_status(cid, st[0], st[1], self._since[cid])
                done = True
            except CallError as e:
                # The CSMS's final answer (1.6 retries transaction messages only): reported,
                # not sent again. Put back, it held every message behind it for good.
                log.warn(_TAG, "StatusNotification of connector %d answered %s", cid, e.code)
                self._sent[cid] = st
                done = True
            except NotSent:
                return  # never went out (the link busy): kept (below), the worker comes back
            except Exception as e:
                # Answered late, or ignored by a CSMS that answers a probe (clientrare.answers):
                # delivered, or dropped (a later change is reported).
                v = isinstance(e, CallTimeout) and await _rare("answers", self, e)
                if not v:
                    raise e
                if v is not True:
                    self._sent[cid] = st
                done = True
            finally:
                # Not delivered (a dead link, no memory, the worker cancelled as it waited: the
                # watchdog found the socket half-open): reported again after the reconnection
                # or the pause, never lost.
                if not done:
                    self._status_dirty.setdefault(cid, self.connector.status_of(cid))


def apply_time(t):
    # The CSMS's currentTime (Heartbeat, BootNotification) sets the clock.
    if isinstance(t, str):
        try:
            clock.set_utc(clock.parse_iso(t), "csms")
        except ValueError:
            log.warn(_TAG, "CSMS sent a bad currentTime %r", t)


def _why(e):
    if e is None:
        return "closed"
    return "%s %s" % (type(e).__name__, e)
