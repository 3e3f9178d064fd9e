"""A loopback TCP listener that tracks its connections, so ``stop()`` ends every one promptly.

The sandbox's TCP servers (the connector's fault proxy, the load balancer's front door, Cloud
SQL's TLS front) share this lifecycle; each supplies only what it does with a connection.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Listener:
    def __init__(self, handler: Handler, *, host: str = "127.0.0.1"):
        self.handler, self.host = handler, host
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def track(self, writer: asyncio.StreamWriter) -> None:
        """Also abort this (e.g. upstream) stream on ``stop()``."""
        self._writers.add(writer)

    def untrack(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self.handler(reader, writer)
        except (OSError, asyncio.CancelledError):
            pass  # stop(), or the peer went away: nothing left to serve
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)
