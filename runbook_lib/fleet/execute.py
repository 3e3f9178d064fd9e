"""Run fleet targets: each one an ordinary ``runbook run`` in its own process, at most N at once.

A subprocess isolates a target completely: its own papermill kernels, its own sandbox (started
and stopped by that run), its own logging, and a crash or a kill that takes only that target
down. What a target leaves is an ordinary run folder plus a small marker,
``<fleet folder>/targets/<name>.json`` (exit code, run folder, where it ran), which is all the
roll-up needs to find the folder; the verdict itself is read from the folder's results.json.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from runbook_lib.errors import ParameterError
from runbook_lib.evidence import atomic_write_json
from runbook_lib.fleet.manifest import Fleet, LoadedTarget
from runbook_lib.util import clock

FLEET_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
DEFAULT_TARGET_TIMEOUT_S = 3600.0


@dataclass
class TargetRun:
    """What one target's process did (the marker). ``run_dir`` is relative to the fleet folder."""

    name: str
    index: int
    exit_code: int | None = None
    run_dir: str | None = None
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    wall_s: float = 0.0
    runner: dict = field(default_factory=dict)


def new_fleet_id() -> str:
    import secrets

    return f"{clock.stamp_now()}-{secrets.token_hex(3)}"


def fleet_dir(out: Path, fleet_id: str) -> Path:
    if not re.match(FLEET_ID, fleet_id):
        raise ParameterError("--fleet-id", fleet_id[:60], "expected letters, digits, . _ - (at most 100)")
    return out / f"fleet-{fleet_id}"


def marker_path(fdir: Path, name: str) -> Path:
    return fdir / "targets" / f"{name}.json"


def runner_info() -> dict:
    """Where this process runs, from the engine's own environment variables (the report says so)."""
    env = os.environ
    info = {"host": socket.gethostname()}
    if env.get("CLOUD_RUN_EXECUTION"):
        info.update(engine="cloud-run-job", job=env.get("CLOUD_RUN_JOB", ""), execution=env["CLOUD_RUN_EXECUTION"],
                    task_index=env.get("CLOUD_RUN_TASK_INDEX", ""), task_count=env.get("CLOUD_RUN_TASK_COUNT", ""))
    elif env.get("AIRFLOW_CTX_DAG_ID"):
        info.update(engine="airflow", dag=env["AIRFLOW_CTX_DAG_ID"], dag_run=env.get("AIRFLOW_CTX_DAG_RUN_ID", ""),
                    task=env.get("AIRFLOW_CTX_TASK_ID", ""))
    elif env.get("GITHUB_ACTIONS") == "true":
        info.update(engine="github-actions", run_id=env.get("GITHUB_RUN_ID", ""), job=env.get("GITHUB_JOB", ""))
    else:
        info.update(engine="local")
    # A deployment states its network position (e.g. the Cloud Run job: "inside the VPC through
    # connector staging-connector"); probes then ran from there, and the roll-up says so.
    if env.get("RUNBOOK_VANTAGE"):
        info["vantage"] = env["RUNBOOK_VANTAGE"]
    return info


