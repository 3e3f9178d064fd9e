"""Start, inspect and stop a sandbox process (``runbook sandbox up|status|down``, ``runbook run``).

``up`` spawns ``python -m runbook_lib.sandbox serve`` detached in its own session (so it outlives
the command and can be stopped as one process group), waits for its ``state.json``, and writes
``<workdir>/params.yaml``: the parameters file with the sandbox's runtime overrides applied, the
file every later command uses. ``down`` sends SIGTERM to the group, waits, SIGKILLs what is left
and returns only when every process of the group has exited.

One sandbox per workdir: ``up`` holds ``up.lock`` while it starts one (a second ``up`` is refused
at once) and the serve process holds ``sandbox.lock`` (``filelock``) for its whole life, so a
workdir whose lock is held has a sandbox, whatever the pid file says. The pid file records the
process's start time too (``psutil``), so a stale pid reused by another process is never signalled.

    with running("parameters/sandbox.yaml", "issue-1278") as sb:
        sb.params            # effective Params, pointing at the sandbox
        sb.info["ports"]     # what state.json says
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import filelock
import httpx
import psutil

from runbook_lib.errors import EnvironmentError_
from runbook_lib.params import Params, dump_params, load_params
from runbook_lib.sandbox.scenario import load_scenario
from runbook_lib.sandbox.server import STATE_FILE, write_private
from runbook_lib.util.childenv import minimal_env, names_from_params

PID_FILE = "serve.pid"
LOG_FILE = "sandbox.log"
PARAMS_FILE = "params.yaml"
LOCK_FILE = "sandbox.lock"      # held by the serve process for its whole life
UP_LOCK_FILE = "up.lock"        # held by `up` while it starts one


@dataclass
class RunningSandbox:
    """What ``running`` yields: ``state.json`` contents, the effective parameters, the folder."""

    info: dict[str, Any]
    params: Params
    workdir: Path

    @property
    def params_file(self) -> Path:
        return self.workdir / PARAMS_FILE

    @property
    def endpoints(self) -> dict[str, str]:
        return dict(self.info["endpoints"])

    def control_url(self, api: str = "compute") -> str:
        """Base URL for the emulator's test hooks (``/_sandbox/state`` and friends)."""
        return self.info["endpoints"][api]


def up(params_file: str | Path, scenario: str | None = None, workdir: str | Path = ".sandbox", *,
       time_scale: float | None = None, timeout_s: float = 90.0, tied_to_me: bool = False) -> dict[str, Any]:
    """Start a sandbox; return ``state.json`` plus ``params_file`` (the effective parameters)."""
    params_file = Path(params_file).resolve()
    base = load_params(params_file)  # fail on bad parameters before spawning anything
    scenario = scenario or base.target.scenario
    if not scenario:
        raise EnvironmentError_(f"{params_file}: target.scenario: no scenario given; pass one (e.g. issue-1278)")
    load_scenario(scenario)  # a bad scenario is one line here, not a dead child process
    if "/" in scenario or scenario.endswith((".yaml", ".yml")):
        scenario = str(Path(scenario).resolve())  # the serve process runs in the workdir
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    starting = filelock.FileLock(str(workdir / UP_LOCK_FILE), timeout=0)
    try:
        starting.acquire()
    except filelock.Timeout:
        raise EnvironmentError_(f"another `runbook sandbox up` is starting a sandbox in {workdir}; "
                                "wait for it, then `runbook sandbox status`") from None
    try:
        return _up_locked(params_file, scenario, workdir, time_scale=time_scale, timeout_s=timeout_s,
                          tied_to_me=tied_to_me)
    finally:
        starting.release()


def _up_locked(params_file: Path, scenario: str, workdir: Path, *, time_scale: float | None,
               timeout_s: float, tied_to_me: bool) -> dict[str, Any]:
    base = load_params(params_file)
    current = status(workdir)
    if current["running"] or current.get("starting") or serve_lock_held(workdir):
        raise EnvironmentError_(f"a sandbox is already running in {workdir} (pid {current['pid']}); "
                                "stop it first with `runbook sandbox down`")
    for name in (STATE_FILE, PID_FILE, PARAMS_FILE):
        (workdir / name).unlink(missing_ok=True)

    argv = [sys.executable, "-m", "runbook_lib.sandbox", "serve", "--params", str(params_file),
            "--scenario", scenario, "--workdir", str(workdir)]
    if time_scale is not None:
        argv += ["--time-scale", str(time_scale)]
    if tied_to_me:
        argv += ["--watch-parent", str(os.getpid())]
    package_root = str(Path(__file__).resolve().parents[2])
    env = minimal_env(names_from_params(base))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    with open(workdir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=str(workdir))
    write_private(workdir / PID_FILE, f"{proc.pid} {_start_time(proc.pid) or 0:.3f}\n")

    deadline = time.monotonic() + timeout_s
    state_path = workdir / STATE_FILE
    while not state_path.exists():
        if proc.poll() is not None:
            raise EnvironmentError_(f"the sandbox exited during startup (exit {proc.returncode}):\n"
                                    f"{_tail(workdir / LOG_FILE)}")
        if time.monotonic() > deadline:
            _stop_group(proc.pid, _start_time(proc.pid), grace_s=5)
            proc.wait(timeout=5)
            raise EnvironmentError_(f"the sandbox was not ready within {timeout_s:g} s:\n{_tail(workdir / LOG_FILE)}")
        time.sleep(0.05)
    info = json.loads(state_path.read_text())
    effective = load_params(params_file, info["overrides"])
    write_private(workdir / PARAMS_FILE, dump_params(effective))
    return {**info, "params_file": str(workdir / PARAMS_FILE)}


