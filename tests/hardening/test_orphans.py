"""A run that starts its own sandbox never leaves it behind, even when the run is SIGKILLed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]


def sandbox_children(proc: psutil.Process) -> list[psutil.Process]:
    return [p for p in proc.children(recursive=True) if "runbook_lib.sandbox" in " ".join(p.cmdline())]


def test_sigkilled_runner_takes_its_sandbox_and_database_with_it(tmp_path):
    runner = subprocess.Popen([sys.executable, "-m", "runbook_lib.cli", "check"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    me = psutil.Process(runner.pid)
    give_up = time.monotonic() + 60
    serve: list[psutil.Process] = []
    while not serve and time.monotonic() < give_up and runner.poll() is None:
        serve = sandbox_children(me)
        time.sleep(0.1)
    assert serve, "the run never started a sandbox"
    # the sandbox lives in its own session: killing the runner's group does not reach it
    watched = serve + [c for s in serve for c in s.children(recursive=True)]
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    gone, alive = psutil.wait_procs(watched, timeout=20)
    assert not alive, f"left running after the runner died: {[p.cmdline()[:3] for p in alive]}"
