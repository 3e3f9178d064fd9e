"""Real local servers for the probe tests, all on 127.0.0.1 with dynamic ports.

One asyncio loop in a background thread hosts the socket servers (the tests drive the probers
with ``asyncio.run`` in the main thread). The "load balancer" is one TLS listener that picks its
certificate by SNI, like the real one: ``api.example.test`` (and ``localhost``) get a valid
certificate, ``mismatch.example.test`` one that names only ``other.example.test``,
``expired.example.test`` an expired one; any other name is refused with an alert, so a passing
probe proves the SNI it sent. Names are on the ``lb`` fixture (``lb.api``...).
"""
from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from runbook_lib.probes.base import NetContext
from runbook_lib.sandbox.pki import LocalCA

AGENT_EVENTS = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
API, MISMATCH, OTHER = "api.example.test", "mismatch.example.test", "other.example.test"
EXPIRED, DB = "expired.example.test", "db.example.test"
SECRET_IN_BODY = "password=hunter2-do-not-show"


class LoopThread:
    """An event loop in a daemon thread; ``call`` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="probe-test-servers", daemon=True)
        self.thread.start()

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class Certs:
    ca: LocalCA
    valid: tuple[Path, Path]
    other: tuple[Path, Path]
    expired: tuple[Path, Path]
    db: tuple[Path, Path]

    @property
    def ca_bundle(self) -> str:
        return str(self.ca.ca_cert_path)


@dataclass
class LoadBalancer:
    """The TLS listener (HTTP + WebSocket app behind it) and a plain-HTTP twin."""

    tls_port: int
    plain_port: int
    sni_seen: list[str | None] = field(default_factory=list)
    api: str = API                # valid certificate
    mismatch: str = MISMATCH      # served a certificate for OTHER
    other: str = OTHER
    expired: str = EXPIRED        # served an expired certificate
    agent_events: tuple[str, ...] = tuple(AGENT_EVENTS)
    secret_in_body: str = SECRET_IN_BODY

    def route(self, *names: str) -> dict[str, str]:
        """``connect_to`` entries sending ``name:443`` to the local listener."""
        return {f"{name}:443": f"127.0.0.1:{self.tls_port}" for name in names}


def server_context(chain: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    return ctx


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = LocalCA(tmp_path_factory.mktemp("pki"))
    return Certs(
        ca=ca,
        valid=ca.issue("valid", [API, "localhost", "127.0.0.1"]),
        other=ca.issue("other", [OTHER]),
        expired=ca.issue("expired", [EXPIRED], expired=True),
        db=ca.issue("db", [DB, "localhost"]),
    )


@pytest.fixture
def net(certs: Certs) -> NetContext:
    """Trusts the local CA; no overrides."""
    return NetContext(ca_bundle=certs.ca_bundle)


# -- the HTTP / WebSocket application -------------------------------------------------------

async def _ws_chat(request: web.Request) -> web.WebSocketResponse:
    """The chat: each {"type": "chat"} gets the five agent events in order."""
    if request.headers.get("Authorization", "") == "Bearer wrong-token":
        raise web.HTTPUnauthorized(text='{"error": "bad token"}')
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        incoming = json.loads(msg.data)
        if incoming.get("type") == "chat":
            for event in AGENT_EVENTS:
                await ws.send_json({"type": event, "run": incoming.get("id"), "token": "abcd1234secret"})
        else:
            await ws.send_json({"type": "echo", "data": incoming})
    return ws


async def _ws_cut(request: web.Request) -> web.StreamResponse:
    """Two messages, then the TCP connection is dropped without a close frame."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"type": "agent_started"})
    await ws.send_json({"type": "agent_thinking"})
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.abort()
    return ws


async def _ws_close(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"type": "agent_started"})
    await ws.close(code=1001, message=b"backend timeout")
    return ws


async def _ws_silent(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for _ in ws:
        pass
    return ws


async def _ws_unavailable(request: web.Request) -> web.StreamResponse:
    raise web.HTTPServiceUnavailable(text="starting up")


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.Response(status=code, text=f"status {code}")


async def _host(request: web.Request) -> web.Response:
    return web.json_response({"host": request.host, "method": request.method,
                              "body": (await request.text())})


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * 200_000)


async def _leaky(request: web.Request) -> web.Response:
    return web.Response(text=f"debug: {SECRET_IN_BODY}")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(text="late")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_get("/status/{code}", _status)
    app.router.add_route("*", "/host", _host)
    app.router.add_get("/big", _big)
    app.router.add_get("/leaky", _leaky)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/ws", _ws_chat)
    app.router.add_get("/ws-cut", _ws_cut)
    app.router.add_get("/ws-close", _ws_close)
    app.router.add_get("/ws-silent", _ws_silent)
    app.router.add_get("/ws-unavailable", _ws_unavailable)
    return app


def sni_context(certs: Certs, seen: list[str | None]) -> ssl.SSLContext:
    by_name = {API: server_context(*certs.valid), "localhost": server_context(*certs.valid),
               MISMATCH: server_context(*certs.other), OTHER: server_context(*certs.other),
               EXPIRED: server_context(*certs.expired)}
    default = server_context(*certs.valid)

    def choose(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        seen.append(server_name)
        if server_name is None:  # an IP literal sends no SNI
            return None
        if server_name not in by_name:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sslobj.context = by_name[server_name]
        return None

    default.sni_callback = choose
    return default


@pytest.fixture(scope="session")
def lb(loop_thread: LoopThread, certs: Certs) -> Iterator[LoadBalancer]:
    seen: list[str | None] = []

    async def start() -> tuple[web.AppRunner, int, int]:
        runner = web.AppRunner(make_app(), handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        tls_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=sni_context(certs, seen))
        plain_site = web.TCPSite(runner, "127.0.0.1", 0)
        await tls_site.start()
        await plain_site.start()
        ports = [site._server.sockets[0].getsockname()[1] for site in (tls_site, plain_site)]  # type: ignore[union-attr]
        return runner, ports[0], ports[1]

    runner, tls_port, plain_port = loop_thread.call(start())
    yield LoadBalancer(tls_port, plain_port, seen)
    loop_thread.call(runner.cleanup())


# -- misbehaving peers ----------------------------------------------------------------------

@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def blackhole() -> Iterator[int]:
    """Accepts TCP (the kernel completes the handshake) and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.fixture
def syn_blackhole() -> Iterator[int]:
    """A listener whose accept queue is full: new connections get no SYN-ACK (connect hangs)."""
    with socket.socket() as s, socket.socket() as filler:
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        filler.connect(s.getsockname())  # takes the only slot; later SYNs are dropped
        yield s.getsockname()[1]


@pytest.fixture
def resetter(loop_thread: LoopThread) -> Iterator[int]:
    """Accepts, then resets the connection at once (RST, no data)."""

    async def reset(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(reset, "127.0.0.1", 0)

    server = loop_thread.call(start())
    yield server.sockets[0].getsockname()[1]

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    loop_thread.call(stop())
