"""One REST client for the control-plane APIs (httpx + google-auth); ``api.py`` holds the pure model.

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
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import httpx

from runbook_lib import redact
from runbook_lib.errors import ApiError
from runbook_lib.evidence import ApiRecord, ErrorInfo
from runbook_lib.gcp.api import ApiCall, describe, google_error, operation_path, operation_state, retry_after_s
from runbook_lib.gcp.products import PRODUCTS
from runbook_lib.params import Deadlines, Endpoints
from runbook_lib.util import clock

# The last answer's Date header and local arrival time, per task (each read is its own task).
_LAST_DATE: contextvars.ContextVar[tuple[str | None, datetime | None]] = contextvars.ContextVar(
    "runbook_last_date", default=(None, None))

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
MAX_PAGES = 200  # a token that never ends is a broken API, not a big project


@dataclass(frozen=True)
class LogEntry:
    """One HTTP attempt, in ``ApiClient.log`` (no headers, no bodies): what the retry tests observe."""

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
    """Async REST client for the registered products (``gcp/products.py``)."""

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
        self.base_urls = {api: getattr(endpoints, api).rstrip("/") for api in PRODUCTS}
        self.log: list[LogEntry] = []  # every attempt (the retry tests read it)
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._auth_lock = asyncio.Lock()
        self._random = random.Random()
        self._sleep = asyncio.sleep  # seam: tests record the backoff instead of waiting

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
        url = self.url(api, path)
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
                           url=self.url(api, path)) from None
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
        """The full URL of ``path`` on ``api`` (for records and audit lines)."""
        if api not in self.base_urls:
            raise ValueError(f"unknown api {api!r}; expected one of {', '.join(PRODUCTS)}")
        return self.base_urls[api] + (path if path.startswith("/") else "/" + path)

    async def pause(self, seconds: float) -> None:
        """Sleep between polls (the same seam as the retry backoff, so tests record it)."""
        await self._sleep(seconds)

    # -- internals ------------------------------------------------------------------------------
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
        url = self.url(api, path)
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
            _LAST_DATE.set((response.headers.get("date"), clock.utc_now()))  # checks/clock.py
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
            service = PRODUCTS[api].service
            return _Failure("api_disabled", f"the {PRODUCTS[api].title} ({service}) is not enabled in project {p}: "
                                            f"run `gcloud services enable {service} --project {p}`", status)
        if status == 403:
            role = PRODUCTS[api].write_role if mutation else PRODUCTS[api].read_role
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
