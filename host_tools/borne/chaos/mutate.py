"""Mutated CSMS frames for `borne chaos frames`: valid CALLs a CSMS may send during a charging
session (none that ends it: no Reset, RemoteStop, Unlock, ChangeAvailability), and sixteen kinds
of damage. Each item is (kind, message id the answer must carry or None, text or raw bytes,
binary frame?). A CALL with a readable id must get exactly one answer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

_PROFILE = {
    "connectorId": 1,
    "csChargingProfiles": {
        "chargingProfileId": 7, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
                             "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]},
    },
}

BASE: list[tuple[str, dict[str, Any]]] = [
    ("GetConfiguration", {}),
    ("GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]}),
    ("ChangeConfiguration", {"key": "LightIntensity", "value": "60"}),
    ("DataTransfer", {"vendorId": "borne", "messageId": "logbook", "data": "trip to work"}),
    ("DataTransfer", {"vendorId": "acme", "messageId": "x"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}),
    ("GetLocalListVersion", {}),
    ("SendLocalList", {"listVersion": 5, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "04A1B2C3", "idTagInfo": {"status": "Accepted"}}]}),
    ("ClearCache", {}),
    ("GetCompositeSchedule", {"connectorId": 1, "duration": 3600}),
    ("SetChargingProfile", _PROFILE),
    ("ClearChargingProfile", {"id": 7}),
    ("CancelReservation", {"reservationId": 99}),
    ("ReserveNow", {"connectorId": 1, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "T",
                    "reservationId": 3}),
]

KINDS = (
    "valid", "byte_flip", "truncated", "missing_field", "wrong_type", "absurd_number",
    "surrogates", "long_string", "unknown_field", "unknown_action", "bad_id", "bad_type",
    "deep_nesting", "not_an_array", "invalid_utf8", "binary", "json_oddities",
)


def _paths(v: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(v, dict):
        for k, x in v.items():
            out.append((*path, k))
            out += _paths(x, (*path, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out.append((*path, i))
            out += _paths(x, (*path, i))
    return out


def _get(v: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        v = v[p]
    return v


def _set(v: Any, path: tuple[Any, ...], x: Any) -> None:
    _get(v, path[:-1])[path[-1]] = x


def mutated_frames(rng: random.Random) -> Iterator[tuple[str, str | None, str | bytes, bool]]:
    n = 0
    while True:
        n += 1
        mid = f"c{n:07d}"  # one width: no id is a prefix of another
        action, base = rng.choice(BASE)
        p = json.loads(json.dumps(base))
        kind = rng.choice(KINDS)
        binary = False
        answer: str | None = mid
        if kind == "valid":
            text: str | bytes = json.dumps([2, mid, action, p])
        elif kind == "byte_flip":
            # Flips after the id (one in the id could give another frame's id: the answers
            # could not be told apart); the id itself is damaged by "truncated" and "bad_id".
            head = len(f'[2, "{mid}", ')
            b = bytearray(json.dumps([2, mid, action, p]).encode())
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(head, len(b))
                b[i] = rng.randrange(32, 127)
            text = b.decode()
        elif kind == "truncated":
            s = json.dumps([2, mid, action, p])
            text = s[: rng.randrange(len(f'[2, "{mid}", ') + 1, len(s))]
        elif kind == "missing_field":
            paths = _paths(p)
            if paths:
                path = rng.choice(paths)
                del _get(p, path[:-1])[path[-1]]
            text = json.dumps([2, mid, action, p])
        elif kind == "wrong_type":
            paths = _paths(p)
            if paths:
                _set(p, rng.choice(paths), rng.choice((None, True, "x", 3, 2.5, [], {})))
            text = json.dumps([2, mid, action, p])
        elif kind == "absurd_number":
            action = "SetChargingProfile"
            p = json.loads(json.dumps(_PROFILE))
            lim = rng.choice(("1e308", "1e400", "-1e400", "-1e-300", "-6", "1e20", "-0.1",
                              "123456789012345678901234567890"))
            s = json.dumps([2, mid, action, p]).replace('"limit": 16.0', f'"limit": {lim}')
            text = s
        elif kind == "surrogates":
            action = rng.choice(("GetConfiguration", "DataTransfer"))
            esc = rng.choice(("\\ud83d\\ude00", "\\udc00", "\\ud800", "a\\uDBFF\\uDFFFb",
                              "\\ud83d\\ude00\\ud83d"))
            if action == "GetConfiguration":
                text = f'[2, "{mid}", "GetConfiguration", {{"key": ["{esc}", "x{esc}"]}}]'
            else:
                text = (f'[2, "{mid}", "DataTransfer", {{"vendorId": "borne", "messageId": '
                        f'"logbook", "data": "{esc}"}}]')
        elif kind == "long_string":
            paths = [q for q in _paths(p) if isinstance(_get(p, q), str)]
            if paths:
                _set(p, rng.choice(paths), "L" * rng.choice((21, 51, 501, 5000)))
            text = json.dumps([2, mid, action, p])
        elif kind == "unknown_field":
            p["x" * rng.randint(1, 30)] = rng.choice((1, "y", None))
            text = json.dumps([2, mid, action, p])
        elif kind == "unknown_action":
            text = json.dumps([2, mid, rng.choice(("MakeCoffee", "", "A" * 200, "Reset2")), p])
        elif kind == "bad_id":
            # (ids a CSMS may send once: unique, so answers are told apart)
            bad = rng.choice(("5", '""', '"' + "i" * 37 + '"', "null", '["x"]',
                              f'"\\u0000{n}"', f'"q\\"q{n}"'))
            text = f'[2, {bad}, "{action}", {json.dumps(p)}]'
            answer = None
        elif kind == "bad_type":
            t = rng.choice(("0", "5", "7", '"2"', "2.0", "-1", "99999999999999999999"))
            text = f'[{t}, "{mid}", "{action}", {json.dumps(p)}]'
            answer = None
        elif kind == "deep_nesting":
            d = rng.choice((50, 500, 3000))
            text = f'[2, "{mid}", "DataTransfer", {{"vendorId": "v", "data": ' + "[" * d + \
                "]" * d + "}]"
        elif kind == "not_an_array":
            text = rng.choice(("{}", '"x"', "42", "null", "[]", "", " ", "\t[2]"))
            answer = None
        elif kind == "invalid_utf8":
            text = json.dumps([2, mid, "DataTransfer", {"vendorId": "v", "data": "@@"}]).encode()
            text = text.replace(b"@@", bytes(rng.choice(((0xFF,), (0xC3,), (0xED, 0xA0, 0x80),
                                                         (0xF8, 0x88, 0x80, 0x80)))))
        elif kind == "binary":
            text = json.dumps([2, mid, action, p]).encode()
            binary = True
        else:  # json_oddities
            text = rng.choice((
                f'[2, "{mid}", "{action}", {json.dumps(p)}] trailing',
                f'[2, "{mid}", "GetConfiguration", {{"key": ["a"], "key": ["b"]}}]',
                f'[2, "{mid}", "ChangeConfiguration", {{"key": "LightIntensity", "value": NaN}}]',
                f'[2, "{mid}", "GetConfiguration", {{}}, 1]',
                f'[2, "{mid}", "DataTransfer", {{"vendorId": "v", "data": "\\x41"}}]',
                f'[2,"{mid}","GetConfiguration",{{}}]',
            ))
        yield kind, answer, text, binary
