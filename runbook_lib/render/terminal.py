"""What the terminal says about a run: one line per phase as it ends, and where to read on.

The lines are the phase statuses the results model recorded (``phases/<phase>.json`` ->
``status.line``), so the terminal never says something the report does not. The runner reads
the recorded fragment and hands it in: rendering reads no run state and decides no status.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from runbook_lib.results import phase_status


def phase_line(phase: str, fragment: dict[str, Any] | None, notebook: str) -> str:
    """``fragment``: the phase's recorded results (None when none were recorded); ``notebook``:
    the phase notebook's name (``01_diagnose``), for where to look instead."""
    if fragment is None:
        return f"{phase}: no results recorded (see {notebook}.html and run.log)"
    line = (fragment.get("status") or {}).get("line") or phase_status(fragment).line
    return "  -> " + line


def closing_lines(run_dir: Path, notebooks: Sequence[str]) -> list[str]:
    """Where to read on: the summary and the page of the last phase done (``notebooks`` in order)."""
    out = []
    if (run_dir / "summary.md").exists():
        out.append(f"Summary: {run_dir / 'summary.md'}")
    pages = [run_dir / f"{name}.html" for name in notebooks if (run_dir / f"{name}.html").exists()]
    if pages:
        out.append(f"Report page: {pages[-1]}")
    return out
