"""The staging services behind the load balancer: one HTTPS listener, two domains by SNI.

Layout (one TCP port, like the load balancer's address):

    client ──TCP──▶ front door (asyncio) ──unix socket──▶ aiohttp app (TLS terminated here)

The front door decides, per connection and before any byte is answered, whether the load
balancer answers at all (``view.blackout()``, or a ``"blackhole"`` certificate for the SNI name
it peeks from the ClientHello); a silent connection is read and discarded. Otherwise the bytes go
unchanged to the app, whose TLS ``sni_callback`` presents the certificate the view names
(valid, hostname mismatch, expired).

The app serves health checks (503 while the services are "starting"; the API routes answer 503
too until then, as a load balancer with no healthy backend would), login (needs the
required secrets and the database, reached THROUGH the fault proxy with a deadline), chat history
and the chat WebSocket with the five agent events; WebSockets are cut after the backend service
timeout (``view.ws_lifetime_s()``). Every request lands in ``request_log`` for monitoring series.
No secret value, token or password is ever written to a response, a log line or an error.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import shutil
import ssl
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import psycopg
from aiohttp import WSMsgType, web

from runbook_lib import redact
from runbook_lib.sandbox import jwt
from runbook_lib.sandbox.dataplane_view import CertKind, DataPlaneView
from runbook_lib.sandbox.listener import Listener
from runbook_lib.sandbox.pki import LocalCA

log = logging.getLogger(__name__)

T = TypeVar("T")
DbFactory = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]

PBKDF2_ITERATIONS = 100_000
CLIENT_HELLO_TIMEOUT_S = 10.0
CHUNK = 65536
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS users (email text PRIMARY KEY, password_hash text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS chat_messages (id serial PRIMARY KEY, user_email text NOT NULL,"
    " role text NOT NULL, content text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
)


# ---------------------------------------------------------------------------------------------
# Passwords and the database


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<digest>`` (base64); the plaintext is never stored."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


async def create_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    for statement in SCHEMA:
        await conn.execute(statement)
    await conn.commit()


async def prepare_database(conn: psycopg.AsyncConnection[Any], golden_user: str, golden_password: str) -> None:
    """Create the tables and (re)set the golden-path user's password hash."""
    await create_schema(conn)
    password_hash = await asyncio.to_thread(hash_password, golden_password)
    await conn.execute(
        "INSERT INTO users (email, password_hash) VALUES (%s, %s)"
        " ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash",
        (golden_user, password_hash),
    )
    await conn.commit()


class DatabaseUnavailable(Exception):
    """The database could not be used before the deadline; ``status`` is the HTTP answer."""

    def __init__(self, status: int, detail: str):
        self.status = status
        super().__init__(detail)


