# Claim mode's opening (the servers, the guard, the TLS block) and the Wi-Fi scan of
# GET /api/networks: loaded for each by supervisor.rare() (hotspot/claim.py) and out of the heap
# after, not held through a claim's check, the hotspot's peak.
import sys
import time

import log

_TAG = "hotspot"
_UNCLAIMED = const("not claimed")  # (claim.py's: why claim mode opens unclaimed)
_IDLE = const("idle")  # (claim.py's: no claim under way)
_ROOM_RETRY_MS = const(2000)
# Free heap the hotspot needs to open: hotspot/room.py.
# Its largest block: a claim's CA certificate (ca_pem, up to 4 KB), parsed into one string; the
# servers' own are smaller (a client's 2 KB head buffer, a body in 512-byte pieces). A claim that
# finds no such block anyway gets 503 and can be sent again.
_BLOCK = const(4096)
# The TLS context of the claim's CSMS check (one ~3 KB allocation) is reserved when claim mode
# opens, as app.py reserves the OCPP client's: an unconfigured context, the size of the one to
# come, given up just before it is made (security.tls_context's `keep` list).
# Two more of a claim's allocations need one block each, which the heap fragmented by the
# requests before it may no longer have: the save of the settings (their JSON text, with the
# CA's PEM: ~2 KB growing in one block, then its bytes), and sys.modules' table, grown (into a
# new block, never shrunk) when the check's modules join the servers'. The save gets the
# servers' kept 2 KB head buffer's block (save(): let go for it and taken again after); the
# table is grown when claim mode opens, for _MODULES more entries than it holds (the servers,
# the claim flow, the check's ocpp_client.security, wsopen, net.url with its package and
# net.tcp, validate's parsers).
_MODULES = const(13)
_SCAN_CACHE_MS = const(20000)
_EMPTY_SCAN_MS = const(3000)  # an empty scan is kept this long only (the radio may be busy)
_NO_SCAN = const(b'{"networks": [], "why": "no Wi-Fi scan while charging: type the name"}')


def _grow_modules():
    # sys.modules' table made room for _MODULES more entries: placeholders added and removed
    # (a table keeps its size, a removed entry's slot is taken again).
    m = sys.modules
    for i in range(_MODULES):
        m["_claim%d" % i] = None
    for i in range(_MODULES):
        del m["_claim%d" % i]


async def open_ap(hs, why):
    if hs.open or hs.radio is None:
        return
    if len(hs._key) < 8:
        log.error(_TAG, "no per-device hotspot key provisioned: claim mode unavailable")
        return
    from supervisor import heap_room

    # (a collection first: the servers' modules load into the heap, frozen on a charger)
    need = hs.need_free if why == _UNCLAIMED else hs.need_charging
    ok, free = heap_room(need, _BLOCK)
    if not ok:
        # Charging first: the hotspot waits until the heap has room for it.
        first = hs._deferred is None
        hs._deferred = why
        hs._retry_at = time.ticks_add(time.ticks_ms(), _ROOM_RETRY_MS)
        if first:
            log.warn(_TAG, "claim mode (%s) refused: %d bytes of heap free, it needs %d "
                     "with a block of %d; it opens once memory frees", why, free,
                     need, _BLOCK)
            hs._publish()
        return
    if hs._deferred is not None:
        log.info(_TAG, "memory freed (%d bytes): opening claim mode", free)
        hs._deferred = None
    _grow_modules()
    try:
        import tls

        hs.tls = [None, tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)]  # while the heap is whole
    except MemoryError:
        hs.tls = []  # the check tries without it
    hs.ip = hs.radio.ap_open(hs.ssid, hs._key)
    from hotspot import api, httpd  # noqa: F401 (api: hs._handle's, kept while open)
    from hotspot.dns import CaptiveDns
    from hotspot.guard import Guard

    try:
        hs.guard = Guard(hs.store, *hs._pw)
        # Inside the try: the server's buffers are allocated here, and a heap too fragmented
        # for them must leave the charger running (hotspot closed, logged), not crash it.
        hs._http = httpd.Server(hs._handle, hs.touch)
        host, port = hs.radio.listen_addr("http")
        await hs._http.start(host, port or 80)
        hs._dns = CaptiveDns(hs.ip)
        host, port = hs.radio.listen_addr("dns")
        hs._dns.start(host, port or 53)
    except (OSError, MemoryError) as e:
        log.exc(_TAG, "cannot start the hotspot servers", e)
        await hs._teardown()
        return
    hs.open = True
    hs.state = _IDLE
    hs.error = None
    hs.touch()
    log.info(_TAG, "claim mode (%s): access point %s at %s", why, hs.ssid, hs.ip)
    if hs.events:
        hs.events.add("hotspot_open")
    hs._publish()


def networks(hs):
    # The Wi-Fi networks in reach, strongest first, as GET /api/networks answers them (JSON
    # bytes: the cache is one block, not a dict per network). A scan blocks the radio (and
    # on the ESP32 the loop, ~2 s) for a moment: cached, and never made while the relay is
    # closed (the EV leaving state C opens it within 100 ms: the loop's, IEC 61851-1; the
    # hardware interlock sees only an unplug): the last scan, or none and the owner types
    # the network's name.
    now = time.ticks_ms()
    fresh = hs._scan and time.ticks_diff(now, hs._scan[0]) < _SCAN_CACHE_MS
    relay = hs.connector is not None and hs.connector.relay
    if relay and not hs._scan:
        return _NO_SCAN
    if not fresh and not relay:
        seen = {}
        for ssid, rssi, secure in hs.radio.scan():
            if ssid and (ssid not in seen or seen[ssid][0] < rssi):
                seen[ssid] = (rssi, secure)
        nets = [{"ssid": k, "rssi": v[0], "secure": v[1]} for k, v in seen.items()]
        seen = None
        nets.sort(key=lambda n: -n["rssi"])
        import json

        # An empty answer is scanned again soon: the ESP32 port answers [] while its
        # station is connecting (esp_wifi_scan_start's ESP_ERR_WIFI_STATE).
        at = now if nets else time.ticks_add(now, _EMPTY_SCAN_MS - _SCAN_CACHE_MS)
        hs._scan = None
        hs._scan = (at, json.dumps({"networks": nets[:30]}).encode())
    return hs._scan[1]

