# The OCPP 1.6J charge-point session: connect, boot, heartbeat, status notifications,
# transactions (journaled), authorization, meter values, and the CSMS's calls. Protocol only:
# it learns about the hardware from the connector and asks the connector to act.
import asyncio
import os
import time

import clock
import log
from ocpp_client import ws as wsmod
from ocpp_client import handlers, meterdata, security
from ocpp_client.auth import Auth
from ocpp_client.locallist import LocalList
from ocpp_client.rpc import Rpc, CallError, CallTimeout, Disconnected
from ocpp_client.txqueue import TxQueue, START, STOP, METER

_TAG = "ocpp"
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(120000)
_REJECTED_RETRY_S = const(60)  # if the CSMS gives no usable interval with Rejected/Pending
_ECONNREFUSED = const(111)
_AUTH_TIMEOUT_MS = const(7000)  # a tap waits this long (from the tap, a busy link included)
# for the CSMS before deciding offline: with the reader and the relay, a listed tag charges
# within 9 s of the tap whatever the link does (tests/test_dead_waits.py)


def _rand_u16():
    b = os.urandom(2)
    return b[0] << 8 | b[1]


def backoff_ms(attempt):
    # Exponential with jitter drawn from the upper half: a fleet that lost the CSMS together does
    # not come back together, and no charger retries faster than the base.
    ceil = min(_BACKOFF_MAX_MS, _BACKOFF_MIN_MS << min(attempt, 16))
    return ceil // 2 + (ceil // 2) * _rand_u16() // 65535


def retry_ms(e, attempt):
    # The pause before the next connection attempt. A CSMS that answered and refused (HTTP
    # status, TLS, connection refused) is backed off exponentially: a fleet must not hammer it.
    # A path that gave no answer (timeout, reset, unreachable) costs the CSMS nothing: retried
    # at the base (1-2 s), so the charger is back within ~2 s of the network however long it
    # was gone (an attempt hanging on a dead path ends at its own timeout).
    if isinstance(e, wsmod.WsError) or (isinstance(e, OSError) and e.args
                                        and e.args[0] == _ECONNREFUSED):
        return backoff_ms(attempt)
    return backoff_ms(1)


