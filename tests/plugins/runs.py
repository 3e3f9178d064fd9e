"""The runbook CLI as a subprocess, report folders, the kernel processes of a run; and the
expensive runs that several test modules assert on, made once per session:

- ``demo_runs``: what ``make demo`` does after a first dry run, against the sandbox (issue-1278):
  ``runbook run`` (dry run), ``runbook plan --id-only``, ``runbook run`` applying exactly that plan,
  all into one reports folder (tests/history/test_two_sandbox_runs.py, tests/e2e/test_remediation_flow.py);
- ``replay_pair``: two ``runbook run`` on the recorded evidence started at once into one reports
  folder (tests/test_run_replay.py, tests/hardening/test_concurrent_runs.py).

A test that adds runs to a shared reports folder says so and counts relative to what was there.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "parameters" / "replay.yaml"


# --- the CLI ---------------------------------------------------------------------------------------

def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "runbook_lib.cli", *args]


def runbook(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``runbook ARGS`` from the repository root (or ``cwd``), output captured (text)."""
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_dirs(out: Path) -> list[Path]:
    """The report folders under ``out`` (not the ``latest`` link)."""
    if not out.exists():
        return []
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink() and (p / "status.json").exists())


def status_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "status.json").read_text())


def report_dir(proc: subprocess.CompletedProcess) -> Path:
    """The folder a run printed first (``Report: <dir>``)."""
    return Path(re.search(r"^Report: (.+)$", proc.stdout, re.M)[1])


# --- processes -----------------------------------------------------------------------------------

def kernels_of(pid: int) -> list[psutil.Process]:
    """The ipykernel processes started (directly or not) by process ``pid``."""
    found = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    for child in children:
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue  # exited between listing and reading
    return found


def wait_gone(procs: Iterable[psutil.Process], timeout: float = 30) -> list[psutil.Process]:
    """Wait for processes to exit; return those still alive (zombies count as gone)."""
    alive = []
    for proc in procs:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            try:
                if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        else:
            alive.append(proc)
    return alive


# --- runs shared by several test modules -----------------------------------------------------------

@dataclass(frozen=True)
class DemoRuns:
    out: Path
    dry: subprocess.CompletedProcess        # `runbook run`: issue-1278, plan not applied
    plan: subprocess.CompletedProcess       # `runbook plan --id-only` just after
    applied: subprocess.CompletedProcess    # `runbook run -p remediation.apply=true -p remediation.confirm=<id>`

    @property
    def plan_id(self) -> str:
        return self.plan.stdout.strip()


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    """Three sandbox runs in a row (each starts and stops its own sandbox); tests assert on them."""
    out = tmp_path_factory.mktemp("demo-reports")
    dry = runbook("run", "--out", str(out), "--no-progress", timeout=900)
    plan = runbook("plan", "--id-only", timeout=300)
    assert plan.returncode == 0, plan.stderr[-2000:]
    applied = runbook("run", "-p", "remediation.apply=true", "-p", f"remediation.confirm={plan.stdout.strip()}",
                      "--out", str(out), "--no-progress", timeout=900)
    return DemoRuns(out, dry, plan, applied)


@dataclass(frozen=True)
class ReplayPair:
    out: Path
    procs: tuple[subprocess.Popen, ...]
    outputs: tuple[tuple[str, str], ...]    # (stdout, stderr) of each run, in start order
    dirs: tuple[Path, ...]                  # the run folders right after both ended (later tests add more)
    index: str                              # index.html then


@pytest.fixture(scope="session")
def replay_pair(tmp_path_factory: pytest.TempPathFactory) -> ReplayPair:
    """Two full runs (all phases) on parameters/replay.yaml, started at once into one folder."""
    out = tmp_path_factory.mktemp("replay-reports")
    argv = cli_argv("run", "--params", str(REPLAY), "--out", str(out), "--no-progress")
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    index = out / "index.html"
    return ReplayPair(out, tuple(procs), tuple(outputs), tuple(run_dirs(out)),
                      index.read_text() if index.exists() else "")
