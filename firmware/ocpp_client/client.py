# The OCPP 1.6J charge-point session: connect, boot, heartbeat, status notifications, and the
# honest online/offline state. Protocol only: it learns about the hardware from the connector.
import asyncio
import os
import binascii

import clock
import log
from ocpp_client import ws as wsmod
from ocpp_client.rpc import Rpc, CallError, CallTimeout, Disconnected

_TAG = "ocpp"
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(120000)
_REJECTED_RETRY_S = const(60)  # if the CSMS gives no usable interval with Rejected/Pending


def _rand_u16():
    b = os.urandom(2)
    return b[0] << 8 | b[1]


def backoff_ms(attempt):
    # Exponential with jitter drawn from the upper half: a fleet that lost the CSMS together does
    # not come back together, and no charger retries faster than the base.
    ceil = min(_BACKOFF_MAX_MS, _BACKOFF_MIN_MS << min(attempt, 16))
    return ceil // 2 + (ceil // 2) * _rand_u16() // 65535


class OcppClient:
    def __init__(self, settings, config, board, connector, events):
        self.settings = settings
        self.config = config
        self.board = board
        self.connector = connector
        self.events = events
        self.rpc = Rpc({})
        self.connected = False
        self.registration = None  # None until the first answer, then Accepted/Pending/Rejected
        self._boot_due_ms = 0
        self._status_dirty = {}  # connector id -> (status, error_code) not yet reported
        self._kick = asyncio.Event()
        connector.listeners.append(self._on_status)
        for cid in (0, 1):
            self._status_dirty[cid] = connector.status_of(cid)

    # -- connector events ------------------------------------------------------------
    def _on_status(self, cid, status, error_code):
        self._status_dirty[cid] = (status, error_code)
        self._kick.set()
        self._publish()

    def _publish(self):
        self.board.telemetry(
            "ocpp",
            {"connected": self.connected, "status": self.connector.status_of(1)[0],
             "registration": self.registration},
        )

    def wake(self):
        # Something changed the endpoint or the link (a claim, the home Wi-Fi came up).
        self._kick.set()

    # -- connection ------------------------------------------------------------------
    def _auth_header(self):
        prof = self.settings.get("security_profile", 0)
        key = self.settings.get("auth_key", "")
        if prof in (1, 2) and key:
            tok = binascii.b2a_base64(("%s:%s" % (self.settings["cp_id"], key)).encode())[:-1]
            return "Basic " + tok.decode()
        return None

    def _route(self):
        return getattr(self.board, "route", None)

    async def run(self):
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
                ws = await wsmod.connect(
                    url, self.settings["cp_id"], auth=self._auth_header(), route=self._route()
                )
            except Exception as e:
                attempt += 1
                delay = backoff_ms(attempt)
                log.warn(_TAG, "cannot connect to %s: %s; retry in %d ms", url, _why(e), delay)
                await asyncio.sleep_ms(delay)
                continue
            log.info(_TAG, "connected to %s", url)
            attempt = 0
            self.connected = True
            self._publish()
            self.events.add("online")
            reason = await self._session(ws)
            ws.abort()
            self.connected = False
            self._publish()
            self.events.add("offline")
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
        # half-open: drop it rather than show "connected" on a dead link.
        while True:
            interval = self.config.get("WebSocketPingInterval")
            if interval <= 0:
                await asyncio.sleep(5)
                continue
            await asyncio.sleep(interval)
            if ws.closed:
                return
            import time

            silent = time.ticks_diff(time.ticks_ms(), ws.last_rx_ms)
            if silent > 2 * interval * 1000:
                log.warn(_TAG, "no frame for %d s: half-open socket, dropping it", silent // 1000)
                self._stop(wsmod.WsError("half-open socket"))
                return
            try:
                await ws.ping()
            except Exception as e:
                self._stop(e)
                return

    async def _work(self):
        # Boot until accepted (once per power cycle), then heartbeat and report statuses.
        try:
            while self.registration != "Accepted":
                await self._boot()
            await self._report_statuses()
            await self._heartbeat_loop()
        except (Disconnected, CallTimeout) as e:
            log.warn(_TAG, "call failed: %s", _why(e))
            self._stop(e)

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

    async def _report_statuses(self):
        while self._status_dirty:
            cid = min(self._status_dirty)
            status, err = self._status_dirty.pop(cid)
            await self.rpc.call(
                "StatusNotification",
                {"connectorId": cid, "status": status, "errorCode": err, "timestamp": clock.iso()},
            )

    async def _heartbeat_loop(self):
        while True:
            self._kick.clear()
            await self._report_statuses()
            interval = self.config.get("HeartbeatInterval")
            try:
                await asyncio.wait_for(self._kick.wait(), interval if interval > 0 else 86400)
                continue  # a status changed: report it, then wait again
            except asyncio.TimeoutError:
                pass
            conf = await self.rpc.call("Heartbeat", {})
            self._apply_time(conf.get("currentTime"))


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