def status(workdir: str | Path = ".sandbox") -> dict[str, Any]:
    """``running`` plus what ``state.json`` says and, when reachable, what the data plane is told."""
    workdir = Path(workdir).resolve()
    pid, started = _read_pid(workdir)
    info = _read_state(workdir)
    alive = pid is not None and _alive(pid) and _is_sandbox(pid, started)
    out: dict[str, Any] = {"workdir": str(workdir), "running": alive and bool(info), "pid": pid, **info}
    if alive and not info:
        out["starting"] = True
    if out["running"]:
        try:
            live = httpx.get(f"{info['endpoints']['compute']}/_sandbox/state", timeout=3.0).json()
            out["dataplane"] = live.get("dataplane", {})
        except (httpx.HTTPError, ValueError) as exc:
            out["dataplane_error"] = f"the emulator did not answer: {type(exc).__name__}"
    return out


def down(workdir: str | Path = ".sandbox", *, grace_s: float = 15.0) -> None:
    """Stop the sandbox process group: SIGTERM, wait, SIGKILL; return when every process of it has
    exited and the workdir lock is free; raise if anything survives."""
    workdir = Path(workdir).resolve()
    pid, started = _read_pid(workdir)
    if pid is not None:
        _stop_group(pid, started, grace_s=grace_s)
    if serve_lock_held(workdir):
        # The lock's holder is a sandbox we could not identify (no or foreign pid file): name it.
        raise EnvironmentError_(f"{workdir / LOCK_FILE} is still held by a process that the pid file does "
                                "not name; find it with `fuser -v` and stop it")
    for name in (PID_FILE, STATE_FILE):
        (workdir / name).unlink(missing_ok=True)


def serve_lock_held(workdir: Path) -> bool:
    """True while a serve process (ours or not) holds the workdir lock."""
    if not (workdir / LOCK_FILE).exists():
        return False
    probe = filelock.FileLock(str(workdir / LOCK_FILE), timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return True
    probe.release()
    return False


def hold_serve_lock(workdir: Path) -> filelock.BaseFileLock:
    """The serve process's lock on its workdir (refused with one line when another one holds it)."""
    lock = filelock.FileLock(str(Path(workdir) / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise EnvironmentError_(f"a sandbox already runs in {workdir} (it holds {LOCK_FILE})") from None
    return lock


@contextlib.contextmanager
def running(params: Params | str | Path, scenario: str | None = None, workdir: str | Path | None = None,
            *, overrides: Sequence[str] | Mapping[str, Any] = (), time_scale: float | None = None,
            ) -> Iterator[RunningSandbox]:
    """A sandbox for the duration of the block (``runbook run`` and the ``sandbox`` test fixture).

    ``params`` is a parameters file or a ``Params``; ``overrides`` (``-p`` style) are applied to
    it first, so the sandbox and the effective parameters both see them.
    """
    own_dir = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="runbook-sandbox-")) if own_dir else Path(workdir)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(params, Params) or overrides:
        loaded = params if isinstance(params, Params) else load_params(params, overrides)
        if isinstance(params, Params) and overrides:
            loaded = load_params(write_private(folder / "params.source.yaml", dump_params(params)), overrides)
        source = write_private(folder / "params.source.yaml", dump_params(loaded))
        scenario = scenario or loaded.target.scenario
    else:
        source = Path(params)
    try:
        try:
            info = up(source, scenario, folder, time_scale=time_scale, tied_to_me=True)
        except BaseException:  # interrupted (SIGTERM, Ctrl-C) while starting: stop what was spawned
            with contextlib.suppress(Exception):
                down(folder)
            raise
        try:
            yield RunningSandbox(info, load_params(info["params_file"]), folder)
        finally:
            down(folder)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)


# --- processes -----------------------------------------------------------------------------------

def _read_pid(workdir: Path) -> tuple[int | None, float | None]:
    """The pid and start time (s since the epoch) that ``up`` recorded, or ``(None, None)``."""
    try:
        fields = (workdir / PID_FILE).read_text().split()
        return int(fields[0]), (float(fields[1]) if len(fields) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None, None


def _read_state(workdir: Path) -> dict[str, Any]:
    try:
        info = json.loads((workdir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie child of ours is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left (waiting for a parent to reap them) count as gone.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _is_sandbox(pid: int, started: float | None) -> bool:
    """Guard against a stale pid file naming a process that is not ours any more: the process must
    have started when the pid file says (a reused pid has a later start time) and lead its group."""
    if started is None:
        return False  # an old-style or hand-written pid file proves nothing
    try:
        proc = psutil.Process(pid)
        same_start = abs(proc.create_time() - started) < 0.01
        return same_start and os.getpgid(pid) == pid
    except (psutil.Error, OSError):
        return False


def _stop_group(pid: int, started: float | None, *, grace_s: float) -> None:
    """The serve process leads its own session, so its pid is the group id of everything it runs."""
    pgid = pid
    ours = _is_sandbox(pid, started)
    orphans = not ours and not _alive(pid) and _group_alive(pgid) and _group_started_by(pgid, started)
    if not (ours or orphans):
        return  # the pid is gone or was reused by something else: never signal a stranger
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (_alive(pid) or _group_alive(pgid)):
        time.sleep(0.05)
    if _alive(pid) or _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (_alive(pid) or _group_alive(pgid)):
            time.sleep(0.05)
    if _alive(pid) or _group_alive(pgid):
        raise EnvironmentError_(f"sandbox process group {pgid} survived SIGKILL; check `ps -g {pgid}`")


def _group_started_by(pgid: int, started: float | None) -> bool:
    """The leader is gone but its group lives on (a child orphaned mid-shutdown): every member must
    have started after the leader did, else the group id belongs to someone else now."""
    if started is None:
        return False
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.create_time() < started - 0.01:
                return False
        except (psutil.Error, OSError):
            continue
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