def run_target(target: LoadedTarget, *, fdir: Path, out: Path, phase: str = "all",
               extra_overrides: Sequence[str] = (), timeout_s: float = DEFAULT_TARGET_TIMEOUT_S,
               live: set | None = None) -> TargetRun:
    """One ordinary ``runbook run`` for ``target`` into ``out``; never raises for the run's outcome."""
    argv = [sys.executable, "-m", "runbook_lib.cli", "run", "--params", str(target.params_file),
            "--out", str(out), "--phase", phase, "--no-progress"]
    for o in [*target.cli_overrides(), *extra_overrides]:
        argv += ["-p", o]
    log_path = fdir / "targets" / f"{target.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = TargetRun(name=target.name, index=target.index, started_at=clock.iso_now(), runner=runner_info())
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own group: a timeout stops its kernels too
        if live is not None:
            live.add(proc)
        try:
            result.exit_code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc)
            result.exit_code = 2
            result.error = f"did not finish within {timeout_s:g} s; stopped (see targets/{log_path.name})"
        except BaseException:
            _stop(proc)
            raise
        finally:
            if live is not None:
                live.discard(proc)
    result.wall_s = round(time.monotonic() - started, 2)
    result.finished_at = clock.iso_now()
    text = log_path.read_text(errors="replace")
    report = [ln.removeprefix("Report: ").strip() for ln in text.splitlines() if ln.startswith("Report: ")]
    if report:
        result.run_dir = os.path.relpath(report[-1], fdir)
    if result.exit_code not in (0, 1) and not result.error:
        last = [ln for ln in text.splitlines() if ln.startswith("runbook:")]
        result.error = (last[-1] if last else f"runbook run exited with {result.exit_code}")[:500]
    atomic_write_json(marker_path(fdir, target.name), asdict(result))
    return result


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def assigned(task_index: int, task_count: int, n_targets: int) -> list[int]:
    """Target indexes for task ``task_index`` of ``task_count`` (Cloud Run Jobs, CI matrices).

    Task k runs target k; with fewer tasks than targets, task k also runs k + count, k + 2 count...
    and a task past the last target runs nothing.
    """
    if task_count < 1 or not 0 <= task_index < task_count:
        raise ParameterError("task", f"{task_index}/{task_count}", "expected 0 <= index < count")
    return list(range(task_index, n_targets, task_count))


class Progress:
    """Line-based progress on stderr: targets done / running / failed (exit 2)."""

    def __init__(self, total: int, echo: Callable[[str], None]):
        self.total, self.echo = total, echo
        self.running: list[str] = []
        self.done: dict[str, int | None] = {}
        self._lock = threading.Lock()

    def start(self, name: str) -> None:
        with self._lock:
            self.running.append(name)
            self._line(f"started {name}")

    def finish(self, run: TargetRun) -> None:
        with self._lock:
            self.running.remove(run.name)
            self.done[run.name] = run.exit_code
            what = {0: "healthy", 1: "unhealthy"}.get(run.exit_code, "FAILED")
            self._line(f"finished {run.name}: {what} in {run.wall_s:.0f} s")

    def _line(self, event: str) -> None:
        failed = sum(1 for c in self.done.values() if c not in (0, 1))
        running = ", ".join(self.running) or "-"
        self.echo(f"fleet: {len(self.done)}/{self.total} done, {len(self.running)} running ({running}), "
                  f"{failed} failed | {event}")


def run_all(fleet: Fleet, targets: Sequence[LoadedTarget], *, fdir: Path, out: Path, parallel: int,
            phase: str = "all", extra_overrides: Sequence[str] = (), echo: Callable[[str], None] = print,
            timeout_s: float = DEFAULT_TARGET_TIMEOUT_S) -> list[TargetRun]:
    """Every target, at most ``parallel`` at once; one failing target never stops the others."""
    progress = Progress(len(targets), echo)
    live: set[subprocess.Popen] = set()   # the target processes running now (own sessions: Ctrl-C misses them)

    def one(t: LoadedTarget) -> TargetRun:
        progress.start(t.name)
        try:
            run = run_target(t, fdir=fdir, out=out, phase=phase, extra_overrides=extra_overrides, timeout_s=timeout_s,
                             live=live)
        except Exception as exc:  # could not even start the process: that target failed, the rest go on
            run = TargetRun(name=t.name, index=t.index, exit_code=2, error=f"could not start: {exc}"[:500],
                            started_at=clock.iso_now(), finished_at=clock.iso_now(), runner=runner_info())
            atomic_write_json(marker_path(fdir, t.name), asdict(run))
        progress.finish(run)
        return run

    pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="fleet")
    futures: list = []
    try:
        futures = [pool.submit(one, t) for t in targets]
        return [f.result() for f in futures]
    except BaseException:  # Ctrl-C / SIGTERM: start nothing more, stop what runs (its sandbox follows it)
        for f in futures:
            f.cancel()
        for proc in list(live):
            _stop(proc)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


