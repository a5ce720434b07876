# On-target tests for ocpp_client.jsonstream (the streaming JSON reader over a file) and
# ocpp_client.spooled (a CALL too long for RAM, read from flash): tricky JSON at every buffer
# boundary (escaped quotes and backslashes, brackets inside strings, unicode escapes, blanks,
# nesting), key order, skipping, errors; and the OCPP error codes of a malformed large
# SendLocalList, the same a CALL in RAM gets from validate.py.
import asyncio
import json

from mphelp import write
from ocpp_client import validate
from ocpp_client.jsonstream import Reader
from ocpp_client import spooled

TRICKY = [
    {"idTag": 'q"uote', "idTagInfo": {"status": "Accepted"}},
    {"idTag": "br]}{[ack", "x": ["]", "}", "[{"]},
    {"idTag": "back\\", "s": "\\\\", "t": "\\\"]"},
    "\\",
    '"',
    "ends with a backslash \\",
    {"u": "\u00e9\u20ac \u0000 \t\n", "nested": {"a": [1, [2, [3, {"b": []}]]], "c": {}}},
    [],
    {},
    [[[]], [{}]],
    -12.5e3,
    0,
    True,
    False,
    None,
    "",
    {"long": "L" * 90, "after": "]"},
    [1, 2, 3, 4, 5, 6, 7, 8, 9, [10, 11, 12, 13]],
    {"n": [100, 200, 300, 400], "m": {"k": [1, 2, 3, 4, 5, 6]}},
]


def tricky_text():
    # The same values in hand-written JSON: blanks everywhere, \u escapes, \/ and CRLF.
    return (
        ' \r\n[ {"idTag":"q\\"uote" , "idTagInfo":{ "status" : "Accepted"}},\n'
        '\t{"idTag":"br]}{[ack","x":["]","}","[{"]},'
        '{"idTag":"back\\\\","s":"\\\\\\\\","t":"\\\\\\"]"} ,\n'
        '"\\\\", "\\"", "ends with a backslash \\\\",\n'
        '{"u":"\\u00e9\\u20AC \\u0000 \\t\\n","nested":{"a":[1,[2,[3,{"b":[ ]}]]],"c":{ }}},'
        "[ ] , { } , [[[]],[{}]] , -12.5e3,0 ,true,false , null,\"\",\n"
        '{"long":"' + "L" * 90 + '","after":"\\u005d"},\n'
        "[1, 2, 3, 4, 5, 6, 7, 8, 9, [10, 11, 12, 13]]   ,\n"
        '{"n": [100, 200, 300, 400], "m": {"k": [1, 2, 3, 4, 5, 6]}} ]  \n'
    )


def reader(text, size):
    write("doc.json", text.encode() if isinstance(text, str) else text)
    return Reader(open("doc.json", "rb"), bytearray(size))


def test_items_equal_json_loads_at_every_buffer_boundary():
    text = tricky_text()
    whole = json.loads(text)
    assert whole == TRICKY  # the test's own premise
    for size in list(range(130, 200)) + [256, 1000, 4096]:
        r = reader(text, size)
        got = [json.loads(t) for t in r.items(200)]
        assert got == TRICKY, size
        assert r.end()
        r.f.close()


def test_members_in_any_order_load_and_skip():
    text = ('{ "b" :[1,{"]":"}"}],"a":"x\\"y", "big":{"k":[' + ",".join(['"]]}}"'] * 300)
            + ']},"n":-3 , "z":null}')
    for size in (64, 97, 2048):
        r = reader(text, size)
        seen = {}
        for k in r.members(16):
            if k == "big":
                r.skip()  # ~2 KB: far over the smaller buffers
            else:
                seen[k] = r.load(64)
        assert seen == {"b": [1, {"]": "}"}], "a": 'x"y', "n": -3, "z": None}, size
        assert r.end()


def test_a_value_over_its_limit_or_the_buffer_is_refused():
    r = reader('["' + "x" * 50 + '"]', 200)
    try:
        list(r.items(40))
    except ValueError as e:
        assert "over 40 bytes" in str(e)
    else:
        raise AssertionError("no ValueError")
    r = reader('["' + "x" * 300 + '"]', 64)
    try:
        list(r.items(1000))
    except ValueError as e:
        assert "over 64 bytes" in str(e)
    else:
        raise AssertionError("no ValueError")


def test_broken_structure_raises():
    for text in ('[1 2]', '[1,]', '[1', '[', '{"a" 1}', '{"a":1,}', '{1:2}', '["abc', '[{"a":[}]',
                 '', '   '):
        r = reader(text, 64)
        try:
            c = r.peek()
            if c == 0x7B:
                for _ in r.members(16):
                    r.skip()
            else:
                for _ in r.items(32):
                    pass
        except ValueError:
            continue
        raise AssertionError("accepted %r" % text)


def test_seek_goes_back_to_a_remembered_position():
    r = reader('{"first":1,"list":[10,20,30],"last":"end"}', 24)
    for k in r.members(16):
        if k == "list":
            pos = r.tell()
            assert [json.loads(t) for t in r.items(8)] == [10, 20, 30]
        else:
            r.skip()
    r.seek(pos)
    assert [json.loads(t) for t in r.items(8)] == [10, 20, 30]


def test_a_scalar_at_the_end_of_the_text():
    r = reader("  12345", 64)
    assert r.load(16) == 12345 and r.end()


# -- spooled.read ---------------------------------------------------------------------------

def entry(i, **info):
    d = {"status": "Accepted"}
    d.update(info)
    return {"idTag": "TAG%05d" % i, "idTagInfo": d}


def frame(payload, mid="m-1", action="SendLocalList"):
    return json.dumps([2, mid, action, payload])


