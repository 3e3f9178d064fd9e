"""``runbook run``: validate, start the target, execute the phase notebooks, archive the report.

The top-level function reads as the list of steps. Parameters are validated before any kernel
starts. A phase that fails stops the run but the folder stays readable: the executed notebook
with papermill's error cell, its HTML, the results so far, and ``status.json`` saying INCOMPLETE.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from . import redact, report
from .errors import RunError, RunbookError
from .evidence import atomic_write_text
from .params import Params, dump_params, load_params

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
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
    root = Path(out).resolve()  # the kernels run in notebooks/, so every path we hand them is absolute
    run_dir = report.new_run_dir(root, params.target.name)  # 2. a fresh folder, INCOMPLETE until the end
    _update_index(root, run_dir)
    outcome = RunOutcome(run_dir=run_dir, state="FAILED")
    with _run_log(run_dir / "run.log"):
        log.info("run %s: target %s (%s), phases %s", run_dir.name, params.target.name, params.target.mode, ",".join(phases))
        try:
            with target_running(params, Path(params_file), overrides) as effective:   # 3. sandbox up
                effective_file = run_dir / "parameters.yaml"
                atomic_write_text(effective_file, dump_params(effective))
                for i, phase in enumerate(phases, 1):                                # 4. notebooks
                    echo(f"Phase {i} of {len(phases)}: {phase} ({report.NOTEBOOKS[phase]}.ipynb)")
                    report.write_status(run_dir, "INCOMPLETE", reason=f"running phase {phase}",
                                        phases_done=outcome.phases_done)
                    _execute(phase, run_dir, effective_file, progress=progress)
                    outcome.phases_done.append(phase)
            outcome.state = "COMPLETE"
        except RunbookError as exc:
            outcome.error = redact.text(str(exc))
            log.error("run failed: %s", outcome.error)
        except KeyboardInterrupt:
            outcome.error = "interrupted"
            log.error("run interrupted")
            raise
        finally:
            _finish(run_dir, root, params, outcome)                                  # 5. archive
    return outcome


@contextlib.contextmanager
def target_running(params: Params, params_file: Path, overrides: Sequence[str]) -> Iterator[Params]:
    """Live and replay targets are just there; a sandbox target is started and stopped here."""
    if params.target.mode != "sandbox" or params.endpoints.credentials == "anonymous":
        yield params
        return
    from .sandbox.manager import running

    log.info("starting sandbox scenario %s", params.target.scenario)
    with running(params_file, params.target.scenario, overrides=overrides) as sandbox:
        log.info("sandbox up: %s", {k: v for k, v in sandbox.endpoints.items()})
        yield sandbox.params


def _execute(phase: str, run_dir: Path, params_file: Path, *, progress: bool) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    name = report.NOTEBOOKS[phase]
    output = run_dir / f"{name}.ipynb"
    started = time.perf_counter()
    try:
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
            # the kernel talks to us over loopback only; its "TCP without encryption" notice is noise here
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
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
    finally:
        log.info("phase %s took %.1f s", phase, time.perf_counter() - started)
        if output.exists():
            try:
                from .render.html import notebook_to_html

                notebook_to_html(output)
            except Exception as exc:  # a rendering problem must not hide the run's outcome
                log.error("could not render %s: %s", output.name, exc)


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
    verdict = report.final_verdict(report.read_phases(run_dir)) or {}
    outcome.verdict_line = verdict.get("line", "")
    outcome.healthy = verdict.get("healthy")
    fields = {"phases_done": outcome.phases_done, "finished_at": report._iso_now()}
    if outcome.state == "COMPLETE":
        report.write_status(run_dir, "COMPLETE", reason="all phases ran", verdict=outcome.verdict_line, **fields)
    else:
        report.write_status(run_dir, "INCOMPLETE", reason=outcome.error or "run failed", **fields)
    doc = report.merge_results(run_dir, _target(params))
    from .render.summary import write_summary

    if doc.get("phases"):
        from .history import since_last_run
        from .history.text import as_text

        outcome.since_last_run = as_text(since_last_run(root, run_dir, doc))
        write_summary(run_dir, doc, params)
    _update_index(root, run_dir)
    log.info("run %s: %s %s", run_dir.name, outcome.state, outcome.verdict_line)


def _update_index(root: Path, run_dir: Path) -> None:
    from .render.index import write_index

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
        for lg, (level, propagate) in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        handler.close()
