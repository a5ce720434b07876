"""Validation of OCPP 1.6J frames against the JSON schemas the `ocpp` package ships.

The package's own validation does not check `date-time` formats, so every frame is validated
here with jsonschema's Draft 4 validator and a strict RFC 3339 date-time checker of our own
(jsonschema silently skips `date-time` when its optional dependency is missing).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

_RFC3339 = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # type errors are the schema's business
    if not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    return True


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    if isinstance(value, str) and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value):
        raise ValueError(f"{value!r} is not a URI")
    return True


@cache
def schema(action: str, response: bool) -> dict[str, Any]:
    # Numbers as Decimal, in the schemas and in the frames: `multipleOf: 0.1` (charging limits)
    # fails on binary floats (5.6 / 0.1 = 55.99999999999999), so a float parse would flag
    # about a third of all valid one-decimal limits.
    name = f"{action}Response.json" if response else f"{action}.json"
    path = resources.files("ocpp.v16") / "schemas" / name
    data: dict[str, Any] = json.loads(path.read_text(), parse_float=Decimal)
    return data


def known_actions() -> set[str]:
    folder = resources.files("ocpp.v16") / "schemas"
    names = (p.name for p in folder.iterdir())
    return {n[:-5] for n in names if n.endswith(".json") and "Response" not in n}


def validate_payload(action: str, payload: Any, response: bool) -> list[str]:
    """Problems with one payload, as readable lines; empty when it is valid."""
    try:
        sch = schema(action, response)
    except FileNotFoundError:
        return [f"{action}: no such OCPP 1.6 action"]
    v = jsonschema.Draft4Validator(sch, format_checker=FORMATS)
    return [
        f"{action}{'.conf' if response else '.req'}: {'/'.join(map(str, e.path)) or '<root>'}: "
        f"{e.message}"
        for e in v.iter_errors(payload)
    ]


_ERROR_CODES = {
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "TypeConstraintViolation", "GenericError",
}


class FrameChecker:
    """Checks every frame a charge point sends; remembers the CSMS's CALLs to check answers."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}  # id of a CSMS CALL -> action
        self.violations: list[str] = []

    def outgoing(self, raw: str) -> None:
        """A frame the CSMS sends to the charge point."""
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        if isinstance(msg, list) and len(msg) == 4 and msg[0] == 2:
            self.pending[msg[1]] = msg[2]

    def incoming(self, raw: str | bytes) -> list[str]:
        """A frame the charge point sent; returns (and records) what is wrong with it."""
        problems = self._check(raw)
        self.violations += problems
        return problems

    def _check(self, raw: str | bytes) -> list[str]:
        if isinstance(raw, bytes):
            return ["binary frame: OCPP-J uses text frames"]
        try:
            msg = json.loads(raw, parse_float=Decimal)
        except ValueError:
            return [f"not JSON: {raw[:80]!r}"]
        if not isinstance(msg, list) or not msg or msg[0] not in (2, 3, 4):
            return [f"not an OCPP-J message: {raw[:80]!r}"]
        # (an answer carries the CALL's id, which may be the CSMS's own too long one)
        if len(msg) < 2 or not isinstance(msg[1], str) or (not 0 < len(msg[1]) <= 36 and not (
                msg[0] in (3, 4) and msg[1] in self.pending)):
            return [f"bad message id in {raw[:80]!r}"]
        if msg[0] == 2:
            if len(msg) != 4 or not isinstance(msg[2], str):
                return [f"malformed CALL {raw[:80]!r}"]
            return validate_payload(msg[2], msg[3], response=False)
        action = self.pending.pop(msg[1], None)
        if action is None:
            return [f"answer to an unknown CALL id {msg[1]!r}"]
        if msg[0] == 3:
            if len(msg) != 3:
                return [f"malformed CALLRESULT {raw[:80]!r}"]
            return validate_payload(action, msg[2], response=True)
        if len(msg) != 5 or msg[2] not in _ERROR_CODES or not isinstance(msg[3], str) or not (
            isinstance(msg[4], dict)
        ):
            return [f"malformed CALLERROR {raw[:80]!r}"]
        return []
