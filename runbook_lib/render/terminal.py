"""What the terminal says about a run: one line per phase as it ends, and where to read on.

The lines are the phase statuses the results model recorded (``phases/<phase>.json`` ->
``status.line``), so the terminal never says something the report does not.
"""
from __future__ import annotations

from pathlib import Path

from runbook_lib.run import report
from runbook_lib.results import phase_status


def phase_line(run_dir: Path, phase: str) -> str:
    fragment = report.read_phase(run_dir, phase)
    if fragment is None:
        return f"{phase}: no results recorded (see {report.NOTEBOOKS[phase]}.html and run.log)"
    line = (fragment.get("status") or {}).get("line") or phase_status(fragment).line
    return "  -> " + line


def closing_lines(run_dir: Path, phases_done: list[str]) -> list[str]:
    out = []
    if (run_dir / "summary.md").exists():
        out.append(f"Summary: {run_dir / 'summary.md'}")
    pages = [run_dir / f"{report.NOTEBOOKS[p]}.html" for p in phases_done if (run_dir / f"{report.NOTEBOOKS[p]}.html").exists()]
    if pages:
        out.append(f"Report page: {pages[-1]}")
    return out
