"""HTTP(S) prober on httpcore (httpx's engine), phases timed through its ``trace`` extension.

The network seam is ``RoutingBackend``: it applies ``connect_to`` overrides (TLS server name and
``Host`` stay the URL's host, like ``curl --connect-to``) and times DNS separately from TCP.
``make_async_client`` gives the same routing and trust to ordinary httpx calls (login, history)
through ``RoutingTransport``, an httpx transport on the same kind of httpcore pool as the probe.
"""
from __future__ import annotations

import json
import ssl
from typing import Any, Iterable

import anyio
import httpcore
import httpx

from runbook_lib import redact
from runbook_lib.probes.base import (
    Attempt,
    NetContext,
    ProbeFailure,
    ProbeResult,
    Reason,
    classify_chain,
    exception_chain,
    resolve_addresses,
)
from runbook_lib.probes.tls import certificate_info, with_served_certificate

MAX_BODY = 64 * 1024
SNIPPET_BYTES = 512
# Response headers worth keeping as evidence; nothing that can carry a credential or a cookie.
SAFE_HEADERS = (
    "content-type", "content-length", "server", "date", "location", "retry-after", "via",
    "cache-control", "x-cloud-trace-context", "www-authenticate", "alt-svc",
)


class RoutingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with ``connect_to`` overrides and a separately timed resolve.

    With an ``Attempt`` it also records the resolve and connect phases and the addresses used,
    and keeps the streams it opened so the probe can close them even after a cancellation
    (httpcore loses a stream cancelled mid-handshake).
    """

    def __init__(self, net: NetContext, run: Attempt | None = None):
        self._net, self._run = net, run
        self._inner = httpcore.AnyIOBackend()
        self._opened: list[httpcore.AsyncNetworkStream] = []

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addrs = await self._resolve(host, port, timeout)
        if self._run:
            self._run.addresses = addrs
            self._run.begin("connect")
        last: Exception | None = None
        for addr, addr_port in addrs:
            try:
                stream = await self._inner.connect_tcp(
                    addr, addr_port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
                continue
            if self._run:
                self._run.end("connect")
                self._run.info["peer"] = f"{addr}:{addr_port}"
                self._opened.append(stream)
            return stream
        assert last is not None
        raise last

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[tuple[str, int]]:
        routed = self._net.route(host, port)
        if self._run:
            self._run.begin("resolve")
        if routed is not None:
            if self._run:
                self._run.phases["resolve"] = 0.0
                self._run.info.update(addresses=[routed[0]], override=True, connect_to=f"{routed[0]}:{routed[1]}")
            return [routed]
        try:
            with anyio.fail_after(timeout):
                addrs = await resolve_addresses(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no DNS answer for {host}") from exc
        except OSError as exc:  # socket.gaierror: httpx callers expect httpcore's exceptions
            raise httpcore.ConnectError(f"{host} does not resolve ({exc.strerror})") from exc
        if self._run:
            self._run.end("resolve")
            self._run.info.update(addresses=[a for a, _ in addrs], override=False)
        return addrs

    async def aclose_opened(self) -> None:
        """Close every TCP stream this backend opened (a no-op for those already closed)."""
        streams, self._opened = self._opened, []
        with anyio.move_on_after(1):
            for stream in streams:
                await stream.aclose()

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def connection_pool(net: NetContext, backend: RoutingBackend,
                    limits: httpx.Limits | None = None) -> httpcore.AsyncConnectionPool:
    """The httpcore pool both the probe and ``RoutingTransport`` use: ``net``'s trust, ``backend``'s dialling
    (no limits unless given)."""
    limits = limits or httpx.Limits()
    return httpcore.AsyncConnectionPool(
        ssl_context=net.ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )


def _httpx_error(exc: Exception) -> type[httpx.TransportError] | None:
    """The httpx exception named like ``exc``'s most specific httpcore class (the two share names)."""
    for cls in type(exc).__mro__:
        if cls.__module__.startswith("httpcore"):
            mapped = getattr(httpx, cls.__name__, None)
            if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
                return mapped
    return None


class _MappedErrors:
    """Re-raise httpcore's exceptions as httpx's (the cause kept, so ``classify_chain`` sees the root)."""

    def __init__(self, request: httpx.Request):
        self._request = request

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: Any, exc: BaseException | None, _tb: Any) -> bool:
        if isinstance(exc, Exception) and not isinstance(exc, httpx.HTTPError):
            mapped = _httpx_error(exc)
            if mapped is not None:
                raise mapped(str(exc), request=self._request) from exc
        return False


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request):
        self._stream, self._request = stream, request

    async def __aiter__(self) -> Any:
        with _MappedErrors(self._request):
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