class OcppClient:
    def __init__(self, settings, config, board, connector, events, store, meter=None,
                 smart=None, reservations=None):
        self.settings = settings
        self.config = config
        self.board = board
        self.connector = connector
        self.events = events
        self.store = store
        self.meter = meter
        self.smart = smart
        self.reservations = reservations
        self.tx_profile = None  # a RemoteStart's TxProfile, waiting for its transaction id
        self.reader = None  # rfid.reader.Reader for tag learning, set by the app
        self.restart_tune = None  # fn(): the buzzer's restart tune, set by the app
        self.txq = TxQueue(store, config)
        self.txq.on_start_conf = self._start_conf
        self.txq.on_stop_conf = self._stop_conf
        self.auth = Auth(store, config, LocalList(store, config.get("LocalAuthListMaxLength")))
        self.auth.remote = self._authorize_remote
        self.spool = store.spool("rx")  # long incoming messages; drops one left by a reboot
        self.rpc = Rpc(handlers.build(self))
        self.rpc.timeout_ms = settings.get("call_timeout_s", 30) * 1000
        self.rpc.known_actions = handlers.UNSUPPORTED
        self.rpc.after_reply = self._after_reply
        self.connected = False
        self.registration = None  # None until the first answer, then Accepted/Pending/Rejected
        self._boot_due_ms = 0
        self._status_dirty = {}  # connector id -> (status, error_code) not yet reported
        self._kick = asyncio.Event()
        self._follow = []
        self._tags = {}  # session ref -> idTag, for StopTransaction's idTag and conf handling
        self._begin = {}  # session ref -> Transaction.Begin sampled values
        connector.authorize = self._authorize
        connector.listeners.append(self)
        for cid in (0, 1):
            self._status_dirty[cid] = connector.status_of(cid)

    # -- connector events (listener interface) ---------------------------------------------
    def on_status(self, cid, status, error_code):
        self._status_dirty[cid] = (status, error_code)
        self._kick.set()
        self._publish()

    def on_tx_start(self, s):
        ts = clock.iso_ms(s["start_ms"]) if "start_ms" in s else clock.iso(s["start"])
        req = {"connectorId": 1, "idTag": s["tag"], "meterStart": int(s["meter_start"]),
               "timestamp": ts}
        if s.get("res") is not None:
            req["reservationId"] = s["res"]
        self.txq.add(START, req, s["ref"])
        begin = meterdata.sampled(self.meter, self.connector,
                                  self.config.measurands("StopTxnSampledData"), "Transaction.Begin")
        if begin:
            self._begin[s["ref"]] = meterdata.meter_value(begin, _start_ms(s), True)
        self._kick.set()

    def on_tx_stop(self, s, reason):
        # Times with the start's resolution (ms), never before it.
        stop_ms = max(s.get("stop_ms", s["stop_t"] * 1000), _start_ms(s))
        req = {"meterStop": int(s["meter_stop"]), "timestamp": clock.iso_ms(stop_ms),
               "reason": reason, "idTag": s["tag"]}
        data = []
        if s["ref"] in self._begin:
            data.append(self._begin.pop(s["ref"]))
        end = meterdata.sampled(self.meter, self.connector,
                                self.config.measurands("StopTxnSampledData"), "Transaction.End")
        if end:
            data.append(meterdata.meter_value(end, stop_ms, True))
        if data:
            req["transactionData"] = data
        self.txq.add(STOP, req, s["ref"])
        self._kick.set()

    async def _recover(self):
        # Sessions a power cut left unfinished end now: an open one with PowerLoss, a stopped
        # one with its own reason. A StartTransaction is journaled first if the cut came before
        # that; a stop already journaled is not repeated. The bill is exact: the meter is read
        # now (the register stood still while the charger was off), and an open session's stop
        # is never below a register already reported for it nor earlier than the last instant
        # the charger knew it was running (its last MeterValues or minute checkpoint).
        if not self.connector.interrupted:
            return
        m = self.meter
        if m is not None and hasattr(m, "fresh"):
            try:
                await m.fresh(3000)
            except Exception as e:
                log.exc(_TAG, "meter at boot", e)
        todo = self.connector.take_interrupted()
        pending = [(rec["a"], rec["r"]) for _, rec in self.txq.j.pending()]
        for s, reason in todo:
            if (STOP, s["ref"]) in pending:
                continue
            _floor(s, *self.txq.reported(s["ref"]))
            if (START, s["ref"]) not in pending and self.txq.tx_id(s["ref"]) is None:
                self.on_tx_start(s)
            log.warn(_TAG, "session %s was unfinished at power loss: stopping it (%s)",
                     s["ref"], reason)
            self.on_tx_stop(s, reason)
            self.events.add("session_stop", reason=reason)
        self.connector.forget_interrupted()

    def _start_conf(self, ref, conf):
        tid = self.txq.tx_id(ref)
        self.connector.set_tx_id(ref, tid)
        prof, self.tx_profile = self.tx_profile, None
        if prof is not None and self.smart is not None and tid is not None and tid >= 0:
            prof = dict(prof)
            prof["transactionId"] = tid
            st, why = self.smart.set_profile({"connectorId": 1, "csChargingProfiles": prof}, tid)
            if why:
                log.warn(_TAG, "TxProfile of the remote start not installed: %s", why)
        info = conf.get("idTagInfo") or {}
        tag = self._tag_of(ref)
        if tag:
            self.auth.remember(tag, info)
        if info.get("status") != "Accepted":
            log.warn(_TAG, "CSMS refused the tag of session %s: %s", ref, info.get("status"))
            self.connector.deauthorize(ref, self.config.get("StopTransactionOnInvalidId"))

    def _stop_conf(self, ref, conf):
        info = conf.get("idTagInfo")
        tag = self._tag_of(ref)
        if tag and info:
            self.auth.remember(tag, info)

    def _tag_of(self, ref):
        s = self.connector.session
        if s and s["ref"] == ref:
            return s["tag"]
        return None

    def _publish(self):
        self.board.telemetry(
            "ocpp",
            {"connected": self.connected, "status": self.connector.status_of(1)[0],
             "registration": self.registration, "queued": len(self.txq)},
        )

    def wake(self):
        # Something changed the endpoint or the link (a claim, the home Wi-Fi came up).
        self._kick.set()

    # -- authorization ---------------------------------------------------------------------
    def online(self):
        return self.connected and self.registration == "Accepted"

    async def _authorize(self, id_tag):
        return await self.auth.authorize(id_tag, self.online())

    async def _authorize_remote(self, id_tag):
        conf = await self.rpc.call("Authorize", {"idTag": id_tag}, _AUTH_TIMEOUT_MS)
        return conf.get("idTagInfo") or {"status": "Invalid"}

    def data_transfer(self, p):
        if p.get("vendorId") != "borne":
            return {"status": "UnknownVendorId"}
        if p.get("messageId") == "learnTag":
            # The app's "Scan Physical Tag": the next card read goes to the cloud, not to a
            # session.
            if self.reader is None:
                return {"status": "Rejected"}
            self.reader.learn(self._learned)
            self.events.add("learn_tag")
            return {"status": "Accepted"}
        if p.get("messageId") == "logbook":
            # The driver logbook entry the cloud attaches to the current session.
            self.events.add("logbook", data=str(p.get("data", ""))[:200])
            return {"status": "Accepted"}
        return {"status": "UnknownMessageId"}

    def _learned(self, id_tag):
        if id_tag is None:
            log.info(_TAG, "tag learning timed out")
            return
        req = {"vendorId": "borne", "messageId": "tagLearned", "data": id_tag}
        if self.online():
            asyncio.create_task(self._send_plain("DataTransfer", req))
        else:
            log.warn(_TAG, "tag %s learned while offline: not reported", id_tag)

    # -- work after a .conf ------------------------------------------------------------------
    def after(self, item):
        self._follow.append(item)

    def _after_reply(self, action, req, res):
        items, self._follow = self._follow, []
        for item in items:
            asyncio.create_task(self._run_follow(item))

    async def _run_follow(self, item):
        kind = item[0]
        try:
            if kind == "reset":
                await self._reset(item[1])
            elif kind == "authorize_remote":
                status, parent = await self._authorize(item[1])
                if status == "Accepted":
                    self.connector._authorized(item[1], parent, "remote")
                else:
                    log.info(_TAG, "remote start for %s refused: %s", item[1], status)
                    self.connector.pending = None
            elif kind == "trigger":
                await self._trigger(item[1], item[2])
        except (Disconnected, CallTimeout, CallError) as e:
            log.warn(_TAG, "%s after the answer failed: %s", kind, _why(e))

    async def _reset(self, kind):
        hard = kind == "Hard"
        self.events.add("reset", type=kind)
        if self.restart_tune is not None:
            self.restart_tune()  # the owner hears the restart (sound + LED change)
        self.connector.stop_for("HardReset" if hard else "SoftReset")
        # The StopTransaction waits for the final meter reading (a second at most); a soft reset
        # also lets it go out first, if the link allows it.
        for _ in range(30):
            if not self.connector.stops_pending():
                break
            await asyncio.sleep_ms(100)
        if not hard:
            for _ in range(50):
                if not len(self.txq) or not self.online():
                    break
                await asyncio.sleep_ms(100)
        log.info(_TAG, "%s reset", kind)
        await asyncio.sleep_ms(50)
        self.board.reset(hard)

    async def _trigger(self, what, cid):
        if what == "BootNotification":
            await self._boot()
        elif what == "Heartbeat":
            conf = await self.rpc.call("Heartbeat", {})
            self._apply_time(conf.get("currentTime"))
        elif what == "StatusNotification":
            for c in (0, 1) if cid is None else (cid,):
                st, err = self.connector.status_of(c)
                await self._send_status(c, st, err)
        elif what == "MeterValues":
            vals = meterdata.sampled(self.meter, self.connector,
                                     self.config.measurands("MeterValuesSampledData"), "Trigger")
            if not vals:
                # No meter reading to give: the offer is the one value the EVSE itself knows.
                vals = meterdata.sampled(None, self.connector, ("Current.Offered",), "Trigger")
            req = {"connectorId": 1 if cid is None else cid,
                   "meterValue": [meterdata.meter_value(vals)]}
            s = self.connector.session
            tid = self.txq.tx_id(s["ref"]) if s else None
            if tid is not None and tid >= 0:
                req["transactionId"] = tid
            await self.rpc.call("MeterValues", req)
        elif what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            await self.rpc.call(what, {"status": "Idle"})

    # -- meter values ------------------------------------------------------------------------
    async def _sampler(self):
        # Periodic samples during a session (MeterValueSampleInterval) and clock-aligned ones
        # (ClockAlignedDataInterval, aligned to midnight UTC). Transaction samples are journaled.
        last_periodic = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(500)
            s = self.connector.session
            interval = self.config.get("MeterValueSampleInterval")
            now_ms = time.ticks_ms()
            if s and interval > 0 and time.ticks_diff(now_ms, last_periodic) >= interval * 1000:
                last_periodic = now_ms
                self._meter_values(s, "MeterValuesSampledData", "Sample.Periodic")
            elif not s:
                last_periodic = now_ms
            aligned = self.config.get("ClockAlignedDataInterval")
            if aligned > 0 and clock.synced():
                now = clock.now()
                slot = now - now % aligned
                if slot != getattr(self, "_aligned_slot", slot):
                    self._meter_values(s, "MeterValuesAlignedData", "Sample.Clock", slot)
                self._aligned_slot = slot

    def _meter_values(self, s, key, context, ts=None):
        vals = meterdata.sampled(self.meter, self.connector, self.config.measurands(key), context)
        if not vals:
            return
        if s is not None:
            # A transaction's values: times with the start's resolution, never before it; the
            # register and the time kept with the record, for an exact bill after a power cut.
            ms = max(ts * 1000 if ts is not None else clock.now_ms(), _start_ms(s))
            req = {"connectorId": 1, "meterValue": [meterdata.meter_value(vals, ms, True)]}
            self.txq.add(METER, req, s["ref"], {"wh": self.connector.energy_wh(), "ms": ms})
            return
        req = {"connectorId": 1, "meterValue": [meterdata.meter_value(vals, ts)]}
        if self.online():
            asyncio.create_task(self._send_plain("MeterValues", req))

    async def _send_plain(self, action, req):
        try:
            await self.rpc.call(action, req)
        except Exception as e:
            log.warn(_TAG, "%s not sent: %s", action, _why(e))

    # -- connection ------------------------------------------------------------------------
    def _route(self):
        return getattr(self.board, "route", None)

    async def run(self):
        await self._recover()
        asyncio.create_task(self._sampler())
        attempt = 0
        while True:
            url = self.settings.get("csms_url")
            if not url:
                log.warn(_TAG, "no CSMS endpoint configured; waiting for a claim")
                self._kick.clear()
                try:  # the claim (hotspot/) calls wake() when it sets the endpoint
                    await asyncio.wait_for(self._kick.wait(), 30)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                auth, tls = security.connect_args(self.settings, url, self.board)
                ws = await wsmod.connect(
                    url, self.settings["cp_id"], auth=auth, ssl_ctx=tls, route=self._route(),
                    spool=self.spool, spool_if=self.rpc.spool_wanted,
                )
            except Exception as e:
                attempt += 1
                delay = retry_ms(e, attempt)
                log.warn(_TAG, "cannot connect to %s: %s; retry in %d ms", url, _why(e), delay)
                await asyncio.sleep_ms(delay)
                continue
            log.info(_TAG, "connected to %s", url)
            attempt = 0
            self.connected = True
            self._publish()
            reason = await self._session(ws)
            ws.abort()
            self.connected = False
            self._publish()
            attempt += 1
            delay = backoff_ms(attempt)
            log.warn(_TAG, "link lost: %s; reconnect in %d ms", _why(reason), delay)
            await asyncio.sleep_ms(delay)

    async def _session(self, ws):
        # Three tasks share the link: the reader, the worker (boot, heartbeat, reports) and the
        # watchdog. The first to find the link dead ends the session; the others are cancelled.
        self._end = asyncio.Event()
        self._end_reason = None

        async def reader():
            self._stop(await self.rpc.serve(ws))

        tasks = [asyncio.create_task(reader()), asyncio.create_task(self._work()),
                 asyncio.create_task(self._watch(ws))]
        try:
            await self._end.wait()
        finally:
            for t in tasks:
                t.cancel()
            self.rpc.drop()
        return self._end_reason

    def _stop(self, reason):
        if not self._end.is_set():
            self._end_reason = reason
            self._end.set()

    async def _watch(self, ws):
        # Ping at WebSocketPingInterval; no frame at all for two intervals means the socket is
        # half-open: drop it rather than show "connected" on a dead link. Checked every second,
        # so a changed interval takes effect at once.
        last_ping = time.ticks_ms()
        while True:
            await asyncio.sleep(1)
            interval = self.config.get("WebSocketPingInterval")
            if interval <= 0 or ws.closed:
                continue
            now = time.ticks_ms()
            silent = time.ticks_diff(now, ws.last_rx_ms)
            if silent > 2 * interval * 1000:
                log.warn(_TAG, "no frame for %d s: half-open socket, dropping it", silent // 1000)
                self._stop(wsmod.WsError("half-open socket"))
                return
            if time.ticks_diff(now, last_ping) >= interval * 1000:
                last_ping = now
                try:
                    await ws.ping()
                except Exception as e:
                    self._stop(e)
                    return

    async def _work(self):
        # Boot until accepted (once per power cycle), then report, deliver the queue, heartbeat.
        try:
            while self.registration != "Accepted":
                await self._boot()
            while True:
                self._kick.clear()
                self.txq.wake.clear()
                await self._report_statuses()
                await self.txq.deliver(self.rpc)
                self._publish()
                if self._status_dirty or len(self.txq):
                    continue
                interval = self.config.get("HeartbeatInterval")
                try:
                    await asyncio.wait_for(self._wake(), interval if interval > 0 else 86400)
                    continue
                except asyncio.TimeoutError:
                    pass
                conf = await self.rpc.call("Heartbeat", {})
                self._apply_time(conf.get("currentTime"))
        except (Disconnected, CallTimeout) as e:
            log.warn(_TAG, "call failed: %s", _why(e))
            self._stop(e)

    async def _wake(self):
        # Either a status changed or a transaction message was queued.
        while not (self._kick.is_set() or self.txq.wake.is_set()):
            await asyncio.sleep_ms(50)

    async def _boot(self):
        wait_ms = self._boot_due_ms
        if wait_ms:
            await asyncio.sleep_ms(wait_ms)
        s = self.settings
        req = {"chargePointVendor": s["vendor"][:20], "chargePointModel": s["model"][:20]}
        if s.get("serial"):
            req["chargePointSerialNumber"] = s["serial"][:25]
        req["firmwareVersion"] = _fw_version()
        try:
            conf = await self.rpc.call("BootNotification", req)
        except CallError as e:
            log.warn(_TAG, "BootNotification answered %s", e.code)
            self._boot_due_ms = _REJECTED_RETRY_S * 1000
            return
        status = conf.get("status")
        interval = conf.get("interval")
        self._apply_time(conf.get("currentTime"))
        if status not in ("Accepted", "Pending", "Rejected") or not isinstance(interval, int):
            log.warn(_TAG, "BootNotification answer not understood: %r", conf)
            self._boot_due_ms = _REJECTED_RETRY_S * 1000
            return
        self.registration = status
        self._publish()
        log.info(_TAG, "boot %s, interval %d s", status, interval)
        if status == "Accepted":
            if interval > 0:
                self.config.set_runtime("HeartbeatInterval", interval)
            self.events.add("boot_accepted")
            self._boot_due_ms = 0
        else:
            self._boot_due_ms = (interval if interval > 0 else _REJECTED_RETRY_S) * 1000

    def _apply_time(self, t):
        if isinstance(t, str):
            try:
                clock.set_utc(clock.parse_iso(t), "csms")
            except ValueError:
                log.warn(_TAG, "CSMS sent a bad currentTime %r", t)

    async def _send_status(self, cid, status, err):
        req = {"connectorId": cid, "status": status, "errorCode": err, "timestamp": clock.iso()}
        vendor = self.connector.vendor_error(cid, status, err)
        if vendor:
            req["vendorErrorCode"] = vendor
            req["info"] = "grid meter silent: offer at its fallback"
        await self.rpc.call("StatusNotification", req)

    async def _report_statuses(self):
        while self._status_dirty:
            cid = min(self._status_dirty)
            status, err = self._status_dirty.pop(cid)
            try:
                await self._send_status(cid, status, err)
            except (Disconnected, CallTimeout):
                # Not delivered: report the connector's status again after the reconnect.
                self._status_dirty.setdefault(cid, self.connector.status_of(cid))
                raise


def _start_ms(s):
    return s["start_ms"] if "start_ms" in s else s["start"] * 1000


def _floor(s, wh, ms):
    # An interrupted open session's stop: never below a register already reported for it, never
    # before the last time it was known running (nor its start).
    if "stop_ms" not in s:
        s["stop_ms"] = s.get("last_ms", s["stop_t"] * 1000)
    if wh is not None and wh > s["meter_stop"]:
        s["meter_stop"] = wh
    if ms is not None and ms > s["stop_ms"]:
        s["stop_ms"] = ms


def _fw_version():
    try:
        import version

        return version.VERSION
    except ImportError:
        return "dev"


def _why(e):
    if e is None:
        return "closed"
    return "%s %s" % (type(e).__name__, e)
