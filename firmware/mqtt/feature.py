# The MQTT feature: the charger's state and sessions on the owner's broker, Home Assistant
# discovery, and the owner's controls. A connector listener (on_status, on_tx_stop) and one task
# that keeps the connection (link.py) and feeds it.
#
# Latest value kept: every topic's current payload is in `vals`, and what the broker last got in
# `sent`; a value that changes while the broker is away or slow is simply sent when it can be,
# the intermediate ones are dropped. After each (re)connect everything is sent again (retained).
# Finished sessions are the exception: they are journaled on flash (QUEUE_MAX of them, the
# oldest dropped beyond that, with a log line) and published with QoS 1, each removed only once
# the broker acknowledged it; after a reconnect the unacknowledged one is sent again (QoS 1 is
# at least once: its "id" tells a repeat apart).
import asyncio
import json
import os
import time

import clock
import log
from mqtt import commands, discovery, topics
from mqtt.link import Link, Refused
from mqtt.prof import note
from mqtt.url import check_prefix, parse_url

_TAG = "mqtt"
_TICK_MS = const(500)
_METER_MS = const(5000)  # meter values and the running session at most this often
_KEEPALIVE_S = const(60)
QUEUE = "mqtt_sessions"
QUEUE_MAX = const(50)  # finished sessions kept for the broker (~200 bytes each on flash)
_BACKOFF_S = (2, 300)  # first retry, ceiling (backoff_s)
_REFUSED_S = const(60)  # after the broker refused our credentials: no faster than this


def backoff_s(fails, floor, r):
    # Seconds before the next attempt: doubles per failed attempt (a connection that lasted a
    # minute starts again from the bottom) from 2 s to 5 min, never under `floor` (refused
    # credentials), plus 0-50 % jitter from r (0-255), so that chargers behind one broker do
    # not all come back at once.
    base = _BACKOFF_S[0] << min(fails - 1, 8)
    if base > _BACKOFF_S[1]:
        base = _BACKOFF_S[1]
    if base < floor:
        base = floor
    return base + base * r // 510


def _tls_error(e):
    if isinstance(e, ValueError):
        return True
    a = e.args[0] if isinstance(e, OSError) and e.args else 0
    return isinstance(a, int) and a <= -256  # mbedTLS's codes (ocpp_client/wsopen.py _mbedtls)