class RoutingTransport(httpx.AsyncBaseTransport):
    """An httpx transport on an httpcore pool that dials through ``RoutingBackend``.

    httpx's own ``AsyncHTTPTransport`` takes no network backend, so this one hands the request to
    the pool itself (timeouts and other extensions pass through as httpx sets them).
    """

    def __init__(self, net: NetContext, limits: httpx.Limits | None = None):
        self._connections = connection_pool(net, RoutingBackend(net), limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _MappedErrors(request):
            response = await self._connections.handle_async_request(core_request)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_ResponseStream(response.stream, request), extensions=response.extensions)

    async def aclose(self) -> None:
        await self._connections.aclose()


def make_async_client(net: NetContext, timeout_s: float, **kw: Any) -> httpx.AsyncClient:
    """An httpx client that honours ``net``'s ``connect_to`` overrides and CA bundle.

    ``kw`` goes to ``httpx.AsyncClient`` (``base_url``, ``headers``, ``follow_redirects``...).
    Environment proxies are ignored: the override must reach the address it names.
    """
    kw.setdefault("trust_env", False)
    return httpx.AsyncClient(transport=RoutingTransport(net), timeout=httpx.Timeout(timeout_s), **kw)


def _translate(exc: Exception) -> ProbeFailure:
    """httpcore's errors as a probe outcome: the root cause (refused, TLS...) when there is one."""
    reason, detail = classify_chain(exc)
    if reason is Reason.error:
        if isinstance(exc, httpcore.RemoteProtocolError) and "disconnected" in str(exc).lower():
            reason, detail = Reason.reset, "server closed the connection without an HTTP response"
        elif isinstance(exc, (httpcore.ReadError, httpcore.WriteError)):
            reason, detail = Reason.reset, f"connection broken ({exc or type(exc).__name__})"
        elif isinstance(exc, httpcore.ProtocolError):
            reason, detail = Reason.protocol, f"not a valid HTTP exchange ({exc})"
        elif isinstance(exc, httpcore.TimeoutException):
            reason, detail = Reason.timeout, f"no answer ({exc})"
    return ProbeFailure(reason, detail)


def _encode_body(body: Any, headers: dict[str, str]) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    headers.setdefault("content-type", "application/json")
    return json.dumps(body).encode()


def _expected(expect_status: int | Iterable[int]) -> list[int]:
    return [expect_status] if isinstance(expect_status, int) else list(expect_status)


async def probe(
    target: str, net: NetContext, deadline_s: float, *, method: str = "GET",
    expect_status: int | Iterable[int] = 200, headers: dict[str, str] | None = None,
    body: Any = None, max_body: int = MAX_BODY, **_options: object,
) -> ProbeResult:
    """Request ``target`` (a URL) once; ok when the status is one of ``expect_status``."""
    run = Attempt("http", target, net)
    backend = RoutingBackend(net, run)
    request_headers = {"user-agent": "runbook-probe", **{k.lower(): v for k, v in (headers or {}).items()}}
    content = _encode_body(body, request_headers)
    expected = _expected(expect_status)

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == "connection.start_tls.started":
            run.begin("tls")
        elif event == "connection.start_tls.complete":
            run.end("tls")
            ssl_object = info["return_value"].get_extra_info("ssl_object")
            if ssl_object is not None:
                run.info.update(tls_version=ssl_object.version(), cipher=(ssl_object.cipher() or ("",))[0])
                run.info["cert"] = certificate_info(ssl_object.getpeercert(binary_form=True), verified=True)
        elif event == "connection.start_tls.failed":
            for cause in exception_chain(info["exception"]):
                if isinstance(cause, ssl.SSLCertVerificationError):
                    run.end("tls")  # the handshake completed; the certificate was refused
                    run.verify_error = cause.verify_message or str(cause)
                    break
        elif event == "http11.send_request_headers.started":
            run.begin("processing")
        elif event == "http11.receive_response_headers.complete":
            run.end("processing")

    async def steps() -> None:
        async with connection_pool(net, backend, httpx.Limits(max_connections=1)) as pool:
            try:
                async with pool.stream(
                    method, target, headers=list(request_headers.items()), content=content,
                    extensions={"trace": trace},
                ) as response:
                    run.begin("transfer")
                    received, truncated = bytearray(), False
                    async for chunk in response.aiter_stream():
                        received += chunk
                        if len(received) > max_body:
                            del received[max_body:]
                            truncated = True
                            break
                    run.end("transfer")
            except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException) as exc:
                raise _translate(exc) from exc
        status = response.status
        run.info.update(
            status=status,
            http_version=response.extensions.get("http_version", b"").decode(),
            headers={k.decode().lower(): redact.text(v.decode("latin-1"))
                     for k, v in response.headers if k.decode().lower() in SAFE_HEADERS},
            body_snippet=redact.text(bytes(received[:SNIPPET_BYTES]).decode("utf-8", "replace")),
            body_bytes=len(received),
            truncated=truncated,
        )
        if status not in expected:
            wanted = " or ".join(str(s) for s in expected)
            raise ProbeFailure(Reason.http_status, f"HTTP {status} (expected {wanted})")

    try:
        result = await run.run(steps(), deadline_s)
    finally:
        await backend.aclose_opened()
    return await with_served_certificate(result, run, httpx.URL(target).host, net, deadline_s)
