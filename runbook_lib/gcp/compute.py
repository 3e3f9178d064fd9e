"""Compute Engine (compute v1, global resources): the HTTPS load balancer's pieces.

Reads (all under ``/compute/v1/projects/{p}/global``):

    compute.healthChecks             GET healthChecks (list)
    compute.backendServices          GET backendServices (list)
    compute.backendHealth.<backend>  POST backendServices/{b}/getHealth, once per backend group of
                                     each configured backend service (a read, though a POST); the
                                     answers are kept verbatim under ``results``
    compute.sslCertificates          GET sslCertificates (list)
    compute.targetHttpsProxy         GET targetHttpsProxies/{proxy}

Remediation: a Google-managed certificate for both domains, attach it to the proxy, health-check
policy and path, backend-service timeout.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from ..evidence import ApiRecord, ErrorInfo
from ..params import Params
from .api import ApiCall, ApiClient, Resource, last_segment
from .timefmt import parse_time

HEALTH_CHECKS = "compute.healthChecks"
BACKEND_SERVICES = "compute.backendServices"
SSL_CERTIFICATES = "compute.sslCertificates"
TARGET_PROXY = "compute.targetHttpsProxy"
BACKEND_HEALTH = "compute.backendHealth"  # + ".<backend>"


def backend_health_key(backend: str) -> str:
    return f"{BACKEND_HEALTH}.{backend}"


def global_path(params: Params, rest: str = "") -> str:
    return f"/compute/v1/projects/{params.project}/global" + (f"/{rest}" if rest else "")


async def gather(api: ApiClient, params: Params) -> dict[str, ApiRecord]:
    async def services_then_health() -> dict[str, ApiRecord]:
        services = await api.read(BACKEND_SERVICES, "compute", global_path(params, "backendServices"), list_field="items")
        return {BACKEND_SERVICES: services, **await _backend_health(api, params, services)}

    checks, certs, proxy, services = await asyncio.gather(
        api.read(HEALTH_CHECKS, "compute", global_path(params, "healthChecks"), list_field="items"),
        api.read(SSL_CERTIFICATES, "compute", global_path(params, "sslCertificates"), list_field="items"),
        api.read(TARGET_PROXY, "compute", global_path(params, f"targetHttpsProxies/{params.load_balancer.https_proxy}")),
        services_then_health(),
    )
    return {HEALTH_CHECKS: checks, SSL_CERTIFICATES: certs, TARGET_PROXY: proxy, **services}


async def _backend_health(api: ApiClient, params: Params, services: ApiRecord) -> dict[str, ApiRecord]:
    """getHealth for every group of each configured backend service that exists and has groups."""
    if not services.ok:
        return {}
    by_name = {s.name: s for s in items(services.body, BackendService)}
    out: dict[str, ApiRecord] = {}
    for backend in params.load_balancer.backend_services:
        svc = by_name.get(backend)
        if svc is None or not svc.groups:
            continue  # the checks report a missing service or one without backends from the list itself
        key = backend_health_key(backend)
        path = global_path(params, f"backendServices/{backend}/getHealth")
        answers = await asyncio.gather(*(
            api.read(key, "compute", path, method="POST", body={"group": group}) for group in svc.groups
        ))
        out[key] = merge_group_health(key, svc.groups, list(answers))
    return out


def merge_group_health(key: str, groups: list[str], answers: list[ApiRecord]) -> ApiRecord:
    """One record per backend service: every group's getHealth answer, verbatim, under ``results``."""
    failed = next((a for a in answers if not a.ok), None)
    results = [{"group": g, "health": a.body} for g, a in zip(groups, answers) if a.ok]
    return ApiRecord(
        key=key, method="POST", url=answers[0].url if answers else "",
        ok=failed is None, status=(failed.status if failed else answers[0].status if answers else None),
        body={"results": results},
        error=(ErrorInfo(kind=failed.error.kind, message=failed.error.message, status=failed.error.status)
               if failed and failed.error else None),
        elapsed_s=max((a.elapsed_s for a in answers), default=0.0), pages=len(answers),
    )


