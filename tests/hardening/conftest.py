"""Helpers for the hardening tests (issue 6): the CLI as a subprocess, report folders, the kernel
processes of a run, and the sandbox emulator's fault and request-log hooks.

Sandboxes come from ``tests/e2e/conftest.py`` (imported, not copied); each test module shares one
sandbox or one set of runs through module-scoped fixtures, to stay fast on a 2-core machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import httpx
import psutil

from runbook_lib.sandbox.manager import RunningSandbox

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "parameters" / "replay.yaml"


# --- the CLI ---------------------------------------------------------------------------------------

def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "runbook_lib.cli", *args]


def runbook(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``runbook ARGS`` from the repository root, output captured (text)."""
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_dirs(out: Path) -> list[Path]:
    """The report folders under ``out`` (not the ``latest`` link)."""
    if not out.exists():
        return []
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink() and (p / "status.json").exists())


def status_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "status.json").read_text())


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


# --- the sandbox emulator's test hooks -----------------------------------------------------------

def inject_fault(sb: RunningSandbox, path_prefix: str, kind: str, count: int = 1, **extra: Any) -> None:
    """The next ``count`` requests whose path starts with ``path_prefix`` misbehave as ``kind``.

    The emulator keeps one fault list and one request log for all five APIs (on any port).
    """
    r = httpx.post(sb.control_url() + "/_sandbox/faults", timeout=5,
                   json={"path_prefix": path_prefix, "kind": kind, "count": count, **extra})
    r.raise_for_status()


def clear_faults(sb: RunningSandbox) -> None:
    httpx.delete(sb.control_url() + "/_sandbox/faults", timeout=5).raise_for_status()


def requests_seen(sb: RunningSandbox) -> list[dict[str, Any]]:
    """The emulator's request log, every API (api, method, path, status, fault; never a body)."""
    return httpx.get(sb.control_url() + "/_sandbox/requests", timeout=5).json()["requests"]


def mutating(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] not in ("GET", "HEAD") and not r["path"].endswith("/getHealth")]


def clear_requests(sb: RunningSandbox) -> None:
    httpx.delete(sb.control_url() + "/_sandbox/requests", timeout=5).raise_for_status()
