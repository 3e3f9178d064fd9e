"""Phase 2 and 3 against the sandbox: dry run changes nothing, the confirmed plan heals, twice is a
no-op, a skipped action leaves phase 3 failing with the reason; the demo flow from the CLI (the runs
are tests/plugins/runs.py's ``demo_runs``, which tests/history asserts on too)."""
from __future__ import annotations

import json
import re

import pytest

from runbook_lib.errors import RemediationError
from runbook_lib.gather.environment import open_environment
from runbook_lib.params import load_params
from runbook_lib.remediate import apply_plan, build_plan
from runbook_lib.remediate.apply import check_confirmation
from runbook_lib.results import Status
from runbook_lib.util.aio import run_sync
from tests.plugins.runs import report_dir
from tests.plugins.sandboxes import diagnose, mutations, sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]


def apply(sb, plan, *extra):
    params = load_params(sb.params_file, ["remediation.apply=true", f"remediation.confirm={plan.id}", *extra])
    check_confirmation(plan, params)

    async def go():
        async with open_environment(params).api() as api:
            return await apply_plan(api, plan, params)

    return run_sync(go())


def test_dry_run_then_confirmed_apply_heals_and_twice_changes_nothing():
    with sandbox("issue-1278") as sb:
        ev, results = diagnose(sb)
        plan = build_plan(results, ev, sb.params)
        # serverless NEG backends (issue 10): no backend-service PATCH; the legacy certificate goes last
        assert {a.id for a in plan.automatic} >= {"connector.resize", "sql.start", "cert.create", "cert.attach",
                                                  "cert.detach-legacy", "secret.create.smtp-password"}
        assert not any(c.method == "PATCH" and "/backendServices/" in c.path for a in plan.actions for c in a.calls)
        for action in plan.automatic:
            assert action.calls and action.rollback and action.verify and action.risk
            assert all(c.gcloud.startswith(("gcloud", "printf")) for c in action.calls)

        dry = run_sync(apply_plan(None, plan, sb.params))
        assert dry.mode == "dry-run" and not dry.audit
        assert mutations(sb) == []                          # the emulator saw no mutating request

        wrong = load_params(sb.params_file, ["remediation.apply=true", "remediation.confirm=0123456789ab"])
        with pytest.raises(RemediationError, match="refused"):
            check_confirmation(plan, wrong)
        assert mutations(sb) == []

        first = apply(sb, plan)
        assert first.mode == "applied" and set(first.changed) == {a.id for a in plan.automatic}
        for entry in first.audit:
            if entry.outcome == "applied":
                assert entry.before and entry.after and entry.before != entry.after and entry.requests
        sent = len(mutations(sb))

        ev3, validated = diagnose(sb, "validate", golden_path=True)
        assert validated.verdict.line == "Overall Status: HEALTHY, Critical Failures: 0"
        golden = validated.for_component("golden_path")
        assert {r.id: r.status for r in golden if r.status is not Status.SKIP} == {
            "golden.login": Status.PASS, "golden.websocket": Status.PASS, "golden.events": Status.PASS,
            "golden.response": Status.PASS, "golden.history": Status.PASS, "golden.api_latency": Status.PASS,
            "golden.error_rate": Status.PASS, "golden.startup": Status.PASS}

        second = apply(sb, plan)
        assert second.changed == [] and "nothing to change" in second.message
        assert len(mutations(sb)) == sent                   # idempotent: not one more mutation


def test_skipping_the_backend_timeout_leaves_the_golden_path_failing_with_why(shared_sandbox):
    skip = "remediation.skip=[lb.timeout.staging-backend-service, lb.timeout.staging-auth-service]"
    shared = shared_sandbox("instance-groups")  # the backend timeout exists for instance groups only
    with shared.claim("the plan without the backend timeouts") as sb:
        ev, results = shared.ev, shared.results   # the first diagnosis (test_lbpath_sandbox reads it too)
        plan = build_plan(results, ev, load_params(sb.params_file, [skip]))
        assert plan.skipped == ["lb.timeout.staging-backend-service", "lb.timeout.staging-auth-service"]
        apply(sb, plan, skip)
        ev3, validated = diagnose(sb, "validate", golden_path=True)
    assert not validated.verdict.healthy
    assert validated.by_id("lb.staging-backend-service.timeout").status is Status.FAIL
    events = validated.by_id("golden.events")
    assert events.status is Status.FAIL and "missing events" in events.reason and "cut" in events.reason


@pytest.mark.timeout(1800)   # it may be the first to wait for the three shared runs
def test_demo_flow_from_the_cli(demo_runs):
    """What `make demo` does: plan id from a dry run, then run all phases applying exactly that plan."""
    plan_id, run = demo_runs.plan, demo_runs.applied
    assert plan_id.returncode == 0, plan_id.stderr[-2000:]
    pid = plan_id.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", pid)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "Overall Status: HEALTHY, Critical Failures: 0"
    # the terminal tells the story: one line per phase, the golden path that passed, where to read on
    assert "diagnose: UNHEALTHY" in run.stderr and "remediate: APPLIED" in run.stderr
    assert re.search(r"validate: HEALTHY, 0 critical, golden path (\d+)/\1", run.stderr), run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-2].startswith("Summary: ")
    run_dir = demo_runs.out / "latest"
    assert run_dir.resolve() == report_dir(run).resolve()   # the reports folder holds the dry run too
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["phases"]["remediate"]["applied"] is True
    summary = (run_dir / "summary.md").read_text()
    status = doc["status"]  # decided once by the results model: the summary only renders it
    assert status["status"] in ("COMPLETE", "HEALTHY") and status["headline"] in summary
    assert "❌" not in summary                                  # healthy: nothing shown as broken
    for c in status["phases"]["validate"]["components"]:
        # (not the "since the last run" lists, "- **Fixed:** ...": the dry run came first here)
        line = next(l for l in summary.splitlines() if l.startswith("- ") and not l.startswith("- **")
                    and f"{c['passed']}/" in l and ("✅" in l) == (c["status"] == "PASS"))
        assert line
    assert f"{status['actions']['applied']} applied" in summary
    assert "Overall Status: HEALTHY, Critical Failures: 0" in summary
    assert "$575K ARR restored" in summary
