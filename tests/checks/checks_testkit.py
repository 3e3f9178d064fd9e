"""Evidence for check tests: a healthy staging built from the recorded samples and fixtures, and
small helpers to break one thing at a time. Probe results are built directly."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from runbook_lib.evidence import ApiRecord, ErrorInfo, Evidence, Meta, MetricRecord, Point, Series
from runbook_lib.params import Params, load_params
from runbook_lib.probes.base import ProbeResult, Reason

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "gcpdiag"  # vendored: see PROVENANCE.md
FIXTURES = ROOT / "tests" / "fixtures" / "api"
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=timezone.utc)

FRONTEND, API = "staging.netrasystems.ai", "api-staging.netrasystems.ai"


def make_params(**overrides: Any) -> Params:
    return load_params(ROOT / "parameters" / "staging.example.yaml", overrides)


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def ok(key: str, body: Any, method: str = "GET") -> ApiRecord:
    return ApiRecord(key=key, method=method, ok=True, status=200, body=body)


def failed(key: str, kind: str, message: str, status: int | None = None) -> ApiRecord:
    return ApiRecord(key=key, ok=False, status=status, error=ErrorInfo(kind=kind, message=message, status=status))


def metric(key: str, metric_type: str, values: list[float], *, now: datetime = NOW, labels=None) -> MetricRecord:
    points = [Point(t=now - timedelta(minutes=len(values) - 1 - i), v=v) for i, v in enumerate(values)]
    return MetricRecord(key=key, metric_type=metric_type, ok=True,
                        series=[Series(metric_type=metric_type, labels=labels or {}, points=points)])


def probe(protocol: str, target: str, ok_: bool = True, *, reason: Reason | None = None, detail: str = "",
          total_s: float = 0.05, **info: Any) -> ProbeResult:
    return ProbeResult(protocol=protocol, target=target, ok=ok_, reason=reason, detail=detail, total_s=total_s,
                       info=info)


def cert_info(domains: list[str], *, now: datetime = NOW, days_left: float = 80, verified: bool = True,
              verify_error: str = "", issuer: str = "CN=WR3,O=Google Trust Services,C=US") -> dict:
    return {"subject": domains[0], "sans": domains, "issuer": issuer,
            "not_before": (now - timedelta(days=10)).isoformat(),
            "not_after": (now + timedelta(days=days_left)).isoformat(),
            "serial": "abc", "verified": verified, "verify_error": verify_error}


# -- a healthy staging ------------------------------------------------------------------------------

def instance_body() -> dict:
    body = copy.deepcopy(sample("cloudsql1--cloudsql-instances.json")["items"][0])
    body.update(name="netra-staging-db", databaseVersion="POSTGRES_15", project="netra-staging")
    body["settings"]["tier"] = "db-custom-2-7680"
    ip = body["settings"]["ipConfiguration"]
    ip.update(privateNetwork="projects/netra-staging/global/networks/staging-vpc", sslMode="ENCRYPTED_ONLY")
    body["settings"]["databaseFlags"] = [
        {"name": "statement_timeout", "value": "30000"}, {"name": "lock_timeout", "value": "10000"},
        {"name": "max_connections", "value": "200"},
    ]
    return body


def health_checks_body(interval=60, timeout=60, unhealthy=10, healthy=2) -> dict:
    body = copy.deepcopy(sample("lb1--healthChecks.json"))
    template = body["items"][0]
    items = []
    for name, path in (("staging-backend-health-check", "/health"), ("staging-auth-health-check", "/auth/health")):
        hc = copy.deepcopy(template)
        hc.update(name=name, checkIntervalSec=interval, timeoutSec=timeout, unhealthyThreshold=unhealthy,
                  healthyThreshold=healthy, selfLink=f"https://www.googleapis.com/compute/v1/projects/netra-staging/global/healthChecks/{name}")
        hc["httpHealthCheck"]["requestPath"] = path
        items.append(hc)
    body["items"] = items
    return body


def backend_services_body(timeout=600) -> dict:
    body = copy.deepcopy(sample("lb1--compute-backendServices.json"))
    template = body["items"][0]
    items = []
    for name, hc in (("staging-backend-service", "staging-backend-health-check"),
                     ("staging-auth-service", "staging-auth-health-check")):
        svc = copy.deepcopy(template)
        svc.update(name=name, timeoutSec=timeout,
                   healthChecks=[f"https://www.googleapis.com/compute/v1/projects/netra-staging/global/healthChecks/{hc}"])
        items.append(svc)
    body["items"] = items
    return body


def backend_health_body(state="HEALTHY") -> dict:
    answer = copy.deepcopy(sample(
        "lb2--backendService-web-backend-service-get-health-instanceGroups-lb-backend-example-us-east1-b.json"))
    for s in answer["healthStatus"]:
        s["healthState"] = state
    return {"results": [{"group": "https://www.googleapis.com/compute/v1/projects/netra-staging/zones/us-central1-a/"
                                  "instanceGroups/staging", "health": answer}]}


def certificates_body(status="ACTIVE", domain_status="ACTIVE", domains=(FRONTEND, API),
                      name="staging-netrasystems-cert") -> dict:
    body = copy.deepcopy(sample("lb3--compute-sslCertificates.json"))
    cert = copy.deepcopy(body["items"][0])
    cert.update(name=name, selfLink=f"https://www.googleapis.com/compute/v1/projects/netra-staging/global/sslCertificates/{name}")
    cert["managed"] = {"domains": list(domains), "status": status, "domainStatus": {d: domain_status for d in domains}}
    body["items"] = [cert] + body["items"][1:]  # the recorded unrelated certificates stay
    return body


def proxy_body(certs=("staging-netrasystems-cert",), certificate_map=False) -> dict:
    proxy = copy.deepcopy(sample("lb3--compute-targetHttpsProxies.json")["items"][0])
    proxy["name"] = "staging-https-proxy"
    proxy["sslCertificates"] = [f"https://www.googleapis.com/compute/v1/projects/netra-staging/global/sslCertificates/{c}"
                                for c in certs]
    if not certificate_map:
        proxy.pop("certificateMap")
    return proxy


RECORDED = ROOT / "tests" / "fixtures" / "recorded"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def connectivity_test_body(result: str = "REACHABLE", break_at: str | None = None, cause: str = "") -> dict:
    """A finished ConnectivityTest from Cloud Run to Cloud SQL, built on gcpdiag's recorded one (vpc2):
    its firewall and route steps are kept, the source, connector and delivery are the staging path.
    ``break_at``: the step state that ``causesDrop``, followed by a DROP with ``cause``."""
    body = copy.deepcopy(recorded("gcpdiag/vpc2--connectivity-test.json"))
    steps = body["reachabilityDetails"]["traces"][0]["steps"]
    firewall = next(s for s in steps if s["state"] == "APPLY_EGRESS_FIREWALL_RULE")
    route = next(s for s in steps if s["state"] == "APPLY_ROUTE")
    revision = "projects/netra-staging/locations/us-central1/revisions/netra-backend-staging-00042-abc"
    body.update(name="projects/netra-staging/locations/global/connectivityTests/runbook-path-0123456789ab",
                source={"cloudRunRevision": {"uri": revision}, "projectId": "netra-staging"},
                destination={"cloudSqlInstance": "projects/netra-staging/instances/netra-staging-db", "port": 5432,
                             "projectId": "netra-staging"})
    path = [
        {"description": "Initial state: packet originating from a Cloud Run revision.",
         "state": "START_FROM_CLOUD_RUN_REVISION", "cloudRunRevision": {"displayName": "netra-backend-staging-00042-abc",
                                                                         "uri": revision}},
        {"description": "Config checking state: packet arrives at a VPC connector.", "state": "ARRIVE_AT_VPC_CONNECTOR",
         "vpcConnector": {"displayName": "staging-connector", "location": "us-central1",
                          "uri": "projects/netra-staging/locations/us-central1/connectors/staging-connector"}},
        firewall, route,
        {"description": "Final state: packet delivered to Cloud SQL instance.", "state": "DELIVER",
         "deliver": {"target": "CLOUD_SQL_INSTANCE", "resourceUri": "projects/netra-staging/instances/netra-staging-db"}},
    ]
    if break_at:
        cut = next(i for i, s in enumerate(path) if s["state"] == break_at)
        path = path[:cut + 1]
        path[cut] = {**path[cut], "causesDrop": True}
        path.append({"description": "Final state: packet dropped.", "state": "DROP",
                     "drop": {"cause": cause, "resourceUri": path[cut].get("vpcConnector", {}).get("uri", "")}})
    body["reachabilityDetails"].update(result=result, traces=[{**body["reachabilityDetails"]["traces"][0], "steps": path}])
    return body


SECRETS = ["database-url", "database-direct-url", "jwt-secret-staging", "redis-url", "oauth-client-id",
           "oauth-client-secret", "openai-api-key", "anthropic-api-key", "smtp-password", "cors-allowed-origins"]


def secrets_body(names=SECRETS) -> dict:
    template = fixture("secretmanager--secrets-page1.json")["secrets"][0]
    return {"secrets": [{**template, "name": f"projects/123456789012/secrets/{n}"} for n in names]}


def startup_metric(values_ms: list[float], *, now: datetime = NOW,
                   services=("netra-backend-staging", "auth-staging", "netra-frontend-staging")) -> MetricRecord:
    """run.googleapis.com/container/startup_latencies (ms, per revision), one series per service."""
    mtype = "run.googleapis.com/container/startup_latencies"
    series = [Series(metric_type=mtype, unit="ms", labels={"service_name": s, "revision_name": f"{s}-00042-abc"},
                     points=[Point(t=now - timedelta(minutes=len(values_ms) - 1 - i), v=v) for i, v in enumerate(values_ms)])
              for s in services]
    return MetricRecord(key="monitoring.startup_latencies", metric_type=mtype, ok=True, series=series)


def run_services_body(**env: str) -> dict:
    template = sample("cloudrun1--cloudrun_services.json")["services"][0]
    out = []
    for name in ("netra-backend-staging", "auth-staging", "netra-frontend-staging"):
        svc = copy.deepcopy(template)
        svc["name"] = f"projects/netra-staging/locations/us-central1/services/{name}"
        rev = f"projects/netra-staging/locations/us-central1/services/{name}/revisions/{name}-00042-abc"
        svc.update(latestReadyRevision=rev, latestCreatedRevision=rev, uri=f"https://{name}-xyz-uc.a.run.app")
        svc["template"]["vpcAccess"] = {"connector": "projects/netra-staging/locations/us-central1/connectors/staging-connector",
                                        "egress": "ALL_TRAFFIC"}
        values = {"API_BASE_URL": f"https://{API}", "FRONTEND_URL": f"https://{FRONTEND}", **env}
        svc["template"]["containers"][0]["env"] = [{"name": k, "value": v} for k, v in values.items()] + [
            {"name": "JWT_SECRET", "valueSource": {"secretKeyRef": {"secret": "jwt-secret-staging", "version": "latest"}}}]
        # what the incident needs of a revision (issue 10): 600 s requests, warm instances, CPU boost
        svc["template"].update(timeout="600s", scaling={"maxInstanceCount": 100, "minInstanceCount": 1})
        svc["template"]["containers"][0]["resources"]["startupCpuBoost"] = True
        out.append(svc)
    return {"services": out}


def client_probes(domain: str, cert: dict | None = None) -> dict[str, list[ProbeResult]]:
    target = f"{domain}:443"
    return {
        f"dns.{domain}": [probe("dns", target, addresses=["34.120.1.2"], override=False)],
        f"tcp.{domain}": [probe("tcp", target, addresses=["34.120.1.2"], peer="34.120.1.2:443")],
        f"tls.{domain}": [probe("tls", target, tls_version="TLSv1.3", server_name=domain,
                                cert=cert or cert_info([FRONTEND, API]))],
    }


def healthy_evidence(now: datetime = NOW, time_scale: float = 1.0) -> Evidence:
    api = {
        "vpcaccess.connector": ok("vpcaccess.connector", fixture("vpcaccess--connector-ready.json")),
        "sqladmin.instance": ok("sqladmin.instance", instance_body()),
        "compute.healthChecks": ok("compute.healthChecks", health_checks_body()),
        "compute.backendServices": ok("compute.backendServices", backend_services_body()),
        "compute.backendHealth.staging-backend-service": ok("compute.backendHealth.staging-backend-service",
                                                            backend_health_body(), "POST"),
        "compute.backendHealth.staging-auth-service": ok("compute.backendHealth.staging-auth-service",
                                                         backend_health_body(), "POST"),
        "compute.sslCertificates": ok("compute.sslCertificates", certificates_body()),
        "compute.targetHttpsProxy": ok("compute.targetHttpsProxy", proxy_body()),
        "secretmanager.secrets": ok("secretmanager.secrets", secrets_body()),
        "run.services": ok("run.services", run_services_body()),
        "networkmanagement.connectivityTest": ok("networkmanagement.connectivityTest", connectivity_test_body()),
    }
    for name in SECRETS:
        api[f"secretmanager.versions.{name}"] = ok(f"secretmanager.versions.{name}",
                                                   fixture("secretmanager--versions-enabled.json"))
    probes: dict[str, list[ProbeResult]] = {}
    for domain in (FRONTEND, API):
        probes.update(client_probes(domain, cert_info([FRONTEND, API], now=now)))
    for url in (f"{API}/health", f"{API}/auth/health", f"{FRONTEND}/"):
        probes[f"http.{url}"] = [probe("http", f"https://{url}", status=200, total_s=0.2 * time_scale)]
    probes["postgres.connect"] = [probe("postgres", "10.20.0.3:5432", total_s=(0.05 + i / 100) * time_scale)
                                  for i in range(10)]
    metrics = {
        "monitoring.connector_instances": metric("monitoring.connector_instances",
                                                 "vpcaccess.googleapis.com/connector/instances", [2, 3, 2], now=now),
        "monitoring.sql_backends": metric("monitoring.sql_backends",
                                          "cloudsql.googleapis.com/database/postgresql/num_backends", [20, 25, 22], now=now),
        "monitoring.startup_latencies": startup_metric([30000.0 * time_scale] * 3, now=now),
    }
    meta = Meta(phase="diagnose", target="staging", mode="replay", now=now, time_scale=time_scale)
    return Evidence(meta=meta, api=api, probes=probes, metrics=metrics)


# -- the incident's real topology: Cloud Run behind serverless NEGs --------------------------------

SERVERLESS_BACKENDS = (("staging-backend-service", "netra-backend-staging"), ("staging-auth-service", "auth-staging"))


def serverless_neg(name: str, service: str, region: str = "us-central1") -> dict:
    """A regional serverless NEG in the shape of gcpdiag's recorded NEG (lb2), its zonal fields
    replaced by the serverless ones (networkEndpointType SERVERLESS, cloudRun.service, region)."""
    neg = copy.deepcopy(recorded("gcpdiag/lb2--compute-negs-europe-west4-b.json")["items"][0])
    for zonal in ("zone", "network", "subnetwork"):
        neg.pop(zonal, None)
    base = "https://www.googleapis.com/compute/v1/projects/netra-staging"
    neg.update(name=name, networkEndpointType="SERVERLESS", cloudRun={"service": service}, size=0,
               region=f"{base}/regions/{region}", selfLink=f"{base}/regions/{region}/networkEndpointGroups/{name}")
    return neg


def serverless_backend_services_body(health_checks: bool = False, timeout: int | None = None) -> dict:
    """Backend services as recorded (gcpdiag lb1) with one serverless NEG backend each: no health
    check, no timeout set, balancing mode dropped (not used with serverless NEGs)."""
    body = copy.deepcopy(recorded("gcpdiag/lb1--compute-backendServices.json"))
    template = body["items"][0]
    items = []
    for name, service in SERVERLESS_BACKENDS:
        svc = copy.deepcopy(template)
        for field in ("healthChecks", "timeoutSec", "port", "portName"):
            svc.pop(field, None)
        svc.update(name=name, loadBalancingScheme="EXTERNAL_MANAGED", backends=[{
            "group": f"https://www.googleapis.com/compute/v1/projects/netra-staging/regions/us-central1/"
                     f"networkEndpointGroups/{service}-neg"}])
        if health_checks:
            svc["healthChecks"] = ["https://www.googleapis.com/compute/v1/projects/netra-staging/global/healthChecks/"
                                   "staging-backend-health-check"]
        if timeout is not None:
            svc["timeoutSec"] = timeout
        items.append(svc)
    body["items"] = items
    return body


def aggregated_negs_body(negs: list[dict]) -> dict:
    by_scope: dict[str, list[dict]] = {}
    for neg in negs:
        by_scope.setdefault("regions/" + neg["region"].rsplit("/", 1)[-1], []).append(neg)
    items = {scope: {"networkEndpointGroups": v} for scope, v in by_scope.items()}
    items["zones/us-central1-a"] = {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for "
                                                "scope 'zones/us-central1-a' on this page."}}
    return {"kind": "compute#networkEndpointGroupAggregatedList", "items": items}


def serverless_evidence(**kw: Any) -> Evidence:
    """The healthy staging with the incident's topology: serverless NEG backends, no backend health."""
    ev = healthy_evidence(**kw)
    ev.api["compute.backendServices"] = ok("compute.backendServices", serverless_backend_services_body())
    ev.api["compute.networkEndpointGroups"] = ok("compute.networkEndpointGroups", aggregated_negs_body(
        [serverless_neg(f"{svc}-neg", svc) for _, svc in SERVERLESS_BACKENDS]))
    for backend, _ in SERVERLESS_BACKENDS:
        ev.api.pop(f"compute.backendHealth.{backend}", None)
    return ev
