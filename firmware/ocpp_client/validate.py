# Checks an incoming CALL's payload against the OCPP 1.6 rules (rules.py, generated from the
# JSON schemas) and names the OCPP-J error code of the first problem found:
#   field missing                              -> OccurenceConstraintViolation
#   field of the wrong JSON type               -> TypeConstraintViolation
#   bad enum value, string too long, out of range, bad date-time/URI, too few items,
#   number not a multiple of the schema's step -> PropertyConstraintViolation
#   field the schema does not define           -> FormationViolation (not the action's PDU)
# The walk follows the rule table, never the payload, so a deep or hostile payload costs no more
# than the schema's own depth (at most four levels in OCPP 1.6).
import json

from ocpp_client.rules import RULES, KNOWN

_STR = const(1)
_INT = const(2)
_NUM = const(3)
_BOOL = const(4)
_DT = const(5)
_URI = const(6)
_ENUM = const(7)
_OBJ = const(8)
_ARR = const(9)
_REQ = const(16)
_MAX_DESC = const(200)
_NUM_MAX = const(1e7)  # the largest number field value taken (W)

_OCCURENCE = const("OccurenceConstraintViolation")
_TYPE = const("TypeConstraintViolation")
_PROPERTY = const("PropertyConstraintViolation")
FORMATION = "FormationViolation"


def rules_for(action):
    # The field rules of a CSMS -> charge point action (parsed now, dropped after use), or None.
    # The security extension's are in rules_ext.py, imported only for an action not found here.
    r = _find(RULES, action)
    if r is None and known(action):
        from ocpp_client.rules_ext import RULES as ext

        r = _find(ext, action)
    return r


def _find(table, action):
    # table: strings of "\n<action> <rules JSON>" lines, each ending in "\n" (rules.py)
    if " " in action or "\n" in action:
        return None
    key = "\n" + action + " "
    for part in table:
        i = part.find(key)
        if i >= 0:
            i += len(key)
            return json.loads(part[i:part.find("\n", i)])
    return None


def known(action):
    # An action of OCPP 1.6 (either direction, security extension included).
    return " " not in action and (" " + action + " ") in KNOWN


def syntax(frame):
    # -> None when the frame (str, bytes, bytearray) is JSON as RFC 8259 writes it, else
    # what is wrong. MicroPython's json.loads reads commas and colons as blanks and takes any
    # escape and raw control characters in strings: '{"type":"Hard",}', '[1 2]', '{"a":}' (read
    # as {}) and "\\x41" (read as "x41") parse, and a CALL so broken would be run.
    # Steps by token: a string's text is crossed with find(). Values are json.loads's to check.
    # (rpc.py hands a CALL in the receive buffer over as rpc.inplace() makes it: no copy)
    b = frame.encode() if isinstance(frame, str) else frame
    if not isinstance(b, (bytes, bytearray)):
        b = bytes(b)  # (a memoryview has no find())
    st = bytearray(8)  # the open brackets, st[:d] (a byte each: a deep frame stays small)
    d = 0
    s = 0  # expected: 0 a value, 1 a key, 2 a colon, 3 a comma or a closing bracket
    fresh = False  # just after an opening bracket: it may close at once
    i, n = 0, len(b)
    ctl = n and min(b) < 0x20  # a control byte somewhere: raw in a string, it is not JSON
    while True:
        while i < n and b[i] in b" \t\r\n":
            i += 1
        if i >= n:
            return None if s == 3 and not d else "ends early"
        c = b[i]
        if d and c == st[d - 1] + 2 and (s == 3 or fresh):  # ] closes [, } closes {
            d -= 1
            s, fresh, i = 3, False, i + 1
            continue
        fresh = False
        if s == 3:
            if not d or c != 0x2C:
                return "comma expected at %d" % i
            s, i = 1 if st[d - 1] == 0x7B else 0, i + 1
        elif s == 2:
            if c != 0x3A:
                return "colon expected at %d" % i
            s, i = 0, i + 1
        elif c == 0x22:  # a string: a value, or a key
            j = i + 1
            while True:
                q = b.find(b'"', j)
                if q < 0:
                    return "string not closed"
                k = b.find(b"\\", j, q)
                if k < 0:
                    break
                if b[k + 1] not in b'"\\/bfnrtu':
                    return "bad escape at %d" % k
                j = k + 2
            if ctl and q > i + 1 and min(memoryview(b)[i + 1 : q]) < 0x20:
                return "control character in a string at %d" % i
            s, i = 2 if s == 1 else 3, q + 1
        elif s == 1:
            return "key expected at %d" % i
        elif c == 0x5B or c == 0x7B:
            if d == len(st):
                st.extend(st)
            st[d] = c
            d += 1
            s, fresh, i = 0 if c == 0x5B else 1, True, i + 1
        else:  # a number or a literal: up to what may follow a value
            j = i
            while j < n and b[j] not in b' \t\r\n,:]}"[{':
                j += 1
            if j == i:
                return "value expected at %d" % i
            s, i = 3, j


def check(action, payload, streamed=None):
    # -> None when the payload is valid (or the action has no rules), else (code, description).
    # streamed: {field: (number of items, (code, description) of the first bad one or None)} for
    # a top-level array whose items were checked one by one with check_value() as they streamed
    # past (a CALL too long for RAM, spooled.py); payload[field] is then only a stand-in.
    fields = rules_for(action)
    if fields is None:
        return None
    if not isinstance(payload, dict):
        return FORMATION, "payload of %s is not a JSON object" % action
    return _obj(fields, payload, "", streamed)