def items(body: dict | None, view):
    """Typed views over a compute list body (``items``; absent when empty)."""
    return [view.from_json(d) for d in (body or {}).get("items") or []]


# -- typed views ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class HealthCheck(Resource):
    PROTOCOL_FIELDS = {"HTTP": "httpHealthCheck", "HTTPS": "httpsHealthCheck", "HTTP2": "http2HealthCheck"}

    @property
    def name(self) -> str:
        return self.raw.get("name") or ""

    @property
    def type(self) -> str:
        return self.raw.get("type") or ""

    # Compute omits fields that hold their default; these are the documented defaults.
    @property
    def interval(self) -> int:
        return int(self.raw.get("checkIntervalSec", 5))

    @property
    def timeout(self) -> int:
        return int(self.raw.get("timeoutSec", 5))

    @property
    def unhealthy_threshold(self) -> int:
        return int(self.raw.get("unhealthyThreshold", 2))

    @property
    def healthy_threshold(self) -> int:
        return int(self.raw.get("healthyThreshold", 2))

    @property
    def protocol_field(self) -> str | None:
        return self.PROTOCOL_FIELDS.get(self.type)

    @property
    def request_path(self) -> str | None:
        """The HTTP(S) request path (default ``/``); None for TCP/SSL/gRPC checks."""
        if self.protocol_field is None:
            return None
        return (self.raw.get(self.protocol_field) or {}).get("requestPath") or "/"

    @property
    def tolerance_s(self) -> int:
        """How long a backend may fail checks before it is marked unhealthy."""
        return self.interval * self.unhealthy_threshold


@dataclass(frozen=True)
class BackendService(Resource):
    @property
    def name(self) -> str:
        return self.raw.get("name") or ""

    @property
    def timeout_sec(self) -> int:
        return int(self.raw.get("timeoutSec", 30))

    @property
    def health_check_names(self) -> list[str]:
        return [last_segment(h) for h in self.raw.get("healthChecks") or []]

    @property
    def groups(self) -> list[str]:
        return [b["group"] for b in self.raw.get("backends") or [] if b.get("group")]

    @property
    def fingerprint(self) -> str | None:
        return self.raw.get("fingerprint")


@dataclass(frozen=True)
class EndpointHealth:
    group: str
    target: str          # instance or endpoint name (last segment), or the IP when neither is given
    address: str         # ip:port
    state: str           # HEALTHY, UNHEALTHY, DRAINING, TIMEOUT, UNKNOWN


@dataclass(frozen=True)
class BackendHealth:
    """getHealth answers for one backend service (one or many groups)."""

    raw: dict = field(repr=False)

    @classmethod
    def from_json(cls, d: dict) -> "BackendHealth":
        return cls(d or {})

    @property
    def endpoints(self) -> list[EndpointHealth]:
        if "results" in self.raw:
            answers = [(r.get("group", ""), r.get("health") or {}) for r in self.raw["results"]]
        else:  # a single getHealth answer, as recorded
            answers = [("", self.raw)]
        out = []
        for group, answer in answers:
            for s in answer.get("healthStatus") or []:
                ip = s.get("ipAddress", "")
                address = f"{ip}:{s['port']}" if ip and s.get("port") else ip
                target = last_segment(s.get("instance") or s.get("forwardingRule") or "") or ip
                out.append(EndpointHealth(last_segment(group), target, address, s.get("healthState", "UNKNOWN")))
        return out

    @property
    def unhealthy(self) -> list[EndpointHealth]:
        return [e for e in self.endpoints if e.state != "HEALTHY"]


@dataclass(frozen=True)
class SslCertificate(Resource):
    @property
    def name(self) -> str:
        return self.raw.get("name") or ""

    @property
    def type(self) -> str:
        return self.raw.get("type") or ("MANAGED" if "managed" in self.raw else "SELF_MANAGED")

    @property
    def managed(self) -> dict:
        return self.raw.get("managed") or {}

    @property
    def managed_status(self) -> str | None:
        return self.managed.get("status") if self.type == "MANAGED" else None

    @property
    def domain_status(self) -> dict[str, str]:
        return dict(self.managed.get("domainStatus") or {})

    @property
    def domains(self) -> list[str]:
        return list(self.managed.get("domains") or self.raw.get("subjectAlternativeNames") or [])

    @property
    def expire_time(self) -> datetime | None:
        return parse_time(self.raw.get("expireTime"))


