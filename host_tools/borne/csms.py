"""A CSMS built on the `ocpp` package (mobilityhouse) over `websockets`.

Used three ways: embedded in `borne sim` as the development CSMS that accepts the charger,
standalone as `borne csms`, and in tests, where it records every frame, checks each frame the
charger sends against the OCPP 1.6 schemas (date-times included), and lets a test wait for a
message or change how the CSMS answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    DataTransferStatus,
    GenericStatus,
    RegistrationStatus,
)
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from borne.ocpp_schema import FrameChecker

log = logging.getLogger("borne.csms")

Responder = Callable[[dict[str, Any]], Any]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{datetime.now(UTC).microsecond // 1000:03d}Z"
    )


@dataclass
class Frame:
    """One frame on the wire, as the CSMS saw it."""

    cp_id: str
    direction: str  # "in" (charge point -> CSMS) or "out"
    raw: str
    msg: Any
    t: float = field(default_factory=time.monotonic)

    @property
    def action(self) -> str | None:
        return self.msg[2] if self.is_call else None

    @property
    def is_call(self) -> bool:
        return isinstance(self.msg, list) and len(self.msg) == 4 and self.msg[0] == 2

    @property
    def payload(self) -> Any:
        if not isinstance(self.msg, list):
            return None
        return self.msg[3] if self.is_call else self.msg[2] if len(self.msg) > 2 else None


class _Recorder:
    """Wraps a websockets connection: records frames and schema-checks what the charger sends."""

    def __init__(self, csms: Csms, conn: ServerConnection, cp_id: str) -> None:
        self.csms = csms
        self.conn = conn
        self.cp_id = cp_id
        self.checker = FrameChecker()
        self.current_id: str | None = None  # the message id of the CALL being handled

    async def recv(self) -> str:
        while True:
            raw = await self.conn.recv()
            text = raw if isinstance(raw, str) else raw.decode(errors="replace")
            problems = self.checker.incoming(raw)
            for p in problems:
                log.error("%s sent an invalid frame: %s", self.cp_id, p)
            self.csms.violations += [f"{self.cp_id}: {p} (frame {text[:120]!r})" for p in problems]
            frame = Frame(self.cp_id, "in", text, _loads(text))
            self.csms._record(frame)
            action = frame.action
            if action and await self._repeat(frame):
                continue
            self.current_id = frame.msg[1] if action else None
            raw_result = self.csms.raw_results.get(action) if action else None
            if raw_result is not None:  # a CSMS whose encoder writes what `ocpp` never would
                await self.send(f'[3,"{frame.msg[1]}",{raw_result}]')
                continue
            if action and self.csms.unanswered.get(action, 0) > 0:
                self.csms.unanswered[action] -= 1  # a CSMS that never answers this one
                continue
            stall = self.csms.stalled.pop(action, 0) if action else 0
            if stall:
                await asyncio.sleep(stall)  # a slow backend: this CALL and all behind it wait
                answer = self.csms.answered.get((self.cp_id, frame.msg[1]))
                if answer is not None:
                    # Answered meanwhile, as a repeat on a newer link (the charger reconnected
                    # and sent it again): that answer is the one to this message id; handling it
                    # again would give one CALL a second answer (a StartTransaction refused
                    # with a CALLERROR booked after all).
                    await self.send(answer)
                    continue
            return text

    async def _repeat(self, frame: Frame) -> bool:
        """A CALL whose message id this CSMS has seen from this charge point (OCPP-J ids are
        unique per sender; a repeat after a reconnect or a power cut keeps its id): recognised,
        answered as the first time, never handled twice. A repeat must be the first frame byte
        for byte. True when it was one."""
        key = (self.cp_id, frame.msg[1])
        first = self.csms.first_frames.get(key)
        if first is None:
            self.csms.first_frames[key] = frame.raw
            return False
        self.csms.repeats.append(frame)
        if first != frame.raw:
            self.csms.violations.append(
                f"{self.cp_id}: repeat of message id {frame.msg[1]} differs from the first: "
                f"{first} / {frame.raw}")
        answer = self.csms.answered.get(key)
        if answer is not None:
            await self.send(answer)
            return True
        return False  # the first never got its answer (the link died before it): handle it

    async def send(self, raw: str) -> None:
        self.checker.outgoing(raw)
        frame = Frame(self.cp_id, "out", raw, _loads(raw))
        self.csms._record(frame)
        m = frame.msg
        if isinstance(m, list) and len(m) > 1 and m[0] in (3, 4) and isinstance(m[1], str):
            # The first answer stands: a CALL stalled on a link that died meanwhile may be
            # answered again there after its repeat was answered on the new link.
            self.csms.answered.setdefault((self.cp_id, m[1]), raw)
            # An answer the charger hung up before: the frames it sent before closing are
            # still to be read (a Reset.conf behind a stalled Authorize), not dropped with it.
            with contextlib.suppress(ConnectionClosed):
                await self.conn.send(raw)
            return
        await self.conn.send(raw)


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


class CentralChargePoint(ChargePoint):
    """The CSMS's view of one charge point. Each answer can be replaced by `Csms.respond`."""

    csms: Csms

    def _answer(self, action: str, payload: dict[str, Any], default: Any) -> Any:
        fn = self.csms.responders.get(action)
        return fn(payload) if fn else default

    @on(Action.boot_notification)
    def on_boot(self, **kw: Any) -> Any:
        return self._answer(
            "BootNotification",
            kw,
            call_result.BootNotification(
                current_time=now_iso(),
                interval=self.csms.heartbeat_interval,
                status=RegistrationStatus.accepted,
            ),
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw: Any) -> Any:
        return self._answer("Heartbeat", kw, call_result.Heartbeat(current_time=now_iso()))

    @on(Action.status_notification)
    def on_status(self, **kw: Any) -> Any:
        return self._answer("StatusNotification", kw, call_result.StatusNotification())

    @on(Action.authorize)
    def on_authorize(self, **kw: Any) -> Any:
        return self._answer(
            "Authorize",
            kw,
            call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted}),
        )

    @on(Action.start_transaction)
    def on_start(self, **kw: Any) -> Any:
        # One transaction per StartTransaction message id: a repeat under the same id (the
        # charger lost power or the link between our answer and its note of it) is answered
        # before it gets here (_Recorder._repeat); one under a new id would open a second. The
        # id is this link's (a stalled CALL is handled after the charger may have reconnected:
        # the newest link's would be another message's).
        link: _Recorder = self._connection
        key = self.csms.start_key = (self.id, link.current_id)
        tid = self.csms.started.get(key)
        if tid is None:
            tid = self.csms.started[key] = next(self.csms.tx_ids)
        return self._answer(
            "StartTransaction",
            kw,
            call_result.StartTransaction(
                transaction_id=tid,
                id_tag_info={"status": AuthorizationStatus.accepted},
            ),
        )

    @on(Action.stop_transaction)
    def on_stop(self, **kw: Any) -> Any:
        return self._answer(
            "StopTransaction",
            kw,
            call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted}),
        )

    @on(Action.meter_values)
    def on_meter_values(self, **kw: Any) -> Any:
        return self._answer("MeterValues", kw, call_result.MeterValues())

    @on(Action.data_transfer)
    def on_data_transfer(self, **kw: Any) -> Any:
        return self._answer(
            "DataTransfer", kw, call_result.DataTransfer(status=DataTransferStatus.accepted)
        )

    @on(Action.firmware_status_notification)
    def on_fw_status(self, **kw: Any) -> Any:
        return self._answer(
            "FirmwareStatusNotification", kw, call_result.FirmwareStatusNotification()
        )

    @on(Action.diagnostics_status_notification)
    def on_diag_status(self, **kw: Any) -> Any:
        return self._answer(
            "DiagnosticsStatusNotification", kw, call_result.DiagnosticsStatusNotification()
        )

    # -- the security extension ------------------------------------------------------------
    @on(Action.security_event_notification)
    def on_security_event(self, **kw: Any) -> Any:
        return self._answer(
            "SecurityEventNotification", kw, call_result.SecurityEventNotification()
        )

    @on(Action.sign_certificate)
    def on_sign_certificate(self, **kw: Any) -> Any:
        return self._answer(
            "SignCertificate", kw, call_result.SignCertificate(status=GenericStatus.accepted)
        )

    @on(Action.log_status_notification)
    def on_log_status(self, **kw: Any) -> Any:
        return self._answer("LogStatusNotification", kw, call_result.LogStatusNotification())

    @on(Action.signed_firmware_status_notification)
    def on_signed_fw_status(self, **kw: Any) -> Any:
        return self._answer(
            "SignedFirmwareStatusNotification", kw, call_result.SignedFirmwareStatusNotification()
        )


