# The claim flow, loaded only when a claim is made (and dropped when it ends): join the home
# Wi-Fi, one WebSocket handshake with the new CSMS (credentials and TLS set up by
# ocpp_client/security.py, as for the real connection), then store. It drives the Hotspot only
# through its public methods.
import asyncio

import log

_TAG = "hotspot"
_JOIN_TIMEOUT_MS = const(20000)
_CSMS_TIMEOUT_MS = const(10000)
# What the CSMS check loads (as each of ocpp_client/client.py's attempts does): out of the heap
# again after it, those it loaded (the session's own attempt loads and drops them in turn). The
# CSMS's name is asked of the home network's resolver by net/dns.py, as the session does, before
# the handshake (_lookup()).
_OPEN = const(("ocpp_client.security", "ocpp_client.wsopen", "net.url", "net.dns", "net.tcp"))


async def run(hs, c):
    # c: a claim checked by hotspot/validate.py. Progress goes to the Hotspot's methods.
    was_claimed = hs.settings.is_claimed()
    # An error nobody expected is reported as the failure of the step under way (codes the app
    # and the page know): not "wifi_failed" for a Wi-Fi that worked. None once the claim is
    # stored: it is in force whatever fails after.
    step = "wifi_failed"
    code = None  # the claim failed: why
    other = False
    try:
        hs.joining()
        res = await hs.radio.join(c["wifi_ssid"], c["wifi_password"], _JOIN_TIMEOUT_MS)
        if res != "ok":
            code = {"wrong_password": "wifi_wrong_password",
                    "not_found": "wifi_not_found"}.get(res, "wifi_failed")
            return
        step = "csms_unreachable"
        hs.checking()
        code = await _probe(hs, c)
        if code:
            return
        # another CSMS (or charge point id): hotspot/validate.py's against()
        other = was_claimed and not c["same"]
        old = {}
        if other:
            # The old owner's settings the claim does not give: back to their defaults
            # (settingsdoc.py), in the claim's own save, marked for the wipe that follows it.
            old = {"cert_pem": "", "key_pem": "", "cert_prov": "", "cert_trial": False,
                   "mqtt_prefix": "borne", "mqtt_discovery": True, "rewipe": True}
        step = "storage_failed"
        try:
            # Saved before a session is stopped for another CSMS: a failed save (flash full)
            # leaves the charger as it was, the session charging, the claim in force kept.
            hs.save(
                name=c["name"], wifi_ssid=c["wifi_ssid"], wifi_pass=c["wifi_password"],
                csms_url=c["csms_url"], claim_cp_id=c["cp_id"], cp_id=c["cp_id"],
                security_profile=c["security_profile"], profile_fallback=-1,
                auth_key=c["auth_key"], ca_pem=c["ca_pem"], claimed=True,
                mqtt_url=c["mqtt_url"], mqtt_user=c["mqtt_user"], mqtt_pass=c["mqtt_pass"],
                mqtt_pass_ocpp=False, mqtt_ca_pem=c["mqtt_ca_pem"], **old)
        except OSError as e:
            log.warn(_TAG, "claim not stored: %s", e)
            code = step
            return
        step = None
        hs.settings.preset = False
        if other:
            # The session stopped and reported to the old CSMS (the link made before the save
            # stays up meanwhile), then the old owner's data goes.
            await hs.new_operator()
            hs.wipe_old()
        from mqtt import keys as mqtt_keys

        mqtt_keys.changed()  # the owner's broker, if the claim gave one
        log.info(_TAG, "claimed as %s; CSMS %s", c["cp_id"], log.url(c["csms_url"]))
        hs.claimed(restart=other)  # (the same CSMS: no restart, a session charges on)
    except Exception as e:  # MemoryError too
        log.exc(_TAG, "claim", e)
        if step is None:
            # Stored, and a step after failed: the restart puts the claim in force as saved
            # (the boot finishes an old owner's wipe: settingsdoc.load).
            hs.claimed(restart=True)
        else:
            code = "out_of_memory" if isinstance(e, MemoryError) else step
    finally:
        if code:
            # Off the network tried, whatever failed: station.py joins the one that worked
            # again (a claimed charger stays on it: its owner keeps it in the app).
            hs.radio.leave()
            _failed(hs, code)
        hs.claim_ended()


def _failed(hs, code):
    # The Hotspot keeps the message: this module leaves the heap when the claim ends. Its text
    # loads for a failure only (hotspot/failtext.py: ~0.6 KB that the claim's peak, its import
    # and CSMS check, need not hold); without memory for it, the code says it.
    # Running out of memory loads nothing to say so.
    if code == "out_of_memory":
        msg = "the charger ran out of memory; try again"
    else:
        from supervisor import rare

        try:
            msg = rare("hotspot.failtext", "text", code)
        except MemoryError:
            msg = code
    hs.failed(code, msg)


async def _probe(hs, c):
    # One WebSocket handshake with the new endpoint and credentials, closed at once.
    # -> None when the CSMS answered, or an error code.
    import sys

    from supervisor import drop

    new = []
    for n in _OPEN:
        if n not in sys.modules:
            new.append(n)
    try:
        from ocpp_client import ws as wsmod
        from ocpp_client import wsopen
        from ocpp_client.security import connect_args, sync_clock

        try:
            if c["csms_url"].startswith("wss://"):
                await sync_clock(hs.board)
            ip = await _lookup(wsopen.parse_url(c["csms_url"])[1], hs.board.dns_server(),
                               "net.dns" not in new)

            async def known(_):
                return ip

            if c["security_profile"] == 3:  # kept (validate.against): the pair in use
                c["cert_pem"] = hs.settings.get("cert_pem", "")
                c["key_pem"] = hs.settings.get("key_pem", "")
            # (the TLS context made in the block the hotspot reserved when it opened)
            try:
                auth, ctx = connect_args(c, c["csms_url"], hs.tls)
            finally:
                c["cert_pem"] = c["key_pem"] = None
            conn = await wsopen.connect(c["csms_url"], c["cp_id"], auth=auth, ssl_ctx=ctx,
                                       timeout_ms=_CSMS_TIMEOUT_MS,
                                       route=getattr(hs.board, "route", None), resolve=known)
        except wsmod.WsError as e:
            log.warn(_TAG, "CSMS check: %s", e)
            if isinstance(e, wsopen.TlsError):
                return "csms_tls"
            return "csms_refused" if "refused" in str(e) else "csms_unreachable"
        except (OSError, asyncio.TimeoutError) as e:
            log.warn(_TAG, "CSMS check: %s %s", type(e).__name__, e)
            return "csms_unreachable"
        except MemoryError as e:
            log.warn(_TAG, "CSMS check: %s %s", type(e).__name__, e)
            return "out_of_memory"
        except Exception as e:  # SecurityError, TLS and certificate errors (ValueError/ssl)
            log.warn(_TAG, "CSMS check: %s %s", type(e).__name__, e)
            return "csms_tls"
        await conn.close()
        return None
    finally:
        drop(*new)  # what the check loaded (the session's attempt loads them in turn)


async def _lookup(host, server, held):
    # The CSMS's address, asked first: net/dns.py leaves the heap again (unless `held`) with
    # this frame, before the TLS handshake, the check's peak, where the claim has only the
    # hotspot's room.
    from net import dns

    return await dns.lookup(host, server, held)
