"""Load balancer checks: timeouts, health-check tolerance/path/policy, backend health, endpoints."""
from __future__ import annotations

import copy

from runbook_lib.checks import load_balancer
from runbook_lib.probes.base import Reason
from runbook_lib.results import ResultSet, Severity, Status
from tests.checks.checks_testkit import (
    API,
    FRONTEND,
    backend_health_body,
    backend_services_body,
    failed,
    health_checks_body,
    healthy_evidence,
    make_params,
    ok,
    probe,
    sample,
)

PARAMS = make_params()
SANDBOX = make_params(**{"target.mode": "sandbox", "target.scenario": "issue-1278", "target.time_scale": 0.02})


def results(ev, params=PARAMS) -> ResultSet:
    return ResultSet(results=load_balancer.evaluate(ev, params))


def test_healthy_ids():
    rs = results(healthy_evidence())
    assert [r.id for r in rs] == [
        "lb.staging-backend-service.timeout", "lb.staging-backend-service.health",
        "lb.staging-auth-service.timeout", "lb.staging-auth-service.health",
        "lb.staging-backend-health-check.tolerance", "lb.staging-backend-health-check.path",
        "lb.staging-backend-health-check.policy",
        "lb.staging-auth-health-check.tolerance", "lb.staging-auth-health-check.path",
        "lb.staging-auth-health-check.policy",
        "lb.endpoint.api-staging.health", "lb.endpoint.api-staging.auth-health", "lb.endpoint.staging.root",
    ]
    assert all(r.status is Status.PASS and r.severity is Severity.high for r in rs)


def test_short_backend_timeout_fails_and_mentions_websockets():
    ev = healthy_evidence()
    ev.api["compute.backendServices"] = ok("compute.backendServices", backend_services_body(timeout=30))
    r = results(ev).by_id("lb.staging-backend-service.timeout")
    assert r.status is Status.FAIL and r.observed == "timeoutSec 30"
    assert "`gcloud compute backend-services update staging-backend-service --timeout=600 --global --project netra-staging`" in r.remediation
    assert "WebSocket" in r.remediation


def test_recorded_health_check_gives_no_startup_tolerance():
    ev = healthy_evidence()
    ev.api["compute.healthChecks"] = ok("compute.healthChecks", health_checks_body(5, 5, 2, 2))
    rs = results(ev)
    tol = rs.by_id("lb.staging-backend-health-check.tolerance")
    assert tol.status is Status.FAIL and tol.observed.startswith("5 s x 2 = 10 s")
    assert ("gcloud compute health-checks update http staging-backend-health-check --check-interval=60s --timeout=60s "
            "--unhealthy-threshold=10 --healthy-threshold=2 --request-path=/health --global") in tol.remediation
    assert rs.by_id("lb.staging-backend-health-check.policy").status is Status.FAIL


def test_threshold_only_difference_with_enough_tolerance_warns_medium():
    ev = healthy_evidence()
    ev.api["compute.healthChecks"] = ok("compute.healthChecks", health_checks_body(60, 60, 12, 3))
    r = results(ev).by_id("lb.staging-auth-health-check.policy")
    assert r.status is Status.WARN and r.severity is Severity.medium


def test_wrong_path_and_missing_health_check():
    ev = healthy_evidence()
    body = health_checks_body()
    body["items"][0]["httpHealthCheck"]["requestPath"] = "/"
    del body["items"][1]
    ev.api["compute.healthChecks"] = ok("compute.healthChecks", body)
    rs = results(ev)
    path = rs.by_id("lb.staging-backend-health-check.path")
    assert path.status is Status.FAIL and path.observed == "/" and path.expected == "/health"
    missing = rs.by_id("lb.staging-auth-health-check.tolerance")
    assert missing.status is Status.FAIL and "health-checks create http staging-auth-health-check" in missing.remediation
    assert rs.by_id("lb.staging-auth-health-check.path").status is Status.SKIP


def test_recorded_unhealthy_backends_are_listed():
    ev = healthy_evidence()
    ev.api["compute.backendHealth.staging-auth-service"] = ok("compute.backendHealth.staging-auth-service", sample(
        "lb2--backendService-web-backend-service-get-health-instanceGroups-lb-backend-example-us-east1-b.json"), "POST")
    r = results(ev).by_id("lb.staging-auth-service.health")
    assert r.status is Status.FAIL
    assert r.observed == ("0/2 endpoints HEALTHY; vm-pn3l (10.142.0.2:80) UNHEALTHY, "
                          "vm-m5q1 (10.142.0.3:80) UNHEALTHY")
    assert "get-health staging-auth-service" in r.remediation and "secrets" in r.upstream


