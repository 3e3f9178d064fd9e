"""Interrupted runs: a run killed mid-phase (SIGKILL to the notebook kernel, or to the runner
itself) leaves a folder marked INCOMPLETE, an index that lists every run, and no half-written
JSON (every write is write-then-rename).

All runs are phase 1 on recorded evidence (parameters/replay.yaml), sharing one reports folder.
A kill is sent while papermill marks a notebook cell past the parameters as running, i.e. mid-phase.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.plugins.runs import REPLAY, ROOT, cli_argv, kernels_of, run_dirs, runbook, status_of, wait_gone

pytestmark = pytest.mark.e2e

PARAMETER_TAGS = {"parameters", "injected-parameters"}


@dataclass
class Killed:
    victim: str                      # "kernel" | "runner"
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path
    cell: str                        # source of the cell papermill was running when the kill went out
    index_after: str                 # reports/index.html right after the kill
    survivors: list = field(default_factory=list)   # kernel processes still alive afterwards


def _running_code_cell(notebook: Path) -> str | None:
    """Source of a code cell past the parameters that papermill marks as running (None if none)."""
    try:
        cells = json.loads(notebook.read_text())["cells"]
    except (OSError, ValueError, KeyError):  # not written yet, or caught mid-save by papermill
        return None
    for cell in cells:
        meta = cell.get("metadata", {})
        if (cell.get("cell_type") == "code" and meta.get("papermill", {}).get("status") == "running"
                and not PARAMETER_TAGS & set(meta.get("tags", []))):
            return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return None


def _kill_mid_phase(out: Path, victim: str) -> Killed | None:
    """Start ``runbook run --phase 1`` and SIGKILL the kernel or the runner while a cell runs.

    None when the phase finished before a kill could be aimed: the caller tries again.
    """
    before = set(run_dirs(out))
    proc = subprocess.Popen(cli_argv("run", "--params", str(REPLAY), "--phase", "1",
                                     "--out", str(out), "--no-progress"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cell, kernels = None, []
    try:
        give_up = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < give_up:
            kernels = kernels_of(proc.pid)
            fresh = [d for d in run_dirs(out) if d not in before]
            if kernels and fresh:
                cell = _running_code_cell(fresh[0] / "01_diagnose.ipynb")
                if cell is not None:
                    os.kill(kernels[0].pid if victim == "kernel" else proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.01)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:  # never leave our runner behind
            proc.kill()
            proc.wait(timeout=30)
    survivors = wait_gone(kernels, timeout=30)
    for p in survivors:  # reported by the test; still, nothing may keep running
        p.kill()
    if cell is None:
        return None
    (run_dir,) = [d for d in run_dirs(out) if d not in before]
    index = (out / "index.html").read_text()
    return Killed(victim, proc.returncode, stdout, stderr, run_dir, cell, index, survivors)


@dataclass
class Runs:
    out: Path
    kernel: Killed
    runner: Killed
    later: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    out = tmp_path_factory.mktemp("interrupted")
    killed = {}
    for victim in ("kernel", "runner"):
        for _ in range(3):
            killed[victim] = _kill_mid_phase(out, victim)
            if killed[victim] is not None:
                break
        assert killed[victim] is not None, f"could not catch phase 1 running to kill the {victim}"
    later = runbook("run", "--params", str(REPLAY), "--phase", "1", "--out", str(out), "--no-progress")
    return Runs(out, killed["kernel"], killed["runner"], later)


def test_a_killed_kernel_fails_the_run_with_exit_2_naming_the_phase(runs):
    k = runs.kernel
    assert k.returncode == 2, k.stderr[-3000:]
    assert "Traceback" not in k.stderr
    assert k.stdout.splitlines()[0] == f"Report: {k.run_dir}"
    failure = [line for line in k.stderr.splitlines() if line.startswith("runbook: INCOMPLETE:")]
    assert len(failure) == 1 and "phase diagnose" in failure[0] and "kernel died" in failure[0], k.stderr[-2000:]
    status = status_of(k.run_dir)
    assert status["state"] == "INCOMPLETE" and status["phases_done"] == []
    assert "phase diagnose" in status["reason"] and "kernel died" in status["reason"]
    assert (k.run_dir / "01_diagnose.ipynb").exists() and (k.run_dir / "01_diagnose.html").exists()
    assert "kernel died" in (k.run_dir / "run.log").read_text()


def killed_cells(run_dir: Path) -> list[str]:
    """Sources of the cells that carry an error output in the executed notebook."""
    cells = json.loads((run_dir / "01_diagnose.ipynb").read_text())["cells"]
    failed = [c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in failed]


def test_a_killed_kernel_shows_in_the_executed_notebook(runs):
    k = runs.kernel
    assert killed_cells(k.run_dir), "the executed notebook does not show that the kernel died"
    assert "died" in (k.run_dir / "01_diagnose.html").read_text()


def test_the_error_is_on_the_cell_the_kernel_died_in(runs):
    assert killed_cells(runs.kernel.run_dir) == [runs.kernel.cell]


def test_a_killed_runner_leaves_an_incomplete_folder_and_no_kernel(runs):
    r = runs.runner
    assert r.returncode == -signal.SIGKILL
    status = status_of(r.run_dir)
    assert status["state"] == "INCOMPLETE" and status["reason"] == "running phase diagnose"
    assert not r.survivors, f"kernel processes outlived their runner: {[p.pid for p in r.survivors]}"


def test_the_index_lists_every_run_even_right_after_a_kill(runs):
    for killed in (runs.kernel, runs.runner):
        assert killed.run_dir.name in killed.index_after
    assert runs.later.returncode == 1, runs.later.stderr[-3000:]     # the recorded incident: unhealthy
    dirs = run_dirs(runs.out)
    assert len(dirs) >= 3
    index = (runs.out / "index.html").read_text()
    for d in dirs:
        assert d.name in index
    assert index.count(">INCOMPLETE<") >= 2
    assert runs.later.stdout.strip().splitlines()[-1] in index      # the later run's verdict line


def test_no_half_written_json_in_any_folder(runs):
    for run_dir in run_dirs(runs.out):
        for path in run_dir.rglob("*.json"):
            json.loads(path.read_text())                     # raises on half a file
    assert json.loads((runs.kernel.run_dir / "results.json").read_text())["verdict"] is None
    later = Path(runs.later.stdout.splitlines()[0].removeprefix("Report: "))
    assert status_of(later)["state"] == "COMPLETE"


WRITER = """
import sys
from pathlib import Path
from runbook_lib.evidence import atomic_write_json
path, i = Path(sys.argv[1]), 0
doc = {"rows": [{"id": n, "text": "x" * 40} for n in range(20000)]}
while True:
    i += 1
    doc["generation"] = i
    atomic_write_json(path, doc)
"""


def test_readers_and_sigkill_never_see_half_a_file(tmp_path):
    """A reader racing a writer, then SIGKILL mid-write: the file is always whole, valid JSON."""
    target = tmp_path / "results.json"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT)
    try:
        give_up = time.monotonic() + 60
        while not target.exists() and time.monotonic() < give_up:
            time.sleep(0.01)
        generations = set()
        stop = time.monotonic() + 2.0
        give_up = time.monotonic() + 60   # a slow (loaded) writer: keep reading until it rewrote twice
        while time.monotonic() < stop or (len(generations) < 3 and time.monotonic() < give_up):
            generations.add(json.loads(target.read_text())["generation"])   # raises on half a file
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=30)
    assert len(generations) > 1, "the writer did not rewrite the file while we read"
    json.loads(target.read_text())
