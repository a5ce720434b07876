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


class Tape:
    # A writer into a preallocated buffer: writing allocates nothing of the heap a test took.
    def __init__(self, n):
        self.buf = bytearray(n)
        self.n = 0

    def write(self, b):
        self.buf[self.n : self.n + len(b)] = b
        self.n += len(b)

    async def drain(self):
        pass


class _Tape(Tape):
    # ... and gives that heap back (what comes after the answer is not under test).
    def write(self, b):
        super().write(b)
        _HELD[0] = _HELD[1] = _HELD[2] = None  # memory given back once the answer is out


_HELD = [None, None, None]


def _fill(n):
    node = None
    try:
        while True:
            node = [node, bytearray(n)]
    except MemoryError:
        pass
    return node


def _fragment():
    # The heap left with holes of under ~190 bytes between held blocks (a long-run charger's
    # fragmented heap; the low-memory system test's squeeze meets it): every larger block
    # taken, then every smaller one; every 4th small one let go; any larger hole left taken.
    _HELD[0] = _fill(256)
    _HELD[1] = node = _fill(64)
    k = 0
    while node is not None:
        if k % 4 == 0:
            node[1] = None
        node = node[0]
        k += 1
    gc.collect()
    _HELD[2] = _fill(160)


def _release():
    _HELD[0] = _HELD[1] = _HELD[2] = None
    gc.collect()


_ID = "8233f0d0-90fb-480c-8f86-37f4f0b11495"
_CALL = '[2,"%s","SendLocalList",{"listVersion":2,"updateType":"Full"}]' % _ID


def _serve(handler, before=None):
    # One SendLocalList CALL through a WebSocket whose stream then ends; the handler runs out
    # of memory. -> (the frames the charger wrote, why serve ended)
    tape = _Tape(512)
    ws = WebSocket(Stream(frame(1, _CALL), chunk=4096), tape, 4096)
    rpc = Rpc({"SendLocalList": lambda p: handler(ws)})
    with Logs():
        why = asyncio.run(rpc.serve(ws))
    _release()
    return [json.loads(p) for _, _, p in client_frames(tape.buf[: tape.n])], why


def test_a_call_out_of_memory_is_answered_from_a_heap_with_only_small_holes():
    # A handler runs out of memory on a fragmented heap: the answer still goes out, on the
    # same link. Sending it through a coroutine needs a block for the coroutine's frame
    # (ws._send_frame's: 272 bytes on this port), none of which is there: rpc.py answers
    # without one (ws.send_now).
    async def boom(ws):
        _fragment()
        raise MemoryError("no memory")

    sent, why = _serve(boom)
    assert sent == [[3, _ID, {"status": "Failed"}]], (sent, why)
    assert isinstance(why, WsClosed), why  # the link ended at the stream's end, nothing else


def test_the_answer_out_of_memory_waits_for_a_frame_being_written():
    # The same while another frame holds the writer's turn (a MeterValues going out): the
    # answer follows it once it is written, with still no block for a coroutine.
    async def give_later(ws):
        await asyncio.sleep_ms(200)
        ws.writing.give()

    async def boom(ws):
        assert await ws.writing.take()
        asyncio.create_task(give_later(ws))
        _fragment()
        raise MemoryError("no memory")

    sent, why = _serve(boom)
    assert sent == [[3, _ID, {"status": "Failed"}]], (sent, why)
    assert isinstance(why, WsClosed), why
