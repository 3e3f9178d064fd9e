"""The Airflow DAG under a real Airflow: `airflow dags test` on its own SQLite metadata database.

Airflow lives in its own virtual environment (``make test-airflow`` builds .venv-airflow with a
pinned apache-airflow and sets RUNBOOK_AIRFLOW_VENV); it never enters the runbook's. The DAG
runs the acceptance manifest (three sandboxes, two replays), one mapped task per target, and the
roll-up must be the one `runbook fleet run` gives for it: the same rows, each agreeing with its
run folder's results.json, and the roll-up task failing with the fleet line (the fleet is unhealthy).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.fleet.test_fleet_run import EXPECTED, MANIFESTS

ROOT = Path(__file__).resolve().parents[2]
VENV = os.environ.get("RUNBOOK_AIRFLOW_VENV")
pytestmark = [pytest.mark.e2e, pytest.mark.sandbox, pytest.mark.timeout(1800),
              pytest.mark.skipif(not VENV, reason="needs Airflow in its own venv: run `make test-airflow`")]


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    reports = tmp_path_factory.mktemp("reports")
    airflow = str(Path(VENV).resolve() / "bin" / "airflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "integrations" / "airflow"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
               RUNBOOK_BIN=str(ROOT / ".venv" / "bin" / "runbook"))
    migrate = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, env=env, timeout=600)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    conf = {"manifest": str(MANIFESTS / "five.yaml"), "reports": str(reports), "phase": "1"}
    proc = subprocess.run([airflow, "dags", "test", "runbook_fleet", "-c", json.dumps(conf)], capture_output=True,
                          text=True, env=env, timeout=1800, cwd=str(home))
    return proc, reports


def task_states(log: str) -> dict[str, str]:
    states = {}
    for m in re.finditer(r"Marking task as (\w+)\. dag_id=runbook_fleet, task_id=(\w+),[^\n]*?(?:map_index=(\d+))?,"
                         r" execution_date", log):
        states[m.group(2) + (f"[{m.group(3)}]" if m.group(3) else "")] = m.group(1)
    return states


def test_one_mapped_task_per_target_and_the_rollup_fails_on_an_unhealthy_fleet(dag_run):
    proc, reports = dag_run
    log = proc.stdout + proc.stderr
    states = task_states(log)
    assert states == {"list_targets": "SUCCESS", **{f"run_target[{i}]": "SUCCESS" for i in range(5)},
                      "rollup": "FAILED"}, log[-4000:]
    line = "Fleet Status: UNHEALTHY, Targets: 5, Healthy: 1, Unhealthy: 4, Runbook failed: 0"
    assert f"AirflowException: {line}" in log
    assert proc.returncode != 0                      # the DAG run is red: something needs a person


def test_the_rollup_is_the_fleet_run_rollup(dag_run):
    proc, reports = dag_run
    [fdir] = [p for p in reports.iterdir() if p.name.startswith("fleet-manual__")]
    doc = json.loads((fdir / "fleet.json").read_text())
    assert doc["line"] == "Fleet Status: UNHEALTHY, Targets: 5, Healthy: 1, Unhealthy: 4, Runbook failed: 0"
    assert {r["name"]: r["status"] for r in doc["targets"]} == EXPECTED
    for r in doc["targets"]:
        results = json.loads((fdir / r["run_dir"] / "results.json").read_text())
        assert r["verdict"] == results["verdict"]
        assert r["root_causes"] == results["phases"]["diagnose"]["faults"]
        assert r["runner"]["engine"] == "airflow" and r["runner"]["dag"] == "runbook_fleet"
    assert (fdir / "fleet.html").exists() and (fdir / "fleet.md").exists()
    runs = [p for p in reports.iterdir() if not p.is_symlink() and (p / "status.json").exists()]
    assert len(runs) == 5


def test_airflow_stays_out_of_the_runbook_environment():
    import importlib.util

    assert importlib.util.find_spec("airflow") is None
