"""Refusals before any kernel starts: one line, exit 2, no report folder."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.errors import RunbookError
from runbook_lib.params import load_params
from runbook_lib.run.preflight import check_run
from runbook_lib.run.report import PHASES

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "parameters" / "replay.yaml"
SANDBOX = ROOT / "parameters" / "sandbox.yaml"


@pytest.mark.parametrize("params_file, overrides, phases, message", [
    (REPLAY, ["remediation.apply=true", "remediation.confirm=b9d612ce0998"], PHASES, "on a replay target"),
    (SANDBOX, ["remediation.apply=true", "remediation.confirm=b9d612ce0998"], ("diagnose",), r"phase 2 \(remediate\) is not in this run"),
    (SANDBOX, ["remediation.apply=true", "remediation.confirm=latest"], PHASES, "is not a plan id"),
    (SANDBOX, [], ("validate", "diagnose"), "must run in order"),
])
def test_refused_with_one_line(params_file, overrides, phases, message):
    with pytest.raises(RunbookError, match=message) as info:
        check_run(load_params(params_file, overrides), phases)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_a_dry_run_and_a_confirmed_apply_pass():
    check_run(load_params(REPLAY), PHASES)
    check_run(load_params(SANDBOX, ["remediation.apply=true", "remediation.confirm=890f461af255"]), PHASES)


def test_cli_refuses_apply_on_replay_before_any_kernel(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "--params", str(REPLAY), "--out", str(tmp_path),
                           "-p", "remediation.apply=true", "-p", "remediation.confirm=b9d612ce0998"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("runbook: refused: ")
    assert not any(tmp_path.iterdir())          # no report folder, so no notebook ever started
