"""Cloud Run fixes against the sandbox (its run v2 emulator: services.patch creates revisions, async
operations, a revision whose startup probe window is shorter than its startup never becomes Ready),
and two concurrent confirmed applies of one plan sending each mutation exactly once."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from runbook_lib.gather.environment import open_environment
from runbook_lib.gcp import run
from runbook_lib.params import load_params
from runbook_lib.remediate import apply_plan, build_plan
from runbook_lib.remediate.plan import Plan
from runbook_lib.util.aio import run_sync
from tests.plugins.sandboxes import ROOT, diagnose, sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]


def requests_log(sb) -> list[dict]:
    """The emulator's request log (one log for every API)."""
    return httpx.get(sb.control_url("run") + "/_sandbox/requests", timeout=5).json()["requests"]


def only(plan: Plan, *components: str) -> Plan:
    return plan.model_copy(update={"actions": [a for a in plan.actions if a.component in components and not a.manual]})


def confirmed(sb, plan: Plan, tmp_path):
    return load_params(sb.params_file, ["remediation.apply=true", f"remediation.confirm={plan.id}",
                                        f"remediation.state_dir={tmp_path / 'state'}"])


def apply(params, plan, **kw):
    async def go():
        async with open_environment(params).api() as api:
            return await apply_plan(api, plan, params, **kw)

    return run_sync(go())


def test_cloud_run_fixes_through_services_patch_then_rollback_is_accepted(tmp_path):
    with sandbox("cloudrun-timeouts") as sb:
        ev, results = diagnose(sb)
        svc = sb.params.cloud_run.services[0]
        for what in ("timeout", "startup", "min_instances", "cpu_boost"):
            assert results.by_id(f"run.{svc}.{what}").status.value == "FAIL", what
        plan = only(build_plan(results, ev, sb.params), "cloud_run")
        assert [a.id for a in plan.actions] == [f"run.patch.{s}" for s in sb.params.cloud_run.services]
        before = run.services_of(ev.api[run.KEY].body)[svc].serving_revision

        report = apply(confirmed(sb, plan, tmp_path), plan, audit_file=tmp_path / "audit.json")
        assert report.mode == "applied", report.message
        for entry in report.audit:
            statuses = [e.status for e in entry.events if e.event == "poll"]
            assert "RUNNING" in statuses and statuses[-1] == "DONE"       # seen running, polled until done
            assert entry.events[-1].event == "settle" and entry.events[-1].status == "READY"
        patches = [r for r in requests_log(sb) if r["method"] == "PATCH"]
        assert sorted(r["path"] for r in patches) == sorted(run.service_path(sb.params, s) for s in sb.params.cloud_run.services)

        ev2, after = diagnose(sb)
        bad = [r.id for r in after if r.id.startswith("run.") and r.status.value != "PASS"]
        assert bad == []
        now = run.services_of(ev2.api[run.KEY].body)[svc]
        assert now.serving_revision != before and now.serves_fully(now.serving_revision)

        # phase 3 reads the new revision's startup latency (CPU boost on: the scenario's 120 s)
        ev3, validated = diagnose(sb, "validate", golden_path=True)
        startup = validated.by_id("golden.startup")
        assert startup.status.value == "PASS" and f"{svc} p95 120 s" in startup.observed, startup

        # the rollback the plan names: all traffic back to the revision that served before
        assert f"--to-revisions {before}=100" in plan.actions[0].rollback

        async def roll_back():
            async with open_environment(sb.params).api() as api:
                raw = await api.request("GET", "run", run.service_path(sb.params, svc))
                op = await api.request("PATCH", "run", run.service_path(sb.params, svc), body=run.traffic_to(raw, before))
                await api.wait_operation("run", op, deadline_s=20, first_poll_s=0.05)
                return await api.request("GET", "run", run.service_path(sb.params, svc))

        rolled = run.Service.from_json(run_sync(roll_back()))
        assert rolled.serving_revision == before and rolled.serves_fully(before)


APPLY_ONE = """
import json, sys
from runbook_lib.util.aio import run_sync
from runbook_lib.gather.environment import open_environment
from runbook_lib.errors import RemediationError
from runbook_lib.params import load_params
from runbook_lib.remediate import apply_plan
from runbook_lib.remediate.plan import Plan

params_file, plan_file, state = sys.argv[1:4]
plan = Plan.model_validate_json(open(plan_file).read())
params = load_params(params_file, ["remediation.apply=true", f"remediation.confirm={plan.id}",
                                   f"remediation.state_dir={state}"])
async def go():
    async with open_environment(params).api() as api:
        return await apply_plan(api, plan, params)
try:
    report = run_sync(go())
    print(json.dumps({"mode": report.mode, "changed": report.changed, "message": report.message}))
except RemediationError as exc:
    print(json.dumps({"mode": "refused", "message": str(exc)}))
"""


def test_two_concurrent_applies_of_one_plan_send_each_mutation_once(tmp_path):
    with sandbox("issue-1278") as sb:
        ev, results = diagnose(sb)
        # Cloud Run patches and secret versions: addVersion is not idempotent, a second send would be a
        # second version (issue 11); every action here takes seconds (operations run, then revisions start)
        plan = only(build_plan(results, ev, sb.params), "cloud_run", "secrets")
        assert any(a.component == "secrets" for a in plan.actions) and any(a.component == "cloud_run" for a in plan.actions)
        plan_file = tmp_path / "plan.json"
        plan_file.write_text(plan.model_dump_json())
        httpx.delete(sb.control_url("run") + "/_sandbox/requests", timeout=5)
        cmd = [sys.executable, "-c", APPLY_ONE, str(sb.params_file), str(plan_file), str(tmp_path / "state")]
        procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-2000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
        modes = sorted(o["mode"] for o in outs)
        assert modes in (["applied", "refused"], ["applied", "applied"]), outs
        if modes == ["applied", "refused"]:
            refused = next(o for o in outs if o["mode"] == "refused")["message"]
            assert "another apply of target" in refused and f"plan {plan.id}" in refused and "pid " in refused
        else:  # the second started after the first finished: it found everything in effect
            assert sorted(len(o["changed"]) for o in outs)[0] == 0
        from urllib.parse import parse_qsl

        def key(method, path, query):  # secrets.create differs only by its secretId query parameter
            pairs = parse_qsl(query) if isinstance(query, str) else [(k, str(v)) for k, v in (query or {}).items()]
            return method, path, tuple(sorted(pairs))

        mutating = [key(r["method"], r["path"], r.get("query")) for r in requests_log(sb)
                    if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]
        assert mutating and len(mutating) == len(set(mutating)), mutating   # each mutation exactly once
        assert set(mutating) == {key(c.method, c.path, c.query) for a in plan.actions for c in a.calls}


def test_a_failed_operation_fails_its_action_with_googles_error(tmp_path):
    with sandbox("operation-fails") as sb:
        ev, results = diagnose(sb)
        full = build_plan(results, ev, sb.params)
        plan = full.model_copy(update={"actions": [a for a in full.actions if a.id == "connector.resize"]})
        report = apply(confirmed(sb, plan, tmp_path), plan)
        (entry,) = report.audit
        assert report.mode == "failed" and entry.outcome == "failed" and entry.after == []
        assert "does not have enough resources available" in entry.error
        events = [(e.event, e.status) for e in entry.events]
        assert events[0] == ("sending", "") and ("sent", "RUNNING") in events and events[-1][0] == "failed"
        assert report.rollback == []   # nothing was applied
