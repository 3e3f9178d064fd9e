"""The load balancer and services: certificates by SNI, health, login, chat over WebSocket,
history, WebSocket lifetime and blackout, all on one real HTTPS port with a fake view."""
from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
import psycopg
import pytest
import websockets
from cryptography import x509

from runbook_lib.sandbox.dataplane_view import ProxyPolicy
from runbook_lib.sandbox.faultproxy import FaultProxy
from runbook_lib.sandbox.pki import LocalCA
from runbook_lib.sandbox.postgres import PostgresServer
from runbook_lib.sandbox.services import StagingServices, client_hello_sni, prepare_database

from .kit import FakeView

FRONTEND = "staging.netrasystems.ai"
API = "api-staging.netrasystems.ai"
LEGACY = ["*.staging.netrasystems.ai"]
EVENTS = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
JWT_SECRET = "jwt-secret-staging"
REQUIRED = ["database-url", JWT_SECRET, "openai-api-key"]
SECRET_VALUES = {"database-url": "postgresql://app:db-secret-value@10.0.0.3/app",
                 JWT_SECRET: "jwt-signing-secret-value", "openai-api-key": "sk-openai-secret-value"}
PASSWORD = "golden-password"
DEADLINE_S = 30


class Staging:
    """A running fault proxy (in front of the session PostgreSQL) and the services behind it."""

    def __init__(self, services: StagingServices, proxy: FaultProxy, ca: LocalCA):
        self.services, self.proxy, self.ca = services, proxy, ca
        self.port = services.port

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca.ca_cert_path))

    async def request(self, method: str, domain: str, path: str, *, headers: dict[str, str] | None = None,
                      **kwargs: Any) -> httpx.Response:
        """HTTPS to 127.0.0.1 with SNI and Host set to ``domain`` (a new connection each time)."""
        async with httpx.AsyncClient(verify=self.client_context(), timeout=10) as client:
            return await client.request(method, f"https://127.0.0.1:{self.port}{path}",
                                        headers={"Host": domain, **(headers or {})},
                                        extensions={"sni_hostname": domain}, **kwargs)

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.request("POST", API, "/auth/login", json={"email": email, "password": password})

    def websocket(self, token: str) -> Any:
        return websockets.connect(f"wss://{API}/ws?token={token}", host="127.0.0.1", port=self.port,
                                  ssl=self.client_context(), open_timeout=10, close_timeout=1)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), DEADLINE_S))


@contextlib.asynccontextmanager
async def staging(view: FakeView, ca: LocalCA, pg: PostgresServer, pg_kwargs: dict, *, user: str | None = None,
                  db_deadline_s: float = 3.0) -> AsyncIterator[Staging]:
    if user is not None:
        async with await psycopg.AsyncConnection.connect(**pg_kwargs) as conn:
            await prepare_database(conn, user, PASSWORD)
    proxy = FaultProxy((pg.host, pg.port), view.proxy_policy)
    await proxy.start()

    async def db() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(**{**pg_kwargs, "port": proxy.port})

    services = StagingServices(
        view, ca=ca, frontend_domain=FRONTEND, api_domain=API, legacy_names=LEGACY, db=db,
        required_secrets=REQUIRED, jwt_secret_name=JWT_SECRET, events=EVENTS, time_scale=view.time_scale,
        db_deadline_s=db_deadline_s)
    await services.start()
    try:
        yield Staging(services, proxy, ca)
    finally:
        await services.stop()
        await proxy.stop()


def healthy_view() -> FakeView:
    return FakeView(secrets=dict(SECRET_VALUES), required=list(REQUIRED))


