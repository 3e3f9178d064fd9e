"""Ctrl-C on `runbook fleet run` stops every running target, its kernels and its sandbox."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.sandbox, pytest.mark.timeout(600)]


def test_ctrl_c_leaves_nothing_running(tmp_path):
    manifest = tmp_path / "fleet.yaml"
    sandbox = ROOT / "parameters" / "sandbox.yaml"
    manifest.write_text(f"targets:\n  - {{name: a, params: {sandbox}}}\n  - {{name: b, params: {sandbox}}}\n"
                        f"  - {{name: c, params: {sandbox}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "runbook_lib.cli", "fleet", "run", "--manifest", str(manifest),
                             "--parallel", "2", "--out", str(tmp_path / "reports")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fleet = psutil.Process(proc.pid)
    seen: set[psutil.Process] = set()
    deadline = time.monotonic() + 300
    # Wait until both running targets have their sandboxes up (a `sandbox serve` under each run).
    while time.monotonic() < deadline:
        kids = fleet.children(recursive=True)
        seen.update(kids)
        serving = [k for k in kids if "serve" in " ".join(_cmdline(k))]
        if len(serving) >= 2:
            break
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.2)
    else:
        pytest.fail("the targets' sandboxes never came up")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    gone, alive = psutil.wait_procs(list(seen), timeout=60)
    assert not alive, [(p.pid, _cmdline(p)) for p in alive]
    assert "fleet: 0/3 done, 2 running" in err
    assert "started c" not in err                      # nothing new starts after Ctrl-C


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []
