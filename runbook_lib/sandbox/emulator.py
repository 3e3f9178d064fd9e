"""The Google Cloud REST API emulator: the real paths and JSON, backed by ``SandboxState``.

One aiohttp application per API (vpcaccess v1, sqladmin v1, compute v1, secretmanager v1, run v2),
each on its own loopback port, so a client that sends a request to the wrong API's endpoint gets
the 404 it would get from Google. Errors use Google's format
(``{"error": {"code", "message", "status", "details"}}``, plus ``errors`` for compute/sqladmin);
mutations return the API's Operation resource; lists paginate (compute ``maxResults``, the others
``pageSize``; ``pageToken`` -> ``nextPageToken``).

Test hooks on every port, never on a real API path:

- ``GET /_sandbox/requests``: the request log (time, api, method, path, query, status; never a
  body, so no secret value is ever in it). ``DELETE`` clears it.
- ``GET /_sandbox/state``: every resource plus what the data plane is told.
- ``POST /_sandbox/faults`` ``{"path_prefix", "kind", "count", "method"?, "delay_s"?}``: the next
  ``count`` matching requests answer ``429``, ``503``, ``403`` (PERMISSION_DENIED), ``disabled``
  (API not enabled), ``401``, ``malformed`` (invalid JSON), ``truncated`` (body cut short),
  ``delay`` (then normal) or ``hang`` (no reply until the client gives up). ``DELETE`` clears.

In a blackout scenario every API request is accepted and never answered.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from aiohttp import web

from ..gcp.api import APIS
from ..gcp.api import SERVICES as API_HOSTS  # the real APIs' names: one table for client and emulator
from ..gcp.api import TITLES as API_TITLES
from .state import ApiFault, SandboxState

log = logging.getLogger(__name__)

FAULT_KINDS = ("429", "503", "403", "401", "disabled", "malformed", "truncated", "delay", "hang")
COMPUTE_KINDS = {
    "healthChecks": "compute#healthCheckList",
    "backendServices": "compute#backendServiceList",
    "sslCertificates": "compute#sslCertificateList",
    "targetHttpsProxies": "compute#targetHttpsProxyList",
}

Handler = Callable[..., Any]


@dataclass
class Fault:
    path_prefix: str
    kind: str
    count: int = 1
    method: str | None = None
    delay_s: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and path.startswith(self.path_prefix) and self.method in (None, method)


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    wants_body: bool = False


@dataclass
class Request:
    """What a route handler gets: path groups, query and the parsed JSON body."""

    groups: tuple[str, ...]
    query: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class Emulator:
    """``await start()`` -> ``{api: port}``; ``await stop()``. ``requests`` is the log."""

    def __init__(self, state: SandboxState, *, max_log: int = 10000):
        self.state = state
        self.requests: deque[dict[str, Any]] = deque(maxlen=max_log)
        self.faults: list[Fault] = []
        self.ports: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []
        self._stopping = asyncio.Event()
        self._routes: dict[str, list[Route]] = {
            "vpcaccess": self._vpcaccess_routes(),
            "sqladmin": self._sqladmin_routes(),
            "compute": self._compute_routes(),
            "secretmanager": self._secretmanager_routes(),
            "run": self._run_routes(),
        }

    # --- lifecycle -----------------------------------------------------------------------------

    def app(self, api: str) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(api, request)

        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    async def start(self, host: str = "127.0.0.1") -> dict[str, int]:
        for api in APIS:
            runner = web.AppRunner(self.app(api), access_log=None, handler_cancellation=True,
                                   shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, host, 0)
            await site.start()
            self._runners.append(runner)
            self.ports[api] = runner.addresses[0][1]
        return dict(self.ports)

    async def stop(self) -> None:
        self._stopping.set()  # releases requests held by a blackout or a "hang" fault
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    # --- dispatch ------------------------------------------------------------------------------

    async def _handle(self, api: str, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sandbox/"):
            return await self._control(request)
        entry = {"time": time.time(), "api": api, "method": request.method, "path": path,
                 "query": request.query_string, "status": None,
                 "mutating": request.method not in ("GET", "HEAD") and not path.endswith("/getHealth")}
        self.requests.append(entry)
        if self.state.blackout():
            await self._hold()
            entry["status"] = 0
            raise web.HTTPServiceUnavailable()
        fault = self._take_fault(request.method, path)
        if fault is not None:
            response = await self._fault_response(api, fault, request, entry)
            if response is not None:
                return response
        response = await self._dispatch(api, request)
        entry["status"] = response.status
        return response

    async def _hold(self) -> None:
        """Accept and say nothing until the client gives up or the sandbox stops."""
        await self._stopping.wait()

    async def _dispatch(self, api: str, request: web.Request) -> web.Response:
        for route in self._routes[api]:
            m = route.pattern.match(request.path)
            if m is None or route.method != request.method:
                continue
            body: dict[str, Any] = {}
            if route.wants_body:
                raw = await request.read()
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        return error_response(api, 400, "INVALID_ARGUMENT",
                                              "Invalid JSON payload received. Unexpected token.", "badRequest")
                    if not isinstance(body, dict):
                        return error_response(api, 400, "INVALID_ARGUMENT",
                                              "Invalid JSON payload received. Expected an object.", "badRequest")
            try:
                result = route.handler(Request(m.groups(), dict(request.query), body))
            except ApiFault as fault:
                return error_response(api, fault.code, fault.status, fault.message, fault.reason)
            except Exception:  # noqa: BLE001 - a sandbox bug: answer like Google's 500, keep the trace
                log.exception("emulator: %s %s failed", request.method, request.path)
                return error_response(api, 500, "INTERNAL", "Internal error encountered.", "backendError")
            return web.json_response(result, dumps=_dumps)
        return error_response(api, 404, "NOT_FOUND",
                              f"The requested URL {request.path} was not found on this server.", "notFound")

    # --- faults for the hardening tests ----------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.count -= 1
                self.faults = [f for f in self.faults if f.count > 0]
                return fault
        return None

    async def _fault_response(self, api: str, fault: Fault, request: web.Request,
                              entry: dict[str, Any]) -> web.StreamResponse | None:
        kind = fault.kind
        entry["fault"] = kind
        if kind == "delay":
            await asyncio.sleep(fault.delay_s)
            return None
        if kind == "hang":
            await self._hold()
            raise web.HTTPServiceUnavailable()
        if kind == "malformed":
            entry["status"] = 200
            return web.Response(status=200, text='{"kind": "compute#operation", "items": [',
                                content_type="application/json")
        if kind == "truncated":
            entry["status"] = 200
            return await _truncated(request)
        project = self.state.project_number
        responses = {
            "429": (429, "RESOURCE_EXHAUSTED",
                    f"Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of "
                    f"service '{API_HOSTS[api]}' for consumer 'project_number:{project}'.", "RATE_LIMIT_EXCEEDED"),
            "503": (503, "UNAVAILABLE", "The service is currently unavailable.", "backendError"),
            "403": (403, "PERMISSION_DENIED", _permission_message(api, request.method, request.path),
                    "IAM_PERMISSION_DENIED"),
            "401": (401, "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                    "or other valid authentication credential.", "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
            "disabled": (403, "PERMISSION_DENIED",
                         f"{API_TITLES[api]} has not been used in project {project} before or it is disabled. "
                         f"Enable it by visiting https://console.developers.google.com/apis/api/{API_HOSTS[api]}"
                         f"/overview?project={project} then retry.", "SERVICE_DISABLED"),
        }
        code, status, message, reason = responses[kind]
        entry["status"] = code
        return error_response(api, code, status, message, reason)

    # --- control endpoints ---------------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.Response:
        path, method = request.path, request.method
        if path == "/_sandbox/requests" and method == "GET":
            return web.json_response({"requests": list(self.requests)})
        if path == "/_sandbox/requests" and method == "DELETE":
            self.requests.clear()
            return web.json_response({})
        if path == "/_sandbox/state" and method == "GET":
            return web.json_response(self.describe(), dumps=_dumps)
        if path == "/_sandbox/faults" and method == "GET":
            return web.json_response({"faults": [asdict(f) for f in self.faults if f.count > 0]})
        if path == "/_sandbox/faults" and method == "DELETE":
            self.faults.clear()
            return web.json_response({})
        if path == "/_sandbox/faults" and method == "POST":
            try:
                fault = _parse_fault(await request.json())
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            self.faults.append(fault)
            return web.json_response({"faults": [asdict(f) for f in self.faults if f.count > 0]})
        return web.json_response({"error": f"no control endpoint {method} {path}"}, status=404)

    def describe(self) -> dict[str, Any]:
        """Resources plus what the data plane is told now (for tests and ``runbook sandbox status``)."""
        s = self.state
        return {
            "scenario": s.scenario.name,
            "resources": s.snapshot(),
            "dataplane": {
                "proxy_policy": asdict(s.proxy_policy()),
                "certificates": {d: s.certificate_for(d) for d in (s.domains["frontend"], s.domains["api"])},
                "ws_lifetime_s": s.ws_lifetime_s(),
                "startup_remaining_s": s.startup_remaining_s(),
                "secret_problems": s.secret_problems(),
                "backend_health": s.health_summary(),
                "connector_instances": s.connector_instances(),
                "blackout": s.blackout(),
            },
        }

    # --- routes per API ------------------------------------------------------------------------

    def _vpcaccess_routes(self) -> list[Route]:
        s = self.state
        conn = r"^/v1/(projects/[^/]+/locations/[^/]+/connectors/[^/:]+)$"
        return [
            _route("GET", r"^/v1/projects/([^/]+)/locations/([^/]+)/connectors$",
                   lambda r: _page(r, s.list_connectors(*r.groups), "connectors", "pageSize")),
            _route("POST", r"^/v1/projects/([^/]+)/locations/([^/]+)/connectors$",
                   lambda r: s.create_connector(*r.groups, r.query.get("connectorId", ""), r.body), body=True),
            _route("GET", conn, lambda r: s.get_connector(r.groups[0])),
            _route("PATCH", conn, lambda r: s.patch_connector(r.groups[0], r.body, r.query.get("updateMask", "")),
                   body=True),
            _route("DELETE", conn, lambda r: s.delete_connector(r.groups[0])),
            _route("GET", r"^/v1/(projects/[^/]+/locations/[^/]+/operations/[^/]+)$",
                   lambda r: s.get_vpc_operation(r.groups[0])),
        ]

    def _sqladmin_routes(self) -> list[Route]:
        s = self.state
        inst = r"^/v1/projects/([^/]+)/instances/([^/]+)$"
        return [
            _route("GET", r"^/v1/projects/([^/]+)/instances$",
                   lambda r: _page(r, s.list_instances(r.groups[0]), "items", "maxResults")),
            _route("GET", inst, lambda r: s.get_instance(*r.groups)),
            _route("PATCH", inst, lambda r: s.patch_instance(*r.groups, r.body), body=True),
            _route("POST", r"^/v1/projects/([^/]+)/instances/([^/]+)/restart$",
                   lambda r: s.restart_instance(*r.groups), body=True),
            _route("GET", r"^/v1/projects/([^/]+)/operations/([^/]+)$", lambda r: s.get_sql_operation(*r.groups)),
        ]

    def _compute_routes(self) -> list[Route]:
        s = self.state
        base = r"^/compute/v1/projects/([^/]+)/global/"
        colls = "|".join(COMPUTE_KINDS)

        def listing(r: Request) -> dict[str, Any]:
            project, coll = r.groups
            page = _page(r, s.compute_list(project, coll), "items", "maxResults", limit=500)
            link = f"https://www.googleapis.com/compute/v1/projects/{project}/global/{coll}"
            return {"kind": COMPUTE_KINDS[coll], "id": f"projects/{project}/global/{coll}/", **page,
                    "selfLink": f"{link}/"}

        return [
            _route("GET", base + rf"({colls})$", listing),
            _route("GET", base + rf"({colls})/([^/]+)$", lambda r: s.compute_get(*r.groups)),
            _route("PATCH", base + r"(healthChecks|backendServices)/([^/]+)$",
                   lambda r: s.compute_patch(*r.groups, r.body), body=True),
            _route("POST", base + r"sslCertificates$", lambda r: s.insert_ssl_certificate(r.groups[0], r.body),
                   body=True),
            _route("DELETE", base + r"sslCertificates/([^/]+)$", lambda r: s.delete_ssl_certificate(*r.groups)),
            _route("POST", base + r"targetHttpsProxies/([^/]+)/setSslCertificates$",
                   lambda r: s.set_ssl_certificates(*r.groups, r.body), body=True),
            _route("POST", base + r"backendServices/([^/]+)/getHealth$",
                   lambda r: s.backend_health(*r.groups, r.body), body=True),
            _route("GET", base + r"operations/([^/]+)$", lambda r: s.get_compute_operation(*r.groups)),
            _route("POST", base + r"operations/([^/]+)/wait$", lambda r: s.get_compute_operation(*r.groups)),
        ]

    def _secretmanager_routes(self) -> list[Route]:
        s = self.state
        sec = r"^/v1/projects/([^/]+)/secrets/([^/:]+)"
        return [
            _route("GET", r"^/v1/projects/([^/]+)/secrets$",
                   lambda r: _page(r, s.list_secrets(r.groups[0]), "secrets", "pageSize", total=True)),
            _route("POST", r"^/v1/projects/([^/]+)/secrets$",
                   lambda r: s.create_secret(r.groups[0], r.query.get("secretId"), r.body), body=True),
            _route("GET", sec + "$", lambda r: s.get_secret(*r.groups)),
            _route("POST", sec + ":addVersion$", lambda r: s.add_version(*r.groups, r.body), body=True),
            _route("GET", sec + "/versions$",
                   lambda r: _page(r, s.list_versions(*r.groups), "versions", "pageSize", total=True)),
            _route("GET", sec + r"/versions/([^/:]+)$", lambda r: s.get_version(*r.groups)),
            _route("GET", sec + r"/versions/([^/:]+):access$", lambda r: s.access_version(*r.groups)),
            _route("POST", sec + r"/versions/([^/:]+):(enable|disable|destroy)$",
                   lambda r: s.set_version_state(*r.groups), body=True),
        ]

    def _run_routes(self) -> list[Route]:
        s = self.state
        return [
            _route("GET", r"^/v2/projects/([^/]+)/locations/([^/]+)/services$",
                   lambda r: _page(r, s.list_services(*r.groups), "services", "pageSize")),
            _route("GET", r"^/v2/projects/([^/]+)/locations/([^/]+)/services/([^/]+)$",
                   lambda r: s.get_service(*r.groups)),
        ]


# --- helpers -------------------------------------------------------------------------------------

def _route(method: str, pattern: str, handler: Handler, *, body: bool = False) -> Route:
    return Route(method, re.compile(pattern), handler, body)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _page(r: Request, items: list[dict[str, Any]], key: str, size_param: str, *,
          limit: int = 1000, total: bool = False) -> dict[str, Any]:
    """One page of ``items``; tokens are opaque to the client (an offset, base64)."""
    try:
        size = int(r.query.get(size_param) or limit)
    except ValueError:
        raise ApiFault(400, "INVALID_ARGUMENT", f"Invalid value for {size_param}: expected an integer") from None
    if size <= 0:
        size = limit
    size = min(size, limit)
    token = r.query.get("pageToken")
    offset = 0
    if token:
        try:
            decoded = base64.urlsafe_b64decode(token.encode()).decode()
            if not decoded.startswith("offset:"):
                raise ValueError(decoded)
            offset = int(decoded.removeprefix("offset:"))
        except ValueError:
            raise ApiFault(400, "INVALID_ARGUMENT", "Invalid value for field 'pageToken'.", "invalid") from None
    chunk = items[offset:offset + size]
    out: dict[str, Any] = {}
    if chunk:  # proto3 JSON leaves out empty lists, as the real APIs do
        out[key] = chunk
    if offset + size < len(items):
        out["nextPageToken"] = base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode()
    if total:
        out["totalSize"] = len(items)
    return out


def error_response(api: str, code: int, status: str, message: str, reason: str = "") -> web.Response:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status,
        "details": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason or status,
            "domain": API_HOSTS.get(api, "googleapis.com"),
            "metadata": {"service": API_HOSTS.get(api, "")},
        }],
    }
    if api in ("compute", "sqladmin"):
        # These older APIs also carry the v1 "errors" list.
        error["errors"] = [{"message": message, "domain": "global", "reason": reason or status.lower()}]
    return web.json_response({"error": error}, status=code)


COLLECTIONS = ("connectors", "instances", "healthChecks", "backendServices", "sslCertificates",
               "targetHttpsProxies", "operations", "secrets", "versions", "services")
PERMISSION_PREFIX = {"sqladmin": "cloudsql"}


def _permission_message(api: str, method: str, path: str) -> str:
    """The IAM permission the call needs, named the way Google's 403 messages name it."""
    parts = [p for p in path.split("/") if p]
    if api == "compute":
        parts = parts[2:]  # drop "compute/v1"
    else:
        parts = parts[1:]  # drop the version
    indexes = [i for i, p in enumerate(parts) if p.split(":")[0] in COLLECTIONS]
    i = indexes[-1] if indexes else len(parts) - 1
    collection = parts[i].split(":")[0]
    tail = path.rsplit("/", 1)[-1]
    if ":" in tail:
        verb = {"addVersion": "add", "access": "access"}.get(tail.split(":", 1)[1], tail.split(":", 1)[1])
        collection = "versions"
    elif tail in ("restart", "setSslCertificates"):
        verb = tail
    elif tail == "getHealth":
        verb = "get"
    elif method == "GET":
        verb = "list" if i == len(parts) - 1 else "get"
    else:
        verb = {"POST": "create", "PATCH": "update", "DELETE": "delete"}.get(method, "get")
    permission = f"{PERMISSION_PREFIX.get(api, api)}.{collection}.{verb}"
    if api == "compute":
        resource = parts[:-1] if tail in ("setSslCertificates", "getHealth") else parts
        return f"Required '{permission}' permission for '{'/'.join(resource)}'"
    return f"Permission '{permission}' denied on resource '{'/'.join(parts[:2])}' (or it may not exist)."


async def _truncated(request: web.Request) -> web.StreamResponse:
    """Promise a body, send part of it, then drop the connection."""
    body = b'{"kind": "compute#healthCheckList", "items": [{"name": "truncated-' + b"x" * 200 + b'"}]}'
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 3])
    if request.transport is not None:
        request.transport.close()
    return response


def _parse_fault(data: Any) -> Fault:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object {path_prefix, kind, count}")
    kind = str(data.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    prefix = data.get("path_prefix")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError("path_prefix: expected a path starting with '/'")
    unknown = set(data) - {"path_prefix", "kind", "count", "method", "delay_s"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    method = data.get("method")
    return Fault(prefix, kind, int(data.get("count", 1)), method.upper() if method else None,
                 float(data.get("delay_s", 0.0)))

