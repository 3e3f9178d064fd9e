"""The Cloud Run Jobs entrypoint: task k of n runs manifest targets k, k+n, ...; the task that
records last builds the roll-up in the volume's fleet-<execution>/; the job definition and the
image agree with the entrypoint (env names, mount path, VPC connector)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "integrations" / "cloudrun-job"
MANIFEST = ROOT / "tests" / "fleet" / "manifests" / "replays.yaml"
EXECUTION = "runbook-fleet-x7k2p"


def task(index: int, count: int, reports: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUD_RUN_", "RUNBOOK_"))}
    env.update(CLOUD_RUN_TASK_INDEX=str(index), CLOUD_RUN_TASK_COUNT=str(count), CLOUD_RUN_TASK_ATTEMPT="0",
               CLOUD_RUN_EXECUTION=EXECUTION, CLOUD_RUN_JOB="runbook-fleet",
               RUNBOOK_BIN=str(ROOT / ".venv" / "bin" / "runbook"), RUNBOOK_MANIFEST=str(MANIFEST),
               RUNBOOK_REPORTS=str(reports), RUNBOOK_PHASE="1",
               RUNBOOK_VANTAGE="inside the VPC (test)")
    return subprocess.run(["sh", str(HERE / "entrypoint.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=str(ROOT))


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_tasks_map_to_targets_and_the_last_one_builds_the_rollup(tmp_path):
    reports = tmp_path / "reports"
    fdir = reports / f"fleet-{EXECUTION}"
    second = task(1, 2, reports)                     # task 1 of 2: target 1 only
    assert second.returncode == 0, second.stderr[-3000:]   # unhealthy is not a reason to retry
    assert second.stdout.splitlines()[0].startswith("Target replay-b: exit 1, report ")
    assert sorted(p.name for p in (fdir / "targets").glob("*.json")) == ["replay-b.json"]
    assert not (fdir / "fleet.json").exists()        # targets 0 and 2 have not recorded yet

    first = task(0, 2, reports)                      # task 0 of 2: targets 0 and 2, then the roll-up
    assert first.returncode == 0, first.stderr[-3000:]
    assert [ln.split(":")[0] for ln in first.stdout.splitlines()[:2]] == ["Target replay-a", "Target replay-c"]
    doc = json.loads((fdir / "fleet.json").read_text())
    assert first.stdout.strip().splitlines()[-1] == doc["line"]
    assert doc["fleet_id"] == EXECUTION
    assert doc["line"] == "Fleet Status: UNHEALTHY, Targets: 3, Healthy: 0, Unhealthy: 3, Runbook failed: 0"
    by_name = {r["name"]: r for r in doc["targets"]}
    assert {n: r["runner"]["task_index"] for n, r in by_name.items()} == {"replay-a": "0", "replay-b": "1",
                                                                          "replay-c": "0"}
    for r in doc["targets"]:
        assert r["runner"]["engine"] == "cloud-run-job" and r["runner"]["execution"] == EXECUTION
        assert r["runner"]["vantage"] == "inside the VPC (test)"
        results = json.loads((fdir / r["run_dir"] / "results.json").read_text())
        assert r["verdict"] == results["verdict"] and results["target"]["name"] == r["name"]
    assert by_name["replay-c"]["target"]["region"] == "us-east1"      # its override reached its run
    assert "inside the VPC (test)" in (fdir / "fleet.md").read_text()


def test_a_task_past_the_last_target_runs_nothing(tmp_path):
    proc = task(5, 6, tmp_path / "reports")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to run for this task" in proc.stderr
    assert not list((tmp_path / "reports" / f"fleet-{EXECUTION}" / "targets").glob("*.json"))


def test_the_job_definition_matches_the_entrypoint():
    job = yaml.safe_load((HERE / "job.yaml").read_text())
    assert job["apiVersion"] == "run.googleapis.com/v1" and job["kind"] == "Job"
    execution = job["spec"]["template"]
    notes = execution["metadata"]["annotations"]
    assert notes["run.googleapis.com/vpc-access-connector"].endswith("/connectors/staging-connector")
    assert notes["run.googleapis.com/vpc-access-egress"] == "all-traffic"
    spec = execution["spec"]["template"]["spec"]
    [container] = spec["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    entrypoint = (HERE / "entrypoint.sh").read_text()
    assert all(name in entrypoint for name in env)        # every variable set is one it documents
    [mount] = container["volumeMounts"]
    [volume] = spec["volumes"]
    assert mount["name"] == volume["name"] and volume["csi"]["driver"] == "gcsfuse.run.googleapis.com"
    assert env["RUNBOOK_REPORTS"] == mount["mountPath"]
    assert "VPC" in env["RUNBOOK_VANTAGE"]


def test_the_image_copies_what_a_run_needs():
    lines = (HERE / "Dockerfile").read_text().splitlines()
    copied = [ln.split()[1] for ln in lines if ln.startswith("COPY ")]
    for src in copied:
        assert (ROOT / src.rstrip("/")).exists(), src
    assert {"runbook_lib/", "notebooks/", "parameters/", "examples/"} <= set(copied)
    assert any(ln.startswith("ENTRYPOINT") and "runbook-fleet-task" in ln for ln in lines)
