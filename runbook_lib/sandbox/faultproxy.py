"""The VPC connector's data path: a TCP proxy in front of the database that injects faults.

The policy (``DataPlaneView.proxy_policy``) is read once per *new* connection, so a control-plane
change (a PATCH to the connector) takes effect on the next connection, as with the real
connector. Modes:

- ``pass``: bytes flow both ways untouched;
- ``delay``: every chunk is released ``delay_s`` after it was read, per direction, order kept
  (a per-direction queue with release times, so delays do not add up chunk after chunk);
- ``blackhole``: accept, read and discard, never connect upstream (a client sees a timeout);
- ``reset``: accept then close with RST (a client sees "connection reset").

``max_connections`` admits at most N connections at once; the others wait, first come first
served, until a slot frees or the client gives up (the saturated-connector symptom).

Each connection leaves a ``ConnectionRecord`` (times, bytes, outcome) for monitoring series.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Literal

from runbook_lib.sandbox.dataplane_view import ProxyMode, ProxyPolicy
from runbook_lib.sandbox.listener import Listener

log = logging.getLogger(__name__)

Outcome = Literal["ok", "blackholed", "reset", "client_gave_up", "upstream_refused"]
CHUNK = 65536
UPSTREAM_CONNECT_TIMEOUT_S = 10.0


@dataclass
class ConnectionRecord:
    """One client connection. Times are ``time.monotonic()``."""

    id: int
    accepted_at: float
    mode: ProxyMode
    delay_s: float = 0.0
    reason: str = ""
    admitted_at: float | None = None
    upstream_connected_at: float | None = None
    closed_at: float | None = None
    bytes_up: int = 0      # client -> upstream
    bytes_down: int = 0    # upstream -> client
    outcome: Outcome | None = None  # None while the connection is open


class _Admission:
    """FIFO admission with a limit that can change between connections."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.admitted = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def _has_room(self) -> bool:
        return self.limit is None or self.admitted < self.limit

    def try_acquire(self) -> bool:
        if self._has_room() and not self.waiting:
            self.admitted += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot is counted for us by _wake()
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # admitted just as we gave up: hand the slot on
            raise

    def release(self) -> None:
        self.admitted -= 1
        self._wake()

    def set_limit(self, limit: int | None) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._has_room():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.admitted += 1
                waiter.set_result(None)


