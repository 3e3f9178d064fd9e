"""What every product module of the sandbox state shares: Google's error, names, ids, time.

``Base`` holds the injected clock, the lock and the names from the parameters; each product
module (``vpcaccess``, ``sqladmin``, ``compute``, ``secretmanager``, ``run``, ``networkmanagement``)
is a mixin over it, and ``SandboxState`` (the facade in ``__init__``) composes them.
"""
from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from runbook_lib.errors import RunbookError
from runbook_lib.params import Params
from runbook_lib.sandbox.scenario import Scenario

COMPUTE = "https://www.googleapis.com/compute/v1"
SQLADMIN = "https://sqladmin.googleapis.com/v1"
ACTOR = "runbook-sandbox@sandbox.iam.gserviceaccount.com"
SQL_PRIVATE_IP = "10.103.0.3"  # what the API reports; the data path is the sandbox proxy
LB_IP = "34.120.0.10"          # the global forwarding rule's address
ELSEWHERE_IP = "35.190.0.99"   # where DNS points when it does not point at the load balancer


class ApiFault(RunbookError):
    """A request the real API would refuse; the emulator renders it in Google's error format."""

    def __init__(self, code: int, status: str, message: str, reason: str = "", domain: str = "googleapis.com",
                 *, field: str | None = None, description: str | None = None):
        self.code, self.status, self.message = code, status, message
        self.reason = reason or status.lower()
        self.domain = domain
        self.field, self.description = field, description
        super().__init__(message)


def not_found(what: str) -> ApiFault:
    return ApiFault(404, "NOT_FOUND", f"The resource '{what}' was not found", "notFound")


def bad_request(message: str, reason: str = "invalid", *, field: str | None = None) -> ApiFault:
    return ApiFault(400, "INVALID_ARGUMENT", message, reason, field=field)


@dataclass
class Call:
    """One routed request: the method's path parameters, typed query and validated body."""

    params: dict[str, str]
    query: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


def ids(name: str, count: int) -> tuple[str, ...]:
    """The first ``count`` ids of a resource name: ``projects/P/locations/L/services/S`` -> (P, L, S)
    for 3. The router matched the method's flatPath first, so the segments are there."""
    return tuple(name.split("/")[1::2][:count])


def num_id(*parts: str, digits: int = 19) -> str:
    """Stable numeric ids (compute ids, project numbers) derived from names."""
    n = int(hashlib.sha256("/".join(parts).encode()).hexdigest(), 16)
    return str(10 ** (digits - 1) + n % (9 * 10 ** (digits - 1)))


def fingerprint(content: Any) -> str:
    """Derived from the resource's content, as Compute's are: it changes exactly when the resource
    does, so a plan built against one state is refused (412) once the state has moved on."""
    blob = json.dumps(content, sort_keys=True, default=str).encode()
    return base64.b64encode(hashlib.sha256(blob).digest()[:8]).decode()


def merge(base: dict[str, Any], patch: dict[str, Any], where: str = "resource") -> dict[str, Any]:
    """JSON merge as the PATCH methods do it: objects merge, lists and scalars replace."""
    for key, value in patch.items():
        current = base.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merge(current, value, f"{where}.{key}")
        elif value is None:
            base.pop(key, None)
        else:
            base[key] = copy.deepcopy(value)
    return base


def covers(name: str, domain: str) -> bool:
    """Certificate name matching: exact, or a wildcard for exactly one leftmost label."""
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    if name == domain:
        return True
    if name.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == name[2:]
    return False


def last(link: str | None) -> str:
    return (link or "").rstrip("/").rsplit("/", 1)[-1]


class Base:
    """Clock, lock, names; the product mixins build on it."""

    params: Params
    scenario: Scenario

    def _init_base(self, params: Params, scenario: Scenario, time_scale: float | None,
                   clock: Callable[[], float], wall: Callable[[], dt.datetime]) -> None:
        self.params, self.scenario = params, scenario
        self.time_scale = params.target.time_scale if time_scale is None else time_scale
        self._clock, self._wall = clock, wall
        self._lock = threading.RLock()
        self._started = clock()
        self.project = params.project
        self.project_number = num_id("project", params.project, digits=12)
        self.region = params.region
        self.domains = {
            "frontend": params.domains.frontend,
            "api": params.domains.api,
            "wildcard": params.domains.wildcard or "*." + params.domains.api.split(".", 1)[1],
            "legacy": (params.cloud_run.deprecated_domain_patterns or ["*." + params.domains.frontend])[0],
        }

    def _now(self) -> dt.datetime:
        return self._wall()

    def _rfc3339(self, digits: int = 6) -> str:
        text = self._now().astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
        return text[: 20 + digits] + "Z"

    def _compute_time(self) -> str:
        return self._now().isoformat(timespec="milliseconds")

    def _link(self, collection: str, name: str, scope: str = "global") -> str:
        return f"{COMPUTE}/projects/{self.project}/{scope}/{collection}/{name}"

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def _check_project(self, project: str, *, numbers: bool = False) -> None:
        if project != self.project and not (numbers and project == self.project_number):
            raise ApiFault(403, "PERMISSION_DENIED",
                           f"Permission denied on resource project {project} (or it may not exist).",
                           "CONSUMER_INVALID")

    def tick(self) -> None:
        """Advance time-dependent resources (operations, certificates); the facade overrides."""

    def _page_of(self, c: Call, items: list[dict[str, Any]], key: str, *, size: str = "pageSize",
                 limit: int = 1000, total: bool = False, kind: str | None = None) -> dict[str, Any]:
        """One page of ``items``; tokens are opaque to the client (an offset, base64)."""
        n = c.query.get(size) or limit
        n = min(int(n) if int(n) > 0 else limit, limit)
        token = c.query.get("pageToken")
        offset = 0
        if token:
            try:
                decoded = base64.urlsafe_b64decode(str(token).encode()).decode()
                if not decoded.startswith("offset:"):
                    raise ValueError(decoded)
                offset = int(decoded.removeprefix("offset:"))
            except ValueError:
                raise ApiFault(400, "INVALID_ARGUMENT", "Invalid value for field 'pageToken'.", "invalid",
                               field="pageToken") from None
        chunk = items[offset:offset + n]
        out: dict[str, Any] = {"kind": kind} if kind else {}
        if chunk:  # proto3 JSON leaves out empty lists, as the real APIs do
            out[key] = chunk
        if offset + n < len(items):
            out["nextPageToken"] = base64.urlsafe_b64encode(f"offset:{offset + n}".encode()).decode()
        if total:
            out["totalSize"] = len(items)
        return out
