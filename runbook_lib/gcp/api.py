"""The control-plane vocabulary, pure: no I/O here (``client.py`` is the httpx client).

    Product        one API as a product module declares it (``PRODUCT`` in ``gcp/<product>.py``):
                   the service to enable, its title, the least read and write roles;
                   ``gcp/products.py`` is the lookup over the registered ones
    Resource       the base of the typed views over raw API JSON the checks read
    ApiCall        one remediation request with its ``gcloud`` equivalent
    google_error   Google's error body, parsed; ``retry_after_s`` the ``Retry-After`` header
    is_operation, operation_path, operation_status, operation_state   the operation shapes
    describe       what a path names, for people

Checks and remediation planning import this module and the product modules' views; importing
them never imports httpx (the product modules name ``ApiClient`` only for typing).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from runbook_lib.errors import RemediationError
from runbook_lib.util import clock


@dataclass(frozen=True)
class Product:
    """One REST API of the runbook, declared once in its product module."""

    api: str         # the name calls use (``ApiCall.api``) and ``params.endpoints`` has a field for
    service: str     # what `gcloud services enable` wants
    title: str
    read_role: str   # the least role that lets the runbook read (diagnose) the product
    write_role: str  # ... and change it (remediate)


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
    return max((when - clock.utc_now()).total_seconds(), 0.0)


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
