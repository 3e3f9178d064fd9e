"""Two runs at once into the same reports folder: two complete folders, each with its own valid
results, and an index that lists both (folders never collide, every write is write-then-rename).
The two runs are tests/plugins/runs.py's ``replay_pair``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.plugins.runs import status_of

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)   # it may be the first to wait for the shared runs
def test_two_runs_at_once_give_two_complete_folders_and_one_index(replay_pair):
    # the pair is the session's (tests/plugins/runs.py): tests/test_run_replay.py asserts on it too
    procs, outputs = replay_pair.procs, replay_pair.outputs
    for p, (_stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 1, stderr[-3000:]             # the recorded incident: unhealthy, a verdict
    reported = sorted(Path(stdout.splitlines()[0].removeprefix("Report: ")) for stdout, _ in outputs)
    dirs = list(replay_pair.dirs)                             # as the two runs left the folder
    assert dirs == reported and len(set(dirs)) == 2           # one folder each, neither overwritten
    index = replay_pair.index
    for run_dir, (stdout, _) in zip(reported, sorted(outputs, key=lambda o: o[0].splitlines()[0]), strict=True):
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
