"""The workflow's fleet jobs: a plan job lists the targets, one matrix job per target, one roll-up
job that gathers their artifacts, builds the roll-up and posts one comment. Shell steps run under
bash as GitHub runs them, with a stand-in runbook."""
from __future__ import annotations

import stat

import pytest

from tests.test_workflow import load, run_step, steps

STUB = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$RUNBOOK_ARGS"
if [ "$1 $2" = "fleet list" ]; then echo '["staging", "dev-eu"]'; fi
if [ "$1 $2" = "fleet rollup" ]; then
  mkdir -p "reports/fleet-$FLEET_ID" && echo "# Fleet $FLEET_ID" > "reports/fleet-$FLEET_ID/fleet.md"
fi
exit "${RUNBOOK_STUB_EXIT:-0}"
"""


@pytest.fixture
def workspace(tmp_path):
    stub = tmp_path / ".venv" / "bin" / "runbook"
    stub.parent.mkdir(parents=True)
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def job_step(job: dict, name: str) -> dict:
    return next(s for s in job["steps"] if s.get("name") == name)


def test_the_fleet_jobs_chain_plan_matrix_rollup():
    jobs = load()["jobs"]
    plan, target, rollup = jobs["fleet-plan"], jobs["fleet-target"], jobs["fleet-rollup"]
    assert plan["if"] == "inputs.manifest != ''" and jobs["runbook"]["if"] == "inputs.manifest == ''"
    assert target["needs"] == "fleet-plan"
    assert target["strategy"]["fail-fast"] is False
    assert target["strategy"]["matrix"]["target"] == "${{ fromJSON(needs.fleet-plan.outputs.targets) }}"
    assert rollup["needs"] == ["fleet-plan", "fleet-target"]
    assert rollup["if"].startswith("always()")       # the roll-up runs whatever the targets did
    upload = job_step(target, "Upload the target's report")["with"]["name"]
    download = job_step(rollup, "Download the targets' reports")["with"]
    assert upload.startswith(download["pattern"].rstrip("*")) and download["merge-multiple"] is True
    post = job_step(rollup, "Post the fleet roll-up on the tracking issue")
    assert "fleet attach" in post["run"] and post["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    # Same rules as the single-target job: inputs reach scripts as env, never spliced into shell text.
    assert all("${{" not in s.get("run", "") for s in steps(load()))


def test_plan_outputs_the_matrix_and_the_fleet_id(workspace):
    step = job_step(load()["jobs"]["fleet-plan"], "List the fleet's targets")
    done, outputs = run_step(workspace, step, MANIFEST="parameters/fleet.yaml", GITHUB_RUN_ID="77",
                             GITHUB_RUN_ATTEMPT="2")
    assert done.returncode == 0, done.stderr
    assert outputs == {"targets": '["staging", "dev-eu"]', "fleet_id": "77-2"}
    assert (workspace / "args").read_text().splitlines() == [
        "fleet", "list", "--manifest", "parameters/fleet.yaml", "--names"]


def test_a_bad_manifest_fails_the_plan_job(workspace):
    step = job_step(load()["jobs"]["fleet-plan"], "List the fleet's targets")
    done, outputs = run_step(workspace, step, MANIFEST="bad.yaml", RUNBOOK_STUB_EXIT="2",
                             GITHUB_RUN_ID="77", GITHUB_RUN_ATTEMPT="1")
    assert done.returncode != 0 and "targets" not in outputs


@pytest.mark.parametrize("code,job_exit", [("0", 0), ("2", 2)])
def test_a_target_job_records_its_exit_and_fails_only_when_the_runbook_did(workspace, code, job_exit):
    job = load()["jobs"]["fleet-target"]
    done, outputs = run_step(workspace, job_step(job, "Run the target"), MANIFEST="m.yaml", TARGET="dev-eu",
                             FLEET_ID="77-1", RUNBOOK_STUB_EXIT=code)
    assert done.returncode == 0 and outputs == {"exit_code": code}
    assert (workspace / "args").read_text().splitlines() == [
        "fleet", "target", "--manifest", "m.yaml", "--fleet-id", "77-1", "--name", "dev-eu", "--out", "reports",
        "--unhealthy-ok"]
    done, _ = run_step(workspace, job_step(job, "Fail the job when the runbook failed for this target"),
                       TARGET_EXIT=outputs["exit_code"])
    assert done.returncode == job_exit


def test_the_rollup_job_summarises_posts_once_and_fails_when_unhealthy(workspace):
    job = load()["jobs"]["fleet-rollup"]
    done, outputs = run_step(workspace, job_step(job, "Build the fleet roll-up"), MANIFEST="m.yaml",
                             FLEET_ID="77-1", RUNBOOK_STUB_EXIT="1")
    assert done.returncode == 0 and outputs == {"exit_code": "1"}
    assert (workspace / "step_summary.md").read_text() == "# Fleet 77-1\n"
    done, _ = run_step(workspace, job_step(job, "Post the fleet roll-up on the tracking issue"), FLEET_ID="77-1",
                       GITHUB_REPOSITORY="acme/app", ISSUE="1278", REPORT_URL="https://github.com/acme/app/actions/runs/77")
    assert done.returncode == 0
    assert (workspace / "args").read_text().splitlines() == [
        "fleet", "attach", "--fleet", "reports/fleet-77-1", "--repo", "acme/app", "--issue", "1278",
        "--report-url", "https://github.com/acme/app/actions/runs/77"]
    done, _ = run_step(workspace, job_step(job, "Fail the job when the fleet is not healthy"), FLEET_EXIT="1")
    assert done.returncode == 1
