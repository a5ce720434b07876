"""Bad input from the CSMS, sent as raw frames (the `ocpp` package would never send them, and it
swaps NotImplemented and NotSupported relative to the spec, so the codes are read off the wire).

Each bad frame gets the spec's reaction and a log line; the connection and the session survive
(one connection, one BootNotification) unless the transport itself breaks, and then the charger
reconnects without a new boot. Every frame the charger sends is schema-checked (conftest).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from borne.csms import Csms, Frame, now_iso, ws_frame
from borne.sim.simulator import Simulator
from flashdoc import seed
from ocpp.v16 import call_result
from ocpp.v16.enums import RegistrationStatus

CP_ID = "CP-TEST-1"


async def _booted(csms: Csms) -> None:
    await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)


def _code(f: Frame) -> str:
    assert f.msg[0] == 4, f"expected a CALLERROR, got {f.raw}"
    assert isinstance(f.msg[3], str) and isinstance(f.msg[4], dict) and len(f.msg) == 5
    code: str = f.msg[2]
    return code


async def _err(csms: Csms, text: str, answer_id: str) -> str:
    return _code(await csms.call_raw(CP_ID, text, answer_id))


def _call(mid: str, action: str, payload: Any) -> str:
    return json.dumps([2, mid, action, payload])


async def test_malformed_calls_get_the_spec_codes_and_the_session_survives(
    csms: Csms, sim: Simulator
) -> None:
    await _booted(csms)
    assert sim.agent is not None
    cases = [
        ("this is not json", "-1", "FormationViolation"),
        ('{"not": "an array"}', "-1", "FormationViolation"),
        ('[2, "t-1", "Reset", {"type": "So', "t-1", "FormationViolation"),  # truncated JSON
        # an id not a string: refused under its text, which the CSMS can match (not "-1")
        ('[2, 42, "Reset", {"type": "Soft"}]', "42", "FormationViolation"),
        # an id over OCPP-J's 36 characters (a CSMS's "<uuid>-<n>"): refused under its own id
        # (4.2.3: "the exact same ID"), not "-1", which left the CSMS waiting out its timeout
        (_call("0f8fad5b-d9cb-469f-a165-70867728950e-17", "Reset", {"type": "Soft"}),
         "0f8fad5b-d9cb-469f-a165-70867728950e-17", "FormationViolation"),
        ('[2, "inc-1", "Reset"]', "inc-1", "ProtocolError"),  # no payload: incomplete
        # payload not an object ([] is one: PHP's {}, test_interop_variants.py)
        (_call("p-1", "Reset", ["Soft"]), "p-1", "FormationViolation"),
        (_call("miss-1", "Reset", {}), "miss-1", "OccurenceConstraintViolation"),
        (_call("type-1", "ChangeAvailability", {"connectorId": "1", "type": "Operative"}),
         "type-1", "TypeConstraintViolation"),
        (_call("enum-1", "Reset", {"type": "Sideways"}), "enum-1", "PropertyConstraintViolation"),
        (_call("len-1", "ChangeConfiguration", {"key": "K" * 51, "value": "1"}), "len-1",
         "PropertyConstraintViolation"),
        (_call("dt-1", "ReserveNow", {"connectorId": 1, "expiryDate": "tomorrow", "idTag": "T",
                                      "reservationId": 1}), "dt-1", "PropertyConstraintViolation"),
        (_call("extra-1", "ClearCache", {"please": True}), "extra-1", "FormationViolation"),
        # not JSON (RFC 8259), though MicroPython's json.loads reads both: never run
        ('[2, "comma-1", "Reset", {"type": "Hard",}]', "comma-1", "FormationViolation"),
        ('[2, "colon-1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative", "x":}]',
         "colon-1", "FormationViolation"),
        (_call("unk-1", "MakeCoffee", {}), "unk-1", "NotImplemented"),
        # an action of 1.6 the charger does not take (the charge point's own SignCertificate)
        (_call("sup-1", "SignCertificate", {"csr": "x"}), "sup-1", "NotSupported"),
    ]
    for text, answer_id, code in cases:
        got = await _err(csms, text, answer_id)
        assert got == code, f"{text!r}: answered {got}, the spec says {code}"
    # An unknown message type is ignored (OCPP-J 1.6 4.1.3), with a log line.
    await csms.send_raw(CP_ID, '[7, "weird-1", "Reset", {}]')
    await sim.agent.wait_line(r"unknown message type 7: ignored")
    # Answers to calls the charger never made: logged, ignored.
    await csms.send_raw(CP_ID, '[3, "nobody-1", {}]')
    await csms.send_raw(CP_ID, '[4, "nobody-2", "InternalError", "", {}]')
    await sim.agent.wait_line(r"answer with unknown id nobody-2: ignored")
    assert [f for f in csms.answers() if f.msg[1] in ("weird-1", "nobody-1", "nobody-2")] == []
    # Still the same session, still answering, never rebooted.
    assert await _err(csms, _call("still-1", "MakeCoffee", {}), "still-1") == "NotImplemented"
    assert csms.connects == 1 and len(csms.calls("BootNotification")) == 1
    warned = [x for x in sim.agent.all_lines if x.startswith("W rpc:")]
    assert len(warned) >= len(cases) + 3, warned


async def test_oversize_and_hand_made_frames(csms: Csms, sim: Simulator, flash: Path) -> None:
    await _booted(csms)
    assert sim.agent is not None
    # Over the charger's 16 KiB RAM limit: spooled to flash, but only SendLocalList is read
    # from there; any other is answered by the id at its start, the link kept.
    big = _call("big-1", "DataTransfer", {"vendorId": "x", "data": "z" * 40000})
    f = await csms.call_raw(CP_ID, big, "big-1")
    assert _code(f) == "FormationViolation" and "limit" in f.msg[3]
    await sim.agent.wait_line(r"message of \d+ bytes over the 16384-byte limit")
    # So too one whose id is over OCPP-J's 36 characters: answered under it, not left unanswered.
    long_id = "0f8fad5b-d9cb-469f-a165-70867728950e-18"
    f = await csms.call_raw(CP_ID, _call(long_id, "DataTransfer",
                                         {"vendorId": "x", "data": "z" * 40000}), long_id)
    assert _code(f) == "FormationViolation" and "limit" in f.msg[3]
    # Over the 256 KiB flash limit: read to its end and dropped; no spool file is left.
    huge = _call("huge-1", "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                             "localAuthorizationList": [],
                                             "pad": "z" * 300000})
    f = await csms.call_raw(CP_ID, huge, "huge-1")
    assert _code(f) == "FormationViolation" and "262144-byte limit" in f.msg[3]
    assert not (flash / "data" / "rx.spool").exists()
    # A message in three fragments with a ping between them.
    csms.write_raw(CP_ID, ws_frame(1, b'[2, "frag-1", "Make', fin=False) + ws_frame(9, b"hi")
                   + ws_frame(0, b"Co", fin=False) + ws_frame(0, b'ffee", {}]'), expect_id="frag-1")
    assert _code(await csms.wait_answer("frag-1")) == "NotImplemented"
    assert csms.connects == 1
    # A frame cut short by a dying connection: the charger reconnects, without a new boot.
    csms.write_raw(CP_ID, ws_frame(1, b"x" * 100)[:40])
    csms.connections[CP_ID].transport.abort()
    await sim.agent.wait_line(r"link lost: WsClosed connection closed mid-frame")
    await csms.wait_for(lambda: csms.connects >= 2 and CP_ID in csms.connections, 20,
                        "the charger to reconnect")
    assert await _err(csms, _call("after-1", "MakeCoffee", {}), "after-1") == "NotImplemented"
    assert len(csms.calls("BootNotification")) == 1


def _boot_interval_1(p: dict[str, Any]) -> Any:
    return call_result.BootNotification(current_time=now_iso(), interval=1,
                                        status=RegistrationStatus.accepted)


async def test_csms_that_never_answers(csms: Csms, flash: Path) -> None:
    # Heartbeat every second; the CSMS swallows the first Heartbeat; the call times out (2 s),
    # the charger drops the link, reconnects (no new boot) and its heartbeats are answered again.
    seed(flash, "settings", {"call_timeout_s": 2})
    csms.respond("BootNotification", _boot_interval_1)
    csms.unanswered["Heartbeat"] = 1
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        assert sim.agent is not None
        await sim.agent.wait_line(r"Heartbeat \S+: no answer within 2000 ms")
        await csms.wait_for(lambda: csms.connects >= 2, 20, "a reconnect after the timeout")
        n = len(csms.frames)
        await csms.wait_call("Heartbeat", after=n)
        await csms.wait_for(
            lambda: any(f.direction == "out" and f.msg[0] == 3 for f in csms.frames[n:]), 10,
            "an answered heartbeat")
        assert len(csms.calls("BootNotification")) == 1
    finally:
        await sim.stop()
        print("\n".join(sim.agent.all_lines if sim.agent else []))


async def _connected(sim: Simulator, want: bool, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while sim.state()["ocpp"]["connected"] != want:
        assert loop.time() < end, f"ocpp.connected still {not want} after {timeout} s"
        await asyncio.sleep(0.1)


async def test_half_open_link_is_detected_by_ping(csms: Csms, flash: Path) -> None:
    # WebSocketPingInterval 1 s; the network goes silent (the gate blackholes): within a few
    # seconds (5 s of silence: two intervals are less) the charger calls the link dead and says
    # so; when the network is back it reconnects by itself, without a new boot.
    seed(flash, "ocpp_config", {"WebSocketPingInterval": 1})
    sim = Simulator(flash, cp_id=CP_ID, csms_url=csms.url)
    await sim.start()
    try:
        assert sim.agent is not None and sim.gate is not None
        await _booted(csms)
        await _connected(sim, True, 5)
        await asyncio.sleep(2.5)  # pings answered: no false alarm
        assert sim.state()["ocpp"]["connected"] and csms.connects == 1
        sim.gate.set_up(False)
        t0 = asyncio.get_running_loop().time()
        await sim.agent.wait_line(r"no frame for \d+ s: half-open socket", timeout=10)
        await _connected(sim, False, 2)
        assert asyncio.get_running_loop().time() - t0 < 9
        sim.gate.set_up(True)
        await csms.wait_for(lambda: csms.connects >= 2 and CP_ID in csms.connections, 30,
                            "the charger to reconnect once the network is back")
        await _connected(sim, True, 5)
        assert len(csms.calls("BootNotification")) == 1
    finally:
        await sim.stop()
        print("\n".join(sim.agent.all_lines if sim.agent else []))


async def test_a_text_frame_that_is_not_utf8_fails_the_connection_with_1007(
    csms: Csms, sim: Simulator
) -> None:
    # RFC 6455 8.1: text that is not UTF-8 fails the WebSocket connection (close code 1007), with
    # no answer; the charger reconnects without a new boot and answers on the new link.
    await _booted(csms)
    assert sim.agent is not None
    for i, bad in enumerate((b"\xff", b"\xed\xa0\x80")):  # refused by json / taken by it
        n = csms.connects
        csms.write_raw(CP_ID, ws_frame(1, b'[2, "u8-%d", "DataTransfer", {"vendorId": "' % i
                                       + bad + b'"}]'))
        await csms.wait_for(lambda i=i: (CP_ID, 1007) in csms.close_codes[i:], 10,
                            "the charger to close the link with 1007")
        await csms.wait_for(lambda n=n: csms.connects > n and CP_ID in csms.connections, 20,
                            "the charger to reconnect")
    assert csms.close_codes == [(CP_ID, 1007)] * 2
    assert not [f for f in csms.answers() if f.msg[1] in ("u8-0", "u8-1")]
    assert await _err(csms, _call("after-1", "MakeCoffee", {}), "after-1") == "NotImplemented"
    assert len(csms.calls("BootNotification")) == 1


async def test_a_spooled_list_that_is_not_utf8_fails_the_connection_with_1007(
    csms: Csms, sim: Simulator, flash: Path
) -> None:
    # Over the 16 KiB RAM limit a SendLocalList is spooled to flash and read from there: text
    # that is not UTF-8 (here an encoded surrogate, which MicroPython's decoder takes) fails the
    # connection as it does in RAM (RFC 6455 8.1: 1007, no answer), and the list stays as it was.
    await _booted(csms)
    entries = [{"idTag": f"T{i:04d}", "idTagInfo": {"status": "Accepted"}} for i in range(400)]
    text = _call("u8-big", "SendLocalList", {"listVersion": 5, "updateType": "Full",
                                             "localAuthorizationList": entries}).encode()
    assert len(text) > 16384
    csms.write_raw(CP_ID, ws_frame(1, text.replace(b"T0123", b"T\xed\xa0\x80")))
    await csms.wait_for(lambda: (CP_ID, 1007) in csms.close_codes, 20,
                        "the charger to close the link with 1007")
    await csms.wait_for(lambda: csms.connects > 1 and CP_ID in csms.connections, 20,
                        "the charger to reconnect")
    assert not [f for f in csms.answers() if f.msg[1] == "u8-big"]
    assert not (flash / "data" / "rx.spool").exists()
    assert (await csms.call_raw(CP_ID, _call("v-1", "GetLocalListVersion", {}), "v-1")).msg[2] \
        == {"listVersion": 0}


async def test_a_close_reason_that_is_not_utf8_is_a_close_by_the_csms(
    csms: Csms, sim: Simulator
) -> None:
    # A CSMS refusing with a Latin-1 reason: the charger answers 1007 (RFC 6455 8.1) and takes it
    # as a close by the CSMS (backed off when it repeats), not as a failure of its own.
    await _booted(csms)
    assert sim.agent is not None
    reason = "Gerät gesperrt".encode("latin-1")
    csms.write_raw(CP_ID, ws_frame(8, (1008).to_bytes(2, "big") + reason))
    await csms.wait_for(lambda: csms.close_codes == [(CP_ID, 1007)], 10,
                        "the charger to answer the close with 1007")
    await sim.agent.wait_line(r"link lost: WsClosed closed by peer \(1008")
    await csms.wait_for(lambda: csms.connects >= 2 and CP_ID in csms.connections, 20,
                        "the charger to reconnect")
    # A code no endpoint may send (RFC 6455 7.4.1) is answered 1002, not echoed.
    csms.write_raw(CP_ID, ws_frame(8, (1005).to_bytes(2, "big")))
    await csms.wait_for(lambda: csms.close_codes[1:] == [(CP_ID, 1002)], 10,
                        "the charger to answer the close with 1002")
    assert len(csms.calls("BootNotification")) == 1
