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
