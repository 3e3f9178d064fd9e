"""Compute Engine (compute v1): the HTTPS load balancer's pieces.

Reads (under ``/compute/v1/projects/{p}/global`` unless said otherwise):

    compute.healthChecks             GET healthChecks (list)
    compute.backendServices          GET backendServices (list)
    compute.networkEndpointGroups    GET /compute/v1/projects/{p}/aggregated/networkEndpointGroups,
                                     the aggregated body as returned (``items`` maps a scope such as
                                     ``regions/us-central1`` to ``{"networkEndpointGroups": [...]}``)
    compute.backendHealth.<backend>  POST backendServices/{b}/getHealth, once per instance-group or
                                     zonal-NEG group of each configured backend service (a read,
                                     though a POST; serverless NEGs report no health, so they are
                                     not asked); the answers are kept verbatim under ``results``
    compute.urlMap                   GET urlMaps/{load_balancer.url_map}
    compute.forwardingRules          GET forwardingRules (list)
    compute.sslCertificates          GET sslCertificates (list)
    compute.targetHttpsProxy         GET targetHttpsProxies/{proxy}

Two topologies front the services. Cloud Run sits behind **serverless NEGs**
(``networkEndpointType: SERVERLESS``, ``cloudRun.service``): such a backend service takes no health
check and no ``timeoutSec`` (Google rejects both, texts in ``SERVERLESS_REJECTS``); the request
and WebSocket lifetime is the Cloud Run revision's ``timeout``. Instance groups and zonal NEGs
keep health checks and the backend timeout.

Remediation: a Google-managed certificate for both domains, added to the proxy beside the current
ones, the legacy ones removed once it is served; health-check policy and path, backend-service
timeout (instance-group backends only).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from runbook_lib.evidence import ApiRecord, ErrorInfo
from runbook_lib.gcp.api import ApiCall, Product, Resource, last_segment
from runbook_lib.gcp.timefmt import parse_time
from runbook_lib.params import Params

if TYPE_CHECKING:  # the client only for typing: importing a view imports no I/O
    from runbook_lib.gcp.client import ApiClient

PRODUCT = Product(api="compute", service="compute.googleapis.com", title="Compute Engine API",
                  read_role="roles/compute.viewer", write_role="roles/compute.loadBalancerAdmin")
API = PRODUCT.api

HEALTH_CHECKS = "compute.healthChecks"
BACKEND_SERVICES = "compute.backendServices"
SSL_CERTIFICATES = "compute.sslCertificates"
TARGET_PROXY = "compute.targetHttpsProxy"
BACKEND_HEALTH = "compute.backendHealth"  # + ".<backend>"
NEGS = "compute.networkEndpointGroups"
URL_MAP = "compute.urlMap"
FORWARDING_RULES = "compute.forwardingRules"

SERVERLESS = "SERVERLESS"
# compute v1 BackendService.timeoutSec: "The default is 30 seconds" (discovery document compute.v1.json,
# revision 20261106); GET reports the default even where it was never set (gcpdiag lb1/lb2/lb3 recordings).
DEFAULT_BACKEND_TIMEOUT_S = 30
# Google's answers to a timeout or a health check on a backend service with serverless NEG backends.
SERVERLESS_REJECTS = {
    "timeoutSec": "Timeout sec is not supported for a backend service with Serverless network endpoint groups",
    "healthChecks": "A backend service cannot have a healthcheck with Serverless network endpoint group backends",
}
# A target HTTPS proxy holds at most this many SSL certificates (setSslCertificates replaces the list).
MAX_PROXY_CERTIFICATES = 15


def backend_health_key(backend: str) -> str:
    return f"{BACKEND_HEALTH}.{backend}"


def global_path(params: Params, rest: str = "") -> str:
    return f"/compute/v1/projects/{params.project}/global" + (f"/{rest}" if rest else "")


def project_path(params: Params, rest: str) -> str:
    """Methods outside ``global/``: ``aggregated/...`` and ``targetHttpsProxies/{p}/setSslCertificates``."""
    return f"/compute/v1/projects/{params.project}/{rest}"


async def gather(api: ApiClient, params: Params) -> dict[str, ApiRecord]:
    lb = params.load_balancer

    async def services_then_health() -> dict[str, ApiRecord]:
        services, negs = await asyncio.gather(
            api.read(BACKEND_SERVICES, API, global_path(params, "backendServices"), list_field="items"),
            # aggregated: ``items`` is a map of scopes, so it is read as one answer (not merged as a list)
            api.read(NEGS, API, project_path(params, "aggregated/networkEndpointGroups")),
        )
        return {BACKEND_SERVICES: services, NEGS: negs, **await _backend_health(api, params, services, negs)}

    checks, certs, proxy, url_map, rules, services = await asyncio.gather(
        api.read(HEALTH_CHECKS, API, global_path(params, "healthChecks"), list_field="items"),
        api.read(SSL_CERTIFICATES, API, global_path(params, "sslCertificates"), list_field="items"),
        api.read(TARGET_PROXY, API, global_path(params, f"targetHttpsProxies/{lb.https_proxy}")),
        api.read(URL_MAP, API, global_path(params, f"urlMaps/{lb.url_map}")),
        api.read(FORWARDING_RULES, API, global_path(params, "forwardingRules"), list_field="items"),
        services_then_health(),
    )
    return {HEALTH_CHECKS: checks, SSL_CERTIFICATES: certs, TARGET_PROXY: proxy, URL_MAP: url_map,
            FORWARDING_RULES: rules, **services}


async def _backend_health(api: ApiClient, params: Params, services: ApiRecord,
                          negs: ApiRecord | None = None) -> dict[str, ApiRecord]:
    """getHealth for every health-checked group (instance group, zonal NEG) of each configured
    backend service that exists; serverless NEGs have no health to report and are not asked."""
    if not services.ok:
        return {}
    by_name = {s.name: s for s in items(services.body, BackendService)}
    known = negs_of(negs.body) if negs is not None and negs.ok else {}
    out: dict[str, ApiRecord] = {}
    for backend in params.load_balancer.backend_services:
        svc = by_name.get(backend)
        if svc is None or not svc.groups:
            continue  # the checks report a missing service or one without backends from the list itself
        groups = [g for g in svc.groups if not is_serverless_group(g, known)]
        if not groups:
            continue
        key = backend_health_key(backend)
        path = global_path(params, f"backendServices/{backend}/getHealth")
        answers = await asyncio.gather(*(
            api.read(key, API, path, method="POST", body={"group": group}) for group in groups
        ))
        out[key] = merge_group_health(key, groups, list(answers))
    return out


def merge_group_health(key: str, groups: list[str], answers: list[ApiRecord]) -> ApiRecord:
    """One record per backend service: every group's getHealth answer, verbatim, under ``results``."""
    failed = next((a for a in answers if not a.ok), None)
    results = [{"group": g, "health": a.body} for g, a in zip(groups, answers, strict=True) if a.ok]
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


