"""Airflow DAG ``runbook_fleet``: one mapped task per fleet target, then the fleet roll-up.

    list_targets  ->  run_target[0..n-1] (dynamic task mapping)  ->  rollup (runs whatever happened)

Airflow never imports the runbook: every task calls the ``runbook`` command of the runbook's own
virtual environment (``RUNBOOK_BIN``), so neither side's dependencies reach the other. Each
mapped task is one ordinary ``runbook run`` (its own report folder, kernels and sandbox); the
roll-up is the same fleet.json / fleet.md / fleet.html that ``runbook fleet run`` writes, in
``<reports>/fleet-<dag run id>/``.

Configuration (environment variables of the scheduler/workers, or the DAG run's conf):
    RUNBOOK_BIN              the runbook command, e.g. /opt/runbook/.venv/bin/runbook
    RUNBOOK_FLEET_MANIFEST   the fleet manifest (conf: manifest)
    RUNBOOK_REPORTS          the reports folder (conf: reports); on Cloud Composer a folder
                             under /home/airflow/gcs/data/ lands in the environment's bucket
    conf: phase ("all", "1", "2", "3"), fail_when_unhealthy (default true)

A target whose runbook failed (exit 2) fails its task; an unhealthy target's task succeeds (the
runbook did its job) and the roll-up task fails when the fleet is unhealthy, so the DAG run is
red exactly when something needs a person.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x (Cloud Composer 2)
    from airflow.decorators import dag, task

from airflow.exceptions import AirflowException

RUNBOOK_BIN = os.environ.get("RUNBOOK_BIN", "runbook")
MANIFEST = os.environ.get("RUNBOOK_FLEET_MANIFEST", "parameters/fleet.example.yaml")
REPORTS = os.environ.get("RUNBOOK_REPORTS", "reports")
TARGET_TIMEOUT = timedelta(hours=2)


def _runbook(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """The runbook CLI in its own environment; Airflow's Python paths are not passed on."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([RUNBOOK_BIN, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
    print(proc.stderr[-20000:], end="")  # progress lines, into the task log
    print(proc.stdout, end="")
    return proc


def _conf(dag_run, key: str, default):
    conf = (dag_run.conf or {}) if dag_run is not None else {}
    return conf.get(key, default)


def _fleet_id(run_id: str) -> str:
    """A folder-safe id from the DAG run id (manual__2026-12-01T14:00:00+00:00 -> manual__2026-12-01T14-00-00-00-00)."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", run_id).strip("-._")[:100] or "airflow"


@dag(
    dag_id="runbook_fleet",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # never two fleets against the same targets at once
    default_args={"retries": 0},
    tags=["runbook"],
    doc_md=__doc__,
)
def runbook_fleet():
    @task
    def list_targets(dag_run=None) -> list[str]:
        """Validate the manifest and every target's parameters before any target starts."""
        proc = _runbook("fleet", "list", "--manifest", _conf(dag_run, "manifest", MANIFEST), "--json", timeout=300)
        if proc.returncode != 0:
            raise AirflowException(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "fleet list failed")
        return [t["name"] for t in json.loads(proc.stdout)["targets"]]

    @task(execution_timeout=TARGET_TIMEOUT, max_active_tis_per_dag=4)
    def run_target(name: str, dag_run=None, run_id=None) -> dict:
        proc = _runbook("fleet", "target", "--manifest", _conf(dag_run, "manifest", MANIFEST),
                        "--out", _conf(dag_run, "reports", REPORTS), "--fleet-id", _fleet_id(run_id),
                        "--phase", str(_conf(dag_run, "phase", "all")), "--name", name, "--unhealthy-ok",
                        timeout=TARGET_TIMEOUT.total_seconds())
        if proc.returncode != 0:
            raise AirflowException(f"target {name}: the runbook failed (exit {proc.returncode}); see the log above")
        return {"name": name, "result": proc.stdout.strip().splitlines()[-1:]}

    @task(trigger_rule="all_done")
    def rollup(dag_run=None, run_id=None) -> dict:
        reports = _conf(dag_run, "reports", REPORTS)
        proc = _runbook("fleet", "rollup", "--manifest", _conf(dag_run, "manifest", MANIFEST), "--out", reports,
                        "--fleet-id", _fleet_id(run_id), timeout=600)
        if proc.returncode not in (0, 1, 2) or not proc.stdout.strip():
            raise AirflowException(f"the roll-up failed (exit {proc.returncode})")
        path = os.path.join(os.path.abspath(reports), f"fleet-{_fleet_id(run_id)}", "fleet.json")
        with open(path) as fh:
            doc = json.load(fh)
        summary = {"line": doc["line"], "status": doc["status"], "fleet": path}
        fail = str(_conf(dag_run, "fail_when_unhealthy", True)).lower() not in ("false", "0", "no")
        if doc["exit_code"] != 0 and fail:
            raise AirflowException(doc["line"])
        return summary

    names = list_targets()
    runs = run_target.expand(name=names)
    runs >> rollup()


runbook_fleet()
