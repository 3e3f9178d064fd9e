"""Sandbox lifecycle (issue 11, item 4): one sandbox per workdir, a stale pid file never gets a
stranger killed, SIGTERM removes temporary folders, and ``down`` returns only when every process
of the sandbox has exited.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from runbook_lib.sandbox import manager
from tests.plugins.runs import ROOT, cli_argv, runbook

pytestmark = pytest.mark.sandbox
SANDBOX_PARAMS = ROOT / "parameters" / "sandbox.yaml"


def _group(pgid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def test_up_twice_is_refused_and_down_leaves_nothing(tmp_path):
    workdir = tmp_path / "sb"
    first = runbook("sandbox", "up", "--scenario", "healthy", "--params", str(SANDBOX_PARAMS),
                    "--workdir", str(workdir), timeout=180)
    assert first.returncode == 0, first.stderr[-2000:]
    try:
        pid = int((workdir / manager.PID_FILE).read_text().split()[0])
        assert _group(pid), "the sandbox is not running"
        second = runbook("sandbox", "up", "--scenario", "healthy", "--params", str(SANDBOX_PARAMS),
                         "--workdir", str(workdir), timeout=180)
        lines = [line for line in second.stderr.splitlines() if line.startswith("runbook:")]
        assert second.returncode == 2 and len(lines) == 1 and "already running" in lines[0], second.stderr[-2000:]
        assert manager.serve_lock_held(workdir.resolve())
    finally:
        down = runbook("sandbox", "down", "--workdir", str(workdir), timeout=180)
    assert down.returncode == 0, down.stderr[-2000:]
    assert _group(pid) == [], "a process of the sandbox outlived `down`"   # down returned after every child exited
    assert not manager.serve_lock_held(workdir.resolve())


def test_the_serve_process_refuses_a_workdir_whose_lock_is_held(tmp_path):
    lock = manager.hold_serve_lock(tmp_path)
    try:
        proc = subprocess.run([sys.executable, "-m", "runbook_lib.sandbox", "serve", "--params", str(SANDBOX_PARAMS),
                               "--scenario", "healthy", "--workdir", str(tmp_path)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
    finally:
        lock.release()
    assert proc.returncode == 2 and "already runs" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("pid_file", ["bare pid", "wrong start time"])
def test_a_stale_pid_file_never_kills_a_stranger(tmp_path, pid_file):
    # a process whose command line contains the sandbox's module name, in its own group
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "runbook_lib.sandbox", "serve"],
                                start_new_session=True)
    try:
        started = psutil.Process(stranger.pid).create_time()
        text = f"{stranger.pid}\n" if pid_file == "bare pid" else f"{stranger.pid} {started - 3600:.3f}\n"
        (tmp_path / manager.PID_FILE).write_text(text)
        assert manager.status(tmp_path)["running"] is False
        manager.down(tmp_path, grace_s=1)
        time.sleep(0.5)
        assert stranger.poll() is None, "down killed a process that was not the sandbox"
        assert not (tmp_path / manager.PID_FILE).exists()
    finally:
        stranger.kill()
        stranger.wait(timeout=10)


def test_sigterm_removes_the_runs_temporary_sandbox_folder(tmp_path):
    """``runbook check`` on a sandbox target starts its own sandbox in a temporary folder."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(cli_argv("check", "--params", str(SANDBOX_PARAMS), "-p", "target.scenario=healthy"),
                            cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up and not list(tmp.glob("runbook-sandbox-*/state.json")):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.05)
        folders = list(tmp.glob("runbook-sandbox-*"))
        assert folders, "the sandbox did not come up"
        serve_pid = int((folders[0] / manager.PID_FILE).read_text().split()[0])
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 143 and "terminated" in stderr and "Traceback" not in stderr, stderr[-2000:]
    assert not list(tmp.glob("runbook-sandbox-*")), "the temporary sandbox folder survived SIGTERM"
    assert _group(serve_pid) == []