def test_serverless_backends_without_status_skip_and_no_backends_fail():
    ev = healthy_evidence()
    ev.api["compute.backendHealth.staging-auth-service"] = ok("x", {"results": [{"group": "g", "health": {}}]})
    assert results(ev).by_id("lb.staging-auth-service.health").status is Status.SKIP
    body = backend_services_body()
    body["items"][0]["backends"] = []
    ev.api["compute.backendServices"] = ok("compute.backendServices", body)
    assert results(ev).by_id("lb.staging-backend-service.health").status is Status.FAIL


def test_missing_backend_service_and_failed_reads():
    ev = healthy_evidence()
    body = backend_services_body()
    del body["items"][1]
    ev.api["compute.backendServices"] = ok("compute.backendServices", body)
    rs = results(ev)
    assert rs.by_id("lb.staging-auth-service.timeout").status is Status.FAIL
    assert rs.by_id("lb.staging-auth-service.health").status is Status.SKIP
    ev.api["compute.backendServices"] = failed("compute.backendServices", "api_disabled",
                                               "run `gcloud services enable compute.googleapis.com --project netra-staging`", 403)
    ev.api["compute.healthChecks"] = failed("compute.healthChecks", "server", "compute answered 503 after 4 attempts", 503)
    rs = results(ev)
    assert rs.by_id("lb.staging-backend-service.timeout").status is Status.SKIP
    assert rs.by_id("lb.staging-backend-health-check.policy").status is Status.ERROR
    ev.api.pop("compute.backendHealth.staging-backend-service")
    ev.api["compute.backendServices"] = ok("compute.backendServices", backend_services_body())
    assert results(ev).by_id("lb.staging-backend-service.health").status is Status.ERROR


def test_endpoint_failure_names_certificates_upstream():
    ev = healthy_evidence()
    ev.probes[f"http.{API}/health"] = [probe("http", f"https://{API}/health", False, reason=Reason.hostname_mismatch,
                                             detail="certificate does not name the host")]
    r = results(ev).by_id("lb.endpoint.api-staging.health")
    assert r.status is Status.FAIL and r.upstream == ["certificates"] and "hostname_mismatch" in r.reason


def test_endpoint_timing_uses_the_time_scale():
    ev = healthy_evidence(time_scale=0.02)
    ev.probes[f"http.{API}/auth/health"] = [probe("http", "u", status=200, total_s=0.3)]  # = 15 s > 10 s
    r = results(ev, SANDBOX).by_id("lb.endpoint.api-staging.auth-health")
    assert r.status is Status.FAIL and "(= 15.0 s at time scale 0.02)" in r.observed
    ev.probes[f"http.{API}/auth/health"] = [probe("http", "u", status=200, total_s=0.1)]
    assert results(ev, SANDBOX).by_id("lb.endpoint.api-staging.auth-health").status is Status.PASS


def test_unprobed_health_path_skips():
    ev = healthy_evidence()
    del ev.probes[f"http.{API}/auth/health"]
    del ev.probes[f"http.{FRONTEND}/"]
    rs = results(ev)
    assert rs.by_id("lb.endpoint.api-staging.auth-health").status is Status.SKIP
    assert rs.get("lb.endpoint.staging.root") is None  # not configured and not probed


def test_health_body_as_recorded_single_answer():
    body = copy.deepcopy(backend_health_body())["results"][0]["health"]
    ev = healthy_evidence()
    ev.api["compute.backendHealth.staging-auth-service"] = ok("x", body)
    assert results(ev).by_id("lb.staging-auth-service.health").status is Status.PASS


# -- serverless NEG backends (Cloud Run): the incident's real topology ------------------------------

from tests.checks.checks_testkit import (  # noqa: E402
    aggregated_negs_body,
    serverless_backend_services_body,
    serverless_evidence,
    serverless_neg,
)

SERVERLESS_IDS = ["lb.staging-backend-service.backends", "lb.staging-backend-service.config",
                  "lb.staging-auth-service.backends", "lb.staging-auth-service.config", "lb.serverless",
                  "lb.endpoint.api-staging.health", "lb.endpoint.api-staging.auth-health", "lb.endpoint.staging.root"]