def group_ref(link: str) -> tuple[str, str, str]:
    """``(scope, collection, name)`` of a backend group link, full URL or relative:
    ``.../regions/us-central1/networkEndpointGroups/neg`` -> ``("regions/us-central1",
    "networkEndpointGroups", "neg")``; ``("", "", name)`` when the link has no scope."""
    parts = [p for p in (link or "").split("?")[0].split("/") if p]
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("regions", "zones", "global"):
            if parts[i] == "global" and i + 2 < len(parts):
                return "global", parts[i + 1], parts[i + 2]
            if i + 3 < len(parts):
                return f"{parts[i]}/{parts[i + 1]}", parts[i + 2], parts[i + 3]
    return "", "", last_segment(link)


def negs_of(body: dict | None) -> dict[tuple[str, str], "NetworkEndpointGroup"]:
    """NEGs of an aggregated list body, by ``(scope, name)``. Scopes without NEGs carry only a
    ``warning`` (NO_RESULTS_ON_PAGE) and are skipped."""
    out: dict[tuple[str, str], NetworkEndpointGroup] = {}
    for scope, scoped in ((body or {}).get("items") or {}).items():
        for d in (scoped or {}).get("networkEndpointGroups") or []:
            neg = NetworkEndpointGroup.from_json(d)
            out[(neg.scope or scope, neg.name)] = neg
    return out


def neg_for(group: str, negs: dict[tuple[str, str], "NetworkEndpointGroup"]) -> "NetworkEndpointGroup | None":
    scope, collection, name = group_ref(group)
    return negs.get((scope, name)) if collection == "networkEndpointGroups" else None


def is_serverless_group(group: str, negs: dict[tuple[str, str], "NetworkEndpointGroup"]) -> bool:
    neg = neg_for(group, negs)
    return neg is not None and neg.is_serverless


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

    @property
    def timeout_is_set(self) -> bool:
        """A ``timeoutSec`` other than the default GET reports anyway (30 s): on a serverless-NEG
        backend service that is a value Google would have refused to set."""
        return "timeoutSec" in self.raw and self.timeout_sec != DEFAULT_BACKEND_TIMEOUT_S

    def serverless_negs(self, negs: dict[tuple[str, str], "NetworkEndpointGroup"]) -> list["NetworkEndpointGroup"]:
        return [n for n in (neg_for(g, negs) for g in self.groups) if n is not None and n.is_serverless]

    def is_serverless(self, negs: dict[tuple[str, str], "NetworkEndpointGroup"]) -> bool:
        """Every backend is a serverless NEG (Google does not let them mix with other kinds)."""
        return bool(self.groups) and len(self.serverless_negs(negs)) == len(self.groups)


