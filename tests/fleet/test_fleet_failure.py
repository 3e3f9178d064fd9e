"""One failing target never stops the others, and the fleet says the runbook failed (exit 2)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_a_failing_target_is_failed_and_the_others_complete(tmp_path):
    (tmp_path / "empty-evidence").mkdir()
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text(f"""\
targets:
  - name: broken
    params: {ROOT / 'parameters' / 'replay.yaml'}
    overrides: {{target.evidence_dir: empty-evidence}}
  - name: replay
    params: {ROOT / 'parameters' / 'replay.yaml'}
""")
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "fleet", "run", "--manifest", str(manifest),
                           "--parallel", "1", "--phase", "1", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    doc = json.loads((out / "fleet-latest" / "fleet.json").read_text())
    rows = {r["name"]: r for r in doc["targets"]}
    assert rows["broken"]["status"] == "FAILED" and rows["broken"]["exit_code"] == 2
    assert rows["broken"]["error"]                          # the reason, not a bare FAILED
    assert rows["replay"]["status"] == "UNHEALTHY"          # ran after the failure (--parallel 1)
    assert doc["line"] == "Fleet Status: FAILED, Targets: 2, Healthy: 0, Unhealthy: 1, Runbook failed: 1"
    assert "1 failed | finished replay" in proc.stderr
