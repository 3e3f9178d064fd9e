"""Two runs at once into the same reports folder: two complete folders, each with its own valid
results, and an index that lists both (folders never collide, every write is write-then-rename)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import REPLAY, ROOT, cli_argv, run_dirs, status_of

pytestmark = pytest.mark.e2e


def test_two_runs_at_once_give_two_complete_folders_and_one_index(tmp_path):
    argv = cli_argv("run", "--params", str(REPLAY), "--out", str(tmp_path), "--no-progress")
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 1, stderr[-3000:]             # the recorded incident: unhealthy, a verdict
    reported = sorted(Path(stdout.splitlines()[0].removeprefix("Report: ")) for stdout, _ in outputs)
    dirs = run_dirs(tmp_path)
    assert dirs == reported and len(set(dirs)) == 2           # one folder each, neither overwritten
    index = (tmp_path / "index.html").read_text()
    for run_dir, (stdout, _) in zip(reported, sorted(outputs, key=lambda o: o[0].splitlines()[0])):
        status = status_of(run_dir)
        assert status["state"] == "COMPLETE" and status["phases_done"] == ["diagnose", "remediate", "validate"]
        doc = json.loads((run_dir / "results.json").read_text())
        assert set(doc["phases"]) == {"diagnose", "remediate", "validate"}
        assert doc["verdict"]["line"] == stdout.strip().splitlines()[-1]
        assert doc["run"]["started_at"] == status["started_at"]   # its own status, not the other run's
        for name in ("01_diagnose", "02_remediate", "03_validate_handback"):
            assert (run_dir / f"{name}.ipynb").exists() and (run_dir / f"{name}.html").exists()
        # each run's notebooks wrote into their own folder, not the other's
        assert (run_dir / "evidence" / "validate" / "manifest.json").exists()
        assert run_dir.name in index
