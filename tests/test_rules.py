"""The firmware's compact OCPP 1.6 rule table cannot drift from the JSON schemas.

1. The committed `firmware/ocpp_client/rules.py` is exactly what `borne.gen_rules` makes from the
   schemas the `ocpp` package ships.
2. Differential check: for every CSMS -> charge point action, a valid payload and one mutation per
   field and per kind of fault (missing, wrong type, null, bad enum, too long, bad date-time or
   URI, not a multiple, too few items, unknown field, out of range) are judged by jsonschema
   (Draft 4, strict formats) and by the firmware's validator running in the unix port; the
   verdicts and the OCPP-J error codes must agree.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
from borne import gen_rules, paths
from borne.ocpp_schema import FORMATS, schema

OCC = "OccurenceConstraintViolation"
TYP = "TypeConstraintViolation"
PROP = "PropertyConstraintViolation"
FORM = "FormationViolation"
_PROPERTY_KEYWORDS = {"enum", "maxLength", "format", "multipleOf", "minItems"}


def test_committed_rule_table_matches_the_schemas() -> None:
    assert gen_rules.OUT.read_text() == gen_rules.render(), (
        "firmware/ocpp_client/rules.py is stale: run `.venv/bin/python -m borne.gen_rules`"
    )
    assert gen_rules.OUT_EXT.read_text() == gen_rules.render_ext(), (
        "firmware/ocpp_client/rules_ext.py is stale: run `.venv/bin/python -m borne.gen_rules`"
    )


def test_generator_refuses_what_it_does_not_understand() -> None:
    import pytest

    with pytest.raises(gen_rules.SchemaError, match="not handled"):
        gen_rules._node("X", "f", {"type": "string", "pattern": "^a"})
    with pytest.raises(gen_rules.SchemaError, match="open objects"):
        gen_rules._fields("X", "", {"type": "object", "properties": {}})


def _example(s: dict[str, Any]) -> Any:
    t = s.get("type")
    if t == "string":
        if "enum" in s:
            return s["enum"][-1]
        samples = {"date-time": "2026-03-04T05:06:07Z", "uri": "ftp://h/x"}
        return samples.get(s.get("format", ""), "s")
    if t == "integer":
        return 1
    if t == "number":
        return 2.5
    if t == "boolean":
        return True
    if t == "array":
        return [_example(s["items"])]
    if t == "object":
        return {k: _example(v) for k, v in s.get("properties", {}).items()}
    raise AssertionError(t)


Node = tuple[tuple[Any, ...], dict[str, Any], dict[str, Any] | None]


def _nodes(s: dict[str, Any], path: tuple[Any, ...] = ()) -> list[Node]:
    """(path in the example payload, schema node, parent object schema) for every field."""
    out: list[Node] = []
    if s.get("type") == "object":
        for k, v in s.get("properties", {}).items():
            out.append(((*path, k), v, s))
            out += _nodes(v, (*path, k))
    elif s.get("type") == "array":
        out += _nodes(s["items"], (*path, 0))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    d = copy.deepcopy(doc)
    cur = d
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return d


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    d = copy.deepcopy(doc)
    cur = d
    for p in path[:-1]:
        cur = cur[p]
    del cur[path[-1]]
    return d


def _bad_values(s: dict[str, Any]) -> list[Any]:
    t = s.get("type")
    wrong = {"string": [5, True, ["s"]], "integer": ["1", 1.5, False, {}], "number": ["1.5", True],
             "boolean": ["true", 1], "array": [{}, "x"], "object": [[], "x", 3]}[t]
    vals = [*wrong, None]
    if "enum" in s:
        vals += ["Bogus", s["enum"][0].lower() + "x", ""]
    if "maxLength" in s:
        vals += ["x" * (s["maxLength"] + 1), "é" * s["maxLength"]]
    if s.get("format") == "date-time":
        vals += ["2026-03-04 05:06:07Z", "2026-03-04T05:06:07", "2026-13-04T05:06:07Z",
                 "2026-03-04T05:06:07.123+01:00", "yesterday"]
    if s.get("format") == "uri":
        vals += ["no-scheme", "http://ok/", "1x:y"]
    if "multipleOf" in s:
        vals += [1.55, 16.1, 7]
    if t == "array" and s.get("minItems"):
        vals += [[]]
    if t == "integer":
        vals += [-1, 0, 2**31 - 1]
    return vals


def _expected(action: str, path: tuple[Any, ...], payload: Any) -> str | None:
    # As the frame checker does: numbers as Decimal, like the schemas (multipleOf 0.1).
    as_read = json.loads(json.dumps(payload), parse_float=Decimal)
    errs = list(jsonschema.Draft4Validator(schema(action, False), format_checker=FORMATS)
                .iter_errors(as_read))
    kinds = {e.validator for e in errs}
    if "additionalProperties" in kinds:
        return FORM
    if "required" in kinds:
        return OCC
    if "type" in kinds:
        return TYP
    if kinds & _PROPERTY_KEYWORDS:
        return PROP
    assert not kinds, kinds
    dotted = ".".join(str(p) for p in path if not isinstance(p, int))
    rng = gen_rules.RANGES.get((action, dotted))
    if rng is not None:
        v: Any = payload
        for p in path:
            v = v[p]
        lo, hi = rng
        if isinstance(v, int) and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            return PROP
    return None


def _inline(s: Any, defs: dict[str, Any]) -> Any:
    """The schema with its "#/definitions/..." references (security extension) replaced."""
    if isinstance(s, dict):
        if "$ref" in s:
            return _inline(defs[s["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in s.items() if k != "definitions"}
    if isinstance(s, list):
        return [_inline(v, defs) for v in s]
    return s


def _cases() -> list[tuple[str, Any, str | None]]:
    cases: list[tuple[str, Any, str | None]] = []
    for action in gen_rules.CSMS_TO_CP + gen_rules.SECURITY_EXT:
        raw = schema(action, False)
        s = _inline(raw, raw.get("definitions", {}))
        good = _example(s)
        cases.append((action, good, None))
        cases.append((action, {}, _expected(action, (), {})))
        cases.append((action, {**good, "zz": 1}, FORM))
        for path, node, parent in _nodes(s):
            if parent is not None and path[-1] in parent.get("required", ()):
                cases.append((action, _delete(good, path), OCC))
            else:
                cases.append((action, _delete(good, path), None))
            if node.get("type") == "object":
                cases.append((action, _set(good, (*path, "zz"), 1), FORM))
            for v in _bad_values(node):
                p = _set(good, path, v)
                cases.append((action, p, _expected(action, path, p)))
    return cases


_SCRIPT = """
import json, sys
from ocpp_client import validate
out = []
for action, payload in json.load(open(sys.argv[1])):
    r = validate.check(action, payload)
    out.append(None if r is None else r[0])
print(json.dumps(out))
"""


def test_firmware_validator_agrees_with_jsonschema(tmp_path: Path) -> None:
    cases = _cases()
    assert len(cases) > 400
    assert {w for _, _, w in cases} == {None, OCC, TYP, PROP, FORM}
    (tmp_path / "cases.json").write_text(json.dumps([[a, p] for a, p, _ in cases]))
    (tmp_path / "run.py").write_text(_SCRIPT)
    env = dict(os.environ, MICROPYPATH=paths.micropypath())
    proc = subprocess.run(
        [paths.micropython(), str(tmp_path / "run.py"), str(tmp_path / "cases.json")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    got = json.loads(proc.stdout)
    wrong = [f"{a} {json.dumps(p)[:160]}: firmware {g}, schemas say {w}"
             for (a, p, w), g in zip(cases, got, strict=True) if g != w]
    assert not wrong, f"{len(wrong)} of {len(cases)} disagree:\n" + "\n".join(wrong[:30])
