"""Secret Manager and Cloud Run checks."""
from __future__ import annotations

from datetime import datetime, timezone

from runbook_lib.checks import cloud_run, secrets
from runbook_lib.evidence import Meta
from runbook_lib.results import ResultSet, Severity, Status
from tests.checks.checks_testkit import (
    SECRETS,
    failed,
    fixture,
    healthy_evidence,
    make_params,
    ok,
    run_services_body,
    secrets_body,
)

PARAMS = make_params()


def sresults(ev) -> ResultSet:
    return ResultSet(results=secrets.evaluate(ev, PARAMS))


def rresults(ev, params=PARAMS) -> ResultSet:
    return ResultSet(results=cloud_run.evaluate(ev, params))


# -- secrets ----------------------------------------------------------------------------------------

def test_all_secrets_present():
    rs = sresults(healthy_evidence())
    assert [r.id for r in rs] == [f"secrets.{n}" for n in SECRETS] + ["secrets.count"]
    assert all(r.status is Status.PASS for r in rs) and rs.by_id("secrets.count").observed == "10/10 available"


def test_recorded_style_listing_missing_disabled_destroyed_expiring():
    ev = healthy_evidence()
    listing = {"secrets": fixture("secretmanager--secrets-page1.json")["secrets"]
               + fixture("secretmanager--secrets-page2.json")["secrets"]}
    ev.api["secretmanager.secrets"] = ok("secretmanager.secrets", listing)
    ev.api["secretmanager.versions.redis-url"] = ok("v", fixture("secretmanager--versions-latest-disabled.json"))
    ev.api["secretmanager.versions.oauth-client-secret"] = ok("v", fixture("secretmanager--versions-latest-destroyed.json"))
    ev.api["secretmanager.versions.oauth-client-id"] = ok("v", fixture("secretmanager--versions-empty.json"))
    rs = sresults(ev)
    missing = rs.by_id("secrets.openai-api-key")
    assert missing.status is Status.FAIL and missing.observed == "missing"
    assert missing.remediation.startswith('`printf %s "$VALUE" | gcloud secrets create openai-api-key '
                                          '--replication-policy=automatic --data-file=- --project netra-staging`')
    disabled = rs.by_id("secrets.redis-url")
    assert disabled.status is Status.FAIL and "gcloud secrets versions enable 3 --secret=redis-url" in disabled.remediation
    destroyed = rs.by_id("secrets.oauth-client-secret")
    assert destroyed.status is Status.FAIL and "2024-12-31" in destroyed.observed
    assert "gcloud secrets versions add oauth-client-secret --data-file=-" in destroyed.remediation
    assert rs.by_id("secrets.oauth-client-id").observed == "exists, no versions"
    expiring = rs.by_id("secrets.cors-allowed-origins")
    assert expiring.status is Status.WARN and "(in 4.5 days)" in expiring.observed  # ev.now is 2025-01-15
    count = rs.by_id("secrets.count")
    assert count.status is Status.FAIL and count.observed == "4/10 available"
    assert "openai-api-key" in count.reason


def test_expired_secret_fails_by_evidence_time():
    ev = healthy_evidence()
    listing = secrets_body()
    listing["secrets"][0]["expireTime"] = "2025-01-20T00:00:00Z"
    ev.api["secretmanager.secrets"] = ok("secretmanager.secrets", listing)
    ev.meta = Meta(**{**ev.meta.model_dump(), "now": datetime(2025, 2, 1, tzinfo=timezone.utc)})
    assert sresults(ev).by_id("secrets.database-url").status is Status.FAIL


def test_versions_read_failure_is_error_and_count_unknown():
    ev = healthy_evidence()
    ev.api["secretmanager.versions.redis-url"] = failed("v", "permission", "needs roles/secretmanager.viewer", 403)
    rs = sresults(ev)
    assert rs.by_id("secrets.redis-url").status is Status.ERROR
    assert rs.by_id("secrets.count").status is Status.ERROR and "redis-url" in rs.by_id("secrets.count").reason


def test_list_failure_errors_every_secret():
    ev = healthy_evidence()
    ev.api["secretmanager.secrets"] = failed("secretmanager.secrets", "api_disabled",
                                             "run `gcloud services enable secretmanager.googleapis.com --project netra-staging`")
    rs = sresults(ev)
    assert len(rs) == 11 and all(r.status is Status.SKIP for r in rs)


