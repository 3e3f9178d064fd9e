"""Phase 1 against every sandbox scenario: the faults are real, found with the right ids, and only them.

The healthy, issue-1278 and connector-not-ready diagnoses are the first diagnoses of sandboxes that
other tests share (``shared_sandbox``): a diagnosis changes nothing, so it is the same diagnosis."""
from __future__ import annotations

import pytest

from runbook_lib.results import Status, root_causes
from tests.plugins.sandboxes import diagnose, sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

SINGLE_FAULT = {
    "connector-saturated": "connector",
    "connector-not-ready": "connector",
    "cloudsql-stopped": "cloudsql",
    "certificate-mismatch": "certificates",
    "certificate-expired": "certificates",
    "certificate-not-visible": "certificates",
    "lb-timeouts": "load_balancer",
    "secrets-missing": "secrets",
}


def test_healthy_is_healthy(shared_sandbox):
    results = shared_sandbox("healthy").results
    failing = [(r.id, r.status.value, r.observed, r.reason) for r in results if r.status in (Status.FAIL, Status.ERROR)]
    assert results.verdict.line == "Overall Status: HEALTHY, Critical Failures: 0", failing
    assert not failing


def test_issue_1278_names_the_five_faults_with_their_reasons(shared_sandbox):
    shared = shared_sandbox("issue-1278")
    ev, results = shared.ev, shared.results
    faults = {f.component: f for f in root_causes(results)}
    # serverless NEG backends (issue 10): the 600 s concerns are Cloud Run's, not the load balancer's
    assert list(faults)[:3] == ["connector", "cloudsql", "certificates"] and "secrets" in faults
    assert "load_balancer" not in faults   # (the Cloud Run revision checks name cloud_run)
    get = results.by_id
    assert get("connector.instances").status is Status.FAIL and "max 3 < 10" in get("connector.instances").observed + get("connector.instances").reason
    # stopped = RUNNABLE + activation policy NEVER; connections refused then are the instance's, not the connector's
    assert get("sql.state").status is Status.FAIL and get("sql.state").observed == "RUNNABLE, activation policy NEVER"
    assert get("sql.connect").status is Status.FAIL and "connector" not in get("sql.connect").upstream
    assert "see sql.state" in get("sql.connect").reason
    assert get("connector.path").status is Status.FAIL and "instance hop" in get("connector.path").reason
    assert get("tls.api-staging.hostname").status is Status.FAIL
    assert "staging.netrasystems.ai" in get("tls.api-staging.hostname").observed      # the legacy names it serves
    assert get("lb.serverless").status is Status.SKIP
    assert not [r.id for r in results if r.id.startswith("lb.") and r.id.endswith((".timeout", ".tolerance"))]
    missing = [r.id for r in results if r.id.startswith("secrets.") and r.status is Status.FAIL and r.id != "secrets.count"]
    assert len(missing) == 4                                                            # 3 missing + 1 disabled
    assert all(r.remediation for r in results if r.status is Status.FAIL)
    assert ev.probes["tls.api-staging.netrasystems.ai"][0].reason.value == "hostname_mismatch"


SHARED = {"connector-not-ready"}   # tests/e2e/test_lbpath_sandbox.py reads this first diagnosis too


@pytest.mark.parametrize("scenario, component", [
    pytest.param(s, c, marks=[pytest.mark.xdist_group("shared_sandbox")] if s in SHARED else [])
    for s, c in sorted(SINGLE_FAULT.items())])
def test_each_single_fault_is_found_and_only_it(scenario, component, request):
    if scenario in SHARED:
        results = request.getfixturevalue("shared_sandbox")(scenario).results
    else:
        with sandbox(scenario) as sb:
            ev, results = diagnose(sb)
    failing = [(r.id, r.status.value, r.observed, r.reason) for r in results if r.status in (Status.FAIL, Status.ERROR)]
    assert [f.component for f in root_causes(results)] == [component], failing
    assert not results.verdict.healthy


def test_blackout_ends_with_a_reason_for_every_probe():
    with sandbox("blackout") as sb:
        ev, results = diagnose(sb)
    assert ev.probes, "probes ran"
    # names resolve (connect_to) and listeners accept; everything that needs an answer times out
    answered = {k: v for k, v in ev.probes.items() if not k.startswith(("dns.", "tcp."))}
    for key, samples in answered.items():
        for s in samples:
            assert not s.ok and s.reason is not None and s.detail, key
    assert {s.reason.value for v in answered.values() for s in v} == {"timeout"}
    assert "could not be read" in ev.api["networkmanagement.connectivityTest"].error.message  # its source timed out
    assert all(not rec.ok and rec.error.kind == "timeout" for rec in ev.api.values())
    assert all(not rec.ok for rec in ev.metrics.values())
    assert not results.verdict.healthy
    # every check still has an outcome with a reason (nothing silently missing)
    assert all(r.reason or r.status is Status.PASS for r in results)