def _describe_db_error(exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return redact.text(first_line)[:200]


# ---------------------------------------------------------------------------------------------
# TLS: the ClientHello's SNI (front door) and per-name certificates (app)


def client_hello_sni(record: bytes) -> str | None:
    """The server_name in a TLS ClientHello record, or None (no SNI, not TLS, truncated)."""
    try:
        if len(record) < 5 or record[0] != 0x16 or record[5] != 0x01:
            return None
        pos = 5 + 4 + 2 + 32  # record header, handshake header, client_version, random
        pos += 1 + record[pos]  # session id
        pos += 2 + struct.unpack_from("!H", record, pos)[0]  # cipher suites
        pos += 1 + record[pos]  # compression methods
        end = pos + 2 + struct.unpack_from("!H", record, pos)[0]
        pos += 2
        while pos + 4 <= end:
            ext_type, ext_len = struct.unpack_from("!HH", record, pos)
            pos += 4
            if ext_type == 0:  # server_name: list length, then (type, length, name)
                name_type, name_len = struct.unpack_from("!BH", record, pos + 2)
                if name_type == 0:
                    return record[pos + 5: pos + 5 + name_len].decode("ascii").lower()
            pos += ext_len
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return None


async def _read_first_record(reader: asyncio.StreamReader) -> bytes:
    """The first TLS record (the ClientHello), or whatever non-TLS bytes came first."""
    head = await reader.readexactly(5)
    if head[0] != 0x16:
        return head
    length = struct.unpack("!H", head[3:5])[0]
    return head + await reader.readexactly(length)


def _server_context(chain: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def _splice(a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
                  b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter) -> None:
    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()

    pumps = [asyncio.ensure_future(pump(a_reader, b_writer)), asyncio.ensure_future(pump(b_reader, a_writer))]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for p in pumps:
            p.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


_INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Netra staging</title></head>
<body><h1>Netra staging</h1><p>Frontend is up. API: https://{api}/</p></body></html>
"""


# ---------------------------------------------------------------------------------------------


class StagingServices:
    """``port = await start()``; ``await stop()``. Behaviour follows ``view`` on every request."""

    def __init__(
        self,
        view: DataPlaneView,
        *,
        ca: LocalCA,
        frontend_domain: str,
        api_domain: str,
        legacy_names: list[str],
        db: DbFactory,
        required_secrets: list[str],
        jwt_secret_name: str,
        events: list[str],
        time_scale: float,
        db_deadline_s: float | None = None,
        event_spacing_s: float = 2.0,
        token_ttl_s: float = 3600.0,
        host: str = "127.0.0.1",
    ):
        self.view = view
        self.ca = ca
        self.frontend_domain = frontend_domain.lower()
        self.api_domain = api_domain.lower()
        self.legacy_names = list(legacy_names)
        self.required_secrets = list(required_secrets)
        self.jwt_secret_name = jwt_secret_name
        self.events = list(events)
        self.time_scale = time_scale
        # the incident's 35 s database threshold, scaled, unless told otherwise
        self.db_deadline_s = db_deadline_s if db_deadline_s is not None else 35.0 * time_scale
        self.event_spacing_s = event_spacing_s * time_scale
        self.token_ttl_s = token_ttl_s
        self.host = host
        self.port = 0
        self.request_log: list[dict[str, Any]] = []
        self._db = db
        self._contexts: dict[CertKind, ssl.SSLContext] = {}
        self._runner: web.AppRunner | None = None
        self._front = Listener(self._on_front_connection, host=host)
        self._socket_dir: Path | None = None
        self._upgraded: set[int] = set()  # id() of requests upgraded to a WebSocket

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> int:
        self._contexts = self._issue_certificates()
        main_ctx = self._contexts["valid"]
        main_ctx.sni_callback = self._select_certificate
        # The app listens on a private unix socket: the only TCP port is the front door's.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="runbook-lb-"))
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.UnixSite(self._runner, str(self._socket_dir / "app.sock"), ssl_context=main_ctx)
        await site.start()
        self.port = await self._front.start()
        return self.port

    async def stop(self) -> None:
        await self._front.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    async def __aenter__(self) -> StagingServices:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- TLS -------------------------------------------------------------------------------
    def _issue_certificates(self) -> dict[CertKind, ssl.SSLContext]:
        domains = [self.frontend_domain, self.api_domain]
        return {
            "valid": _server_context(*self.ca.issue("lb-valid", domains)),
            "mismatch": _server_context(*self.ca.issue("lb-mismatch", self.legacy_names or ["legacy.invalid"])),
            "expired": _server_context(*self.ca.issue("lb-expired", domains, expired=True)),
        }

    def _select_certificate(self, sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        kind = self.view.certificate_for((server_name or self.frontend_domain).lower())
        ctx = self._contexts.get(kind)
        if ctx is None:  # "blackhole" is normally caught by the front door already
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sslobj.context = ctx
        return None

    # -- front door ------------------------------------------------------------------------
    async def _on_front_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.view.blackout():
            await self._stay_silent(reader)
            return
        try:
            hello = await asyncio.wait_for(_read_first_record(reader), CLIENT_HELLO_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError):
            return
        name = client_hello_sni(hello) or self.frontend_domain
        if self.view.certificate_for(name) == "blackhole":
            await self._stay_silent(reader)
            return
        assert self._socket_dir is not None
        app_reader, app_writer = await asyncio.open_unix_connection(str(self._socket_dir / "app.sock"))
        self._front.track(app_writer)
        try:
            app_writer.write(hello)
            await _splice(reader, writer, app_reader, app_writer)
        finally:
            app_writer.transport.abort()
            self._front.untrack(app_writer)

    @staticmethod
    async def _stay_silent(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(CHUNK):
                pass

    # -- app -------------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._log_requests])
        app.router.add_get("/", self._index)
        app.router.add_get("/health", self._health)
        app.router.add_get("/auth/health", self._health)
        app.router.add_post("/auth/login", self._login)
        app.router.add_get("/api/chat/history", self._history)
        app.router.add_get("/ws", self._websocket)
        return app

    @staticmethod
    def _domain(request: web.Request) -> str:
        return (request.host or "").rsplit(":", 1)[0].lower()

    def _record(self, request: web.Request, status: int, started: float) -> None:
        self.request_log.append({
            "t": time.time(), "domain": self._domain(request), "method": request.method,
            "path": request.path, "status": status, "latency_s": time.monotonic() - started,
        })

    @web.middleware
    async def _log_requests(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away first
            raise
        finally:
            if id(request) in self._upgraded:  # a WebSocket logged its own 101 at upgrade time
                self._upgraded.discard(id(request))
            else:
                self._record(request, status, started)

    def _starting(self, service: str) -> web.Response | None:
        remaining = self.view.startup_remaining_s()
        if remaining > 0:
            return _json(503, {"status": "starting", "service": service, "ready_in_s": round(remaining, 3)})
        return None

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if self._domain(request) != self.frontend_domain:
            return _json(404, {"error": "not_found", "detail": f"no page at / on {self._domain(request)}"})
        return web.Response(text=_INDEX_HTML.format(api=self.api_domain), content_type="text/html")

    async def _health(self, request: web.Request) -> web.StreamResponse:
        service = "auth" if request.path.startswith("/auth/") else "backend"
        return self._starting(service) or _json(200, {"status": "ok", "service": service})

    def _secret_problems(self) -> list[str]:
        problems = list(self.view.secret_problems())
        if self.jwt_secret_name not in problems and self.view.secret_value(self.jwt_secret_name) is None:
            problems.append(self.jwt_secret_name)
        ordered = [name for name in self.required_secrets if name in problems]
        return ordered + [name for name in problems if name not in ordered]

    def _configuration_error(self) -> web.Response | None:
        missing = self._secret_problems()
        if not missing:
            return None
        return _json(503, {"error": "configuration", "missing_secrets": missing,
                           "detail": "required secrets missing or disabled: " + ", ".join(missing)})

    async def _with_db(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run ``work`` on a fresh connection (through the fault proxy) within the deadline."""

        async def run() -> T:
            conn = await self._db()
            try:
                result = await work(conn)
                await conn.commit()
                return result
            finally:
                await conn.close()

        try:
            return await asyncio.wait_for(run(), self.db_deadline_s)
        except asyncio.TimeoutError:
            raise DatabaseUnavailable(504, f"database unavailable: timeout after {self.db_deadline_s:.3g} s") from None
        except (psycopg.Error, OSError) as exc:
            raise DatabaseUnavailable(503, f"database unavailable: {_describe_db_error(exc)}") from None

    def _user_from_token(self, token: str) -> str:
        key = self.view.secret_value(self.jwt_secret_name)
        if key is None:
            raise jwt.TokenError("token cannot be verified: signing secret unavailable")
        claims = jwt.decode(token, key, now=time.time())
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise jwt.TokenError("token has no subject")
        return subject

    async def _login(self, request: web.Request) -> web.StreamResponse:
        early = self._starting("auth") or self._configuration_error()
        if early is not None:
            return early
        try:
            body = await request.json()
            email, password = body["email"], body["password"]
            if not isinstance(email, str) or not isinstance(password, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _json(400, {"error": "bad_request", "detail": 'expected JSON {"email": ..., "password": ...}'})

        async def lookup(conn: psycopg.AsyncConnection[Any]) -> str | None:
            cur = await conn.execute("SELECT password_hash FROM users WHERE email = %s", (email,))
            row = await cur.fetchone()
            return row[0] if row else None

        try:
            stored = await self._with_db(lookup)
        except DatabaseUnavailable as exc:
            return _json(exc.status, {"error": "database_unavailable", "detail": str(exc)})
        if stored is None or not await asyncio.to_thread(verify_password, password, stored):
            return _json(401, {"error": "invalid_credentials", "detail": "wrong email or password"})
        key = self.view.secret_value(self.jwt_secret_name)
        if key is None:  # disabled between the check above and now
            return self._configuration_error() or _json(503, {"error": "configuration"})
        now = int(time.time())
        token = jwt.encode({"sub": email, "iat": now, "exp": now + int(self.token_ttl_s)}, key)
        return _json(200, {"token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl_s)})

    async def _history(self, request: web.Request) -> web.StreamResponse:
        early = self._starting("backend") or self._configuration_error()
        if early is not None:
            return early
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _json(401, {"error": "unauthorized", "detail": "missing Authorization: Bearer token"})
        try:
            email = self._user_from_token(token.strip())
        except jwt.TokenError as exc:
            return _json(401, {"error": "unauthorized", "detail": str(exc)})

        async def read(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cur = await conn.execute(
                "SELECT role, content, created_at FROM chat_messages WHERE user_email = %s ORDER BY id", (email,))
            return await cur.fetchall()

        try:
            rows = await self._with_db(read)
        except DatabaseUnavailable as exc:
            return _json(exc.status, {"error": "database_unavailable", "detail": str(exc)})
        messages = [{"role": r, "content": c, "created_at": t.isoformat()} for r, c, t in rows]
        return _json(200, {"user": email, "messages": messages})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        if self._domain(request) != self.api_domain:
            return _json(404, {"error": "not_found", "detail": f"the WebSocket is served on {self.api_domain}"})
        early = self._starting("backend") or self._configuration_error()
        if early is not None:
            return early
        try:
            email = self._user_from_token(request.query.get("token", ""))
        except jwt.TokenError as exc:
            return _json(401, {"error": "unauthorized", "detail": str(exc)})

        transport = request.transport
        lifetime = self.view.ws_lifetime_s()  # read at connect, as the load balancer does
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        self._upgraded.add(id(request))
        self._record(request, 101, started)
        cut = None
        if lifetime is not None and transport is not None:
            # like the load balancer's backend timeout: the connection just ends, no close frame
            cut = asyncio.get_running_loop().call_later(lifetime, transport.abort)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._on_ws_message(ws, email, msg.data)
        except ConnectionError:
            pass  # cut (lifetime) or the client vanished mid-send
        finally:
            if cut is not None:
                cut.cancel()
        return ws

    async def _on_ws_message(self, ws: web.WebSocketResponse, email: str, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            await ws.send_json({"type": "error", "error": "message is not JSON"})
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await ws.send_json({"type": "pong"})
            return
        if kind != "chat" or not isinstance(message.get("message"), str):
            await ws.send_json({"type": "error", "error": 'expected {"type": "chat", "message": "..."}'})
            return
        text = message["message"]
        answer = f"Staging is reachable again. You asked: {text[:200]}"

        async def save(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(
                "INSERT INTO chat_messages (user_email, role, content) VALUES (%s, 'user', %s), (%s, 'assistant', %s)",
                (email, text, email, answer))

        # The history is saved before the agent says it is done (or last, without that event).
        save_before = "agent_completed" if "agent_completed" in self.events else None
        for seq, event in enumerate(self.events):
            if seq:
                await asyncio.sleep(self.event_spacing_s)
            if event == save_before and not await self._save_or_report(ws, save):
                return
            await ws.send_json({"type": event, "seq": seq})
        if save_before is None and not await self._save_or_report(ws, save):
            return
        await ws.send_json({"type": "agent_response", "text": answer})

    async def _save_or_report(self, ws: web.WebSocketResponse,
                              save: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]) -> bool:
        try:
            await self._with_db(save)
        except DatabaseUnavailable as exc:
            await ws.send_json({"type": "error", "error": str(exc)})
            return False
        return True
