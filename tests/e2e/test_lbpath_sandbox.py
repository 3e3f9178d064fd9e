"""Issue 10 against the sandbox's real topology (Cloud Run behind serverless NEGs): no load-balancer
timeout or health-check verdicts and no PATCH of a serverless-NEG backend service; the certificate is
added beside the legacy one, which goes only once the managed one is ACTIVE and served; the
Connectivity Test names the hop that breaks. The instance-group topology keeps its checks."""
from __future__ import annotations

import pytest

from runbook_lib.gather.environment import open_environment
from runbook_lib.params import load_params
from runbook_lib.remediate import apply_plan, build_plan
from runbook_lib.results import Status
from runbook_lib.util.aio import run_sync
from tests.plugins.sandboxes import diagnose, mutations, sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]
CERT_ACTIONS = {"cert.create", "cert.attach", "cert.detach-legacy"}


def test_issue_1278_serverless_diagnosis_plan_and_certificates_without_an_outage(shared_sandbox):
    shared = shared_sandbox("issue-1278")   # its first diagnosis is test_scenarios' too
    with shared.claim("the certificate fix") as sb:
        ev, results = shared.ev, shared.results
        ids = {r.id: r for r in results}
        assert not [i for i in ids if i.startswith("lb.") and i.endswith((".timeout", ".tolerance", ".policy"))]
        assert ids["lb.serverless"].status is Status.SKIP
        assert ids["lb.staging-backend-service.backends"].status is Status.PASS
        assert ids["lb.staging-auth-service.config"].status is Status.PASS
        # the path: the instance is stopped (RUNNABLE + NEVER), so the analysis drops at the instance
        assert ev.api["networkmanagement.connectivityTest"].ok and ev.api["networkmanagement.connectivityTest.delete"].ok
        assert ids["connector.path"].status is Status.FAIL and "instance hop" in ids["connector.path"].reason
        assert ids["sql.state"].status is Status.FAIL and "RUNNABLE, activation policy NEVER" == ids["sql.state"].observed

        plan = build_plan(results, ev, sb.params)
        calls = [c for a in plan.actions for c in a.calls]
        assert not any(c.method == "PATCH" and "/backendServices/" in c.path for c in calls)
        attach = next(a for a in plan.actions if a.id == "cert.attach").calls[0]
        assert [u.rsplit("/", 1)[-1] for u in attach.body["sslCertificates"]] == ["staging-legacy-cert",
                                                                                 "staging-netrasystems-cert"]

        skip = [a.id for a in plan.actions if a.id not in CERT_ACTIONS]
        params = load_params(sb.params_file, [f"remediation.skip={skip}"])
        certs_only = build_plan(results, ev, params)
        assert [a.id for a in certs_only.actions] == ["cert.create", "cert.attach", "cert.detach-legacy"]
        applying = load_params(sb.params_file, [f"remediation.skip={skip}", "remediation.apply=true",
                                                f"remediation.confirm={certs_only.id}"])

        async def go():
            async with open_environment(applying).api() as api:
                return await apply_plan(api, certs_only, applying)

        report = run_sync(go())
        assert report.mode == "applied", report.message
        outcomes = {e.action: e.outcome for e in report.audit}
        assert outcomes == {"cert.create": "applied", "cert.attach": "applied", "cert.detach-legacy": "applied"}
        proxy_path = "/compute/v1/projects/netra-staging/targetHttpsProxies/staging-https-proxy/setSslCertificates"
        sets = {(m["time"], m["path"]) for m in mutations(sb) if m["path"] == proxy_path}  # one log, read per API
        assert len(sets) == 2  # attach (both kept), then detach once the managed one is served

        ev2, after = diagnose(sb, "validate")
        for cid in ("tls.staging.hostname", "tls.api-staging.hostname", "cert.managed", "cert.attached"):
            assert after.by_id(cid).status is Status.PASS, after.by_id(cid)
        assert ev2.api["compute.targetHttpsProxy"].body["sslCertificates"][-1].endswith("/staging-netrasystems-cert")
        assert len(ev2.api["compute.targetHttpsProxy"].body["sslCertificates"]) == 1


def test_detach_stays_pending_with_the_reason_while_the_managed_certificate_is_not_active():
    with sandbox("issue-1278") as sb:
        ev, results = diagnose(sb)
        plan = build_plan(results, ev, sb.params)
        skip = [a.id for a in plan.actions if a.id not in CERT_ACTIONS]
        params = load_params(sb.params_file, [f"remediation.skip={skip}"])
        certs_only = build_plan(results, ev, params)
        # 0.2 s of waiting cannot see a certificate that provisions in 60 s x time scale
        applying = load_params(sb.params_file, [f"remediation.skip={skip}", "remediation.apply=true",
                                                f"remediation.confirm={certs_only.id}", "remediation.wait_s=0.2"])

        async def go():
            async with open_environment(applying).api() as api:
                return await apply_plan(api, certs_only, applying)

        report = run_sync(go())
        detach = next(e for e in report.audit if e.action == "cert.detach-legacy")
        assert detach.outcome == "pending" and "left pending after 0.2 s" in detach.error
        assert "staging-legacy-cert stay on staging-https-proxy (still served)" in detach.error
        # the legacy certificate is still on the proxy: no outage
        ev2, after = diagnose(sb, "validate")
        names = [u.rsplit("/", 1)[-1] for u in ev2.api["compute.targetHttpsProxy"].body["sslCertificates"]]
        assert names == ["staging-legacy-cert", "staging-netrasystems-cert"]


def test_blackholed_connector_is_named_by_the_connectivity_test(shared_sandbox):
    results = shared_sandbox("connector-not-ready").results   # test_scenarios' single-fault diagnosis too
    path = results.by_id("connector.path")
    assert path.status is Status.FAIL
    assert path.reason.startswith("the path breaks at the connector hop: ARRIVE_AT_VPC_CONNECTOR")
    assert "source -> connector -> DROP(VPC_CONNECTOR_NOT_RUNNING)" in path.observed


def test_instance_groups_keep_their_health_check_and_timeout_checks(shared_sandbox):
    shared = shared_sandbox("instance-groups")   # test_remediation_flow applies a plan to it afterwards
    ev, results = shared.ev, shared.results
    ids = {r.id: r for r in results}
    assert "lb.serverless" not in ids
    assert ids["lb.staging-backend-service.timeout"].status is Status.FAIL
    assert ids["lb.staging-backend-health-check.tolerance"].status is Status.FAIL
    plan = build_plan(results, ev, shared.params)
    assert {"lb.timeout.staging-backend-service", "lb.health-check.staging-backend-health-check"} <= {
        a.id for a in plan.actions}
