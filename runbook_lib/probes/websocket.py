"""WebSocket prober and client engine: websockets' sans-I/O protocol over our own asyncio stream.

Owning the stream is what lets every phase be timed on one connection: resolve, connect, tls,
upgrade (request -> HTTP 101) and first_message (our first send -> the first message back).
``WebSocketSession`` is the engine (the golden path drives the chat with it); ``probe`` is the
prober: upgrade, send, collect messages until a count or a message type, and say how it ended.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import InvalidURI, parse_uri

from runbook_lib import redact
from runbook_lib.probes.base import Attempt, NetContext, ProbeFailure, ProbeResult, Reason
from runbook_lib.probes.tls import certificate_info, with_served_certificate

READ_CHUNK = 64 * 1024
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SNIPPET_BYTES = 512


@dataclass
class Message:
    t: float   # seconds since the upgrade completed
    data: Any  # parsed JSON when it is JSON, else the text (binary: a size note); redacted

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "data": self.data}


@dataclass
class Closure:
    """How the connection ended, seen from our side."""

    code: int | None = None   # from the server's close frame; None when the stream was just cut
    reason: str = ""
    after_s: float = 0.0      # seconds since the upgrade

    @property
    def clean(self) -> bool:
        return self.code is not None


def _decode(frame_data: bytes, text: bool) -> Any:
    if not text:
        return f"<{len(frame_data)} bytes binary>"
    payload = frame_data.decode("utf-8", "replace")
    try:
        return redact.data(json.loads(payload))
    except ValueError:
        return redact.text(payload)


@dataclass
class WebSocketSession:
    """An upgraded connection. Open with ``await WebSocketSession.open(url, net, ...)``."""

    run: Attempt
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: ClientProtocol
    upgraded_at: float                       # perf_counter() when the 101 arrived
    response: Response
    closure: Closure | None = None
    _pending: list[Any] = field(default_factory=list)
    _fragments: list[bytes] = field(default_factory=list)
    _fragment_is_text: bool = True

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    async def open(
        cls, url: str, net: NetContext, *, headers: dict[str, str] | None = None, run: Attempt | None = None,
    ) -> WebSocketSession:
        """Resolve, connect, TLS (wss) and upgrade, timing each phase in ``run``.

        Raises ``ProbeFailure`` (refused upgrade: ``http_status``) or a network error; callers
        outside a prober wrap the call in ``Attempt.run`` or handle ``base.NETWORK_ERRORS``.
        The connection is closed by ``run.close_all()`` (``Attempt.run`` does it).
        """
        run = run or Attempt("websocket", url, net)
        try:
            uri = parse_uri(url)
        except InvalidURI as exc:
            raise ProbeFailure(Reason.error, f"not a WebSocket URL: {exc}") from exc
        reader, writer = await run.connect(await run.resolve(uri.host, uri.port))
        if uri.secure:
            ssl_object = await run.start_tls(writer, net.ssl_context(), uri.host)
            run.info["cert"] = certificate_info(ssl_object.getpeercert(binary_form=True), verified=True)

        protocol = ClientProtocol(uri, max_size=MAX_MESSAGE_BYTES)
        request = protocol.connect()
        for name, value in (headers or {}).items():
            request.headers[name] = value
        run.begin("upgrade")
        protocol.send_request(request)
        session = cls(run, reader, writer, protocol, 0.0, Response(0, "", request.headers))
        await session._flush()
        events = await session._next_events()
        if protocol.handshake_exc is not None or not events:
            raise session._refusal(protocol.handshake_exc or EOFError("no upgrade answer"))
        run.end("upgrade")
        session.upgraded_at = time.perf_counter()
        session.response, session._pending = events[0], events[1:]
        run.info["status"] = session.response.status_code
        return session

    def _refusal(self, exc: Exception) -> ProbeFailure:
        if isinstance(exc, InvalidStatus):
            response = exc.response
            self.run.info["status"] = response.status_code
            self.run.info["body_snippet"] = redact.text(
                bytes(response.body[:SNIPPET_BYTES]).decode("utf-8", "replace"))
            return ProbeFailure(Reason.http_status,
                                f"upgrade refused: HTTP {response.status_code} (expected 101)")
        if isinstance(exc, EOFError) or isinstance(exc.__cause__, EOFError):
            return ProbeFailure(Reason.reset, "connection closed before the upgrade was answered")
        return ProbeFailure(Reason.protocol, f"not a WebSocket upgrade answer ({exc})")

    # -- I/O -------------------------------------------------------------------------------
    async def _flush(self) -> None:
        """Write what the protocol wants sent (our frames, pongs, a close reply)."""
        for chunk in self.protocol.data_to_send():
            if self.writer.is_closing():
                return
            if chunk:
                self.writer.write(chunk)
            elif self.writer.can_write_eof():  # TLS transports cannot half-close; the abort will do
                self.writer.write_eof()
        await self.writer.drain()

    async def _next_events(self) -> list[Any]:
        """Protocol events, reading the stream until there is at least one or it ends."""
        while True:
            events = self.protocol.events_received()
            if events:
                return events
            if self.protocol.reader.eof:
                return []
            data = await self.reader.read(READ_CHUNK)
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            await self._flush()

    def since_upgrade(self) -> float:
        return time.perf_counter() - self.upgraded_at

    async def send_json(self, message: Any) -> None:
        await self.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        try:
            self.protocol.send_text(text.encode())
        except InvalidState as exc:
            raise ProbeFailure(Reason.reset, "the connection was closed before the message could be sent") from exc
        await self._flush()

    async def receive(self) -> Message | None:
        """The next data message, or None once the connection has ended (see ``closure``)."""
        while self.closure is None:
            if not self._pending:
                self._pending = await self._next_events()
                if not self._pending:
                    self._closed()
                    break
            frame = self._pending.pop(0)
            message = self._assemble(frame)
            if message is not None:
                return message
        return None

    def _assemble(self, frame: Frame) -> Message | None:
        if frame.opcode is Opcode.CLOSE:
            self._closed()
            return None
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragments, self._fragment_is_text = [bytes(frame.data)], frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:  # ping/pong: the protocol already queued the pong
            return None
        if not frame.fin:
            return None
        data, self._fragments = b"".join(self._fragments), []
        return Message(self.since_upgrade(), _decode(data, self._fragment_is_text))

    def _closed(self) -> None:
        received = self.protocol.close_rcvd
        self.closure = Closure(
            code=received.code if received else None,
            reason=redact.text(received.reason) if received else "",
            after_s=self.since_upgrade(),
        )

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Say goodbye (close frame) without waiting for the server's echo."""
        if self.closure is None and not self.writer.is_closing():
            try:
                self.protocol.send_close(code, reason)
                await self._flush()
            except (OSError, InvalidState):
                pass  # the peer is gone already: nothing left to tell it
        self.writer.transport.abort()


