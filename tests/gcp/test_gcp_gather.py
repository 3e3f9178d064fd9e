"""Each product's gather: the documented paths, the stable evidence keys, served from recorded samples."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from runbook_lib.gcp import compute, run, secretmanager, sqladmin, vpcaccess
from tests.gcp.gcp_testkit import Router, client, fixture, make_params, sample

P = "/compute/v1/projects/netra-staging/global"


def gather(module, routes, params=None):
    router = Router(routes)

    async def go():
        async with client(router, params) as c:
            return await module.gather(c, params or make_params())

    return asyncio.run(go()), router


def test_vpcaccess_gather():
    path = "/v1/projects/netra-staging/locations/us-central1/connectors/staging-connector"
    records, router = gather(vpcaccess, {("GET", path): fixture("vpcaccess--connector-ready.json")})
    assert list(records) == ["vpcaccess.connector"] and records["vpcaccess.connector"].ok


def test_sqladmin_gather():
    body = sample("cloudsql1--cloudsql-instances.json")["items"][0]
    records, _ = gather(sqladmin, {("GET", "/v1/projects/netra-staging/instances/netra-staging-db"): body})
    assert records["sqladmin.instance"].body["name"] == "sql1"


def test_run_gather_lists_services_in_the_region():
    records, router = gather(run, {("GET", "/v2/projects/netra-staging/locations/us-central1/services"):
                                   sample("cloudrun1--cloudrun_services.json")})
    assert records["run.services"].ok and len(records["run.services"].body["services"]) == 1


def test_secretmanager_gather_lists_versions_of_present_required_secrets():
    pages = [fixture("secretmanager--secrets-page1.json"), fixture("secretmanager--secrets-page2.json")]

    def listing(request):
        return httpx.Response(200, json=pages[1] if request.url.params.get("pageToken") else pages[0])

    base = "/v1/projects/netra-staging/secrets"
    routes = {("GET", base): listing}
    for name in ("database-url", "database-direct-url", "jwt-secret-staging", "redis-url", "oauth-client-id",
                 "oauth-client-secret", "cors-allowed-origins"):
        routes[("GET", f"{base}/{name}/versions")] = fixture("secretmanager--versions-enabled.json")
    records, router = gather(secretmanager, routes)
    assert records["secretmanager.secrets"].pages == 2
    version_keys = sorted(k for k in records if k.startswith("secretmanager.versions."))
    assert version_keys == sorted(f"secretmanager.versions.{n}" for n in (
        "database-url", "database-direct-url", "jwt-secret-staging", "redis-url", "oauth-client-id",
        "oauth-client-secret", "cors-allowed-origins"))
    assert not any("legacy-api-token" in str(r.url) for r in router.requests)  # not required: not read
    assert not any(":access" in str(r.url) for r in router.requests)  # never a value


def test_secretmanager_gather_stops_when_the_list_fails():
    records, router = gather(secretmanager, {})
    assert list(records) == ["secretmanager.secrets"] and records["secretmanager.secrets"].error.kind == "not_found"


RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def recorded(name: str):
    return json.loads((RECORDED / name).read_text())


def aggregated_negs(*scoped: tuple[str, list[dict]]) -> dict:
    """An aggregatedList body (compute v1 NetworkEndpointGroupAggregatedList) from scoped NEG lists."""
    return {"kind": "compute#networkEndpointGroupAggregatedList",
            "items": {scope: {"networkEndpointGroups": negs} for scope, negs in scoped}}


def test_compute_gather_reads_everything_and_health_per_group():
    services = sample("lb1--compute-backendServices.json")
    second = json.loads(json.dumps(services["items"][0]))
    second["name"] = "staging-auth-service"
    second["backends"].append({"group": second["backends"][0]["group"].replace("lb-backend-example", "other")})
    services["items"].append(second)
    proxy = sample("lb3--compute-targetHttpsProxies.json")["items"][0]
    health = sample("lb2--backendService-web-backend-service-get-health-instanceGroups-lb-backend-example-us-east1-b.json")
    params = make_params(**{"load_balancer.backend_services": ["web-backend-service", "staging-auth-service"],
                            "load_balancer.https_proxy": "https-lb-proxy"})
    routes = {
        ("GET", f"{P}/healthChecks"): sample("lb1--healthChecks.json"),
        ("GET", f"{P}/backendServices"): services,
        ("GET", f"{P}/sslCertificates"): sample("lb3--compute-sslCertificates.json"),
        ("GET", f"{P}/targetHttpsProxies/https-lb-proxy"): proxy,
        ("POST", f"{P}/backendServices/web-backend-service/getHealth"): health,
        ("POST", f"{P}/backendServices/staging-auth-service/getHealth"): health,
        ("GET", "/compute/v1/projects/netra-staging/aggregated/networkEndpointGroups"): aggregated_negs(
            ("zones/europe-west4-b", recorded("gcpdiag/lb2--compute-negs-europe-west4-b.json")["items"])),
        ("GET", f"{P}/urlMaps/staging-url-map"): {"name": "staging-url-map"},
        ("GET", f"{P}/forwardingRules"): {
            "items": recorded("gcpdiag/lb3--compute-aggregated-forwardingRules.json")["items"]["global"]["forwardingRules"]},
    }
    records, router = gather(compute, routes, params)
    assert sorted(records) == sorted([
        "compute.healthChecks", "compute.backendServices", "compute.sslCertificates", "compute.targetHttpsProxy",
        "compute.backendHealth.web-backend-service", "compute.backendHealth.staging-auth-service",
        "compute.networkEndpointGroups", "compute.urlMap", "compute.forwardingRules"])
    rules = compute.items(records["compute.forwardingRules"].body, compute.ForwardingRule)
    assert [(r.name, r.ip_address, r.target) for r in rules][0] == ("https-content-rule", "1.2.3.4", "https-lb-proxy")
    assert all(r.ok for r in records.values())
    auth = records["compute.backendHealth.staging-auth-service"]
    assert auth.method == "POST" and auth.pages == 2 and len(auth.body["results"]) == 2
    posts = [json.loads(r.content) for r in router.requests if r.method == "POST"]
    assert {"group": services["items"][0]["backends"][0]["group"]} in posts
    assert len(compute.BackendHealth.from_json(auth.body).unhealthy) == 4


def test_compute_gather_without_backend_services_reads_no_health():
    params = make_params()
    records, router = gather(compute, {("GET", f"{P}/healthChecks"): {"items": []}}, params)
    assert not records["compute.backendServices"].ok
    assert not any(k.startswith("compute.backendHealth") for k in records)
    assert not any(r.method == "POST" for r in router.requests)


def test_backend_health_record_fails_when_one_group_fails():
    services = sample("lb1--compute-backendServices.json")
    services["items"][0]["name"] = "staging-backend-service"
    params = make_params(**{"load_balancer.backend_services": ["staging-backend-service"]})
    routes = {("GET", f"{P}/backendServices"): services}  # getHealth is not routed: 404
    records, _ = gather(compute, routes, params)
    health = records["compute.backendHealth.staging-backend-service"]
    assert not health.ok and health.error.kind == "not_found" and health.body == {"results": []}


def test_compute_gather_asks_no_health_of_serverless_negs():
    """Serverless NEGs report no health: getHealth is only sent for instance groups / zonal NEGs."""
    services = sample("lb1--compute-backendServices.json")
    svc = services["items"][0]
    svc.update(name="staging-backend-service", healthChecks=[])
    svc["backends"] = [{"group": "https://www.googleapis.com/compute/v1/projects/netra-staging/regions/us-central1/"
                                 "networkEndpointGroups/backend-neg"}]
    neg = dict(recorded("gcpdiag/lb2--compute-negs-europe-west4-b.json")["items"][0])
    neg.pop("zone"), neg.pop("network"), neg.pop("subnetwork")
    neg.update(name="backend-neg", networkEndpointType="SERVERLESS", cloudRun={"service": "netra-backend-staging"},
               region="https://www.googleapis.com/compute/v1/projects/netra-staging/regions/us-central1", size=0)
    params = make_params(**{"load_balancer.backend_services": ["staging-backend-service"]})
    routes = {("GET", f"{P}/backendServices"): services,
              ("GET", "/compute/v1/projects/netra-staging/aggregated/networkEndpointGroups"):
                  aggregated_negs(("regions/us-central1", [neg]))}
    records, router = gather(compute, routes, params)
    assert records["compute.networkEndpointGroups"].ok
    assert not any(k.startswith("compute.backendHealth") for k in records)
    assert not any(r.method == "POST" for r in router.requests)
    negs = compute.negs_of(records["compute.networkEndpointGroups"].body)
    backend = compute.items(records["compute.backendServices"].body, compute.BackendService)[0]
    assert backend.is_serverless(negs) and [n.cloud_run_service for n in backend.serverless_negs(negs)] == [
        "netra-backend-staging"]
