# The answer to a CALL that ran out of memory, on a heap too fragmented for one more coroutine
# (issue 12, "Bad input": the agent keeps running and answers).
# heapsize: 128wK
import asyncio
import gc
import json

from mphelp import Logs
from ocpp_client.rpc import Rpc
from ocpp_client.ws import WebSocket, WsClosed
from test_ws import Stream, client_frames, frame


class _Tape:
    # A writer into a preallocated buffer: writing allocates nothing of the heap the test took.
    def __init__(self, n):
        self.buf = bytearray(n)
        self.n = 0

    def write(self, b):
        self.buf[self.n : self.n + len(b)] = b
        self.n += len(b)

    async def drain(self):
        pass


def test_a_call_out_of_memory_is_answered_from_a_heap_with_only_small_holes():
    # A handler runs out of memory on a heap whose free blocks are holes of under ~190 bytes
    # between held ones (a long-run charger's fragmented heap; the low-memory system test's
    # squeeze met it): the answer still goes out, on the same link. Sending it through a
    # coroutine needs a block for the coroutine's frame (ws._send_frame's: 272 bytes on this
    # port), none of which is there: rpc.py answers without one (ws.send_now).
    held = [None, None, None]

    def fill(n):
        node = None
        try:
            while True:
                node = [node, bytearray(n)]
        except MemoryError:
            pass
        return node

    async def boom(p):
        held[0] = fill(256)  # every larger block taken, then every smaller one
        held[1] = node = fill(64)
        k = 0
        while node is not None:  # every 4th small block let go: holes between held ones
            if k % 4 == 0:
                node[1] = None
            node = node[0]
            k += 1
        gc.collect()
        held[2] = fill(160)  # and any larger hole that was left
        raise MemoryError("no memory")

    call = '[2,"8233f0d0-90fb-480c-8f86-37f4f0b11495","SendLocalList",' \
        '{"listVersion":2,"updateType":"Full"}]'
    tape = _Tape(512)
    ws = WebSocket(Stream(frame(1, call), chunk=4096), tape, 4096)
    rpc = Rpc({"SendLocalList": boom})
    with Logs():
        why = asyncio.run(rpc.serve(ws))
    held[0] = held[1] = held[2] = None
    gc.collect()
    sent = [json.loads(p) for _, _, p in client_frames(tape.buf[: tape.n])]
    assert sent == [[3, "8233f0d0-90fb-480c-8f86-37f4f0b11495", {"status": "Failed"}]], \
        (sent, why)
    assert isinstance(why, WsClosed), why  # the link ended at the stream's end, nothing else