@dataclass(frozen=True)
class NetworkEndpointGroup(Resource):
    @property
    def name(self) -> str:
        return self.raw.get("name") or ""

    @property
    def type(self) -> str:
        return self.raw.get("networkEndpointType") or ""

    @property
    def is_serverless(self) -> bool:
        return self.type == SERVERLESS

    @property
    def region(self) -> str:
        return last_segment(self.raw.get("region"))

    @property
    def zone(self) -> str:
        return last_segment(self.raw.get("zone"))

    @property
    def scope(self) -> str:
        if self.region:
            return f"regions/{self.region}"
        if self.zone:
            return f"zones/{self.zone}"
        return ""

    @property
    def cloud_run(self) -> dict:
        return self.raw.get("cloudRun") or {}

    @property
    def cloud_run_service(self) -> str:
        """The Cloud Run service it sends to (empty when a URL mask picks it per request)."""
        return self.cloud_run.get("service") or ""

    @property
    def size(self) -> int:
        return int(self.raw.get("size") or 0)


@dataclass(frozen=True)
class ForwardingRule(Resource):
    @property
    def name(self) -> str:
        return self.raw.get("name") or ""

    @property
    def ip_address(self) -> str:
        return self.raw.get("IPAddress") or ""

    @property
    def target(self) -> str:
        return last_segment(self.raw.get("target"))

    @property
    def port_range(self) -> str:
        return self.raw.get("portRange") or ""


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
        method="POST", api=API, path=global_path(params, "sslCertificates"),
        body={"name": name, "type": "MANAGED", "managed": {"domains": domains}},
        gcloud=f"gcloud compute ssl-certificates create {name} --domains={','.join(domains)} --global --project {params.project}",
        description=f"create the Google-managed certificate {name} for {' and '.join(domains)}",
    )


def set_ssl_certificates(params: Params, names: list[str], *, description: str = "") -> ApiCall:
    """``targetHttpsProxies.setSslCertificates``: ``POST projects/{project}/targetHttpsProxies/{proxy}/
    setSslCertificates`` (no ``global/``, unlike ``setQuicOverride``: discovery document compute.v1.json,
    revision 20261106). It REPLACES the proxy's whole list, so callers pass every name to keep."""
    proxy = params.load_balancer.https_proxy
    if len(names) > MAX_PROXY_CERTIFICATES:
        raise ValueError(f"a target HTTPS proxy holds at most {MAX_PROXY_CERTIFICATES} certificates, got {len(names)}")
    links = [f"projects/{params.project}/global/sslCertificates/{n}" for n in names]
    return ApiCall(
        method="POST", api=API, path=project_path(params, f"targetHttpsProxies/{proxy}/setSslCertificates"),
        body={"sslCertificates": links},
        gcloud=(f"gcloud compute target-https-proxies update {proxy} --ssl-certificates={','.join(names)} "
                f"--global-ssl-certificates --global --project {params.project}"),
        description=description or f"serve {', '.join(names)} on the target HTTPS proxy {proxy}",
    )


def with_managed_certificate(current: list[str], managed: str) -> list[str]:
    """The proxy's list with the managed certificate ADDED after the current ones (which keep being
    served until it is ACTIVE); within the proxy's limit of 15."""
    if managed in current:
        return list(current)
    if len(current) >= MAX_PROXY_CERTIFICATES:
        raise ValueError(f"{len(current)} certificates are on the proxy already (the limit is "
                         f"{MAX_PROXY_CERTIFICATES}): remove one before adding {managed}")
    return [*current, managed]


def attach_managed_certificate(params: Params, current: list[str]) -> ApiCall:
    managed = params.load_balancer.certificate_name
    names = with_managed_certificate(current, managed)
    kept = [n for n in names if n != managed]
    return set_ssl_certificates(params, names, description=(
        f"add {managed} to the target HTTPS proxy {params.load_balancer.https_proxy}"
        + (f", keeping {', '.join(kept)} (served until {managed} is ACTIVE)" if kept else "")))


def detach_certificates(params: Params, current: list[str], legacy: list[str]) -> ApiCall:
    """The proxy's list without ``legacy``; the managed certificate first."""
    managed = params.load_balancer.certificate_name
    names = [managed] + [n for n in current if n != managed and n not in legacy]
    return set_ssl_certificates(params, names, description=(
        f"stop serving {', '.join(legacy)} on {params.load_balancer.https_proxy} ({managed} is ACTIVE and served)"))


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
        method="PATCH", api=API, path=global_path(params, f"healthChecks/{name}"), body=body,
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
        method="PATCH", api=API, path=global_path(params, f"backendServices/{backend}"), body=body,
        gcloud=f"gcloud compute backend-services update {backend} --timeout={timeout} --global --project {params.project}",
        description=f"backend service {backend}: timeout {timeout} s (also the longest a WebSocket may stay open)",
    )
