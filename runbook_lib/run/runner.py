"""``runbook run``: validate, start the target, execute the phase notebooks, archive the report.

The top-level function reads as the list of steps. Parameters are validated before any kernel
starts. A phase that fails stops the run but the folder stays readable: the executed notebook
with papermill's error cell, its HTML, the results so far, and ``status.json`` saying INCOMPLETE.

A run is COMPLETE only when every phase ran, every executed notebook has its HTML, and the scan
of every file in the folder finds no credential (``redact.scan_text``); anything else leaves it
INCOMPLETE with the reason, exit 2. Every file is written atomically and redacted, papermill's
executed notebooks included (``_AtomicNotebookIO``); the kernels get a minimal environment.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from runbook_lib import redact
from runbook_lib.errors import RunbookError, RunError
from runbook_lib.evidence import atomic_write_json, atomic_write_text
from runbook_lib.gather.environment import target_running
from runbook_lib.params import Params, dump_params, load_params
from runbook_lib.run import report
from runbook_lib.util import clock
from runbook_lib.util.childenv import minimal_env, names_from_params

MIN_FREE_BYTES = 64 * 1024 * 1024   # a report is a few MiB; less free space than this fails up front
SCAN_LIMIT = 256 * 1024 * 1024      # files larger than this are not scanned but named as a failure

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"  # <checkout>/notebooks (this is runbook_lib/run/)
log = logging.getLogger("runbook.run")


@dataclass
class RunOutcome:
    run_dir: Path
    state: str                       # COMPLETE | FAILED
    verdict_line: str = ""
    healthy: bool | None = None
    phases_done: list[str] = field(default_factory=list)
    error: str = ""
    since_last_run: str = ""         # "Since the last run (...): 2 newly failing, 5 fixed" and the lists

    @property
    def exit_code(self) -> int:
        if self.state != "COMPLETE" or self.healthy is None:
            return 2
        return 0 if self.healthy else 1


def run(
    params_file: str | Path,
    *,
    phases: Sequence[str] = report.PHASES,
    overrides: Sequence[str] = (),
    out: str | Path = "reports",
    progress: bool = True,
    echo=print,
) -> RunOutcome:
    params = load_params(params_file, overrides)            # 1. validate: exit 2 before any kernel
    from runbook_lib.run.preflight import check_run

    check_run(params, phases)                               #    and refuse what the run cannot honour
    root = Path(out).resolve()  # the kernels run in notebooks/, so every path we hand them is absolute
    check_out(root, label=str(out))                          #    and --out: a writable folder with room
    run_dir = report.new_run_dir(root, params.target.name)  # 2. a fresh folder, INCOMPLETE until the end
    _update_index(root, run_dir)
    outcome = RunOutcome(run_dir=run_dir, state="FAILED")
    with _run_log(run_dir / "run.log"):
        log.info("run %s: target %s (%s), phases %s", run_dir.name, params.target.name, params.target.mode, ",".join(phases))
        try:
            with target_running(params, Path(params_file), overrides) as effective:   # 3. sandbox up
                _register_known_secrets(effective)
                effective_file = run_dir / "parameters.yaml"
                atomic_write_text(effective_file, dump_params(effective))
                kernel_env = minimal_env(names_from_params(effective))
                for i, phase in enumerate(phases, 1):                                # 4. notebooks
                    echo(f"Phase {i} of {len(phases)}: {phase} ({report.NOTEBOOKS[phase]}.ipynb)")
                    report.write_status(run_dir, "INCOMPLETE", reason=f"running phase {phase}",
                                        phases_done=outcome.phases_done)
                    if phase == "remediate":
                        from runbook_lib.run.preflight import check_plan

                        check_plan(run_dir, effective)                               # confirmed id?
                    _execute(phase, run_dir, effective_file, progress=progress, env=kernel_env)
                    outcome.phases_done.append(phase)
                    from runbook_lib.render.terminal import phase_line

                    echo(phase_line(phase, report.read_phase(run_dir, phase), report.NOTEBOOKS[phase]))  # what it found
            outcome.state = "COMPLETE"
        except RunbookError as exc:
            outcome.error = redact.text(str(exc))
            log.error("run failed: %s", outcome.error)
        except Exception as exc:  # a bug of ours: exit 2 with one line, the traceback in run.log
            outcome.error = redact.text(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} (see run.log)")
            log.exception("run failed: %s", outcome.error)
        except KeyboardInterrupt:
            outcome.error = "interrupted"
            log.error("run interrupted")
            raise
        finally:
            _finish(run_dir, root, params, outcome)                                  # 5. archive
    return outcome


def check_out(root: Path, *, label: str) -> None:
    """``--out`` must be a folder we can write a report into, checked before anything starts."""
    where = f"--out {label}"
    if root.exists() and not root.is_dir():
        raise RunError(f"{where}: expected a folder for the reports, it is a file")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"{where}: cannot create the reports folder ({exc.strerror})") from None
    try:
        free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    except OSError:
        free = MIN_FREE_BYTES
    if free < MIN_FREE_BYTES:
        raise RunError(f"{where}: only {free // 1024} KiB free, a run needs about {MIN_FREE_BYTES // 2**20} MiB; "
                       "free some space or choose another folder")
    try:  # read-only mounts, permissions, quotas: find out by writing, then clean up
        with tempfile.NamedTemporaryFile(dir=root, prefix=".runbook-write-test-") as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
        raise RunError(f"{where}: cannot write reports there ({why})") from None


def _register_known_secrets(params: Params) -> None:
    """The values the parameters point at (passwords, secret values) are masked in what *this*
    process writes too (executed notebooks, logs), not only in what the kernels write."""
    from runbook_lib.secret_input import read_env_file, read_value

    sources = [(params.cloudsql.password_env, params.cloudsql.password_file),
               (params.golden_path.password_env, params.golden_path.password_file),
               *[(env, None) for env in params.remediation.secret_values.env.values()]]
    for env, file in sources:
        with contextlib.suppress(RunbookError, OSError, ValueError):
            if env and env not in os.environ and not file:
                continue
            read_value(env=env, file=file, what="masking")
    if params.remediation.secret_values.file:
        with contextlib.suppress(RunbookError, OSError, ValueError):
            read_env_file(params.remediation.secret_values.file)


class _AtomicNotebookIO:
    """papermill's local file handler, but every save is redacted and write-then-rename: a full
    disk or a kill mid-save leaves the previous version whole, never a notebook cut short."""

    def __init__(self, base):
        self._base = base

    def __getattr__(self, name):
        return getattr(self._base, name)

    def write(self, buf, path):
        target = Path(path)
        if not target.parent.is_dir():
            raise FileNotFoundError(f"output folder {target.parent} doesn't exist.")
        atomic_write_text(target, buf)


@contextlib.contextmanager
def _atomic_notebook_writes() -> Iterator[None]:
    from papermill.iorw import papermill_io

    # papermill keeps (scheme, handler) pairs and uses the last "local" one: swap it in place
    handlers = papermill_io._handlers
    slots = [i for i, (scheme, h) in enumerate(handlers) if scheme == "local" and not isinstance(h, _AtomicNotebookIO)]
    saved = {i: handlers[i] for i in slots}
    for i in slots:
        handlers[i] = ("local", _AtomicNotebookIO(handlers[i][1]))
    try:
        yield
    finally:
        for i, pair in saved.items():
            handlers[i] = pair


@contextlib.contextmanager
def _environment(env: dict[str, str] | None) -> Iterator[None]:
    """The kernel inherits ``os.environ`` when it starts: give it only ``env`` (no GITHUB_TOKEN)."""
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _execute(phase: str, run_dir: Path, params_file: Path, *, progress: bool,
             env: dict[str, str] | None = None) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    name = report.NOTEBOOKS[phase]
    output = run_dir / f"{name}.ipynb"
    started = time.perf_counter()
    try:
        with _atomic_notebook_writes(), _environment(env):
            pm.execute_notebook(
                str(NOTEBOOK_DIR / f"{name}.ipynb"),
                str(output),
                parameters={"params_file": str(params_file), "overrides": {}, "report_dir": str(run_dir)},
                kernel_name="python3",
                cwd=str(NOTEBOOK_DIR),
                progress_bar=progress,
                log_output=True,
                request_save_on_cell_execute=True,
                execution_timeout=900,
                # the kernel talks to us over loopback only; its "TCP without encryption" notice is noise
                # here, and so is "KeyboardInterrupt caught in kernel": jupyter_client interrupts the kernel
                # as the first step of every shutdown. Cell errors and dead kernels are reported by papermill.
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
    except PapermillExecutionError as exc:
        raise RunError(
            f"phase {phase} failed in cell {exc.exec_count}: {exc.ename}: {redact.text(str(exc.evalue))[:300]} "
            f"(see {output.name})"
        ) from None
    except RuntimeError as exc:  # dead kernel, kernel that never started
        why = f"the notebook kernel died or did not start ({redact.text(str(exc))[:200]})"
        _mark_dead_kernel(output, why)
        raise RunError(f"phase {phase}: {why}") from None
    except OSError as exc:  # the report folder became unwritable or full mid-phase
        raise RunError(f"phase {phase}: could not save {output.name} ({exc.strerror or exc})") from None
    finally:
        log.info("phase %s took %.1f s", phase, time.perf_counter() - started)
        if output.exists():
            try:
                from runbook_lib.render.html import notebook_to_html

                notebook_to_html(output)
            except Exception as exc:  # a rendering problem must not hide the run's outcome
                log.error("could not render %s: %s", output.name, exc)
    if not output.with_suffix(".html").exists():  # reached only when the phase itself succeeded
        raise RunError(f"phase {phase}: {output.with_suffix('.html').name} could not be rendered (see run.log)")


def _mark_dead_kernel(notebook: Path, why: str) -> None:
    """papermill records nothing when the kernel dies; say so where a reader will look.

    The cell that was running gets an error output, and a banner goes on top, as papermill does
    for an exception in a cell.
    """
    import nbformat

    if not notebook.exists():
        return
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # papermill marks every cell "completed" at the end; only cells that really ran have a start_time
    started = [c for c in code if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    victim = started[-1] if started else (code[0] if code else None)
    if victim is not None:
        victim.outputs.append(nbformat.v4.new_output(
            "error", ename="DeadKernelError", evalue=f"the kernel died while this cell ran: {why}",
            traceback=[f"DeadKernelError: the kernel died while this cell ran: {why}"]))
    banner = nbformat.v4.new_markdown_cell(
        f'<span style="color:red;font-size:2em">The kernel died while running this notebook.</span>\n\n{why}')
    banner.metadata["tags"] = ["runbook-error"]
    nb.cells.insert(0, banner)
    atomic_write_text(notebook, nbformat.writes(nb))


def _finish(run_dir: Path, root: Path, params: Params, outcome: RunOutcome) -> None:
    phases = report.read_phases(run_dir)
    # A partial run (--phase 2 alone) reports its own phase's verdict.
    verdict = report.final_verdict(phases) or _own_verdict(phases, outcome.phases_done) or {}
    outcome.verdict_line = verdict.get("line", "")
    outcome.healthy = verdict.get("healthy")
    fields = {"phases_done": outcome.phases_done, "finished_at": clock.iso_now()}
    try:
        # no finished_at yet: the run catalog trusts a finished run's folder without re-reading it
        report.write_status(run_dir, "INCOMPLETE", reason=outcome.error or "finishing: results, summary, secret scan",
                            phases_done=outcome.phases_done)
        doc = report.merge_results(run_dir, _target(params))
        from runbook_lib.render.summary import write_summary

        if doc.get("phases"):
            from runbook_lib.history import since_last_run
            from runbook_lib.history.text import as_text

            outcome.since_last_run = as_text(since_last_run(root, run_dir, doc))
            write_summary(run_dir, doc, params)
    except OSError as exc:
        outcome.state, outcome.error = "FAILED", outcome.error or f"could not write the report ({exc.strerror or exc})"
    if outcome.state == "COMPLETE":                                                # 6. nothing leaked
        hits = scan_artifacts(run_dir)
        if hits:
            shown = "; ".join(map(str, hits[:5])) + (f" (+{len(hits) - 5} more)" if len(hits) > 5 else "")
            outcome.state = "FAILED"
            outcome.error = (f"secret scan: {len(hits)} credential-shaped value(s) in the report, not masked: "
                             f"{shown}; remove them before sharing this folder")
            log.error("run failed: %s", outcome.error)
    with contextlib.suppress(OSError):
        if outcome.state == "COMPLETE":
            report.write_status(run_dir, "COMPLETE", reason="all phases ran", verdict=outcome.verdict_line, **fields)
        else:
            report.write_status(run_dir, "INCOMPLETE", reason=outcome.error or "run failed", **fields)
        _stamp_run_state(run_dir)                    # results.json says what status.json says, never older
        _update_index(root, run_dir)
    log.info("run %s: %s %s", run_dir.name, outcome.state, outcome.verdict_line)


def _stamp_run_state(run_dir: Path) -> None:
    """Copy the final run state into results.json (it was merged while the run was still finishing)."""
    path = run_dir / "results.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(doc, dict):
        doc["run"] = {k: v for k, v in report.read_status(run_dir).items() if k != "verdict"}
        atomic_write_json(path, doc)


def _own_verdict(phases: dict, done: list[str]) -> dict | None:
    if len(done) == 1 and done[0] in phases:
        return phases[done[0]].get("verdict")
    return None


def scan_artifacts(run_dir: Path) -> list[redact.Hit]:
    """Every file of the report, scanned for credentials; a hit names the file and line, never the value."""
    hits: list[redact.Hit] = []
    for path in sorted(run_dir.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = str(path.relative_to(run_dir))
        try:
            if path.stat().st_size > SCAN_LIMIT:
                hits.append(redact.Hit(rel, 0, f"larger than {SCAN_LIMIT // 2**20} MiB, not scanned"))
                continue
            content = path.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            hits.append(redact.Hit(rel, 0, f"unreadable ({exc.strerror})"))
            continue
        hits += redact.scan_text(content, rel)
    return hits


def _update_index(root: Path, run_dir: Path) -> None:
    from runbook_lib.render.index import write_index

    write_index(root)
    latest = root / "latest"
    tmp = root / f".latest.{os.getpid()}"
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, latest)


def _target(params: Params) -> dict:
    t = params.target
    return {"name": t.name, "mode": t.mode, "scenario": t.scenario, "time_scale": t.time_scale,
            "project": params.project, "region": params.region}


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact.text(record.getMessage())
        record.args = ()
        return True


@contextlib.contextmanager
def _run_log(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    loggers = [logging.getLogger(n) for n in ("runbook", "papermill")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False  # papermill's cell output goes to run.log, not the terminal
    try:
        yield
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        handler.close()
