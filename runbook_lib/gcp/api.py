"""One REST client for the five control-plane APIs (httpx + google-auth).

Why one client and not five client libraries: one retry/deadline/pagination path, one error
translation, and the JSON we archive is exactly what the API answered (see docs/architecture.md).

    read(...)            a read for the evidence: never raises for an API or network outcome, the
                         failure is recorded in the ``ApiRecord`` (ok=False, error kind + message).
    request(...)         a mutation (remediation): raises ``errors.ApiError`` on failure.
    wait_operation(...)  polls a compute / sqladmin / long-running operation until it is done,
                         with backoff, reporting every poll (``is_operation`` recognises them).

Every call has one deadline (``deadlines.api_s``) covering all its retries and pages. 429, 5xx and
connection errors are retried with exponential backoff and jitter, honouring ``Retry-After``, at
most ``deadlines.retries`` times and never past the deadline. A POST mutation that may have reached
the server is retried only on 429 (the server said it did nothing); repeating it on a 5xx could
create a resource twice.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable
from urllib.parse import urlparse

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from runbook_lib import redact
from runbook_lib.errors import ApiError, RemediationError
from runbook_lib.evidence import ApiRecord, ErrorInfo
from runbook_lib.params import Deadlines, Endpoints

# The last answer's Date header and local arrival time, per task (each read is its own task).
_LAST_DATE: contextvars.ContextVar[tuple[str | None, datetime | None]] = contextvars.ContextVar(
    "runbook_last_date", default=(None, None))

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

APIS = ("vpcaccess", "sqladmin", "compute", "secretmanager", "run")

# The service name to enable, as `gcloud services enable` wants it.
SERVICES = {
    "vpcaccess": "vpcaccess.googleapis.com",
    "sqladmin": "sqladmin.googleapis.com",
    "compute": "compute.googleapis.com",
    "secretmanager": "secretmanager.googleapis.com",
    "run": "run.googleapis.com",
}
TITLES = {
    "vpcaccess": "Serverless VPC Access API",
    "sqladmin": "Cloud SQL Admin API",
    "compute": "Compute Engine API",
    "secretmanager": "Secret Manager API",
    "run": "Cloud Run Admin API",
}
# The least role that lets the runbook read (diagnose) or change (remediate) each product.
READ_ROLES = {
    "vpcaccess": "roles/vpcaccess.viewer",
    "sqladmin": "roles/cloudsql.viewer",
    "compute": "roles/compute.viewer",
    "secretmanager": "roles/secretmanager.viewer",
    "run": "roles/run.viewer",
}
WRITE_ROLES = {
    "vpcaccess": "roles/vpcaccess.admin",
    "sqladmin": "roles/cloudsql.admin",
    "compute": "roles/compute.loadBalancerAdmin",
    "secretmanager": "roles/secretmanager.admin",
    "run": "roles/run.admin",
}

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
MAX_PAGES = 200  # a token that never ends is a broken API, not a big project


def last_segment(name: str | None) -> str:
    """``.../global/networks/staging-vpc`` -> ``staging-vpc``: selfLinks and names compare alike."""
    return (name or "").rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Resource:
    """A thin typed view over one raw API resource (gcpdiag style); subclasses add properties."""

    raw: dict = field(repr=False)

    @classmethod
    def from_json(cls, d: dict | None):
        return cls(d or {})


class ApiCall(BaseModel):
    """One remediation request, with the exact ``gcloud`` equivalent a person could run instead.

    Secret values are never part of the model: ``secret`` is a ``SecretStr`` that is excluded from
    serialisation and repr (so a plan, its id hash, its log and its rendering cannot contain it),
    and ``send_body()`` injects it into the request body only at send time.
    """

    model_config = ConfigDict(frozen=True)

    method: str
    api: str
    path: str
    body: dict | None = None
    query: dict | None = None
    gcloud: str
    description: str
    secret: SecretStr | None = Field(default=None, repr=False, exclude=True)
    secret_name: str | None = None  # which secret's value ``send_body`` needs (a name, never a value)

    def send_body(self) -> dict | None:
        """The body to send; for a secret version, with the payload injected now."""
        if self.secret_name is None:
            return self.body
        if self.secret is None:
            raise RemediationError(
                f"no value supplied for secret {self.secret_name}: set "
                f"remediation.secret_values.env.{self.secret_name} to the name of an environment "
                "variable holding it, or remediation.secret_values.file"
            )
        import base64

        data = base64.b64encode(self.secret.get_secret_value().encode()).decode()
        return {**(self.body or {}), "payload": {"data": data}}


@dataclass(frozen=True)
class LogEntry:
    """One HTTP exchange, for the report's request log (no headers, no bodies)."""

    method: str
    url: str
    status: int | None
    elapsed_s: float
    attempt: int
    outcome: str = ""