@dataclass(frozen=True)
class TargetHttpsProxy(Resource):
    @property
    def name(self) -> str:
        return self.raw.get("name") or ""

    @property
    def certificate_names(self) -> list[str]:
        return [last_segment(c) for c in self.raw.get("sslCertificates") or []]

    @property
    def certificate_map(self) -> str | None:
        return last_segment(self.raw["certificateMap"]) if self.raw.get("certificateMap") else None


# -- remediation (pure) ----------------------------------------------------------------------------

def insert_managed_certificate(params: Params) -> ApiCall:
    name = params.load_balancer.certificate_name
    domains = [params.domains.frontend, params.domains.api]
    return ApiCall(
        method="POST", api="compute", path=global_path(params, "sslCertificates"),
        body={"name": name, "type": "MANAGED", "managed": {"domains": domains}},
        gcloud=f"gcloud compute ssl-certificates create {name} --domains={','.join(domains)} --global --project {params.project}",
        description=f"create the Google-managed certificate {name} for {' and '.join(domains)}",
    )


def set_ssl_certificates(params: Params, names: list[str]) -> ApiCall:
    proxy = params.load_balancer.https_proxy
    links = [f"projects/{params.project}/global/sslCertificates/{n}" for n in names]
    return ApiCall(
        method="POST", api="compute", path=f"/compute/v1/projects/{params.project}/targetHttpsProxies/{proxy}/setSslCertificates",
        body={"sslCertificates": links},
        gcloud=(f"gcloud compute target-https-proxies update {proxy} --ssl-certificates={','.join(names)} "
                f"--global-ssl-certificates --global --project {params.project}"),
        description=f"serve {', '.join(names)} on the target HTTPS proxy {proxy}",
    )


def patch_health_check(params: Params, name: str, current: HealthCheck | None = None) -> ApiCall:
    """Policy from the parameters and the configured request path; the protocol block is kept."""
    policy = params.load_balancer.health_check
    path = params.load_balancer.health_checks[name]
    protocol = (current.type if current is not None and current.protocol_field else "HTTP")
    body = {
        "checkIntervalSec": policy.interval_s, "timeoutSec": policy.timeout_s,
        "unhealthyThreshold": policy.unhealthy_threshold, "healthyThreshold": policy.healthy_threshold,
        HealthCheck.PROTOCOL_FIELDS[protocol]: {"requestPath": path},
    }
    return ApiCall(
        method="PATCH", api="compute", path=global_path(params, f"healthChecks/{name}"), body=body,
        gcloud=(f"gcloud compute health-checks update {protocol.lower()} {name} --check-interval={policy.interval_s}s "
                f"--timeout={policy.timeout_s}s --unhealthy-threshold={policy.unhealthy_threshold} "
                f"--healthy-threshold={policy.healthy_threshold} --request-path={path} --global --project {params.project}"),
        description=(f"health check {name}: every {policy.interval_s} s, timeout {policy.timeout_s} s, unhealthy after "
                     f"{policy.unhealthy_threshold} ({policy.interval_s * policy.unhealthy_threshold} s), path {path}"),
    )


def patch_backend_timeout(params: Params, backend: str, current: BackendService | None = None) -> ApiCall:
    timeout = params.load_balancer.backend_timeout_s
    body: dict = {"timeoutSec": timeout}
    if current is not None and current.fingerprint:
        body["fingerprint"] = current.fingerprint  # optimistic locking: fail rather than overwrite a change
    return ApiCall(
        method="PATCH", api="compute", path=global_path(params, f"backendServices/{backend}"), body=body,
        gcloud=f"gcloud compute backend-services update {backend} --timeout={timeout} --global --project {params.project}",
        description=f"backend service {backend}: timeout {timeout} s (also the longest a WebSocket may stay open)",
    )
