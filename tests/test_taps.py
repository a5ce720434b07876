"""RFID taps through the real PN532 emulator: identification first (OCA 004_1), cached id
offline (007), invalid id (023), stop with the same or a sibling card (068, 069), an offline
start the CSMS refuses, tag learning (the app's "Scan Physical Tag") and the LED
brightness from the cloud."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from borne.csms import Csms
from borne.sim.simulator import Simulator
from ocpp.v16 import call, call_result
from simctl import Control

CP_ID = "CP-TEST-1"
CARD = "04A1B2C3"
# The reader counts a card as gone after 0.5 s out of the field (its debounce: a held card is
# one presentation). Nothing outside the charger signals that moment, so a test waits as an
# owner would between two taps.
BETWEEN_TAPS_S = 1.0
SIBLING = "04D4E5F6"


async def _cp(csms: Csms, sim: Simulator) -> Any:
    """The charge point once it has booted and its reader polls. A reader whose first init at
    boot goes unanswered (a busy host's emulator) is tried again a second later, and a tap in
    that second would be gone before the first poll: an owner's too, on a real charger."""
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
    assert sim.agent is not None
    await sim.agent.wait_line(r"rfid: reader ready", 15)
    return csms.charge_points[CP_ID]


def _authorize_as(table: dict[str, dict[str, Any]]) -> Any:
    return lambda p: call_result.Authorize(
        id_tag_info=table.get(p["id_tag"], {"status": "Invalid"}))


async def _start_offline(csms: Csms, control: Control, what: str) -> Any:
    """Plug, charge and tap CARD with the link down; the StartTransaction once it is back."""
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await control.wait_state(lambda s: s["relay"], what)
    await control("net", up=True)
    start = await csms.wait_call("StartTransaction", timeout=30)
    assert start.payload["idTag"] == CARD
    return start


async def _charge_then_stop_with(csms: Csms, control: Control, uid: str) -> Any:
    """Plug, charge, tap CARD to start; once the card is taken away, tap `uid`: its
    StopTransaction."""
    await _charging_by_card(csms, control)
    await asyncio.sleep(BETWEEN_TAPS_S)
    await control("tap", uid=uid)
    return await csms.wait_call("StopTransaction")


async def _charging_by_card(csms: Csms, control: Control) -> None:
    """Plug, charge, tap CARD: the session charging and the card taken away."""
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"], "charging")
    await control.wait_state(lambda s: not s["card"], "the card taken away")


# Each reader variant: the PN532 on the UART on both boards, on I2C and an MFRC522 on SPI on the
# ESP32 board (its provisioning says which is fitted).
@pytest.mark.parametrize(("board", "reader"), [
    ("unix_sim", "pn532_uart"), ("esp32_wallbox", "pn532_uart"), ("esp32_wallbox", "pn532_i2c"),
    ("esp32_wallbox", "mfrc522")], indirect=True)
async def test_identification_first_then_plug_then_same_card_stops(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    await _cp(csms, sim)
    csms.respond("Authorize", _authorize_as({CARD: {"status": "Accepted"}}))
    assert (await control("tap", uid=CARD))["ok"]
    auth = await csms.wait_call("Authorize")
    assert auth.payload == {"idTag": CARD}
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    await control("plug")
    await control("charge")
    start = await csms.wait_call("StartTransaction")
    assert start.payload["idTag"] == CARD
    await control.wait_state(lambda s: s["relay"], "charging after tap + plug")
    await control.wait_state(lambda s: not s["card"], "the card taken away")
    await asyncio.sleep(BETWEEN_TAPS_S)
    await control("tap", uid=CARD)
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == CARD
    await control.wait_state(lambda s: not s["relay"], "the relay open after the second tap")


async def test_the_card_a_remote_start_named_in_lower_case_stops_its_session(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    # The app started the session with the card's UID as the CSMS keeps it, in lower case; the
    # reader reads it in upper case. idTags are CiString20: the owner's tap stops it.
    cp = await _cp(csms, sim)
    csms.respond("Authorize", _authorize_as({CARD.lower(): {"status": "Accepted"},
                                             CARD: {"status": "Accepted"}}))
    res = await cp.call(call.RemoteStartTransaction(id_tag=CARD.lower(), connector_id=1))
    assert res.status == "Accepted"
    await control("plug")
    await control("charge")
    await csms.wait_call("StartTransaction", lambda p: p["idTag"] == CARD.lower())
    await control.wait_state(lambda s: s["relay"], "charging after the remote start")
    await control("tap", uid=CARD)
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "Local"
    await control.wait_state(lambda s: not s["relay"], "the relay open after the tap")


async def test_invalid_card_starts_nothing(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    await _cp(csms, sim)
    csms.respond("Authorize", _authorize_as({}))
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await csms.wait_call("Authorize")
    st = await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "the red flash")
    assert st["relay"] is False
    assert not csms.calls("StartTransaction")


async def test_an_authorize_answered_after_the_tap_was_decided_is_cached(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """A CSMS behind a slow roaming hub answers Authorize in 10 s: the tap is decided offline
    after its 7 s (this card unknown there: refused), but the late Accepted goes into the
    authorization cache (1.6 3.5.1: every idTagInfo received updates it), so the card charges
    at its next tap decided offline. Before, the late answer was dropped: refused again."""
    cp = await _cp(csms, sim)
    await cp.call(call.ChangeConfiguration(key="WebSocketPingInterval", value="1"))
    csms.respond("Authorize", _authorize_as({CARD: {"status": "Accepted"}}))
    csms.stalled["Authorize"] = 10
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await control("tap", uid=CARD)
    auth = await csms.wait_call("Authorize")
    await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "refused offline",
                             timeout=12)
    assert loop.time() - t0 <= 9.0
    for _ in range(100):  # the answer, at 10 s
        if [f for f in csms.frames if f.direction == "out" and isinstance(f.msg, list)
                and f.msg[:2] == [3, auth.msg[1]]]:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # (read and cached by the charger)
    await control.wait_state(lambda s: not s["card"], "the card taken away")
    await asyncio.sleep(BETWEEN_TAPS_S)
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await control.wait_state(lambda s: s["relay"], "the card charging offline from the cache",
                             timeout=10)


async def test_a_card_at_an_unavailable_connector_is_refused_not_accepted(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """Inoperative (ChangeAvailability), no session can start: the card gets the refusal's red
    flash at once, not the accepted signal of a charge that never comes, and the CSMS no
    Authorize for it."""
    cp = await _cp(csms, sim)
    res = await cp.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert res.status == "Accepted"
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Unavailable")
    await control("plug")
    await control("charge")
    # The light looks at the status every 100 ms (led/status.py): until it shows Unavailable
    # (grey), the green of Available is still the look from before, not the tap's answer.
    await control.wait_state(lambda s: s["led"]["color"] == "808080", "the unavailable look")
    await control("tap", uid=CARD)
    seen = set()

    def looked(s: dict[str, Any]) -> bool:
        seen.add(s["led"]["color"])
        return s["led"]["color"] == "ff0000"

    st = await control.wait_state(looked, "the red flash", timeout=5)
    assert "00ff00" not in seen, "the accepted signal at a connector that cannot charge"
    assert st["relay"] is False and st["session"] is None
    assert not csms.calls("Authorize") and not csms.calls("StartTransaction")


async def test_sibling_card_with_the_same_parent_stops_the_session(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    await _cp(csms, sim)
    # parentIdTag is a CiString20: the same parent whatever its case in each answer
    csms.respond("Authorize", _authorize_as({CARD: {"status": "Accepted", "parentIdTag": "FAMILY"},
                                             SIBLING: {"status": "Accepted",
                                                       "parentIdTag": "Family"}}))
    stop = await _charge_then_stop_with(csms, control, SIBLING)
    # idTag: "the identifier which requested to stop the charging" (OCTT TC_069_CS)
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == SIBLING


async def test_another_card_at_a_session_without_a_group_asks_nothing_and_stops_nothing(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """OCTT TC_068_CS: while charging, a card other than the session's, the session's tag with
    no parentIdTag: no Authorize.req (nothing it could answer lets that card stop the session;
    one reader, one connector), no StopTransaction, the card signalled refused. Then the
    session's own card stops it: its idTag in the StopTransaction, the connector Finishing."""
    await _cp(csms, sim)
    csms.respond("Authorize", _authorize_as({CARD: {"status": "Accepted"},
                                             SIBLING: {"status": "Accepted"}}))
    await _charging_by_card(csms, control)
    await control.wait_state(lambda s: s["led"]["color"] != "ff0000", "no red flash yet")
    await asyncio.sleep(BETWEEN_TAPS_S)
    await control("tap", uid=SIBLING)
    st = await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "the red flash",
                                  timeout=5)
    assert st["relay"] is True and st["session"] is not None
    assert not [f for f in csms.calls("Authorize") if f.payload["idTag"] == SIBLING]
    assert not csms.calls("StopTransaction")
    await control.wait_state(lambda s: not s["card"], "the other card taken away")
    await asyncio.sleep(BETWEEN_TAPS_S)
    n = len(csms.frames)
    await control("tap", uid=CARD)
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == CARD
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Finishing", after=n)


async def test_a_card_of_another_group_stops_nothing_and_is_signalled_refused(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """A card that neither started the session nor shares its parent stops nothing (1.6
    StopTransaction: the same idTag or the same parentIdTag), and the owner is told so at the
    charger (the refusal's red flash), not left with no answer at all."""
    await _cp(csms, sim)
    csms.respond("Authorize", _authorize_as({CARD: {"status": "Accepted", "parentIdTag": "FAMILY"},
                                             SIBLING: {"status": "Accepted",
                                                       "parentIdTag": "NEIGHBOUR"}}))
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"], "charging")
    await control.wait_state(lambda s: not s["card"], "the card taken away")
    await asyncio.sleep(BETWEEN_TAPS_S)
    await control("tap", uid=SIBLING)
    await csms.wait_call("Authorize", lambda p: p["idTag"] == SIBLING)
    st = await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "the red flash",
                                  timeout=5)
    assert st["relay"] is True and st["session"] is not None
    assert not csms.calls("StopTransaction")


async def test_a_card_of_the_group_named_in_the_start_conf_stops_a_remote_start(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """1.6 3.10: any token of the group may stop the transaction (OCTT TC_069_CS). A remote
    start not authorized first (AuthorizeRemoteTxRequests false) learns the parent of its tag
    only from StartTransaction.conf's idTagInfo."""
    cp = await _cp(csms, sim)
    assert (await cp.call(call.ChangeConfiguration(key="AuthorizeRemoteTxRequests",
                                                   value="false"))).status == "Accepted"
    csms.respond("Authorize", _authorize_as({
        SIBLING: {"status": "Accepted", "parentIdTag": "FAMILY"}}))
    csms.respond("StartTransaction", lambda p: call_result.StartTransaction(
        transaction_id=next(csms.tx_ids),
        id_tag_info={"status": "Accepted", "parentIdTag": "FAMILY"}))
    res = await cp.call(call.RemoteStartTransaction(id_tag=CARD, connector_id=1))
    assert res.status == "Accepted"
    await control("plug")
    await control("charge")
    await csms.wait_call("StartTransaction")
    await control.wait_state(lambda s: s["relay"], "charging after the remote start")
    await control.wait_state(lambda s: s["session"] and s["session"]["transaction_id"] is not None,
                             "the StartTransaction.conf applied")
    await control("tap", uid=SIBLING)
    stop = await csms.wait_call("StopTransaction", timeout=10)
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == SIBLING


async def test_a_callerror_to_authorize_refuses_the_card(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """1.6 3.4: AllowOfflineTxForUnknownId applies offline. A CSMS that answers the Authorize,
    even with a CALLERROR, is online and has not authorized the card: it is refused at once
    (the red flash), nothing charges."""
    cp = await _cp(csms, sim)
    assert (await cp.call(call.ChangeConfiguration(key="AllowOfflineTxForUnknownId",
                                                   value="true"))).status == "Accepted"

    def fail(payload: object) -> object:
        raise RuntimeError("CSMS database is down")

    csms.respond("Authorize", fail)
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await csms.wait_call("Authorize")
    st = await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "the red flash")
    assert st["relay"] is False and st["session"] is None
    assert not csms.calls("StartTransaction")


async def _refused_offline_after_a_session(csms: Csms, control: Control) -> None:
    """CARD charges and stops a session; then, offline, the same card is refused."""
    stop = await _charge_then_stop_with(csms, control, CARD)
    await csms.answer_to(stop)
    await control("unplug")
    await control.wait_state(lambda s: not s["card"], "the card taken away again")
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    await asyncio.sleep(BETWEEN_TAPS_S)
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    st = await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "refused offline")
    assert st["relay"] is False and st["session"] is None


async def test_a_card_the_csms_accepts_with_an_expiry_date_past_starts(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """1.6 7.15 IdTagInfo: expiryDate is "the date at which idTag should be removed from the
    Authorization Cache", not a verdict. A CSMS that answers Accepted with an expiryDate a
    minute past (one that sends now + its cache window, a charger clock ahead of it) has
    accepted the card: the session starts. Offline, the cached entry is expired (refused)."""
    cp = await _cp(csms, sim)
    for key, value in (("WebSocketPingInterval", "1"), ("LocalAuthorizeOffline", "true"),
                       ("AuthorizationCacheEnabled", "true")):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    info = {"status": "Accepted", "expiryDate": past}
    csms.respond("Authorize", _authorize_as({CARD: info}))
    csms.respond("StartTransaction", lambda p: call_result.StartTransaction(
        transaction_id=7, id_tag_info=info))
    csms.respond("StopTransaction", lambda p: call_result.StopTransaction(id_tag_info=info))
    await _refused_offline_after_a_session(csms, control)


async def test_a_stop_transaction_conf_updates_the_cache(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """1.6 3.5.1: the idTagInfo of StopTransaction.conf updates the authorization cache: a card
    the CSMS blocks there is refused offline (LocalAuthorizeOffline), not started from a stale
    Accepted."""
    cp = await _cp(csms, sim)
    for key, value in (("WebSocketPingInterval", "1"), ("LocalAuthorizeOffline", "true"),
                       ("AuthorizationCacheEnabled", "true")):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"
    csms.respond("Authorize", _authorize_as({CARD: {"status": "Accepted"}}))
    csms.respond("StopTransaction", lambda p: call_result.StopTransaction(
        id_tag_info={"status": "Blocked"}))
    await _refused_offline_after_a_session(csms, control)


async def test_cached_card_starts_offline_and_the_start_is_delivered_later(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    cp = await _cp(csms, sim)
    await cp.call(call.ChangeConfiguration(key="WebSocketPingInterval", value="1"))
    await cp.call(call.ChangeConfiguration(key="ConnectionTimeOut", value="1"))
    csms.respond("Authorize", _authorize_as({CARD: {"status": "Accepted"}}))
    await control("tap", uid=CARD)  # online: Authorize fills the cache
    await csms.wait_call("Authorize")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    # No EV within ConnectionTimeOut: the authorization lapses; then the link dies.
    n = len(csms.frames)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)
    await control.wait_state(lambda s: not s["card"], "the card taken away")
    await asyncio.sleep(BETWEEN_TAPS_S)
    await _start_offline(csms, control, "charging offline from the cache")
    assert len(csms.calls("Authorize")) == 1


async def _cache_then_go_offline(csms: Csms, control: Control) -> None:
    """Tap CARD online (Authorize Accepted: cached), let its authorization lapse
    (ConnectionTimeOut 1 s), take the link down."""
    csms.respond("Authorize", _authorize_as({CARD: {"status": "Accepted"}}))
    await control("tap", uid=CARD)
    await csms.wait_call("Authorize")
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
    n = len(csms.frames)
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=n)
    await control.wait_state(lambda s: not s["card"], "the card taken away")
    await asyncio.sleep(BETWEEN_TAPS_S)
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)


async def test_offline_without_local_authorize_offline_a_cached_card_is_an_unknown_one(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """LocalAuthorizeOffline false: offline, the cache cannot authorize CARD, so it is one of
    the "unknown" tags AllowOfflineTxForUnknownId admits (1.6 3.4), as a stranger's card is;
    not refused as "Expired" (a status the CSMS never gave)."""
    cp = await _cp(csms, sim)
    for key, value in (("WebSocketPingInterval", "1"), ("ConnectionTimeOut", "1"),
                       ("LocalAuthorizeOffline", "false"), ("AllowOfflineTxForUnknownId", "true")):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"
    await _cache_then_go_offline(csms, control)
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await control.wait_state(lambda s: s["relay"], "the cached card charging offline", timeout=10)


async def test_a_card_on_a_list_not_in_use_is_cached(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    """LocalAuthListEnabled false: the list decides nothing, so the cache must hold what the
    CSMS said of a card that happens to be on it (1.6 3.5.1); offline it charges from there."""
    cp = await _cp(csms, sim)
    res = await cp.call(call.SendLocalList(
        list_version=1, update_type="Full",
        local_authorization_list=[{"id_tag": CARD, "id_tag_info": {"status": "Accepted"}}]))
    assert res.status == "Accepted"
    for key, value in (("WebSocketPingInterval", "1"), ("ConnectionTimeOut", "1"),
                       ("LocalAuthListEnabled", "false")):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"
    await _cache_then_go_offline(csms, control)
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await control.wait_state(lambda s: s["relay"], "the cached card charging offline", timeout=10)


async def test_unknown_card_offline_follows_allow_offline_tx_for_unknown_id(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    cp = await _cp(csms, sim)
    await cp.call(call.ChangeConfiguration(key="WebSocketPingInterval", value="1"))
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", timeout=10)
    await control("plug")
    await control("charge")
    await control("tap", uid=CARD)
    await control.wait_state(lambda s: s["led"]["color"] == "ff0000", "refused offline")
    assert (await control("state"))["relay"] is False


ALLOWANCE_WH = 25  # ~8 s of the simulated EV's 11 kW


@pytest.mark.parametrize(("stop_on_invalid", "max_energy"),
                         [(True, 0), (False, 0), (False, ALLOWANCE_WH)])
async def test_an_offline_start_the_csms_refuses_ends_or_suspends_the_charge(
    csms: Csms, sim: Simulator, control: Control, stop_on_invalid: bool, max_energy: int
) -> None:
    """1.6 StartTransaction.conf: a session started offline for a tag the charger did not
    know (AllowOfflineTxForUnknownId) is refused by the CSMS when its StartTransaction arrives.
    StopTransactionOnInvalidId true: the transaction is stopped (DeAuthorized) and the relay
    opens. False: the relay opens, the transaction stays open (SuspendedEVSE) until the EV
    leaves; with MaxEnergyOnInvalidId, only once the transaction has delivered that much."""
    cp = await _cp(csms, sim)
    for key, value in (("WebSocketPingInterval", "1"), ("AllowOfflineTxForUnknownId", "true"),
                       ("StopTransactionOnInvalidId", str(stop_on_invalid).lower()),
                       ("MaxEnergyOnInvalidId", str(max_energy))):
        assert (await cp.call(call.ChangeConfiguration(key=key, value=value))).status == "Accepted"
    csms.respond("StartTransaction", lambda p: call_result.StartTransaction(
        transaction_id=next(csms.tx_ids), id_tag_info={"status": "Invalid"}))
    start = await _start_offline(csms, control, "charging offline for an unknown tag")
    n = csms.frames.index(start)
    if max_energy:
        await sim.agent.wait_line(r"charging on up to 25 Wh of the transaction")
        assert (await control("state"))["relay"], "the allowance cut short"
    st = await control.wait_state(lambda s: not s["relay"], "the relay open once the tag is "
                                  "refused (and its allowance used)", timeout=40)
    if stop_on_invalid:
        stop = await csms.wait_call("StopTransaction", after=n)
        assert stop.payload["reason"] == "DeAuthorized"
        assert stop.payload["idTag"] == CARD
        await csms.wait_call("StatusNotification", lambda p: p["status"] == "Finishing")
        return
    await csms.wait_call("StatusNotification", lambda p: p["status"] == "SuspendedEVSE", after=n)
    assert not csms.calls("StopTransaction")
    assert st["pwm_duty"] in (0, 100), st  # no offer: the EV is told to wait
    await control("unplug")
    stop = await csms.wait_call("StopTransaction")
    assert stop.payload["reason"] == "EVDisconnected"
    delivered = stop.payload["meterStop"] - start.payload["meterStart"]
    if max_energy:
        # Stopped at the allowance, within a few meter polls of it
        assert max_energy <= delivered <= max_energy + 15, delivered
        print(f"delivered {delivered} Wh for an allowance of {max_energy}")
    assert not csms.calls("Authorize"), "the offline start asks nothing when it is delivered"


async def test_tag_learning_reports_the_card_instead_of_charging(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    cp = await _cp(csms, sim)
    res = await cp.call(call.DataTransfer(vendor_id="borne", message_id="learnTag"))
    assert res.status == "Accepted"
    await control("plug")
    await control("tap", uid=CARD)
    learned = await csms.wait_call("DataTransfer")
    assert learned.payload == {"vendorId": "borne", "messageId": "tagLearned", "data": CARD}
    assert not csms.calls("Authorize") and not csms.calls("StartTransaction")


async def test_a_tag_learned_offline_is_reported_once_back_online(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    # The click tells the owner the card was read: the app must get it, even when the link
    # dropped between the app's request and the tap.
    cp = await _cp(csms, sim)
    res = await cp.call(call.DataTransfer(vendor_id="borne", message_id="learnTag"))
    assert res.status == "Accepted"
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", 90)
    await control("tap", uid=CARD)
    assert sim.agent is not None
    await sim.agent.wait_line(rf"learned tag {CARD}", 10)
    await control("net", up=True)
    learned = await csms.wait_call(
        "DataTransfer", lambda p: p.get("messageId") == "tagLearned", timeout=60)
    assert learned.payload["data"] == CARD


async def test_a_tag_learned_offline_is_reported_after_a_power_cut(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    # The click told the owner the card was added (owner's manual, "Scan Physical Tag": "un
    # clic de la borne confirme que les cartes ont été ajoutées avec succès"); held in RAM, the
    # report went with a power cut before the link came back, and the card never reached the app.
    cp = await _cp(csms, sim)
    res = await cp.call(call.DataTransfer(vendor_id="borne", message_id="learnTag"))
    assert res.status == "Accepted"
    await control("net", up=False)
    await control.wait_state(lambda s: not s["ocpp"]["connected"], "offline", 90)
    await control("tap", uid=CARD)
    assert sim.agent is not None
    await sim.agent.wait_line(rf"learned tag {CARD}", 10)
    await control("power_cut")
    await control("net", up=True)
    await control("power_on")
    learned = await csms.wait_call(
        "DataTransfer", lambda p: p.get("messageId") == "tagLearned", timeout=60)
    assert learned.payload["data"] == CARD


async def test_an_unanswered_tag_learned_is_sent_again(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    cp = await _cp(csms, sim)
    csms.unanswered["DataTransfer"] = 1
    res = await cp.call(call.DataTransfer(vendor_id="borne", message_id="learnTag"))
    assert res.status == "Accepted"
    await control("tap", uid=CARD)

    def learned() -> list[Any]:
        return [f for f in csms.calls("DataTransfer") if f.payload.get("messageId") == "tagLearned"]

    await csms.wait_for(lambda: len(learned()) >= 2, 60, "tagLearned sent again after no answer")
    assert [f.payload["data"] for f in learned()] == [CARD, CARD]
    await asyncio.sleep(3)  # past the retry's pause
    assert len(learned()) == 2, "answered, it is not sent again"


async def test_learn_tag_is_refused_while_the_reader_has_failed(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    cp = await _cp(csms, sim)
    assert (await control("fault", kind="reader_down"))["ok"]
    await control.wait_state(lambda s: "ReaderFailure" in s["device_faults"], "ReaderFailure", 10)
    res = await cp.call(call.DataTransfer(vendor_id="borne", message_id="learnTag"))
    assert res.status == "Rejected"


async def test_light_intensity_from_the_cloud(
    csms: Csms, sim: Simulator, control: Control
) -> None:
    cp = await _cp(csms, sim)
    res = await cp.call(call.ChangeConfiguration(key="LightIntensity", value="30"))
    assert res.status == "Accepted"
    await control.wait_state(lambda s: s["led"]["brightness"] == 30, "the LED dimmed to 30 %")