class _Failure(Exception):
    """Internal: a translated failure on its way to becoming an ApiRecord or an ApiError."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.status = kind, redact.text(message), status


class ApiClient:
    """Async REST client for vpcaccess, sqladmin, compute, secretmanager and run."""

    def __init__(
        self,
        endpoints: Endpoints,
        deadlines: Deadlines,
        *,
        project: str,
        credentials: Any = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.endpoints, self.deadlines, self.project = endpoints, deadlines, project
        self.credentials = credentials
        self.base_urls = {api: getattr(endpoints, api).rstrip("/") for api in APIS}
        self.log: list[LogEntry] = []
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._auth_lock = asyncio.Lock()
        self._random = random.Random()
        self._sleep = asyncio.sleep  # seam: tests record the backoff instead of waiting

    def request_log(self) -> list[dict]:
        """The HTTP exchanges so far, as rows for the report (method, url, status, elapsed)."""
        return [vars(entry).copy() for entry in self.log]

    # -- lifecycle ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- public calls ---------------------------------------------------------------------------
    async def read(
        self,
        key: str,
        api: str,
        path: str,
        *,
        list_field: str | None = None,
        query: dict | None = None,
        method: str = "GET",
        body: dict | None = None,
    ) -> ApiRecord:
        """A read for the evidence. ``list_field``: follow ``nextPageToken`` and merge that field.

        ``method``/``body`` exist for reads that are POSTs (compute ``getHealth``).
        """
        url = self._url(api, path)
        started = time.perf_counter()
        deadline = time.monotonic() + self.deadlines.api_s
        pages = 0
        _LAST_DATE.set((None, None))
        try:
            if list_field is None:
                status, payload = await self._call(method, api, path, body=body, query=query,
                                                   deadline=deadline, mutation=False)
                pages = 1
            else:
                status, payload, pages = await self._read_pages(api, path, list_field, query, deadline)
        except _Failure as failure:
            date, received_at = _LAST_DATE.get()
            return ApiRecord(
                key=key, method=method, url=url, ok=False, status=failure.status,
                error=ErrorInfo(kind=failure.kind, message=failure.message, status=failure.status),
                elapsed_s=round(time.perf_counter() - started, 4), pages=max(pages, 1),
                date=date, received_at=received_at,
            )
        date, received_at = _LAST_DATE.get()
        return ApiRecord(
            key=key, method=method, url=url, ok=True, status=status, body=payload,
            elapsed_s=round(time.perf_counter() - started, 4), pages=pages,
            date=date, received_at=received_at,
        )

    async def request(
        self, method: str, api: str, path: str, *, body: dict | None = None, query: dict | None = None
    ) -> dict:
        """A mutation. Returns the JSON answer (often an operation); raises ``ApiError``."""
        deadline = time.monotonic() + self.deadlines.api_s
        try:
            _, payload = await self._call(method.upper(), api, path, body=body, query=query,
                                          deadline=deadline, mutation=method.upper() != "GET")
        except _Failure as failure:
            raise ApiError(failure.kind, failure.message, status=failure.status,
                           url=self._url(api, path)) from None
        return payload if isinstance(payload, dict) else {"response": payload}

    async def execute(self, call: ApiCall) -> dict:
        """Send a remediation ``ApiCall`` (the secret payload, if any, is injected only here)."""
        return await self.request(call.method, call.api, call.path, body=call.send_body(), query=call.query)

    async def wait_operation(
        self, api: str, operation: dict, *, deadline_s: float, first_poll_s: float = 1.0,
        on_poll: Callable[[dict], None] | None = None,
    ) -> dict:
        """Poll an operation until done, with backoff (``first_poll_s``, x1.5, at most 10 x
        ``first_poll_s``), never past ``deadline_s``. Raises ``ApiError`` (kind ``operation``) with
        Google's error if it failed, (kind ``timeout``) if still running at the deadline.
        ``on_poll(op)`` sees every answer, so the audit can record each poll with its status."""
        give_up = time.monotonic() + deadline_s
        delay, ceiling = first_poll_s, 10.0 * first_poll_s
        op = operation
        path = self._operation_path(api, op)
        while True:
            done, error = operation_state(op)
            if done:
                if error:
                    raise ApiError("operation", redact.text(f"{api} operation {op.get('name', '')} failed: {error}"),
                                   url=path)
                return op
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise ApiError(
                    "timeout",
                    f"{api} operation {op.get('name', '')} still running after {deadline_s:g} s; "
                    "it continues in the background: re-run the check later",
                    url=path,
                )
            await self._sleep(min(delay * (0.8 + 0.4 * self._random.random()), remaining))
            delay = min(delay * 1.5, ceiling)
            op = await self.request("GET", api, path)
            if on_poll is not None:
                on_poll(op)

    def url(self, api: str, path: str) -> str:
        """The full URL of ``path`` on ``api`` (for audit lines)."""
        return self._url(api, path)

    async def pause(self, seconds: float) -> None:
        """Sleep between polls (the same seam as the retry backoff, so tests record it)."""
        await self._sleep(seconds)

    # -- internals ------------------------------------------------------------------------------
    def _url(self, api: str, path: str) -> str:
        if api not in self.base_urls:
            raise ValueError(f"unknown api {api!r}; expected one of {', '.join(APIS)}")
        return self.base_urls[api] + (path if path.startswith("/") else "/" + path)

    def _operation_path(self, api: str, op: dict) -> str:
        """The operation's GET path, as the discovery documents define it (compute global, regional
        and zonal operations; sqladmin ``v1/projects/{p}/operations/{op}``; ``v1|v2/{+name}`` LROs)."""
        return operation_path(api, op, self.project)

    async def _read_pages(
        self, api: str, path: str, list_field: str, query: dict | None, deadline: float
    ) -> tuple[int, dict, int]:
        items: list = []
        first: dict | None = None
        token: str | None = None
        seen: set[str] = set()
        status = 200
        for page in range(1, MAX_PAGES + 1):
            q = dict(query or {})
            if token:
                q["pageToken"] = token
            status, payload = await self._call("GET", api, path, body=None, query=q or None,
                                               deadline=deadline, mutation=False)
            if not isinstance(payload, dict):
                raise _Failure("malformed", f"{api} returned a list page that is not a JSON object", status)
            if first is None:
                first = payload
            items.extend(payload.get(list_field) or [])
            token = payload.get("nextPageToken") or None
            if not token:
                merged = {k: v for k, v in first.items() if k != "nextPageToken"}
                merged[list_field] = items
                return status, merged, page
            if token in seen:
                raise _Failure("malformed", f"{api} repeated a page token while listing {path}", status)
            seen.add(token)
        raise _Failure("malformed", f"{api} listed more than {MAX_PAGES} pages for {path}", status)

    async def _call(
        self, method: str, api: str, path: str, *, body: dict | None, query: dict | None,
        deadline: float, mutation: bool,
    ) -> tuple[int, Any]:
        """One logical call with retries under ``deadline`` (a ``time.monotonic`` instant)."""
        url = self._url(api, path)
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Failure("timeout", self._timeout_message(api))
            headers = await self._headers(api, deadline)
            started = time.perf_counter()
            request = self._http.build_request(method, url, json=body, params=query, headers=headers,
                                               timeout=httpx.Timeout(remaining))
            try:
                response = await asyncio.wait_for(self._http.send(request, stream=True), timeout=remaining)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                self._log(method, url, None, started, attempt, "timeout")
                raise _Failure("timeout", self._timeout_message(api)) from None
            except httpx.TransportError as exc:
                self._log(method, url, None, started, attempt, "network")
                sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                retry_ok = not (mutation and sent and method not in IDEMPOTENT)
                failure = _Failure("network", f"cannot reach {api} at {self.base_urls[api]}: "
                                              f"{type(exc).__name__}: {exc or 'connection failed'}")
                if retry_ok and await self._backoff(attempt, None, deadline):
                    continue
                raise failure from None
            # The body is read under the same deadline: a stalled body is a timeout, a cut one malformed.
            try:
                await asyncio.wait_for(response.aread(), timeout=max(deadline - time.monotonic(), 0.001))
            except (asyncio.TimeoutError, httpx.TimeoutException):
                self._log(method, url, response.status_code, started, attempt, "timeout")
                raise _Failure("timeout", self._timeout_message(api)) from None
            except httpx.TransportError:
                self._log(method, url, response.status_code, started, attempt, "truncated")
                raise _Failure("malformed", f"{api} returned a response that is not JSON (truncated?)",
                               response.status_code) from None
            finally:
                await response.aclose()
            self._log(method, url, response.status_code, started, attempt)
            _LAST_DATE.set((response.headers.get("date"), datetime.now(timezone.utc)))  # checks/clock.py
            status = response.status_code
            if status in RETRYABLE_STATUS:
                retry_ok = status == 429 or not mutation or method in IDEMPOTENT
                if retry_ok and await self._backoff(attempt, response, deadline):
                    continue
            if 200 <= status < 300:
                return status, self._json(api, response)
            raise self._translate(api, method, path, response, attempt, mutation)

    async def _backoff(self, attempt: int, response: httpx.Response | None, deadline: float) -> bool:
        """Sleep before the next attempt; False when out of retries or the deadline forbids it."""
        if attempt > self.deadlines.retries:
            return False
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (0.5 + self._random.random() / 2)
        hinted = retry_after_s(response.headers.get("retry-after")) if response is not None else None
        if hinted is not None:
            delay = min(hinted, BACKOFF_MAX_S * 4)  # honour the server, within reason
        if time.monotonic() + delay >= deadline:
            return False
        await self._sleep(delay)
        return True

    async def _headers(self, api: str, deadline: float) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "runbook/0.1"}
        if self.credentials is None:
            return headers
        async with self._auth_lock:
            if not getattr(self.credentials, "valid", False):
                await self._refresh(api, deadline)
        headers["Authorization"] = f"Bearer {self.credentials.token}"
        quota_project = getattr(self.credentials, "quota_project_id", None)
        if quota_project:
            headers["x-goog-user-project"] = quota_project
        return headers

    async def _refresh(self, api: str, deadline: float) -> None:
        import google.auth.exceptions
        import google.auth.transport.requests

        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            await asyncio.wait_for(
                asyncio.to_thread(self.credentials.refresh, google.auth.transport.requests.Request()),
                timeout=remaining,
            )
        except asyncio.TimeoutError:
            raise _Failure("timeout", f"no token from Google within {self.deadlines.api_s:g} s "
                                      "(refreshing Application Default Credentials)") from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise _Failure("unauthenticated", "could not refresh Application Default Credentials "
                                              f"({type(exc).__name__}): run `gcloud auth application-default login`") from None

    def _log(self, method: str, url: str, status: int | None, started: float, attempt: int, outcome: str = "") -> None:
        self.log.append(LogEntry(method, redact.text(url), status, round(time.perf_counter() - started, 4), attempt, outcome))

    def _timeout_message(self, api: str) -> str:
        return f"no answer from {api} ({self.base_urls[api]}) within {self.deadlines.api_s:g} s"

    def _json(self, api: str, response: httpx.Response) -> Any:
        if not response.content:
            return {}
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise _Failure("malformed", f"{api} returned a response that is not JSON (truncated?)",
                           response.status_code) from None

    def _translate(self, api: str, method: str, path: str, response: httpx.Response, attempts: int,
                   mutation: bool) -> _Failure:
        status = response.status_code
        google = google_error(response.content)
        said = google.message
        p = self.project
        if status == 403 and google.service_disabled:
            service = SERVICES[api]
            return _Failure("api_disabled", f"the {TITLES[api]} ({service}) is not enabled in project {p}: "
                                            f"run `gcloud services enable {service} --project {p}`", status)
        if status == 403:
            role = (WRITE_ROLES if mutation else READ_ROLES)[api]
            return _Failure(
                "permission",
                f"permission denied on {api} in project {p}: the caller needs {role} "
                f"(`gcloud projects add-iam-policy-binding {p} --member=user:YOU --role={role}`)"
                + (f"; Google said: {said}" if said else ""),
                status,
            )
        if status == 404:
            return _Failure("not_found", f"{describe(path)} not found: {path}", status)
        if status == 401:
            return _Failure("unauthenticated", f"{api} rejected the credentials (401): "
                                               "run `gcloud auth application-default login`", status)
        if status == 429:
            return _Failure("rate_limited", f"{api} is rate limiting this project ({p}) after {attempts} "
                                            "attempts: wait a minute and re-run"
                                            + (f"; Google said: {said}" if said else ""), status)
        if status >= 500:
            return _Failure("server", f"{api} answered {status} after {attempts} attempts "
                                      "(a Google-side problem; re-run later)"
                                      + (f": {said}" if said else ""), status)
        if status in (409, 412):
            return _Failure("conflict", f"{api} refused {method} {path} ({status}): "
                                        + (said or "the resource changed or already exists"), status)
        return _Failure("bad_request", f"{api} refused {method} {path} ({status})"
                                       + (f": {said}" if said else ""), status)


# -- pure helpers (module level so tests and the sandbox can use them) -----------------------------

@dataclass(frozen=True)
class GoogleError:
    message: str = ""
    status: str = ""
    reasons: tuple[str, ...] = ()

    @property
    def service_disabled(self) -> bool:
        text = self.message.lower()
        return (
            "SERVICE_DISABLED" in self.reasons
            or "accessNotConfigured" in self.reasons
            or "has not been used in project" in text
            or "is disabled" in text
        )


def google_error(content: bytes) -> GoogleError:
    """Parse ``{"error": {"code", "message", "status", "details": [ErrorInfo...], "errors": [...]}}``."""
    try:
        body = json.loads(content) if content else {}
    except (ValueError, UnicodeDecodeError):
        return GoogleError(message=content[:200].decode("utf-8", "replace").strip())
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, str):  # OAuth-style {"error": "invalid_grant", "error_description": ...}
        return GoogleError(message=f"{err}: {body.get('error_description', '')}".strip(": "))
    if not isinstance(err, dict):
        return GoogleError()
    reasons: list[str] = []
    for detail in err.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            reasons.append(str(detail["reason"]))
    for item in err.get("errors") or []:  # the older compute/sqladmin shape
        if isinstance(item, dict) and item.get("reason"):
            reasons.append(str(item["reason"]))
    return GoogleError(message=str(err.get("message", "")), status=str(err.get("status", "")), reasons=tuple(reasons))


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import datetime, timezone

    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


LRO_APIS = {"vpcaccess": "v1", "run": "v2", "networkmanagement": "v1"}  # google.longrunning.Operation
_LRO_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/operations/[^/]+$")
_LRO_FIELDS = frozenset({"name", "metadata", "done", "error", "response"})


def is_operation(api: str, answer: Any) -> bool:
    """Does this answer describe an operation to wait for (in any state)?

    compute ``Operation`` (``kind: compute#operation``, ``status`` PENDING/RUNNING/DONE), sqladmin
    ``Operation`` (``kind: sql#operation``), or a ``google.longrunning.Operation`` whose ``done`` is
    absent until it finishes (vpcaccess v1, run v2, networkmanagement v1)."""
    if not isinstance(answer, dict):
        return False
    kind = str(answer.get("kind", ""))
    if kind in ("compute#operation", "sql#operation"):
        return True
    if api in LRO_APIS:
        return bool(_LRO_NAME.match(str(answer.get("name", "")))) and set(answer) <= _LRO_FIELDS
    return False


def operation_path(api: str, op: dict, project: str) -> str:
    name = str(op.get("name", ""))
    if api == "compute":
        project = _segment_after(op.get("selfLink"), "projects") or project
        if op.get("zone"):
            return f"/compute/v1/projects/{project}/zones/{last_segment(op['zone'])}/operations/{name}"
        if op.get("region"):
            return f"/compute/v1/projects/{project}/regions/{last_segment(op['region'])}/operations/{name}"
        return f"/compute/v1/projects/{project}/global/operations/{name}"
    if api == "sqladmin":  # a recorded selfLink may name v1beta4; the runbook speaks v1
        return f"/v1/projects/{op.get('targetProject') or project}/operations/{name}"
    return f"/{LRO_APIS.get(api, 'v1')}/{name}"


def _segment_after(link: str | None, collection: str) -> str:
    parts = urlparse(link or "").path.split("/")
    return parts[parts.index(collection) + 1] if collection in parts[:-1] else ""


def _status_shaped(op: dict) -> bool:
    """compute / sqladmin operations carry ``status``; a google.longrunning.Operation never does."""
    return str(op.get("kind", "")).endswith("#operation") or ("status" in op and "done" not in op)


def operation_status(op: dict) -> str:
    """PENDING / RUNNING / DONE for every shape (an LRO without ``done`` is RUNNING)."""
    if _status_shaped(op):
        return str(op.get("status"))
    return "DONE" if op.get("done") else "RUNNING"


def operation_state(op: dict) -> tuple[bool, str]:
    """``(done, error text)`` for compute and sqladmin operations (``status``) and LROs (``done``)."""
    if not _status_shaped(op):
        err = op.get("error")
        if not isinstance(err, dict):
            return bool(op.get("done")), ""
        text = err.get("message") or json.dumps(err)
        code = err.get("code")
        return bool(op.get("done")), (f"{text} (code {code})" if code not in (None, "") else text)
    done = op.get("status") == "DONE"
    err = op.get("error") or {}
    messages = [e.get("message") or e.get("code", "") for e in err.get("errors", []) if isinstance(e, dict)]
    if done and not messages and op.get("httpErrorStatusCode"):
        messages = [f"{op.get('httpErrorStatusCode')} {op.get('httpErrorMessage', '')}".strip()]
    return done, "; ".join(m for m in messages if m)


_COLLECTIONS = {
    "connectors": "connector", "instances": "instance", "secrets": "secret", "versions": "secret version",
    "services": "service", "sslCertificates": "SSL certificate", "targetHttpsProxies": "target HTTPS proxy",
    "healthChecks": "health check", "backendServices": "backend service", "operations": "operation",
    "locations": "location", "projects": "project", "networks": "network", "urlMaps": "URL map",
    "connectivityTests": "Connectivity Test", "networkEndpointGroups": "network endpoint group",
    "forwardingRules": "forwarding rule",
}


def describe(path: str) -> str:
    """What a path names, for people: ``.../connectors/c`` -> ``connector c``."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1] in _COLLECTIONS:
            return f"{_COLLECTIONS[parts[i - 1]]} {parts[i].split(':')[0]}"
    return "resource"


# -- products described in their own module (API name, service, title, roles: once, there) ---------
# Imported last: the module defines those names before it imports this one back.
from runbook_lib.gcp import networkmanagement as _networkmanagement  # noqa: E402

for _product in (_networkmanagement,):
    APIS += (_product.API,)
    SERVICES[_product.API], TITLES[_product.API] = _product.SERVICE, _product.TITLE
    READ_ROLES[_product.API], WRITE_ROLES[_product.API] = _product.READ_ROLE, _product.WRITE_ROLE