async def read(text, size=2048):
    write("call.json", text.encode())
    with open("call.json", "rb") as f:
        p = await spooled.read(f, bytearray(size), "SendLocalList")
        big = p.get("localAuthorizationList")
        if big is not None:
            p["localAuthorizationList"] = list(big)
        return p


async def code_of(text):
    try:
        await read(text)
    except spooled.Bad as e:
        return e.code, e.description
    return None


async def test_key_order_does_not_matter_and_items_come_one_by_one():
    items = [entry(i, parentIdTag="P\"]}", expiryDate="2030-01-01T00:00:00Z") for i in range(50)]
    # the ocpp package's order: updateType after the list
    text = ('[2, "m-1", "SendLocalList", {"listVersion": 4, "localAuthorizationList": '
            + json.dumps(items) + ', "updateType": "Full"}]')
    for size in (180, 2048):
        p = await read(text, size)
        assert p == {"listVersion": 4, "updateType": "Full", "localAuthorizationList": items}
    p = await read(frame({"updateType": "Differential", "listVersion": 9}))
    assert p == {"updateType": "Differential", "listVersion": 9}


async def test_the_list_is_a_generator_reading_the_file_again():
    write("call.json", frame({"listVersion": 1, "updateType": "Full",
                              "localAuthorizationList": [entry(i) for i in range(5)]}).encode())
    with open("call.json", "rb") as f:
        p = await spooled.read(f, None, "SendLocalList")
        g = p["localAuthorizationList"]
        assert not isinstance(g, (list, tuple))
        assert next(g) == entry(0)
        assert [e["idTag"] for e in g] == ["TAG%05d" % i for i in range(1, 5)]


async def test_malformed_large_calls_get_the_codes_a_call_in_ram_gets():
    good = {"listVersion": 2, "updateType": "Full",
            "localAuthorizationList": [entry(i) for i in range(30)]}

    def variant(**kw):
        p = dict(good)
        p.update(kw)
        return frame({k: v for k, v in p.items() if v is not ...})

    bad_items = [
        (entry(0, status="Maybe"), "PropertyConstraintViolation"),
        (entry(0, expiryDate="2030-02-30T00:00:00Z"), "PropertyConstraintViolation"),
        (entry(0, parentIdTag="P" * 21), "PropertyConstraintViolation"),
        ({"idTag": "X" * 21}, "PropertyConstraintViolation"),
        ({"idTag": 5}, "TypeConstraintViolation"),
        ({"idTagInfo": {"status": "Accepted"}}, "OccurenceConstraintViolation"),
        ({"idTag": "A", "idTagInfo": {}}, "OccurenceConstraintViolation"),
        ({"idTag": "A", "colour": "red"}, "FormationViolation"),
        ("TAG", "TypeConstraintViolation"),
    ]
    for item, code in bad_items:
        items = [entry(i) for i in range(30)]
        items[17] = item
        text = variant(localAuthorizationList=items)
        got = await code_of(text)
        want = validate.check("SendLocalList", json.loads(text)[3])
        assert got == want and got[0] == code, (item, got, want)
        assert "localAuthorizationList[17]" in got[1], got
    cases = [
        (variant(updateType="Sometimes"), "PropertyConstraintViolation"),
        (variant(updateType=...), "OccurenceConstraintViolation"),
        (variant(listVersion="3"), "TypeConstraintViolation"),
        (variant(listVersion=...), "OccurenceConstraintViolation"),
        (variant(localAuthorizationList={"idTag": "A"}), "TypeConstraintViolation"),
        (variant(hidden=[1, 2, {"deep": "]"}]), "FormationViolation"),
    ]
    for text, code in cases:
        got = await code_of(text)
        assert got == validate.check("SendLocalList", json.loads(text)[3]), (text[-80:], got)
        assert got[0] == code, got
    # the first problem in rule order wins, as in validate.py: listVersion before the list
    items = [entry(i) for i in range(30)]
    items[3] = {"idTag": 5}
    text = variant(listVersion="x", localAuthorizationList=items)
    assert (await code_of(text))[1].startswith("listVersion")


async def test_broken_frames():
    ok = frame({"listVersion": 1, "updateType": "Full"})
    assert await code_of(ok) is None
    assert (await code_of(ok[:-1] + ', 7]'))[0] == "FormationViolation"
    assert (await code_of('[2, "m-1", "SendLocalList"]')) == (
        "ProtocolError", "CALL must be [2,id,action,{payload}]")
    assert (await code_of('[2, "m-1", "SendLocalList", [1]]'))[0] == "FormationViolation"
    for text in (ok[:-2], ok + " x", ok.replace(":", " ", 1),
                 frame({"listVersion": 1, "updateType": "Full",
                        "localAuthorizationList": [entry(1)]})[:-40]):
        got = await code_of(text)
        assert got[0] == "FormationViolation" and "not valid JSON" in got[1], (text, got)


class FastClock:
    # Each reading 7 ms later than the one before: slices end after a few items.
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        self.t += 7
        return self.t

    def ticks_diff(self, a, b):
        return a - b


async def test_pass_one_lets_other_tasks_run():
    items = [entry(i) for i in range(100)]
    write("call.json", frame({"listVersion": 1, "updateType": "Full",
                              "localAuthorizationList": items}).encode())
    del items
    turns = [0]

    async def other():
        while True:
            turns[0] += 1
            await asyncio.sleep_ms(0)

    t = asyncio.create_task(other())
    real = spooled.time
    spooled.time = FastClock()
    try:
        with open("call.json", "rb") as f:
            await spooled.read(f, None, "SendLocalList")
    finally:
        spooled.time = real
    t.cancel()
    assert turns[0] >= 30, turns