def test_no_format_checks_unless_values_were_inspected():
    assert secrets.value_format_results(healthy_evidence(), PARAMS) == []


def test_format_verdicts_become_results_without_values():
    from runbook_lib.evidence import ApiRecord

    ev = healthy_evidence()
    ev.api["secretmanager.valueFormats"] = ApiRecord(key="secretmanager.valueFormats", ok=True, body={"formats": {
        "database-url": {"ok": True, "shape": "postgresql URL, host set, 44 chars", "reason": ""},
        "jwt-secret-staging": {"ok": False, "shape": "12 chars", "reason": "shorter than 32 characters"},
        "redis-url": {"error": "permission", "reason": "needs roles/secretmanager.secretAccessor"},
    }})
    rs = {r.id: r for r in secrets.value_format_results(ev, PARAMS)}
    assert rs["secrets.database-url.format"].status is Status.PASS
    assert rs["secrets.jwt-secret-staging.format"].status is Status.FAIL and rs["secrets.jwt-secret-staging.format"].remediation
    assert rs["secrets.redis-url.format"].status is Status.ERROR


# -- cloud run ---------------------------------------------------------------------------------------

def test_healthy_services():
    rs = rresults(healthy_evidence())
    assert [r.id for r in rs][:4] == ["run.netra-backend-staging.exists", "run.netra-backend-staging.ready",
                                      "run.netra-backend-staging.vpc", "run.netra-backend-staging.domains"]
    assert len(rs) == 24 and all(r.status is Status.PASS for r in rs)
    assert rs.by_id("run.auth-staging.domains").severity is Severity.medium


def test_deprecated_domain_reports_names_never_values():
    value = "wss://api.staging.netrasystems.ai/ws?token=abc123-private"
    ev = healthy_evidence()
    ev.api["run.services"] = ok("run.services", run_services_body(WS_URL=value, OK_URL="https://staging.netrasystems.ai"))
    r = rresults(ev).by_id("run.netra-backend-staging.domains")
    assert r.status is Status.FAIL and r.severity is Severity.medium
    assert r.observed == "WS_URL references *.staging.netrasystems.ai"
    text = r.model_dump_json()
    assert "abc123" not in text and "token" not in text and "wss://" not in text  # the host itself is a parameter
    assert "--update-env-vars WS_URL=NEW_VALUE" in r.remediation


def test_not_ready_and_stuck_revision():
    ev = healthy_evidence()
    body = run_services_body()
    body["services"][0]["terminalCondition"] = {"type": "Ready", "state": "CONDITION_FAILED",
                                                "message": "Revision failed: container failed to start"}
    body["services"][1]["latestCreatedRevision"] += "-new"
    ev.api["run.services"] = ok("run.services", body)
    rs = rresults(ev)
    r = rs.by_id("run.netra-backend-staging.ready")
    assert r.status is Status.FAIL and "container failed to start" in r.reason
    assert "gcloud run services logs read netra-backend-staging" in r.remediation
    assert "never became ready" in rs.by_id("run.auth-staging.ready").reason


def test_missing_service_and_wrong_vpc():
    ev = healthy_evidence()
    body = run_services_body()
    body["services"][1]["template"]["vpcAccess"] = {"connector": "projects/p/locations/r/connectors/other"}
    del body["services"][2]
    ev.api["run.services"] = ok("run.services", body)
    rs = rresults(ev)
    vpc = rs.by_id("run.auth-staging.vpc")
    assert vpc.status is Status.FAIL and vpc.observed == "connector other, egress PRIVATE_RANGES_ONLY"
    assert rs.by_id("run.netra-frontend-staging.exists").status is Status.FAIL
    assert rs.by_id("run.netra-frontend-staging.vpc").status is Status.SKIP


def test_recorded_sample_service_has_no_vpc_access():
    params = make_params(**{"cloud_run.services": ["cloudrun1"]})
    ev = healthy_evidence()
    from tests.checks.checks_testkit import sample

    ev.api["run.services"] = ok("run.services", sample("cloudrun1--cloudrun_services.json"))
    rs = rresults(ev, params)
    assert rs.by_id("run.cloudrun1.ready").status is Status.PASS
    assert rs.by_id("run.cloudrun1.vpc").status is Status.FAIL


def test_failed_list_errors_all():
    ev = healthy_evidence()
    ev.api["run.services"] = failed("run.services", "network", "cannot reach run")
    assert all(r.status is Status.ERROR for r in rresults(ev))
