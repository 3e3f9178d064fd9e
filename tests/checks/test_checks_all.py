"""evaluate_all: order, stable ids, invariants a person relies on, purity (ev.now, not the clock)."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from runbook_lib import checks
from runbook_lib.checks import COMPONENTS, evaluate_all
from runbook_lib.evidence import Meta
from runbook_lib.probes.base import Reason
from runbook_lib.results import Status
from tests.checks.checks_testkit import (
    API,
    FRONTEND,
    SECRETS,
    backend_services_body,
    cert_info,
    certificates_body,
    failed,
    fixture,
    health_checks_body,
    healthy_evidence,
    instance_body,
    make_params,
    metric,
    ok,
    probe,
    proxy_body,
    run_services_body,
    secrets_body,
)

PARAMS = make_params()


def issue_1278_evidence():
    """All five faults of the incident at once, as the sandbox scenario describes them."""
    ev = healthy_evidence()
    ev.api["vpcaccess.connector"] = ok("vpcaccess.connector", {**fixture("vpcaccess--connector-ready.json"),
                                                                "minInstances": 1, "maxInstances": 3})
    ev.metrics["monitoring.connector_instances"] = metric("monitoring.connector_instances",
                                                          "vpcaccess.googleapis.com/connector/instances", [3, 3, 3])
    inst = instance_body()
    inst["state"], inst["settings"]["activationPolicy"] = "STOPPED", "NEVER"
    ev.api["sqladmin.instance"] = ok("sqladmin.instance", inst)
    ev.probes["postgres.connect"] = [probe("postgres", "db:5432", False, reason=Reason.refused,
                                           detail="connection refused (nothing listening)") for _ in range(10)]
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates", {"items": []})
    ev.api["compute.targetHttpsProxy"] = ok("compute.targetHttpsProxy", proxy_body(certs=("staging-legacy-cert",)))
    legacy = cert_info(["*.staging.netrasystems.ai"], verified=False, verify_error="Hostname mismatch")
    for domain in (FRONTEND, API):
        ev.probes[f"tls.{domain}"] = [probe("tls", f"{domain}:443", False, reason=Reason.hostname_mismatch, cert=legacy)]
    ev.api["compute.backendServices"] = ok("compute.backendServices", backend_services_body(timeout=30))
    ev.api["compute.healthChecks"] = ok("compute.healthChecks", health_checks_body(5, 5, 2, 2))
    ev.api["secretmanager.secrets"] = ok("secretmanager.secrets", secrets_body(SECRETS[:7]))
    ev.api["secretmanager.versions.redis-url"] = ok("v", fixture("secretmanager--versions-latest-disabled.json"))
    ev.api["run.services"] = ok("run.services", run_services_body(API_BASE_URL="https://api.staging.netrasystems.ai"))
    return ev


def test_components_in_order_and_healthy_verdict():
    rs = evaluate_all(healthy_evidence(), PARAMS)
    # phase-1 evidence has no golden.* records, so the golden path adds nothing here
    assert rs.components == list(COMPONENTS)[:-1] == ["connector", "cloudsql", "certificates", "load_balancer",
                                                       "secrets", "cloud_run", "clock"]
    assert COMPONENTS[-1] == "golden_path"
    assert rs.verdict.line == "Overall Status: HEALTHY, Critical Failures: 0"
    assert len({r.id for r in rs}) == len(rs) == 79  # ids are unique: 8 + 8 + 14 + 13 + 11 + 24 + 1 (clock)


def test_ids_are_stable_between_healthy_and_broken():
    healthy = [r.id for r in evaluate_all(healthy_evidence(), PARAMS)]
    broken = [r.id for r in evaluate_all(issue_1278_evidence(), PARAMS)]
    assert healthy == broken


def test_issue_1278_names_every_fault():
    rs = evaluate_all(issue_1278_evidence(), PARAMS)
    failing = {r.id for r in rs if r.status is Status.FAIL}
    for cid in ("connector.instances", "connector.saturation", "sql.state", "sql.activation_policy", "sql.connect",
                "cert.managed", "cert.attached", "tls.api-staging.hostname", "tls.staging.hostname",
                "lb.staging-backend-service.timeout", "lb.staging-backend-health-check.tolerance",
                "secrets.anthropic-api-key", "secrets.redis-url", "secrets.count", "run.auth-staging.domains"):
        assert cid in failing, cid
    assert rs.verdict.line.startswith("Overall Status: UNHEALTHY, Critical Failures:")
    assert rs.verdict.exit_code == 1


def test_every_fail_has_remediation_every_skip_and_error_a_reason():
    for ev in (issue_1278_evidence(), healthy_evidence()):
        for r in evaluate_all(ev, PARAMS):
            if r.status is Status.FAIL:
                assert r.remediation.strip(), r.id
            if r.status in (Status.SKIP, Status.ERROR):
                assert r.reason.strip(), r.id
            assert r.evidence, r.id


def test_fail_remediations_name_the_real_resources():
    rs = evaluate_all(issue_1278_evidence(), PARAMS)
    expect = {
        "connector.instances": "staging-connector", "sql.state": "netra-staging-db",
        "cert.managed": "staging-netrasystems-cert", "cert.attached": "staging-https-proxy",
        "lb.staging-backend-service.timeout": "staging-backend-service",
        "lb.staging-auth-health-check.tolerance": "staging-auth-health-check",
        "secrets.smtp-password": "gcloud secrets create smtp-password",
    }
    for cid, name in expect.items():
        r = rs.by_id(cid)
        assert "gcloud" in r.remediation and name in r.remediation, cid


def test_every_api_record_failing_gives_errors_never_passes():
    ev = healthy_evidence()
    for key in list(ev.api):
        ev.api[key] = failed(key, "timeout", f"no answer for {key} within 10 s")
    rs = evaluate_all(ev, PARAMS)
    api_only = [r for r in rs if all(e.split(".")[0] in ("vpcaccess", "sqladmin", "compute", "secretmanager", "run")
                                     for e in r.evidence)]
    assert api_only and all(r.status is Status.ERROR for r in api_only)


def test_empty_evidence_is_errors_and_skips_not_silence():
    ev = healthy_evidence()
    ev.api.clear()
    ev.probes.clear()
    ev.metrics.clear()
    rs = evaluate_all(ev, PARAMS)
    assert len(rs) > 20 and not any(r.status is Status.PASS for r in rs)
    assert not rs.verdict.healthy


def test_purity_same_evidence_same_results():
    ev = issue_1278_evidence()
    snapshot = copy.deepcopy(ev.model_dump())
    first = evaluate_all(ev, PARAMS).to_records()
    second = evaluate_all(ev, PARAMS).to_records()
    assert first == second
    assert ev.model_dump() == snapshot  # checks do not modify the evidence


def test_results_depend_on_ev_now_not_the_clock():
    future = datetime(2031, 6, 1, tzinfo=timezone.utc)  # a certificate that is only valid then
    ev = healthy_evidence(now=future)
    rs = evaluate_all(ev, PARAMS)
    assert rs.by_id("tls.api-staging.expiry").status is Status.PASS
    ev.meta = Meta(**{**ev.meta.model_dump(), "now": future + timedelta(days=85)})
    assert evaluate_all(ev, PARAMS).by_id("tls.api-staging.expiry").status is Status.FAIL


def test_a_crashing_check_becomes_an_error_and_others_still_run(monkeypatch):
    def boom(ev, params):
        raise KeyError("surprise")

    monkeypatch.setitem(checks.EVALUATORS, "secrets", boom)
    rs = evaluate_all(healthy_evidence(), PARAMS)
    crash = rs.by_id("secrets.internal")
    assert crash.status is Status.ERROR and "KeyError" in crash.reason
    assert rs.by_id("run.auth-staging.ready").status is Status.PASS
    assert not rs.verdict.healthy


@pytest.mark.parametrize("component", COMPONENTS[:-1])
def test_each_component_evaluates_alone(component):
    rs = evaluate_all(healthy_evidence(), PARAMS, components=[component])
    assert rs.components == [component]


def test_managed_certificate_provisioning_then_active():
    ev = healthy_evidence()
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates", certificates_body("PROVISIONING", "PROVISIONING"))
    assert evaluate_all(ev, PARAMS).by_id("cert.managed").status is Status.WARN
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates", certificates_body())
    assert evaluate_all(ev, PARAMS).by_id("cert.managed").status is Status.PASS