def test_serverless_backends_get_no_timeout_or_health_check_verdicts():
    rs = results(serverless_evidence())
    assert [r.id for r in rs] == SERVERLESS_IDS
    assert not any(r.id.endswith((".timeout", ".health", ".tolerance", ".path", ".policy")) for r in rs
                   if not r.id.startswith("lb.endpoint."))
    assert all(r.status is Status.PASS for r in rs if r.id != "lb.serverless")
    why = rs.by_id("lb.serverless")
    assert why.status is Status.SKIP
    assert ('Google refuses a backend timeout ("Timeout sec is not supported for a backend service with Serverless '
            'network endpoint groups") and a health check ("A backend service cannot have a healthcheck with '
            'Serverless network endpoint group backends")') in why.reason
    assert "run.<service>.timeout" in why.reason
    assert rs.by_id("lb.staging-backend-service.backends").observed == (
        "netra-backend-staging-neg (SERVERLESS, us-central1) -> netra-backend-staging")
    assert rs.by_id("lb.staging-auth-service.config").observed == "no health check; no timeoutSec"


def test_a_default_timeout_reported_by_get_is_not_a_set_timeout():
    ev = serverless_evidence()
    ev.api["compute.backendServices"] = ok("compute.backendServices", serverless_backend_services_body(timeout=30))
    r = results(ev).by_id("lb.staging-backend-service.config")
    assert r.status is Status.PASS and "timeoutSec 30 (the default GET reports" in r.observed


def test_an_attached_health_check_or_a_set_timeout_is_reported_with_googles_words():
    ev = serverless_evidence()
    ev.api["compute.backendServices"] = ok("compute.backendServices",
                                           serverless_backend_services_body(health_checks=True, timeout=600))
    r = results(ev).by_id("lb.staging-backend-service.config")
    assert r.status is Status.FAIL and r.severity is Severity.medium
    assert r.observed == "healthChecks staging-backend-health-check; timeoutSec 600"
    assert "A backend service cannot have a healthcheck with Serverless network endpoint group backends" in r.reason
    assert "Timeout sec is not supported for a backend service with Serverless network endpoint groups" in r.reason
    assert "gcloud compute backend-services export staging-backend-service" in r.remediation


def test_neg_pointing_at_a_missing_service_or_the_wrong_region_fails():
    ev = serverless_evidence()
    ev.api["compute.networkEndpointGroups"] = ok("compute.networkEndpointGroups", aggregated_negs_body([
        serverless_neg("netra-backend-staging-neg", "netra-backend-old"),
        serverless_neg("auth-staging-neg", "auth-staging", region="europe-west1")]))
    # the auth NEG lives in europe-west1 now, so the backend's group must name that region
    body = serverless_backend_services_body()
    body["items"][1]["backends"][0]["group"] = body["items"][1]["backends"][0]["group"].replace("us-central1", "europe-west1")
    ev.api["compute.backendServices"] = ok("compute.backendServices", body)
    rs = results(ev)
    backend = rs.by_id("lb.staging-backend-service.backends")
    assert backend.status is Status.FAIL
    assert backend.reason == "netra-backend-staging-neg sends to netra-backend-old, which does not exist in us-central1"
    assert "--network-endpoint-type=serverless" in backend.remediation
    auth = rs.by_id("lb.staging-auth-service.backends")
    assert auth.status is Status.FAIL and auth.reason == "auth-staging-neg is in europe-west1, the services run in us-central1"


def test_run_services_unreadable_warns_and_neg_list_unreadable_is_unavailable():
    ev = serverless_evidence()
    ev.api["run.services"] = failed("run.services", "permission", "the caller needs roles/run.viewer", 403)
    r = results(ev).by_id("lb.staging-backend-service.backends")
    assert r.status is Status.WARN and "roles/run.viewer" in r.reason
    ev = serverless_evidence()
    ev.api["compute.networkEndpointGroups"] = failed("compute.networkEndpointGroups", "permission", "denied", 403)
    rs = results(ev)
    # without the NEG list a regional NEG backend is still not given timeout / health-check advice
    assert rs.by_id("lb.staging-backend-service.backends").status is Status.ERROR
    assert not any(r.id.endswith(".timeout") for r in rs)


def test_instance_group_backends_keep_todays_checks_with_neg_evidence_present():
    ev = healthy_evidence()
    ev.api["compute.networkEndpointGroups"] = ok("compute.networkEndpointGroups",
                                                 {"items": {"zones/europe-west4-b": sample_negs()}})
    rs = results(ev)
    assert "lb.staging-backend-service.timeout" in {r.id for r in rs} and "lb.serverless" not in {r.id for r in rs}


def sample_negs() -> dict:
    from tests.checks.checks_testkit import recorded

    return {"networkEndpointGroups": recorded("gcpdiag/lb2--compute-negs-europe-west4-b.json")["items"]}