async def tls_handshake(port: int, domain: str, ctx: ssl.SSLContext, timeout_s: float = 5) -> bytes:
    """The leaf certificate (DER) presented for ``domain``; raises what the handshake raised."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=domain), timeout_s)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return der


def _no_verify() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def test_certificate_is_chosen_per_sni_name(dp_ca: LocalCA, pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    view = healthy_view()
    view.certificates = {FRONTEND: "valid", API: "mismatch"}

    async def scenario() -> None:
        async with staging(view, dp_ca, pg_server, pg_app_kwargs) as env:
            verify = env.client_context()
            leaf = x509.load_der_x509_certificate(await tls_handshake(env.port, FRONTEND, verify))
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert sorted(names.get_values_for_type(x509.DNSName)) == sorted([FRONTEND, API])

            with pytest.raises(ssl.SSLCertVerificationError) as mismatch:
                await tls_handshake(env.port, API, verify)
            assert mismatch.value.verify_code == 62  # hostname mismatch
            legacy = x509.load_der_x509_certificate(await tls_handshake(env.port, API, _no_verify()))
            names = legacy.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert names.get_values_for_type(x509.DNSName) == LEGACY

            view.certificates[API] = "expired"  # read on every handshake
            with pytest.raises(ssl.SSLCertVerificationError) as expired:
                await tls_handshake(env.port, API, verify)
            assert expired.value.verify_code == 10  # certificate has expired

            view.certificates[API] = "blackhole"  # the load balancer has nothing for this name
            with pytest.raises(asyncio.TimeoutError):
                await tls_handshake(env.port, API, verify, timeout_s=0.5)

    run(scenario)


def test_health_is_503_while_starting_then_200(dp_ca: LocalCA, pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    view = healthy_view()
    view.startup_remaining = 4.5

    async def scenario() -> None:
        async with staging(view, dp_ca, pg_server, pg_app_kwargs) as env:
            for path in ("/health", "/auth/health"):
                starting = await env.request("GET", API, path)
                assert starting.status_code == 503
                assert starting.json()["status"] == "starting" and starting.json()["ready_in_s"] == 4.5
            view.startup_remaining = 0
            ok = await env.request("GET", API, "/health")
            assert (ok.status_code, ok.json()) == (200, {"status": "ok", "service": "backend"})
            assert (await env.request("GET", FRONTEND, "/auth/health")).json()["service"] == "auth"
            page = await env.request("GET", FRONTEND, "/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert (await env.request("GET", API, "/")).status_code == 404
            log = env.services.request_log
            assert [(e["domain"], e["path"], e["status"]) for e in log[:3]] == [
                (API, "/health", 503), (API, "/auth/health", 503), (API, "/health", 200)]
            assert all(e["latency_s"] >= 0 and e["t"] > 0 for e in log)

    run(scenario)


def test_login_names_missing_secrets_without_showing_values(
        dp_ca: LocalCA, pg_server: PostgresServer, pg_app_kwargs: dict, caplog: pytest.LogCaptureFixture) -> None:
    view = healthy_view()
    del view.secrets["openai-api-key"], view.secrets[JWT_SECRET]

    async def scenario() -> None:
        async with staging(view, dp_ca, pg_server, pg_app_kwargs) as env:
            response = await env.login("nobody@example.com")
            assert response.status_code == 503
            body = response.json()
            assert body["error"] == "configuration"
            assert body["missing_secrets"] == [JWT_SECRET, "openai-api-key"]
            assert body["detail"] == f"required secrets missing or disabled: {JWT_SECRET}, openai-api-key"
            everything = response.text + json.dumps(env.services.request_log) + caplog.text
            assert not any(value in everything for value in SECRET_VALUES.values())

    run(scenario)


def test_golden_path_login_chat_events_history(dp_ca: LocalCA, pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    view = healthy_view()
    user = "golden-path@example.com"

    async def scenario() -> None:
        async with staging(view, dp_ca, pg_server, pg_app_kwargs, user=user) as env:
            assert (await env.login(user, "not-the-password")).status_code == 401
            response = await env.login(user)
            assert response.status_code == 200, response.text
            token = response.json()["token"]
            assert response.json()["token_type"] == "Bearer"

            async with env.websocket(token) as ws:
                await ws.send(json.dumps({"type": "chat", "message": "is staging back?"}))
                received = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(len(EVENTS) + 1)]
            assert [m["type"] for m in received] == [*EVENTS, "agent_response"]
            assert [m["seq"] for m in received[:-1]] == list(range(len(EVENTS)))
            assert "is staging back?" in received[-1]["text"]

            history = await env.request("GET", API, "/api/chat/history", headers={"Authorization": f"Bearer {token}"})
            assert history.status_code == 200
            messages = history.json()["messages"]
            assert [(m["role"], m["content"]) for m in messages[-2:]] == [
                ("user", "is staging back?"), ("assistant", received[-1]["text"])]
            assert (await env.request("GET", API, "/api/chat/history")).status_code == 401
            assert env.proxy.stats()["ok"] >= 3  # every database call went through the proxy
            [(stored,)] = pg_server.execute("SELECT password_hash FROM users WHERE email = %s", (user,), dbname="app")
            assert stored.startswith("pbkdf2_sha256$") and PASSWORD not in stored
            logged = {(e["path"], e["status"]) for e in env.services.request_log}
            assert {("/auth/login", 401), ("/auth/login", 200), ("/ws", 101), ("/api/chat/history", 200)} <= logged
            assert token not in json.dumps(env.services.request_log)

    run(scenario)


def test_websocket_refuses_a_bad_token_and_is_cut_after_its_lifetime(
        dp_ca: LocalCA, pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    view = healthy_view()
    view.ws_lifetime = 0.4
    user = "ws-lifetime@example.com"

    async def scenario() -> None:
        async with staging(view, dp_ca, pg_server, pg_app_kwargs, user=user) as env:
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with env.websocket("not-a-token"):
                    pass
            assert refused.value.response.status_code == 401

            token = (await env.login(user)).json()["token"]
            async with env.websocket(token) as ws:
                with pytest.raises(websockets.ConnectionClosedError) as cut:
                    await asyncio.wait_for(ws.recv(), 10)
            assert cut.value.rcvd is None  # no close frame: the connection was dropped

    run(scenario)


def test_database_faults_become_timeouts_and_unavailability(
        dp_ca: LocalCA, pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    view = healthy_view()
    user = "db-faults@example.com"

    async def scenario() -> None:
        async with staging(view, dp_ca, pg_server, pg_app_kwargs, user=user, db_deadline_s=0.5) as env:
            view.policy = ProxyPolicy(mode="blackhole")
            slow = await env.login(user)
            assert slow.status_code == 504
            assert slow.json()["detail"] == "database unavailable: timeout after 0.5 s"
            view.policy = ProxyPolicy(mode="reset")
            refused = await env.login(user)
            assert refused.status_code == 503
            assert refused.json()["detail"].startswith("database unavailable: ")
            view.policy = ProxyPolicy()  # healed: the next connection goes through
            assert (await env.login(user)).status_code == 200

    run(scenario)


def test_blackout_leaves_clients_without_an_answer(dp_ca: LocalCA, pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    view = healthy_view()
    view.dark = True

    async def scenario() -> None:
        async with staging(view, dp_ca, pg_server, pg_app_kwargs) as env:
            with pytest.raises(asyncio.TimeoutError):
                await tls_handshake(env.port, API, env.client_context(), timeout_s=0.5)
            view.dark = False
            assert (await env.request("GET", API, "/health")).status_code == 200
            assert [e["status"] for e in env.services.request_log] == [200]

    run(scenario)


def test_client_hello_sni_parser() -> None:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(incoming, outgoing, server_hostname=API)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    assert client_hello_sni(outgoing.read()) == API
    assert client_hello_sni(b"GET / HTTP/1.1\r\n") is None
    assert client_hello_sni(b"\x16\x03\x01\x00") is None


def test_stop_closes_open_websockets_and_silent_connections(
        dp_ca: LocalCA, pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    view = healthy_view()
    user = "stop@example.com"

    async def scenario() -> None:
        async with staging(view, dp_ca, pg_server, pg_app_kwargs, user=user) as env:
            token = (await env.login(user)).json()["token"]
            async with env.websocket(token) as ws:
                view.dark = True
                silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", env.port)
                started = time.monotonic()
                await env.services.stop()
                assert time.monotonic() - started < 5
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                try:
                    assert await asyncio.wait_for(silent_reader.read(1), 5) == b""
                except ConnectionResetError:
                    pass
                silent_writer.close()

    run(scenario)
