# WebSocket/RPC benchmark run INSIDE MicroPython (the unix port): `micropython mp_ws.py`, with
# MICROPYPATH = the firmware. The hot paths timed with ticks_us; prints one "key value" line per
# figure. Not imported by CPython: borne.bench (ws-frames) runs it.
import asyncio
import json
import time

from ocpp_client import validate
from ocpp_client import ws as wsmod


def per(fn, n):
    t = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t) / n

buf = bytearray(16384)
key = b"\x12\x34\x56\x78"
us = per(lambda: wsmod.apply_mask(buf, key), 200)
print("mask_viper_MBps", len(buf) / us)

def py_mask(b, k):
    for i in range(len(b)):
        b[i] ^= k[i & 3]
small = bytearray(1024)
us = per(lambda: py_mask(small, key), 20)
print("mask_python_MBps", len(small) / us)

def frame(op, payload, fin=True):
    n = len(payload)
    b0 = (0x80 if fin else 0) | op
    h = bytes([b0, n]) if n < 126 else bytes([b0, 126, n >> 8, n & 255])
    return h + payload

class Stream:
    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0
    async def readinto(self, b):
        n = min(len(b), len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n
    def write(self, b): pass
    async def drain(self): pass

periods = [{"startPeriod": t, "limit": a} for t, a in ((0, 16.0), (3600, 10.0), (7200, 32.0))]
profile = {"chargingProfileId": 7, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
           "chargingProfileKind": "Absolute",
           "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": periods}}
call = json.dumps([2, "1a2b3c4d-17", "SetChargingProfile",
                   {"connectorId": 1, "csChargingProfiles": profile}]).encode()
N = 500

async def main():
    s = Stream(frame(1, call) * N)
    ws = wsmod.WebSocket(s, s, 16384)
    t = time.ticks_us()
    for _ in range(N):
        await ws.recv_msg()
    print("parse_frame_us", time.ticks_diff(time.ticks_us(), t) / N)
    third = len(call) // 3
    one = (frame(1, call[:third], False) + frame(9, b"p")
           + frame(0, call[third:2 * third], False) + frame(0, call[2 * third:]))
    s = Stream(one * N)
    ws = wsmod.WebSocket(s, s, 16384)
    t = time.ticks_us()
    for _ in range(N):
        await ws.recv_msg()
    print("parse_fragmented_us", time.ticks_diff(time.ticks_us(), t) / N)
    text = call.decode()
    t = time.ticks_us()
    for _ in range(N):
        await ws.send(text)
    print("send_frame_us", time.ticks_diff(time.ticks_us(), t) / N)

asyncio.run(main())
msg = json.loads(call)
print("json_loads_us", per(lambda: json.loads(call), N))
print("validate_us", per(lambda: validate.check("SetChargingProfile", msg[3]), N))
print("call_bytes", len(call))
