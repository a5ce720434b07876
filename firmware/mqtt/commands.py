# The owner's commands on <base>/set: one JSON object, e.g.
#   {"pause": true}   {"current_limit": 10}   {"current_limit": null}   {"free_charging": false}
# with an optional "id" (a string up to 32 characters) echoed in the answer on <base>/result:
#   {"id": ..., "ok": true} or {"id": ..., "ok": false, "error": "..."}.
# Off unless the installation enables them (mqtt_controls). They go through the connector's
# owner controls only (evse/connrare.py: set_owner_pause, set_owner_limit, set_free_charging,
# loaded for the call), which can lower the offer or start a free session but never close the
# relay by themselves: the relay invariants and the smart-charging limit hold as for OCPP. Each
# accepted command goes to the event log. A burst is cut by a token bucket (10 at once, then 4
# a second), so a flood costs neither the loop nor the flash (one event-log line per command).
import json
import time

import log

_TAG = "mqtt"
DOC = "owner_controls"
_FIELDS = ("id", "pause", "current_limit", "free_charging")
_MAX_PAYLOAD = const(256)
_BUCKET = const(10)
_REFILL_MS = const(250)


def _owner(name, c, *args):
    # One of the connector's owner controls (evse/connrare.py), loaded for the call.
    from supervisor import rare

    return rare("evse.connrare", name, c, *args)


class Bad(Exception):
    pass


def parse(payload, max_a):
    # -> (request id or None, {field: value}) checked; raises Bad(message) (never echoing values)
    if len(payload) > _MAX_PAYLOAD:
        raise Bad("command too long (at most %d bytes)" % _MAX_PAYLOAD)
    try:
        d = json.loads(payload)
    except (ValueError, UnicodeError):
        raise Bad("not valid JSON")
    if not isinstance(d, dict):
        raise Bad("the command must be a JSON object")
    rid = d.get("id")
    if rid is not None and (not isinstance(rid, str) or len(rid) > 32):
        raise Bad("id must be a string of up to 32 characters")
    for k in d:
        if k not in _FIELDS:
            raise Bad("unknown field %s" % (k if len(k) <= 32 and k.isalpha() else "(name hidden)"))
    cmd = {}
    for k in ("pause", "free_charging"):
        if k in d:
            if not isinstance(d[k], bool):
                raise Bad("%s must be true or false" % k)
            cmd[k] = d[k]
    if "current_limit" in d:
        a = d["current_limit"]
        if a is not None:
            if isinstance(a, bool) or not isinstance(a, (int, float)) or a != a:
                raise Bad("current_limit must be a number of amps or null")
            if not 6 <= a <= max_a:
                raise Bad("current_limit must be from 6 to %d A" % max_a)
        cmd["current_limit"] = a
    if not cmd:
        raise Bad("nothing to do: give pause, current_limit or free_charging")
    return rid, cmd


class Commands:
    def __init__(self, connector, events, store, enabled, max_a_fn):
        self.connector = connector
        self.store = store
        self.events = events
        self.enabled = enabled
        self.max_a = max_a_fn  # the installer's maximum, read when a command comes
        self._tokens = _BUCKET
        self._refill = time.ticks_ms()
        self.flooded = 0  # commands dropped since the last log line about it

    def _take(self):
        now = time.ticks_ms()
        k = time.ticks_diff(now, self._refill) // _REFILL_MS
        if k > 0:
            self._tokens = min(_BUCKET, self._tokens + k)
            self._refill = time.ticks_add(self._refill, k * _REFILL_MS)
        if self._tokens <= 0:
            return False
        self._tokens -= 1
        return True

    def handle(self, payload):
        # -> the answer (a dict) to publish on the result topic, or None (flood: dropped).
        if not self._take():
            self.flooded += 1
            if self.flooded == 1:
                log.warn(_TAG, "command flood: commands dropped until the rate falls")
            return None
        if self.flooded:
            log.warn(_TAG, "command flood over: %d commands were dropped", self.flooded)
            self.flooded = 0
        rid = None
        try:
            if not self.enabled:
                raise Bad("controls are off (installation setting mqtt_controls)")
            rid, cmd = parse(payload, self.max_a())
            self._apply(cmd)
        except Bad as e:
            log.warn(_TAG, "command refused: %s", e)
            return {"id": rid, "ok": False, "error": str(e)}
        except Exception as e:  # a bug must not cost the connection or the loop
            log.exc(_TAG, "command", e)
            return {"id": rid, "ok": False, "error": "internal error"}
        return {"id": rid, "ok": True}

    def _apply(self, cmd):
        c = self.connector
        if "pause" in cmd or "current_limit" in cmd:
            # On flash first (restore() reads it at boot), then in force: the flash full or
            # failing changes nothing, and a power cut after the answer or the log's "done"
            # keeps it (parse() checked the limit against the bound the connector checks).
            self.store.save(DOC, {"paused": cmd.get("pause", c.owner_paused),
                                  "limit": cmd.get("current_limit", c.owner_limit_a)})
        if "pause" in cmd:
            _owner("set_owner_pause", c, cmd["pause"])
        if "current_limit" in cmd:
            try:
                _owner("set_owner_limit", c, cmd["current_limit"])
            except ValueError as e:
                raise Bad(str(e))
        if "free_charging" in cmd:
            st = _owner("set_free_charging", c, cmd["free_charging"])
            if st != "Accepted":
                raise Bad("free charging could not be set (%s)" % st)
        log.info(_TAG, "command done: %s", ", ".join(sorted(cmd)))
        self.events.add("mqtt_command", **cmd)

    def restore(self):
        # At boot: the owner's pause and limit survive a reboot, while the controls are on.
        d = self.store.load(DOC, {"paused": False, "limit": None})
        if not self.enabled:
            if d["paused"] or d["limit"] is not None:
                self.store.remove(DOC)
            return
        c = self.connector
        if d["paused"]:
            _owner("set_owner_pause", c, True)
        if d["limit"] is not None:
            try:
                _owner("set_owner_limit", c, d["limit"])
            except ValueError:
                pass  # the installer lowered the maximum since: the limit no longer applies
