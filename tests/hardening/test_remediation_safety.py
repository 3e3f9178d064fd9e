"""Remediation safety, beyond tests/e2e/test_remediation_flow.py (dry run, wrong id, double apply):
a stale confirmation is refused before a single request, and a failure mid-plan stops there,
leaving the audit log (in memory and in audit.json) and the rollback commands of what was
applied; applying the same plan again then resumes where it stopped.

One issue-1278 sandbox for the module; the emulator's request log is the witness.
"""
from __future__ import annotations

import json

import pytest

from runbook_lib.errors import RemediationError
from runbook_lib.gather.environment import open_environment
from runbook_lib.params import load_params
from runbook_lib.remediate import apply_plan, build_plan
from runbook_lib.remediate.apply import check_confirmation
from runbook_lib.util.aio import run_sync
from tests.plugins.sandboxes import (
    clear_faults,
    clear_requests,
    diagnose,
    inject_fault,
    mutating,
    requests_seen,
    sandbox,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]


@pytest.fixture(scope="module")
def broken():
    with sandbox("issue-1278") as sb:
        yield sb


def confirmed(sb, plan_id: str):
    return load_params(sb.params_file, ["remediation.apply=true", f"remediation.confirm={plan_id}"])


def apply(params, plan, **kwargs):
    async def go():
        async with open_environment(params).api() as api:
            return await apply_plan(api, plan, params, **kwargs)

    return run_sync(go())


def current_plan(sb):
    ev, results = diagnose(sb)
    return build_plan(results, ev, sb.params)


def test_a_stale_confirmation_is_refused_before_any_request(broken):
    sb = broken
    reviewed = current_plan(sb)                      # the dry run a person reviewed and confirmed
    # serverless topology (issue 10): no backend-service PATCH any more; a certificate made by hand
    by_hand = next(a for a in reviewed.actions if a.id == "cert.create")

    async def fix_by_hand():                         # meanwhile, someone changes the environment
        async with open_environment(sb.params).api() as api:
            for call in by_hand.calls:
                op = await api.execute(call)
                if op.get("status") not in (None, "DONE"):  # a compute operation: done before re-planning
                    await api.wait_operation(call.api, op, deadline_s=60)

    run_sync(fix_by_hand())
    now = current_plan(sb)
    assert now.id != reviewed.id and by_hand.id not in {a.id for a in now.actions}

    clear_requests(sb)
    stale = confirmed(sb, reviewed.id)
    with pytest.raises(RemediationError, match="refused"):
        check_confirmation(now, stale)
    with pytest.raises(RemediationError, match="refused"):
        apply(stale, now)                            # apply_plan guards itself, whoever calls it
    assert requests_seen(sb) == [], "a refused plan must not even read"


def test_a_failure_mid_plan_stops_there_with_audit_and_rollback(broken, tmp_path):
    sb = broken
    plan = current_plan(sb)
    ids = [a.id for a in plan.actions]
    failing = "cert.attach"  # serverless topology (issue 10): the proxy, not a backend service
    at = ids.index(failing)
    assert any(not a.manual for a in plan.actions[:at]) and any(not a.manual for a in plan.actions[at + 1:])
    p = sb.params
    inject_fault(sb, f"/compute/v1/projects/{p.project}/targetHttpsProxies", "403", 1000, method="POST")
    clear_requests(sb)
    audit_file = tmp_path / "audit.json"
    params = confirmed(sb, plan.id)
    try:
        report = apply(params, plan, audit_file=audit_file)
    finally:
        clear_faults(sb)

    assert report.mode == "failed" and failing in report.message
    outcomes = {e.action: e.outcome for e in report.audit}
    assert list(outcomes) == ids[: at + 1]                    # nothing after the failed action was tried
    assert outcomes[failing] == "failed"
    failed = report.audit[-1]
    assert "permission denied" in failed.error and "roles/compute.loadBalancerAdmin" in failed.error
    applied = [e for e in report.audit if e.outcome == "applied"]
    assert applied and all(e.before and e.after and e.requests for e in applied)
    assert report.rollback == [e.rollback for e in applied] and all(r.startswith("gcloud ") for r in report.rollback)
    assert json.loads(audit_file.read_text()) == report.model_dump(mode="json")

    sent = mutating(requests_seen(sb))
    assert sent[-1]["method"] == "POST" and "setSslCertificates" in sent[-1]["path"] and sent[-1]["status"] == 403
    assert not any("healthChecks" in r["path"] or "secrets" in r["path"] for r in sent)

    # The same confirmed plan, once the permission is there: the applied part is left alone.
    again = apply(params, plan, audit_file=audit_file)
    assert again.mode == "applied", again.message
    redo = {e.action: e.outcome for e in again.audit}
    assert all(redo[e.action] == "unchanged" for e in applied)
    assert redo[failing] == "applied"
    assert set(again.changed) == {a.id for a in plan.automatic} - {e.action for e in applied}
