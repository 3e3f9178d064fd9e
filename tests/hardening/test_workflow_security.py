"""The workflow that applies remediation with cloud credentials passes a GitHub Actions security
linter (issue 11, item 9): zizmor, offline (no GitHub API calls), reports nothing."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ZIZMOR = Path(sys.executable).with_name("zizmor")


@pytest.mark.skipif(not ZIZMOR.exists() and shutil.which("zizmor") is None, reason="zizmor is not installed")
def test_zizmor_offline_reports_nothing_on_the_workflows():
    exe = str(ZIZMOR if ZIZMOR.exists() else shutil.which("zizmor"))
    proc = subprocess.run([exe, "--offline", "--persona=pedantic", ".github/workflows/"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "No findings to report" in proc.stdout + proc.stderr