def _stop_condition(expect_messages: int | None, until_type: str | None) -> str:
    if until_type:
        return f"a {until_type!r} message"
    return f"{expect_messages} message(s)"


async def probe(
    target: str, net: NetContext, deadline_s: float, *, headers: dict[str, str] | None = None,
    send: Iterable[Any] = (), expect_messages: int | None = None, until_type: str | None = None,
    max_messages: int = 100, **_options: object,
) -> ProbeResult:
    """Upgrade ``target`` (ws:// or wss://), send ``send`` (JSON), then collect messages.

    Stops after ``expect_messages`` messages or at the first JSON message whose ``type`` is
    ``until_type``; with neither, the probe ends once the upgrade succeeded (and ``send`` went).
    """
    run = Attempt("websocket", target, net)
    messages: list[dict[str, Any]] = []
    run.info.update(messages=messages, closed_early=False)
    wanted = _stop_condition(expect_messages, until_type)
    waits = bool(until_type) or bool(expect_messages)

    async def steps() -> None:
        session = await WebSocketSession.open(target, net, headers=headers, run=run)
        run.begin("first_message", note=f"no message within the deadline while waiting for {wanted}")
        for outgoing in send:
            await session.send_json(outgoing)
        if not waits:
            await session.close()
            return
        while len(messages) < max_messages:
            message = await session.receive()
            if message is None:
                closure = session.closure
                assert closure is not None
                run.info["closed_early"] = True
                if closure.clean:
                    run.info["close"] = {"code": closure.code, "reason": closure.reason}
                how = f"closed by the server (code {closure.code})" if closure.clean else "cut"
                raise ProbeFailure(Reason.reset, f"connection {how} after {closure.after_s:.1f} s and "
                                                 f"{len(messages)} message(s), before {wanted}")
            if not messages:
                run.end("first_message")
            messages.append(message.as_dict())
            done = (until_type is not None and isinstance(message.data, dict)
                    and message.data.get("type") == until_type) or (
                until_type is None and len(messages) >= (expect_messages or 0))
            if done:
                await session.close()
                return
            run.waiting_note = f"{len(messages)} message(s) received, then nothing until the deadline; " \
                               f"waiting for {wanted}"
        raise ProbeFailure(Reason.protocol, f"{max_messages} messages received without {wanted}")

    result = await run.run(steps(), deadline_s)
    host = parse_uri(target).host if target.startswith(("ws://", "wss://")) else ""
    return await with_served_certificate(result, run, host, net, deadline_s)
