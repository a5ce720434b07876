# Free heap (bytes, after a collection) claim mode needs to open, loaded for the question and
# dropped after: hotspot/claim.py checks it as it opens, and app.py before it even loads claim
# mode on a claimed charger (a press that would be refused loaded ~10 KB for nothing, and held
# them while it waited: the room a session's features need, left in pieces).
# What it holds once open, and a request's working room, measured on the unix port (64-bit
# objects) and computed for the runtime (need()). Its data: the servers' module data, one 2 KB
# head buffer, the claim check's TLS block (hotspot/claim.py; ~18 KB), and a request (another client's head buffer, a body of up to 6 KB read in 512-byte
# pieces and what it parses into, its answer: ~10 KB): _NEED_DATA. Where the bytecode loads into
# the heap (.mpy or .py files; not a ROMFS image or frozen modules, which run it in place) the
# servers' bytecode too (~12 KB) and a claimed charger's claim.py and login guard, loaded by the
# first press of the setup button (~14 KB): _NEED_CODE; tests/test_low_memory.py measures what
# the open hotspot holds from the .mpy build against the figure the refusal logs (~48 KB of 60).
# A 32-bit port (the ESP32) needs about half the data (objects of half the size) and the same
# bytecode, an estimate until measured on the charger. Below it, opening is refused with a
# logged reason and tried again every 2 s until memory frees (hotspot/claim.py).
_NEED_DATA = const(32768)
_NEED_CODE = const(28672)
# On a claimed charger, room left beside the open hotspot for charging's own features loaded on
# use: a tap's authorization, a SendLocalList's update (ocpp_client/authorization.py ROOM, 8 KB)
# with the fragments they meet. Without it a press deferred for memory opened the hotspot the
# moment a session ended and the next list update was refused for the room it took.
_CHARGING_ROOM = const(12288)


def need(opts):
    # -> (to open on an unclaimed charger, to open beside charging on a claimed one). opts: the
    # board's hotspot_options() ("hotspot_need_free": a test's figure for the first).
    import sys

    from supervisor import code_in_heap

    n = opts.get("hotspot_need_free")
    if not n:
        n = _NEED_DATA if sys.maxsize > 1 << 32 else _NEED_DATA // 2  # (32-bit: half the data)
        if code_in_heap():
            n += _NEED_CODE
    return n, n + _CHARGING_ROOM