def _cp_id(path: str) -> str:
    """The charge point id: the last segment of the request path, percent-decoded."""
    return urllib.parse.unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


def _basic_user(header: str) -> tuple[str, bytes] | None:
    """(user, password) of an HTTP Basic Authorization header, or None. The password may be any
    bytes (an AuthorizationKey's decoded form)."""
    if not header.startswith("Basic "):
        return None
    try:
        user, sep, pw = base64.b64decode(header[6:], validate=True).partition(b":")
        return (user.decode(), pw) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def basic_password(key: str) -> bytes:
    """The HTTP Basic password an AuthorizationKey stands for (OCPP 1.6 security whitepaper,
    OCTT TC_085_CS): the key is the hex form of a 16-20 byte password; a key that is not 32-40
    hex digits is taken as the password itself, as many CSMSs set it."""
    if 32 <= len(key) <= 40 and not len(key) % 2:
        try:
            return binascii.unhexlify(key)
        except ValueError:
            pass
    return key.encode()


class Csms:
    """The server. `await start()` returns its ws:// (or, with TLS, wss://) base URL; charge
    points append their id.

    Security profiles: `basic_auth` (charge point id -> AuthorizationKey) makes every connection
    present HTTP Basic `id:key` (profiles 1 and 2); `start(ssl=...)` serves TLS (2 and 3); with
    `client_cert_cn` the client certificate's common name must be the charge point id (3).
    """

    def __init__(
        self,
        heartbeat_interval: int = 300,
        accept_ids: set[str] | None = None,
        basic_auth: dict[str, str] | None = None,
        client_cert_cn: bool = False,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.accept_ids = accept_ids
        self.basic_auth = basic_auth
        self.client_cert_cn = client_cert_cn
        self.auth_results: list[tuple[str, bool]] = []  # (charge point id, credentials ok)
        self.client_cns: list[str] = []  # common names of the client certificates seen
        self.client_certs: list[bytes] = []  # each TLS connection's client certificate (DER)
        self.unanswered: dict[str, int] = {}  # action -> how many next CALLs get no answer
        self.raw_results: dict[str, str] = {}  # action -> payload text answering each, as is
        self.stalled: dict[str, float] = {}  # action -> seconds its next CALL's handling waits
        self.links: dict[str, _Recorder] = {}
        self.responders: dict[str, Responder] = {}
        self.frames: list[Frame] = []
        self.violations: list[str] = []
        self.charge_points: dict[str, CentralChargePoint] = {}
        self.connections: dict[str, ServerConnection] = {}
        self.tx_ids = itertools.count(1)
        self.started: dict[tuple[Any, ...], int] = {}  # (charge point, message id) -> tx id
        # The `started` key of the StartTransaction being answered, for its responder
        self.start_key: tuple[Any, ...] | None = None
        self.first_frames: dict[tuple[str, str], str] = {}  # (cp, message id) -> first raw CALL
        self.answered: dict[tuple[str, str], str] = {}  # (cp, message id) -> our raw answer
        self.repeats: list[Frame] = []  # CALLs received again under an id seen before
        self.connects = 0
        self.close_codes: list[tuple[str, int | None]] = []  # (cp, the code a link ended with)
        self.close_at_once = 0  # this many next connections are closed right after the handshake
        self._changed = asyncio.Condition()
        self._server: Server | None = None
        self.url = ""

    def respond(self, action: str, fn: Responder | None) -> None:
        """Replace (or, with None, restore) how the CSMS answers `action`."""
        if fn is None:
            self.responders.pop(action, None)
        else:
            self.responders[action] = fn

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        url_host: str | None = None,
    ) -> str:
        """Listen on host:port; the URL names `url_host` (for TLS: the certificate's name)."""
        self._server = await serve(
            self._handler,
            host,
            port,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            process_request=self._check_request,
            ssl=ssl_context,
        )
        sock = next(iter(self._server.sockets))
        scheme = "wss" if ssl_context else "ws"
        self.url = f"{scheme}://{url_host or host}:{sock.getsockname()[1]}/ocpp"
        return self.url

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def _check_request(self, conn: ServerConnection, request: Any) -> Any:
        protos = request.headers.get("Sec-WebSocket-Protocol", "")
        if "ocpp1.6" not in [p.strip() for p in protos.split(",")]:
            return conn.respond(400, "subprotocol ocpp1.6 required\n")
        if self.basic_auth is not None:
            cp_id = _cp_id(request.path)
            cred = _basic_user(request.headers.get("Authorization", ""))
            key = self.basic_auth.get(cp_id)
            ok = (cred is not None and cred[0] == cp_id and key is not None
                  and basic_password(key) == cred[1])
            self.auth_results.append((cp_id, ok))
            if not ok:
                log.warning("%s: bad or missing HTTP Basic credentials", cp_id)
                response = conn.respond(401, "bad or missing credentials\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="ocpp"'
                return response
        return None

    async def _handler(self, conn: ServerConnection) -> None:
        cp_id = _cp_id(conn.request.path if conn.request else "")
        if self.accept_ids is not None and cp_id not in self.accept_ids:
            await conn.close(1008, "unknown charge point")
            return
        tls = conn.transport.get_extra_info("ssl_object")
        peer = tls.getpeercert(binary_form=True) if tls is not None else None
        if peer:
            self.client_certs.append(peer)
        if self.client_cert_cn:
            cert = conn.transport.get_extra_info("peercert") or {}
            cns = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
            self.client_cns += cns
            if cns != [cp_id]:
                log.warning("%s: client certificate names %s", cp_id, cns)
                await conn.close(1008, "client certificate does not name this charge point")
                return
        if self.close_at_once > 0:
            self.close_at_once -= 1
            self.connects += 1
            await conn.close(1011, "going away")
            await self._notify()
            return
        link = _Recorder(self, conn, cp_id)
        cp = CentralChargePoint(cp_id, link)
        cp.csms = self
        self.charge_points[cp_id] = cp
        self.links[cp_id] = link
        self.connections[cp_id] = conn
        self.connects += 1
        await self._notify()
        try:
            await cp.start()
        except Exception as e:  # the connection closed: normal end of a session
            log.info("%s disconnected: %s", cp_id, e)
        finally:
            if self.connections.get(cp_id) is conn:
                del self.connections[cp_id]
            # The charger's close frame's code; 1006 when the link ended without one
            self.close_codes.append((cp_id, conn.close_code))
            await self._notify()

    def _record(self, frame: Frame) -> None:
        self.frames.append(frame)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- for tests and tools ---------------------------------------------------------------
    def calls(self, action: str | None = None, cp_id: str | None = None) -> list[Frame]:
        """CALLs the charge points sent, oldest first."""
        return [
            f
            for f in self.frames
            if f.direction == "in"
            and f.is_call
            and (action is None or f.action == action)
            and (cp_id is None or f.cp_id == cp_id)
        ]

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float, what: str
    ) -> Any:
        """Wait until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
        async def loop() -> Any:
            async with self._changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None

    async def wait_call(
        self,
        action: str,
        match: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 20,
        after: int = 0,
    ) -> Frame:
        """The first CALL `action` (at index >= `after` in `frames`) whose payload matches."""

        def find() -> Frame | None:
            for f in self.frames[after:]:
                if (f.direction == "in" and f.is_call and f.action == action
                        and (match is None or match(f.payload))):
                    return f
            return None

        frame: Frame = await self.wait_for(find, timeout, f"{action} from the charge point")
        return frame

    async def answer_to(self, frame: Frame, timeout: float = 10) -> Any:
        """The payload the CSMS answered a charge point's CALL with."""

        def find() -> Frame | None:
            for f in self.frames:
                if f.direction == "out" and f.cp_id == frame.cp_id and not f.is_call and (
                    isinstance(f.msg, list) and len(f.msg) > 2 and f.msg[1] == frame.msg[1]
                ):
                    return f
            return None

        f: Frame = await self.wait_for(find, timeout, f"the answer to {frame.action}")
        return f.msg[2]

    # -- raw frames: what the `ocpp` package would never send -----------------------------------
    async def send_raw(self, cp_id: str, text: str, expect_id: str | None = None) -> None:
        """Send one text frame exactly as given. `expect_id`: the id the charger's answer will
        carry when the frame itself has no readable one (the frame checker then accepts it)."""
        link = self.links[cp_id]
        if expect_id is not None:
            link.checker.pending.setdefault(expect_id, "?")
        await link.send(text)

    async def wait_answer(
        self, answer_id: str, after: int = 0, timeout: float = 10, cp_id: str | None = None
    ) -> Frame:
        """The first CALLRESULT/CALLERROR the charger sent with `answer_id` (from index `after`)."""

        def find() -> Frame | None:
            for f in self.frames[after:]:
                m = f.msg
                if (f.direction == "in" and isinstance(m, list) and len(m) > 1
                        and m[0] in (3, 4) and m[1] == answer_id
                        and (cp_id is None or f.cp_id == cp_id)):
                    return f
            return None

        frame: Frame = await self.wait_for(find, timeout, f"an answer with id {answer_id!r}")
        return frame

    async def call_raw(self, cp_id: str, text: str, answer_id: str, timeout: float = 10) -> Frame:
        """Send a raw text frame and await the charger's raw answer carrying `answer_id`."""
        n = len(self.frames)
        await self.send_raw(cp_id, text, expect_id=answer_id)
        return await self.wait_answer(answer_id, after=n, timeout=timeout, cp_id=cp_id)

    def write_raw(self, cp_id: str, data: bytes, expect_id: str | None = None) -> None:
        """Write bytes straight onto the charge point's connection (hand-made WebSocket frames:
        fragments, pings between them, frames cut short). `expect_id` as for send_raw."""
        if expect_id is not None:
            self.links[cp_id].checker.pending.setdefault(expect_id, "?")
        self.connections[cp_id].transport.write(data)

    def answers(self, cp_id: str | None = None) -> list[Frame]:
        """CALLRESULTs and CALLERRORs the charge points sent, oldest first."""
        return [f for f in self.frames if f.direction == "in" and isinstance(f.msg, list)
                and f.msg[:1] in ([3], [4]) and (cp_id is None or f.cp_id == cp_id)]


def ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked server-to-client WebSocket frame (RFC 6455 5.2)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes([b0, n])
    elif n < 65536:
        head = bytes([b0, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 127]) + n.to_bytes(8, "big")
    return head + payload
