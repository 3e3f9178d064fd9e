"""`runbook run` end to end on recorded evidence: the folder, the files, and one verdict everywhere.

The run asserted on is the first of ``replay_pair`` (tests/plugins/runs.py: two runs started at once
into one folder, which tests/hardening/test_concurrent_runs.py asserts on as well)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]   # the first test waits for the shared runs


def runbook(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def replay_run(replay_pair):
    (stdout, stderr), popen = replay_pair.outputs[0], replay_pair.procs[0]
    proc = subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr)
    return proc, replay_pair.out


def test_exit_code_and_report_line(replay_run):
    proc, out = replay_run
    assert proc.returncode == 1, proc.stderr[-3000:]          # the recorded incident is unhealthy
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("Report: ")
    assert lines[-1].startswith("Overall Status: UNHEALTHY, Critical Failures: ")
    assert "Phase 1 of 3" in proc.stderr and "Phase 3 of 3" in proc.stderr


def test_folder_has_every_artefact(replay_run):
    proc, out = replay_run
    run_dir = Path(proc.stdout.splitlines()[0].removeprefix("Report: "))
    assert run_dir.parent == out and run_dir.name.split("-")[1] == "replay"
    for name in ("01_diagnose", "02_remediate", "03_validate_handback"):
        assert (run_dir / f"{name}.ipynb").exists() and (run_dir / f"{name}.html").exists()
    for name in ("results.json", "summary.md", "run.log", "parameters.yaml", "status.json"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "evidence" / "diagnose" / "manifest.json").exists()
    assert (out / "index.html").exists()


def test_verdict_agrees_everywhere(replay_run):
    proc, out = replay_run
    run_dir = Path(proc.stdout.splitlines()[0].removeprefix("Report: "))
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["schema_version"] == 1
    line = doc["verdict"]["line"]
    assert proc.stdout.strip().splitlines()[-1] == line
    assert line in (out / "index.html").read_text()
    assert line in (run_dir / "03_validate_handback.html").read_text()
    assert line in (run_dir / "summary.md").read_text()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "COMPLETE"


def test_replay_reproduces_the_recorded_results(replay_run):
    """Replaying an archived run gives identical results."""
    proc, out = replay_run
    run_dir = Path(proc.stdout.splitlines()[0].removeprefix("Report: "))
    first = json.loads((run_dir / "results.json").read_text())["phases"]["diagnose"]["results"]
    again = runbook("check", "--params", "parameters/replay.yaml", "--json")
    assert json.loads(again.stdout)["results"] == first


def test_runs_never_overwrite_each_other(replay_run, tmp_path):
    proc, out = replay_run
    folders = lambda: [p for p in out.iterdir() if p.is_dir() and not p.is_symlink() and (p / "status.json").exists()]  # noqa: E731
    before = folders()                   # the shared folder: the pair of runs (and any later test's)
    second = runbook("run", "--params", "parameters/replay.yaml", "--phase", "1", "--out", str(out), "--no-progress")
    assert second.returncode == 1
    runs = folders()
    assert len(runs) == len(before) + 1 and set(before) < set(runs)
    html = (out / "index.html").read_text()
    assert all(r.name in html for r in runs)


def test_relative_out_folder_works_from_the_repository_root(tmp_path):
    """`make demo` passes no --out: the default relative `reports` must reach the kernels too."""
    import shutil

    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "parameters", work / "parameters")
    shutil.copytree(ROOT / "examples", work / "examples")
    proc = runbook("run", "--params", "parameters/replay.yaml", "--phase", "1", "--out", "reports", "--no-progress",
                   cwd=work)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert (work / "reports" / "latest" / "results.json").exists()


def test_reports_are_self_contained_and_servable(replay_run):
    """No script or stylesheet from the network; files 0644 and folders 0755 (a web server can serve them)."""
    import re
    import stat

    proc, out = replay_run
    run_dir = Path(proc.stdout.splitlines()[0].removeprefix("Report: "))
    for page in run_dir.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?(https?:)?//""", text), page.name
        assert "@import" not in text
    for path in run_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path.relative_to(run_dir)}: {oct(mode)}"


def test_terminal_tells_the_story(replay_run):
    proc, out = replay_run
    assert "-> diagnose: UNHEALTHY, 10 critical" in proc.stderr and "root causes connector" in proc.stderr
    assert "-> remediate: DRY RUN" in proc.stderr
    tail = proc.stderr.strip().splitlines()[-2:]
    assert tail[0].startswith("Summary: ") and tail[0].endswith("summary.md")
    assert tail[1].startswith("Report page: ") and tail[1].endswith("03_validate_handback.html")
    assert "\r" not in proc.stderr                # no progress bar joined by carriage returns in logs