def check_value(code, arg, v, path):
    # One value against its rule (an entry of rules_for(); for an array's items, the array's
    # item rule).
    return _value(code & 15, arg, v, path)


def _err(code, path, what):
    d = "%s: %s" % (path or "payload", what)
    return code, d[:_MAX_DESC]


def _obj(fields, obj, path, streamed=None):
    for k in obj:
        for f in fields:
            if f[0] == k:
                break
        else:
            return _err(FORMATION, _join(path, k), "not a field of this message")
    for name, code, arg in fields:
        if name not in obj:
            if code & _REQ:
                return _err(_OCCURENCE, _join(path, name), "required")
            continue
        if streamed and name in streamed:
            n, bad = streamed[name]
            if n < arg[0]:
                return _err(_PROPERTY, name, "needs at least %d item(s)" % arg[0])
            if bad is not None:
                return bad
            continue
        r = _value(code & 15, arg, obj[name], _join(path, name))
        if r is not None:
            return r
    return None


def _join(path, name):
    return path + "." + name if path else name


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _value(kind, arg, v, path):
    if kind == _STR or kind == _ENUM or kind == _DT or kind == _URI:
        if not isinstance(v, str):
            return _err(_TYPE, path, "must be a string")
        if kind == _ENUM:
            if v not in arg:
                return _err(_PROPERTY, path, "%r is not an allowed value" % v[:40])
        elif kind == _DT:
            if not is_datetime(v):
                return _err(_PROPERTY, path, "%r is not an RFC 3339 date-time" % v[:40])
        elif arg and len(v) > arg:
            return _err(_PROPERTY, path, "longer than %d characters" % arg)
        if kind == _URI and not is_uri(v):
            return _err(_PROPERTY, path, "not a URI")
        return None
    if kind == _INT:
        if not _is_int(v):
            return _err(_TYPE, path, "must be an integer")
        if arg is not None:
            lo, hi = arg
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return _err(_PROPERTY, path, "%d is out of range" % v)
        return None
    if kind == _NUM:
        if not (_is_int(v) or isinstance(v, float)):
            return _err(_TYPE, path, "must be a number")
        # Every number OCPP 1.6 sends a charger is a rate or a limit (A or W): never negative, and
        # 10 MW is far past any wallbox. Catches inf (json reads 1e400 as inf) and nan too, which
        # would otherwise overflow the arithmetic below or a handler's.
        if not 0 <= v <= _NUM_MAX:
            return _err(_PROPERTY, path, "%s is out of range (0 to 1e7)" % ("%g" % v)[:24])
        if arg:
            x = v * arg
            if abs(x - round(x)) > 1e-6:
                return _err(_PROPERTY, path, "must be a multiple of 1/%d" % arg)
        return None
    if kind == _BOOL:
        if not isinstance(v, bool):
            return _err(_TYPE, path, "must be true or false")
        return None
    if kind == _OBJ:
        if not isinstance(v, dict):
            return _err(_TYPE, path, "must be an object")
        return _obj(arg, v, path)
    if kind == _ARR:
        if not isinstance(v, list):
            return _err(_TYPE, path, "must be an array")
        if len(v) < arg[0]:
            return _err(_PROPERTY, path, "needs at least %d item(s)" % arg[0])
        ik, ia = arg[1]
        for i in range(len(v)):
            r = _value(ik, ia, v[i], "%s[%d]" % (path, i))
            if r is not None:
                return r
        return None
    return _err(_PROPERTY, path, "no rule")  # a kind this firmware does not know: refuse


def _digits(s, a, b):
    # s[a:b] all ASCII digits (MicroPython's isdigit), as a slice: one-character strings taken
    # from s would each be interned as a qstr for good
    return s[a:b].isdigit()


def is_datetime(s):
    # RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), "t"/"z" allowed in lower
    # case (RFC 3339 5.6), real calendar days, seconds up to 60 (a leap second).
    n = len(s)
    if n < 20 or s[4] != "-" or s[7] != "-" or s[10] not in "Tt" or s[13] != ":" or s[16] != ":":
        return False
    if not (_digits(s, 0, 4) and _digits(s, 5, 7) and _digits(s, 8, 10) and _digits(s, 11, 13)
            and _digits(s, 14, 16) and _digits(s, 17, 19)):
        return False
    y, mo, d = int(s[0:4]), int(s[5:7]), int(s[8:10])
    if not (1 <= mo <= 12 and 1 <= d <= _mdays(y, mo)):
        return False
    if int(s[11:13]) > 23 or int(s[14:16]) > 59 or int(s[17:19]) > 60:
        return False
    i = 19
    if s[i] == ".":
        i += 1
        k = n - i - len(s[i:].lstrip("0123456789"))  # the fraction's digits
        if k == 0:
            return False
        i += k
    z = s[i:]
    if z == "Z" or z == "z":
        return True
    return (len(z) == 6 and z[0] in "+-" and z[3] == ":" and _digits(z, 1, 3) and _digits(z, 4, 6)
            and int(z[1:3]) <= 23 and int(z[4:6]) <= 59)


def _mdays(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def is_uri(s):
    # An absolute URI: a scheme (RFC 3986 3.1) and ":", no spaces or control characters.
    i = s.find(":")
    if i < 1:
        return False
    c = s[0]
    if not ("a" <= c <= "z" or "A" <= c <= "Z"):
        return False
    for c in s[1:i]:
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "+-."):
            return False
    for c in s:
        if c <= " " or c == "\x7f":
            return False
    return True