class Mqtt:
    def __init__(self, board, settings, config, connector, ocpp, events, store):
        self.board = board
        self.settings = settings
        self.config = config
        self.connector = connector
        self.ocpp = ocpp
        self.events = events
        self.vals = {}
        self.sent = {}
        from supervisor import fw_version

        self.fw = fw_version()  # read once: the running firmware's, until the next boot
        self.queue = store.journal(QUEUE, QUEUE_MAX)
        self.inflight = None  # (packet id, journal seq) of the session being published
        self.link = None
        self._reload = True
        self._disc = None  # discovery messages still to publish (a generator), and the next one
        self._ha = None  # "node url" of the discovery published (mqtt_ha)
        self._disc_next = None
        self._meter_ms = None
        self._foreign = 0
        self._sess_ref = None  # the running session's ref and the most energy published for it
        self._sess_wh = 0
        self.base = self.set_topic = None
        self.cmds = commands.Commands(connector, events, store, bool(settings.get("mqtt_controls")),
                                      self._max_a)
        self.cmds.restore()
        # Sessions a power cut ended (the OCPP client took them at its start): published like
        # any other. Should the power go again before the OCPP client has journaled them, they
        # are queued once more at the next boot (QoS 1 is at least once anyway: the id tells).
        for si, reason in connector.power_cut_stops:
            self.on_tx_stop(si, reason)
        connector.listen(self)

    def _max_a(self):
        return self.config.get("BorneMaxCurrent")

    def reload(self):
        # The settings changed (OCPP keys): reconnect with the new ones.
        self._reload = True

    # -- connector events -------------------------------------------------------------------
    def on_power_cut_stop(self, s, reason):
        # A session a power cut ended, taken by the OCPP client after this feature started.
        self.on_tx_stop(s, reason)

    def on_status(self, cid, status, error_code):
        if cid == 1:
            self._sample(False)

    def on_tx_stop(self, s, reason):
        try:
            start = s["start"]
            stop = s.get("stop_t", start)
            rec = {"id": s["ref"], "tag": topics.mask(s.get("tag")), "start": clock.iso(start),
                   "stop": clock.iso(stop), "duration_s": stop - start,
                   "energy_kwh": round((s["meter_stop"] - s["meter_start"]) / 1000, 3),
                   "reason": reason}
            if s.get("tx") is not None:
                rec["transaction_id"] = s["tx"]
            if len(self.queue) >= QUEUE_MAX:
                g = self.queue.pending()
                try:
                    seq, _ = next(g)
                finally:
                    g.close()
                self.queue.ack(seq)  # the oldest goes: the journal stays bounded
                log.warn(_TAG, "session queue full (%d): the oldest dropped", QUEUE_MAX)
            self.queue.append(rec)
        except Exception as e:  # full flash: the session is in the OCPP queue all the same
            log.exc(_TAG, "queue finished session", e)

    # -- the connection ---------------------------------------------------------------------
    def _build(self):
        st = self.settings
        self._reload = False
        url = st.get("mqtt_url")
        if not url:
            return None
        tls, host, port = parse_url(url)
        cp = st["cp_id"]
        pre = st.get("mqtt_prefix") or "borne"
        try:
            check_prefix(pre)  # the key's check, for a provisioned prefix too
        except ValueError as e:
            log.warn(_TAG, "topic prefix refused (%s): borne/ instead", e)
            pre = "borne"
        self.base = topics.base(pre, cp)
        self.set_topic = (self.base + "/" + topics.SET).encode()
        ctx = None
        if tls:
            from ocpp_client import security

            if not st.get("mqtt_ca_pem"):
                raise security.SecurityError("mqtts:// needs the broker's CA (mqtt_ca_pem)")
            security.check_clock()
            ctx = security.tls_context(st.get("mqtt_ca_pem"))
        link = Link("borne-" + cp, host, port, st.get("mqtt_user"), st.get("mqtt_pass"), ctx,
                    _KEEPALIVE_S, self.board.dns_server)
        link.set_callback(self._on_msg)
        link.set_last_will(self.base + "/" + topics.AVAILABILITY, "offline", True, 1)
        link.on_up = self._on_up
        link.on_puback = self._on_puback
        log.info(_TAG, "broker %s:%d%s, topics %s/", host, port, " (TLS)" if tls else "",
                 self.base)
        return link

    async def run(self):
        fails = 0
        while True:
            wait_s = 0
            lasted = False
            try:
                if self._reload or self.link is None:
                    self.link = None
                    if (self.settings.get("mqtt_url") or "").lower().startswith("mqtts:"):
                        from ocpp_client import security

                        await security.sync_clock(self.board)  # _build() checks the clock
                    t0 = time.ticks_us()
                    self.link = self._build()
                    note("build", t0)
                if self.link is None:
                    await asyncio.sleep(2)  # no broker configured
                    continue
                feeder = asyncio.create_task(self._feed(self.link))
                t0 = time.ticks_ms()
                try:
                    await self.link.session()
                finally:
                    feeder.cancel()
                    self.inflight = None
                    lasted = time.ticks_diff(time.ticks_ms(), t0) > 60000
            except Refused as e:
                log.warn(_TAG, "%s", e)
                wait_s = _REFUSED_S
            except Exception as e:
                why = " ".join(str(e).split())
                if self.link is not None and self.link.ctx is not None and _tls_error(e):
                    # mbedTLS: a failed certificate check (ValueError) or a TLS alert (OSError
                    # with a negative code)
                    why = "TLS handshake failed (certificate, CA or host name) %s" % why
                log.warn(_TAG, "broker: %s %s", type(e).__name__, why)
            # An outage never touches charging or OCPP: only this task waits.
            fails = 1 if lasted else fails + 1
            d = backoff_s(fails, wait_s, os.urandom(1)[0])
            log.info(_TAG, "reconnecting in %d s", d)
            for _ in range(d * 4 + 1):
                if self._reload:
                    break
                await asyncio.sleep_ms(250)

    def _on_up(self):
        link = self.link
        log.info(_TAG, "connected to the broker")
        link.subscribe_nowait(self.set_topic)
        link.send(self.base + "/" + topics.AVAILABILITY, "online", True, 1)
        self.sent = {}
        self._disc_next = None
        st = self.settings
        dev = None
        if st.get("mqtt_discovery", True):
            dev = {"name": st.get("name") or "borne " + st["cp_id"], "mf": st.get("vendor"),
                   "mdl": st.get("model") or "borne", "sw": self.fw, "sn": st.get("serial")}
        # The node HA knows the charger by on this broker ("" none), as the settings keep it
        # ("node url"): another one published before is emptied first.
        url = st.get("mqtt_url")
        node = discovery.node_id(st["cp_id"]) if dev else ""
        self._ha = "%s %s" % (node, url)
        was = st.get("mqtt_ha", "").split(" ")
        old = was[0] if len(was) == 2 and was[1] == url and was[0] not in ("", node) else None
        self._disc = self._configs(old, dev) if old or dev else None
        self._meter_ms = None
        self._sample(True)

    def _configs(self, old, dev):
        if old:
            yield from discovery.cleared(old)
        if dev:
            yield from discovery.messages(self.base, self.settings["cp_id"], dev,
                                          self.cmds.enabled, self._max_a())
        if self.settings.get("mqtt_ha") != self._ha:
            try:  # all handed to the socket: the node published is the one HA knows now
                self.settings.update(mqtt_ha=self._ha)
            except OSError as e:  # (flash full: emptied again at the next connection)
                log.warn(_TAG, "discovery node not saved: %s", e)

    def _on_puback(self, pid):
        f = self.inflight
        if f is not None and f[0] == pid:
            self.inflight = None
            self.queue.ack(f[1])

    def _on_msg(self, topic, msg):
        link = self.link
        if topic != self.set_topic:
            self._foreign += 1
            if self._foreign == 1 or not self._foreign % 100:
                log.warn(_TAG, "%d message(s) on topics that are not ours dropped", self._foreign)
            return
        ans = self.cmds.handle(msg)
        if ans is None:
            return
        if ans["id"] is None:
            del ans["id"]
        if link is not None:
            link.send(self.base + "/" + topics.RESULT, json.dumps(ans), False, 0)
        self._sample(False)

    # -- feeding the link -------------------------------------------------------------------
    async def _feed(self, link):
        while True:
            if self._reload:
                link.close("the MQTT settings changed")  # run() connects with the new ones
                return
            t0 = time.ticks_us()
            try:
                self._sample(False)
                if link.up:
                    self._publish(link)
            except Exception as e:  # a bug here must not end publishing for good
                log.exc(_TAG, "publish", e)
                link.close("publishing failed")
                return
            note("publish", t0)
            await asyncio.sleep_ms(_TICK_MS)

    def _publish(self, link):
        while self._disc is not None:
            if self._disc_next is None:
                try:
                    self._disc_next = next(self._disc)
                except StopIteration:
                    self._disc = None
                    break
            t, p = self._disc_next
            if link.room() < len(t) + len(p) + 8 or link.send(t, p, True, 0) is None:
                return  # the rest when the buffer drained; state waits behind discovery
            self._disc_next = None
        base = self.base
        for k, v in self.vals.items():
            if self.sent.get(k) != v:
                q, r = topics.STATE[k]
                if link.send(base + "/" + k, v, r, q) is None:
                    return
                self.sent[k] = v
        if self.inflight is None and len(self.queue):
            g = self.queue.pending()
            try:
                seq, rec = next(g)
            except StopIteration:
                return
            finally:
                g.close()
            pid = link.send(base + "/" + topics.SESSIONS, json.dumps(rec), False,
                            topics.SESSION_QOS)
            if pid is not None:
                self.inflight = (pid, seq)

    def _sample(self, all_):
        c = self.connector
        v = self.vals
        st, err = c.status_of(1)
        v["status"] = st
        v["error"] = err
        v["pilot"] = c.cp
        v["relay"] = topics.onoff(c.relay)
        v["plugged"] = topics.onoff(c.cp in ("B", "C", "D"))
        v["charging"] = topics.onoff(c.relay)
        faults = list(c.faults.values())
        for f in c.device_faults:  # (a device's failure is among the faults too: once)
            if f not in faults:
                faults.append(f)
        v["fault"] = topics.onoff(faults)
        v["faults"] = json.dumps(faults)
        v["offer"] = "%.1f" % c.offer_a
        v["ocpp"] = "online" if getattr(self.ocpp, "connected", False) else "offline"
        v["firmware"] = self.fw
        v["paused"] = topics.onoff(c.owner_paused)
        lim = c.owner_limit_a
        v["limit"] = "%g" % (lim if lim is not None else self._max_a())
        v["free"] = topics.onoff(self.config.get("BorneFreeCharging"))
        now = time.ticks_ms()
        if all_ or self._meter_ms is None or time.ticks_diff(now, self._meter_ms) >= _METER_MS:
            self._meter_ms = now
            self._sample_meter()

    def _sample_meter(self):
        c = self.connector
        v = self.vals
        m = c.meter
        L = m.latest if m is not None else None
        if L and L.get("ok"):
            if L.get("power_w") is not None:
                v["power"] = "%.0f" % L["power_w"]
            for i in range(3):
                a = L["current_a"][i]
                if a is not None:
                    v["current_l%d" % (i + 1)] = "%.2f" % a
                u = L["voltage_v"][i]
                if u is not None:
                    v["voltage_l%d" % (i + 1)] = "%.1f" % u
            e = L.get("energy_wh")
            if e is not None:
                # HA's total_increasing: a step down reads as a meter reset. An S0 counter
                # (meter/pulse.py) loses its pulses since the last save at a power cut: the
                # saved register, which the next boot counts on from.
                v["energy"] = "%.3f" % (getattr(m.source, "saved_wh", e) / 1000)
        else:
            # The meter failing: a retained 11 kW would be shown as current. "None" is what HA's
            # MQTT sensor takes as unknown (an empty payload it ignores); the energy total stays.
            for k in topics.MEASURED:
                if k in v:
                    v[k] = "None"
        s = c.session
        if s is None:
            v["session"] = '{"active":false,"energy_kwh":0}'
            return
        # The meter failing: its last good reading (as the stop's meterStop), not the session's
        # checkpoint (up to a minute older). HA takes energy_kwh as total_increasing: a lower
        # value within the session reads as a reset, so it never goes below one published.
        e = L["energy_wh"] if L else None
        wh = (e if e is not None else s.get("last_wh", s["meter_start"])) - s["meter_start"]
        if self._sess_ref == s["ref"] and wh < self._sess_wh:
            wh = self._sess_wh
        self._sess_ref = s["ref"]
        self._sess_wh = wh
        v["session"] = json.dumps({
            "active": True, "id": s["ref"], "tag": topics.mask(s.get("tag")),
            "start": clock.iso(s["start"]), "duration_s": clock.now() - s["start"],
            "energy_kwh": round(max(wh, 0) / 1000, 3)})
