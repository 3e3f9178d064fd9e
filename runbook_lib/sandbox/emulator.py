"""The Google Cloud REST API emulator: routes and payloads from Google's discovery documents.

One aiohttp application per API (compute v1, sqladmin v1, vpcaccess v1, secretmanager v1, run v2,
networkmanagement v1), each on its own loopback port. Every request goes through one generic
path (``discovery.Api``): the method is found from the document's ``flatPath`` and ``httpMethod``
(anything else: 404 as Google's front end answers), the query and the body are validated against
the method's parameters and request schema (400 ``INVALID_ARGUMENT`` naming the field), and the
handler the product module declared for that method id runs (a method Google has and the sandbox
does not emulate: 501 ``UNIMPLEMENTED``). Errors use Google's format (``{"error": {"code",
"message", "status", "details"}}``, plus ``errors`` for compute/sqladmin); mutations return the
API's own operation, which completes after the scenario's ``operations.duration_s`` (scaled).
With ``validate_responses`` every response is checked against the method's response schema and
any difference is kept in ``schema_problems`` (the conformance tests assert it stays empty).

Test hooks on every port, never on a real API path:

- ``GET /_sandbox/requests``: the request log (time, api, method, path, query, status and the
  discovery ``method_id`` it matched, None for a 404; never a body, so no secret value is ever in
  it). ``DELETE`` clears it.
- ``GET /_sandbox/schema-problems``: responses that differed from their discovery schema (the
  sandbox process validates every response).
- ``GET /_sandbox/state``: every resource plus what the data plane is told.
- ``POST /_sandbox/dns`` ``{"domain", "ip"}``: point a domain's A record (what a person does in
  Cloud DNS); ``GET`` lists the records.
- ``POST /_sandbox/faults`` ``{"path_prefix", "kind", "count", "method"?, "delay_s"?}``: the next
  ``count`` matching requests answer ``429``, ``503``, ``403`` (PERMISSION_DENIED), ``disabled``
  (API not enabled), ``401``, ``malformed`` (invalid JSON), ``truncated`` (body cut short),
  ``delay`` (then normal) or ``hang`` (no reply until the client gives up). ``DELETE`` clears.

In a blackout scenario every API request is accepted and never answered.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from runbook_lib.gcp.products import PRODUCTS  # the real APIs' names: one declaration for client and emulator
from runbook_lib.sandbox.discovery import DOCUMENTS, Api, Method
from runbook_lib.sandbox.state import ApiFault, Call, SandboxState

APIS = tuple(DOCUMENTS)
API_HOSTS = {api: PRODUCTS[api].service for api in APIS}
API_TITLES = {api: PRODUCTS[api].title for api in APIS}
WAIT_CAP_S = 30.0  # a ``wait`` method returns by then even if the operation is not done (as Google's may)

log = logging.getLogger(__name__)

FAULT_KINDS = ("429", "503", "403", "401", "disabled", "malformed", "truncated", "delay", "hang")

@dataclass
class Fault:
    path_prefix: str
    kind: str
    count: int = 1
    method: str | None = None
    delay_s: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and path.startswith(self.path_prefix) and self.method in (None, method)


class Emulator:
    """``await start()`` -> ``{api: port}``; ``await stop()``. ``requests`` is the log."""

    def __init__(self, state: SandboxState, *, max_log: int = 10000, validate_responses: bool = False,
                 apis: dict[str, Api] | None = None):
        self.state = state
        self.apis = apis if apis is not None else {api: Api(api) for api in APIS}
        self.handlers = state.handlers()
        self.validate_responses = validate_responses
        self.schema_problems: list[str] = []
        self.requests: deque[dict[str, Any]] = deque(maxlen=max_log)
        self.faults: list[Fault] = []
        self.ports: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []
        self._stopping = asyncio.Event()

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
        response = await self._dispatch(api, request, entry)
        entry["status"] = response.status
        return response

    async def _hold(self) -> None:
        """Accept and say nothing until the client gives up or the sandbox stops."""
        await self._stopping.wait()

    async def _dispatch(self, api: str, request: web.Request, entry: dict[str, Any] | None = None) -> web.Response:
        spec = self.apis[api]
        found = spec.match(request.method, request.path)
        if entry is not None:
            entry["method_id"] = found[0].id if found else None  # which discovery method it was
        if found is None:
            return error_response(api, 404, "NOT_FOUND",
                                  f"The requested URL {request.path} was not found on this server.", "notFound")
        method, path_params = found
        try:
            query = spec.check_query(method, list(request.query.items()))
            raw = await request.read()
            body: Any = None
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ApiFault(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.",
                                   "badRequest") from None
            body = spec.check_body(method, body)
            handler = self.handlers.get(method.id)
            if handler is None:
                raise ApiFault(501, "UNIMPLEMENTED", f"Method {method.id} is not emulated by the sandbox.",
                               "notImplemented")
            self.state.tick()  # operations and certificates advance before every request
            if method.id.lower().endswith("operations.wait"):
                await self._wait_operation(api, path_params)
            result = handler(Call(path_params, query, body or {}))
        except ApiFault as fault:
            return error_response(api, fault.code, fault.status, fault.message, fault.reason,
                                  field=fault.field, description=fault.description)
        except Exception:  # noqa: BLE001 - a sandbox bug: answer like Google's 500, keep the trace
            log.exception("emulator: %s %s failed", request.method, request.path)
            return error_response(api, 500, "INTERNAL", "Internal error encountered.", "backendError")
        self._check_response(spec, method, result)
        return web.json_response(result, dumps=_dumps)

    async def _wait_operation(self, api: str, params: dict[str, str]) -> None:
        name = params.get("operation") or params.get("name", "")
        remaining = self.state.ops.remaining_s(api, name)
        if remaining > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), min(remaining, WAIT_CAP_S))
            except asyncio.TimeoutError:
                pass

    def _check_response(self, spec: Api, method: Method, result: Any) -> None:
        if not self.validate_responses or method.response is None:
            return
        for problem in spec.response_problems(method.response, result):
            self.schema_problems.append(f"{method.id}: {problem}")

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
        if path == "/_sandbox/schema-problems" and method == "GET":
            return web.json_response({"validating": self.validate_responses, "problems": self.schema_problems})
        if path == "/_sandbox/dns" and method == "GET":
            return web.json_response({"records": dict(self.state.dns)})
        if path == "/_sandbox/dns" and method == "POST":
            data = await request.json()
            if not isinstance(data, dict) or not isinstance(data.get("domain"), str) or not isinstance(
                    data.get("ip"), str):
                return web.json_response({"error": "expected {\"domain\": str, \"ip\": str}"}, status=400)
            self.state.set_dns(data["domain"], data["ip"])
            return web.json_response({"records": dict(self.state.dns)})
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
                "startup_latencies_s": s.startup_latencies(),
                "secret_problems": s.secret_problems(),
                "backend_health": s.health_summary(),
                "connector_instances": s.connector_instances(),
                "blackout": s.blackout(),
            },
        }

# --- helpers -------------------------------------------------------------------------------------

def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def error_response(api: str, code: int, status: str, message: str, reason: str = "", *,
                   field: str | None = None, description: str | None = None) -> web.Response:
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
    if field:
        error["details"].append({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
            {"field": field, "description": description or message}]})
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

