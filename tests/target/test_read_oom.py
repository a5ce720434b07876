# Out of memory while reading a frame (issue 12): a MemoryError before any byte of the next
# message was taken from the socket costs nothing (read again once memory is back, and the
# message is answered on the same link); one after part of a frame was taken ends the link
# (the stream is out of step), and the log says so.
# heapsize: 128wK
import asyncio
import gc
import json

from mphelp import Logs
from ocpp_client.rpc import Rpc
from test_oom_answer import Tape, _fragment, _release
from test_ws import Stream, client_frames, frame

_CALL1 = '[2,"c-1","Reset",{"type":"Hard"}]'
_CALL2 = '[2,"c-2","Reset",{"type":"Soft"}]'


class _OomStream(Stream):
    # MemoryError at the n-th read (asyncio's readinto allocates its coroutine on each read).
    def __init__(self, data, n):
        super().__init__(data, chunk=4096)
        self.oom_at = n

    async def readinto(self, buf):
        if self.reads + 1 == self.oom_at:
            self.reads += 1
            raise MemoryError("injected")
        return await super().readinto(buf)


async def _reset(p):
    return {"status": "Accepted"}


def _serve(ws, handlers, tape=None):
    tape = tape or Tape(1024)
    ws.w = tape
    rpc = Rpc(handlers)
    with Logs() as logs:
        why = asyncio.run(rpc.serve(ws))
    _release()
    return [json.loads(p) for _, op, p in client_frames(tape.buf[: tape.n]) if op == 1], why, logs


def test_a_read_out_of_memory_on_a_squeezed_heap_waits_for_memory_and_keeps_the_link():
    # As the next frame is to be read, the heap is at its peak: left with holes under ~190
    # bytes (another task's), none for the read's coroutine frames (recv_msg's: 272 bytes on
    # this port). The link stays, and once memory is back the next CALL is read and answered.
    # (It once ended the link: "link lost: MemoryError memory allocation failed, allocating
    # 272 bytes".)
    from ocpp_client.ws import WebSocket, WsClosed

    async def give_back():
        await asyncio.sleep_ms(300)
        _release()

    class Squeezed(WebSocket):
        reads = 0

        def recv_msg(self):
            self.reads += 1
            if self.reads == 2:  # the second message
                asyncio.create_task(give_back())
                _fragment()
            return WebSocket.recv_msg(self)  # (its coroutine made here: the 272 bytes)

    ws = Squeezed(Stream(frame(1, _CALL1) + frame(1, _CALL2), chunk=4096), None, 4096)
    sent, why, logs = _serve(ws, {"Reset": _reset})
    ok = {"status": "Accepted"}
    assert sent == [[3, "c-1", ok], [3, "c-2", ok]], (sent, why)
    assert isinstance(why, WsClosed), why  # the link ended at the stream's end, nothing else


def test_a_read_out_of_memory_before_the_next_message_is_retried():
    # Reads: 1-2 the first frame (head, payload), 3 the second frame's head: out of memory
    # before any byte of it was taken.
    from ocpp_client.ws import WebSocket, WsClosed

    s = _OomStream(frame(1, _CALL2) + frame(9, b"hi") + frame(1, _CALL2.replace("c-2", "c-3")), 3)
    sent, why, logs = _serve(WebSocket(s, None, 4096), {"Reset": _reset})
    ok = {"status": "Accepted"}
    assert [m for m in sent if m[0] == 3] == [[3, "c-2", ok], [3, "c-3", ok]], (sent, why)
    assert isinstance(why, WsClosed), why
    # and after a ping between messages (reads 3-4), the next head's read (5)
    s = _OomStream(frame(1, _CALL2) + frame(9, b"hi") + frame(1, _CALL2.replace("c-2", "c-3")), 5)
    sent, why, logs = _serve(WebSocket(s, None, 4096), {"Reset": _reset})
    assert [m for m in sent if m[0] == 3] == [[3, "c-2", ok], [3, "c-3", ok]], (sent, why)
    assert isinstance(why, WsClosed), why


def test_a_read_out_of_memory_mid_frame_inside_the_stream_read_is_retried():
    # Read 3 takes the second frame's head, read 4 (its payload) runs out of memory in the
    # stream's read, before it took any byte: read again, the frame is not lost.
    from ocpp_client.ws import WebSocket, WsClosed

    s = _OomStream(frame(1, _CALL2) + frame(1, _CALL2.replace("c-2", "c-3")), 4)
    sent, why, logs = _serve(WebSocket(s, None, 4096), {"Reset": _reset})
    ok = {"status": "Accepted"}
    assert sent == [[3, "c-2", ok], [3, "c-3", ok]], (sent, why)
    assert isinstance(why, WsClosed), why


def test_a_read_out_of_memory_mid_frame_ends_the_link_and_says_so():
    # The second frame's head taken, no memory for the coroutine that reads its payload: the
    # stream is out of step, the link ends with a clear line (not a retry that would misread).
    from ocpp_client.ws import WebSocket

    class NoFrame(WebSocket):
        fills = 0

        def _fill(self, mv):
            self.fills += 1
            if self.fills == 4:  # 1-2: the first frame, 3: the second's head
                raise MemoryError("injected")
            return WebSocket._fill(self, mv)

    s = Stream(frame(1, _CALL2) + frame(1, _CALL2.replace("c-2", "c-3")), chunk=4096)
    sent, why, logs = _serve(NoFrame(s, None, 4096), {"Reset": _reset})
    assert sent == [[3, "c-2", {"status": "Accepted"}]], sent
    assert isinstance(why, MemoryError), why
    assert logs.warned("out of memory mid-frame", "out of step"), logs.lines
    gc.collect()
