"""Generate the firmware's compact rule table for incoming OCPP 1.6 CALLs from the JSON schemas.

The full JSON schemas do not fit an ESP32 heap, so the firmware checks incoming CALL payloads
(`firmware/ocpp_client/validate.py`) against a table of constant tuples derived from the schemas
the `ocpp` package ships: field names, types, required flags, enums, string lengths, date-time and
URI formats, `multipleOf`, `minItems`. Constant tuples freeze into flash with the firmware.
A few value ranges the spec states in its field tables but the schemas leave out are added from
`RANGES` below.

    python -m borne.gen_rules            # rewrite firmware/ocpp_client/rules.py, rules_ext.py
    python -m borne.gen_rules --check    # exit 1 if the committed table differs (tests do this)

Anything in a schema this generator does not understand is an error, so the table cannot
silently lose a rule when the schemas change.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from borne import paths

OUT = paths.FIRMWARE / "ocpp_client" / "rules.py"
# The security extension's rules, in a module of their own: validate.py imports it only to check
# one of those (rare) CALLs, so the core table the heap holds stays as small as before.
OUT_EXT = paths.FIRMWARE / "ocpp_client" / "rules_ext.py"

# Every CSMS -> charge point action of OCPP 1.6 (Core, FirmwareManagement, LocalAuthListManagement,
# Reservation, SmartCharging, RemoteTrigger), in the order of the spec's profiles.
CSMS_TO_CP = (
    "ChangeAvailability", "ChangeConfiguration", "ClearCache", "DataTransfer", "GetConfiguration",
    "RemoteStartTransaction", "RemoteStopTransaction", "Reset", "UnlockConnector",
    "GetDiagnostics", "UpdateFirmware",
    "GetLocalListVersion", "SendLocalList",
    "CancelReservation", "ReserveNow",
    "ClearChargingProfile", "GetCompositeSchedule", "SetChargingProfile",
    "TriggerMessage",
)
# The CSMS -> charge point actions of the security extension (OCA "Improved security for
# OCPP 1.6-J", edition 3), in rules_ext.py.
SECURITY_EXT = (
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage",
    "GetInstalledCertificateIds", "GetLog", "InstallCertificate", "SignedUpdateFirmware",
)

# Ranges from the spec's field tables (OCPP 1.6 edition 2, chapters 6 and 7) that the JSON
# schemas do not carry: (action, dotted path) -> (minimum or None, maximum or None).
RANGES: dict[tuple[str, str], tuple[int | None, int | None]] = {
    ("ChangeAvailability", "connectorId"): (0, None),
    ("ClearChargingProfile", "connectorId"): (0, None),
    ("GetCompositeSchedule", "connectorId"): (0, None),
    ("RemoteStartTransaction", "connectorId"): (0, None),
    ("RemoteStartTransaction", "chargingProfile.stackLevel"): (0, None),
    ("ReserveNow", "connectorId"): (0, None),
    ("SetChargingProfile", "connectorId"): (0, None),
    ("SetChargingProfile", "csChargingProfiles.stackLevel"): (0, None),
    ("TriggerMessage", "connectorId"): (0, None),
    ("UnlockConnector", "connectorId"): (0, None),
}

# Field codes; must match firmware/ocpp_client/validate.py.
STR, INT, NUM, BOOL, DT, URI, ENUM, OBJ, ARR = 1, 2, 3, 4, 5, 6, 7, 8, 9
REQ = 16
_HANDLED = {"type", "properties", "required", "additionalProperties", "enum", "maxLength",
            "format", "items", "multipleOf", "minItems", "$schema", "title", "$id", "definitions"}
_DEFS: dict[str, Any] = {}  # the definitions of the schema being read (security extension)


def _resolve(action: str, path: str, s: dict[str, Any]) -> dict[str, Any]:
    """A node with its "$ref" (to "#/definitions/<name>", as the security schemas use) resolved."""
    ref = s.get("$ref")
    if ref is None:
        return s
    if set(s) != {"$ref"} or not ref.startswith("#/definitions/"):
        raise SchemaError(f"{action} {path}: $ref {ref!r} is not handled")
    target = _DEFS.get(ref[len("#/definitions/"):])
    if target is None:
        raise SchemaError(f"{action} {path}: $ref {ref!r} has no definition")
    return target


class SchemaError(Exception):
    pass


def _schema(action: str) -> dict[str, Any]:
    path = resources.files("ocpp.v16") / "schemas" / f"{action}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def all_actions() -> tuple[str, ...]:
    """Every action the 1.6 schemas name (both directions and the security extension)."""
    folder = resources.files("ocpp.v16") / "schemas"
    names = sorted(p.name[:-5] for p in folder.iterdir()
                   if p.name.endswith(".json") and not p.name.endswith("Response.json"))
    return tuple(names)


def _node(action: str, path: str, s: dict[str, Any]) -> tuple[int, Any]:
    """(code, arg) for one schema node."""
    s = _resolve(action, path, s)
    extra = set(s) - _HANDLED
    if extra:
        raise SchemaError(f"{action} {path}: keywords {sorted(extra)} are not handled")
    t = s.get("type")
    rng = RANGES.get((action, path))
    if rng is not None and t != "integer":
        raise SchemaError(f"{action} {path}: a range for a {t}")
    if t == "string":
        if s.get("additionalProperties", False) is not False:
            raise SchemaError(f"{action} {path}: additionalProperties on a string")
        if "enum" in s:
            vals = s["enum"]
            if not all(isinstance(v, str) for v in vals):
                raise SchemaError(f"{action} {path}: non-string enum")
            return ENUM, tuple(vals)
        fmt = s.get("format")
        if fmt == "date-time":
            return DT, None
        if fmt == "uri":
            return URI, s.get("maxLength", 0)
        if fmt is not None:
            raise SchemaError(f"{action} {path}: format {fmt} is not handled")
        return STR, s.get("maxLength", 0)
    if "enum" in s or "format" in s or "maxLength" in s:
        raise SchemaError(f"{action} {path}: string keywords on a {t}")
    if t == "integer":
        return INT, rng
    if t == "number":
        m = s.get("multipleOf")
        if m is None:
            return NUM, 0
        scale = round(1 / m)
        if abs(scale * m - 1) > 1e-9:
            raise SchemaError(f"{action} {path}: multipleOf {m} is not 1/n")
        return NUM, scale
    if "multipleOf" in s:
        raise SchemaError(f"{action} {path}: multipleOf on a {t}")
    if t == "boolean":
        return BOOL, None
    if t == "object":
        return OBJ, _fields(action, path, s)
    if t == "array":
        code, arg = _node(action, path, s["items"])
        return ARR, (s.get("minItems", 0), (code, arg))
    raise SchemaError(f"{action} {path}: type {t!r} is not handled")


def _fields(action: str, path: str, s: dict[str, Any]) -> tuple[tuple[str, int, Any], ...]:
    if s.get("additionalProperties") is not False:
        raise SchemaError(f"{action} {path or '<root>'}: open objects are not handled")
    required = set(s.get("required", ()))
    props: dict[str, Any] = s.get("properties", {})
    unknown = required - set(props)
    if unknown:
        raise SchemaError(f"{action} {path}: required {sorted(unknown)} without a definition")
    out = []
    for name, sub in props.items():
        code, arg = _node(action, f"{path}.{name}" if path else name, sub)
        out.append((name, code | (REQ if name in required else 0), arg))
    return tuple(out)


def table(actions: tuple[str, ...] = CSMS_TO_CP) -> tuple[tuple[str, Any], ...]:
    rules = []
    for action in actions:
        s = _schema(action)
        _DEFS.clear()
        _DEFS.update(s.get("definitions", {}))
        if s.get("type") != "object":
            raise SchemaError(f"{action}: the payload is not an object")
        rules.append((action, _fields(action, "", s)))
    used = {(a, p) for a, p in RANGES if a in actions}
    seen = set()
    for action, fields in rules:
        seen |= {(action, p) for p in _paths(fields, "")}
    if used - seen:
        raise SchemaError(f"RANGES names fields no schema has: {sorted(used - seen)}")
    return tuple(rules)


def _paths(fields: Any, prefix: str) -> list[str]:
    out = []
    for name, code, arg in fields:
        p = f"{prefix}.{name}" if prefix else name
        out.append(p)
        if code & 15 == OBJ:
            out += _paths(arg, p)
    return out


def _json(v: Any) -> Any:
    return [_json(x) for x in v] if isinstance(v, tuple) else v


_HEADER = [
    "# OCPP 1.6 rules for incoming CALLs: GENERATED by host_tools/borne/gen_rules.py from the",
    "# JSON schemas of the `ocpp` package. Do not edit: run `python -m borne.gen_rules`.",
    "# tests/test_rules.py fails when this file and the schemas disagree.",
    "#",
    "# RULES: one line per action, after a newline: the action's name, a space, and its rules",
    "# as a compact JSON text that validate.py parses only while it checks a payload. A few",
    "# string constants of whole lines, each ending in a newline: with the code in flash they",
    "# take an object each (nested tuples would take far more); from an .mpy file each is one",
    "# block, and one of ~2.8 KB found none in a heap fragmented at boot (the frame checker",
    "# then loaded for every CALL, the first one out of memory). Rules: [[name, code, arg], ...],",
    "# code = kind | 16 if required. Kinds: 1 string (arg: maxLength or 0), 2 integer (arg:",
    "# [min, max] or null), 3 number (arg: n for multipleOf 1/n, or 0), 4 boolean,",
    "# 5 date-time, 6 URI (arg: maxLength or 0), 7 enum string (arg: values), 8 object",
    "# (arg: rules), 9 array (arg: [minItems, [kind, arg] of the items]).",
]


def _names(var: str, names: tuple[str, ...]) -> list[str]:
    lines = [f"{var} = ("]
    for i in range(0, len(names), 6):
        chunk = " ".join(names[i : i + 6])
        lines.append(f"    {' ' + chunk + (' ' if i + 6 >= len(names) else '')!r}")
    lines.append(")")
    return lines


# The longest string constant of RULES (characters; a longer line stands alone).
PART_MAX = 768


def _rules(actions: tuple[str, ...]) -> list[str]:
    lines = ["RULES = ("]
    size = 0
    for action, fields in table(actions):
        text = json.dumps(_json(fields), separators=(",", ":"), ensure_ascii=True)
        line = chr(10) + action + " " + text
        if size and size + len(line) + 1 > PART_MAX:
            lines.append("    '\\n',")
            size = 0
        lines.append(f"    {line!r}")
        size += len(line)
    lines.append("    '\\n',")
    lines.append(")")
    return lines


def render() -> str:
    """rules.py: KNOWN and the core RULES (the security extension's are in rules_ext.py)."""
    lines = [*_HEADER,
             "# KNOWN: every action of OCPP 1.6 (both directions, security extension), "
             "space-separated.",
             "# The security extension's CSMS -> charge point actions are ruled in rules_ext.py.",
             ""]
    lines += _names("KNOWN", all_actions())
    lines += ["", *_rules(CSMS_TO_CP)]
    return "\n".join(lines) + "\n"


def render_ext() -> str:
    """rules_ext.py: the RULES of the security extension's actions."""
    return "\n".join([*_HEADER, "# (The security extension's actions: validate.py imports this "
                      "module for them only.)", "", *_rules(SECURITY_EXT)]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m borne.gen_rules", description=__doc__)
    ap.add_argument("--check", action="store_true", help="only compare with the committed file")
    args = ap.parse_args(argv)
    stale = 0
    for out, text in ((OUT, render()), (OUT_EXT, render_ext())):
        current = out.read_text() if out.exists() else ""
        if args.check:
            if current != text:
                print(f"{out} is stale: run `python -m borne.gen_rules`", file=sys.stderr)
                stale = 1
            else:
                print(f"{out} matches the schemas")
        elif current != text:
            Path(out).write_text(text)
            print(f"wrote {out}")
        else:
            print(f"{out} is up to date")
    return stale


if __name__ == "__main__":
    sys.exit(main())