class FaultProxy:
    """``await start()`` returns the port; ``await stop()`` closes every connection promptly."""

    def __init__(self, upstream: tuple[str, int], policy: Callable[[], ProxyPolicy], *, host: str = "127.0.0.1"):
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.records: list[ConnectionRecord] = []
        self._policy = policy
        self._listener = Listener(self._on_accept, host=host)
        self._admission = _Admission()
        self._ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> int:
        self.port = await self._listener.start()
        return self.port

    async def stop(self) -> None:
        await self._listener.stop()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- observation -----------------------------------------------------------------------
    @property
    def active(self) -> int:
        """Connections admitted and still open (waiting ones are in ``stats()['waiting']``)."""
        return self._admission.admitted

    def stats(self) -> dict[str, int]:
        outcomes = collections.Counter(r.outcome for r in self.records if r.outcome is not None)
        return {
            "accepted": len(self.records),
            "open": sum(1 for r in self.records if r.outcome is None),
            "active": self.active,
            "waiting": self._admission.waiting,
            **{name: outcomes.get(name, 0) for name in Outcome.__args__},  # type: ignore[attr-defined]
        }

    # -- per connection --------------------------------------------------------------------
    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record: ConnectionRecord | None = None
        try:
            policy = self._policy()  # read per new connection: control-plane changes apply next time
            record = ConnectionRecord(
                id=next(self._ids), accepted_at=time.monotonic(), mode=policy.mode,
                delay_s=policy.delay_s if policy.mode == "delay" else 0.0, reason=policy.reason,
            )
            self.records.append(record)
            record.outcome = await self._serve(policy, record, reader, writer)
        except (asyncio.CancelledError, OSError):  # stop(), or a peer reset the connection
            if record is not None:
                record.outcome = record.outcome or self._outcome_when_cut(record)
            raise
        finally:
            if record is not None:
                record.closed_at = time.monotonic()

    @staticmethod
    def _outcome_when_cut(record: ConnectionRecord) -> Outcome:
        if record.mode == "blackhole":
            return "blackholed"
        return "ok" if record.upstream_connected_at else "client_gave_up"

    async def _serve(self, policy: ProxyPolicy, record: ConnectionRecord,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Outcome:
        if policy.mode == "reset":
            _reset(writer)
            return "reset"
        if policy.mode == "blackhole":
            while await reader.read(CHUNK):
                pass
            return "blackholed"

        early = await self._admit(policy, reader)
        if early is None:
            return "client_gave_up"
        record.admitted_at = time.monotonic()
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.upstream), UPSTREAM_CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError) as exc:
                log.warning("fault proxy: upstream %s:%s unreachable (%s)", *self.upstream, type(exc).__name__)
                return "upstream_refused"
            self._listener.track(up_writer)
            record.upstream_connected_at = time.monotonic()
            try:
                up_writer.write(early)  # sent while queued for a slot: it has waited already
                record.bytes_up += len(early)
                await _splice(reader, writer, up_reader, up_writer, record.delay_s, record)
            finally:
                up_writer.transport.abort()
                self._listener.untrack(up_writer)
            return "ok"
        finally:
            self._admission.release()

    async def _admit(self, policy: ProxyPolicy, reader: asyncio.StreamReader) -> bytes | None:
        """Wait for a slot while buffering what the client sends; None if it left first."""
        self._admission.set_limit(policy.max_connections)
        if self._admission.try_acquire():
            return b""
        acquire = asyncio.ensure_future(self._admission.acquire())
        buffered = bytearray()
        read: asyncio.Future[bytes] | None = None
        try:
            while not acquire.done():
                read = asyncio.ensure_future(reader.read(CHUNK))
                done, _ = await asyncio.wait({acquire, read}, return_when=asyncio.FIRST_COMPLETED)
                if read in done:
                    chunk = read.result()
                    if not chunk:  # the client went away while waiting
                        await self._abandon(acquire)
                        return None
                    buffered += chunk
                else:
                    # Cancelling a pending StreamReader.read loses nothing: data stays buffered.
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await read
        except BaseException:
            if read is not None:
                read.cancel()
            await self._abandon(acquire)
            raise
        acquire.result()
        return bytes(buffered)

    async def _abandon(self, acquire: asyncio.Future[None]) -> None:
        """Stop waiting for a slot; if it was granted meanwhile, give it back."""
        acquire.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquire
        if not acquire.cancelled() and acquire.exception() is None:
            self._admission.release()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER on, timeout 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _splice(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter,
                  u_reader: asyncio.StreamReader, u_writer: asyncio.StreamWriter,
                  delay_s: float, record: ConnectionRecord) -> None:
    """Copy both ways until one side closes (after flushing what that side sent)."""

    def count_up(n: int) -> None:
        record.bytes_up += n

    def count_down(n: int) -> None:
        record.bytes_down += n

    pumps = [asyncio.ensure_future(_pump(c_reader, u_writer, delay_s, count_up)),
             asyncio.ensure_future(_pump(u_reader, c_writer, delay_s, count_down))]
    try:
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    for pump in done:
        exc = pump.exception()
        if exc is not None and not isinstance(exc, OSError):
            raise exc


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float,
                count: Callable[[int], None]) -> None:
    if delay_s <= 0:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            count(len(chunk))
            await writer.drain()
        return
    # Each chunk is stamped with its release time when read; the writer releases in order.
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def release() -> None:
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                return
            writer.write(chunk)
            count(len(chunk))
            await writer.drain()

    async def stamp() -> None:
        while True:
            chunk = await reader.read(CHUNK)
            queue.put_nowait((loop.time() + delay_s, chunk))
            if not chunk:
                return

    releaser = asyncio.ensure_future(release())
    reading = asyncio.ensure_future(stamp())
    try:
        # Stop as soon as the releaser fails (peer gone); otherwise finish releasing after EOF.
        await asyncio.wait({releaser, reading}, return_when=asyncio.FIRST_COMPLETED)
        if reading.done() and not releaser.done():
            reading.result()
            await releaser
        releaser.result()
    finally:
        for task in (releaser, reading):
            task.cancel()
        await asyncio.gather(releaser, reading, return_exceptions=True)
