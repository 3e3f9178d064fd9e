"""Parameters: every shipped file loads; every invalid-*.yaml fails with its exact message."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.errors import ParameterError
from runbook_lib.params import load_params

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests" / "parameters").glob("invalid-*.yaml"))


@pytest.mark.parametrize("name", ["sandbox.yaml", "replay.yaml", "staging.example.yaml"])
def test_shipped_parameters_are_valid(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    params = load_params(f"parameters/{name}")
    assert params.connector.name == "staging-connector"
    assert len(params.secrets.required) == 10


def test_staging_example_names_every_incident_value(monkeypatch):
    monkeypatch.chdir(ROOT)
    p = load_params("parameters/staging.example.yaml")
    assert (p.project, p.region) == ("netra-staging", "us-central1")
    assert (p.connector.network, p.connector.ip_cidr_range, p.connector.machine_type) == ("staging-vpc", "10.1.0.0/28", "e2-micro")
    assert (p.connector.min_instances, p.connector.max_instances) == (2, 10)
    assert p.cloudsql.instance == "netra-staging-db"
    assert p.load_balancer.https_proxy == "staging-https-proxy"
    assert p.load_balancer.health_checks == {"staging-backend-health-check": "/health", "staging-auth-health-check": "/auth/health"}
    assert (p.domains.frontend, p.domains.api) == ("staging.netrasystems.ai", "api-staging.netrasystems.ai")
    assert (p.thresholds.db_connect_s, p.load_balancer.backend_timeout_s, p.thresholds.api_response_s,
            p.thresholds.health_response_s) == (35, 600, 5, 10)
    assert sum(i.arr_usd for i in p.handback.business_impact) == 575_000


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_file_gives_its_exact_message(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    expected = path.read_text().splitlines()[0].removeprefix("# error: ")
    with pytest.raises(ParameterError) as err:
        load_params(path.relative_to(ROOT))
    assert str(err.value) == expected


def test_one_invalid_file_per_rule():
    assert len(INVALID) >= 15


def test_override_sets_a_nested_value(monkeypatch):
    monkeypatch.chdir(ROOT)
    p = load_params("parameters/staging.example.yaml", ["cloudsql.probe_samples=30", "target.name=nightly"])
    assert p.cloudsql.probe_samples == 30 and p.target.name == "nightly"


@pytest.mark.parametrize("override, expected", [
    ("cloudsql.probe_sampels=3", "-p cloudsql.probe_sampels=3: cloudsql.probe_sampels: unknown key"),
    ("connector.max_instances=ten", "-p connector.max_instances=ten: connector.max_instances: expected a valid integer"),
    ("nonsense", "-p nonsense: (override): expected KEY.PATH=VALUE"),
    ("project.name=x", "-p project.name: project: is a value, not a section"),
])
def test_bad_override_is_one_clear_error(override, expected, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ParameterError) as err:
        load_params("parameters/staging.example.yaml", [override])
    assert expected in str(err.value)


def test_overrides_are_attributed_to_the_flag(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ParameterError) as err:
        load_params("parameters/staging.example.yaml", ["connector.min_instances=9", "connector.max_instances=3"])
    assert str(err.value) == "-p connector.min_instances=9: connector.min_instances: must be <= max_instances (3), got 9"


def test_cli_bad_parameters_exit_2_with_one_line_and_no_report(tmp_path):
    bad = ROOT / "tests" / "parameters" / "invalid-min-above-max.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "runbook_lib.cli", "run", "--params", str(bad), "--out", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith("connector.min_instances: must be <= max_instances (4), got 8")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()  # validated before any folder or kernel
