"""The report folder: one per run, never overwritten, readable even when a run dies.

    reports/<UTC timestamp>-<target>-<short id>/
      status.json        INCOMPLETE from the first moment; COMPLETE or FAILED at the end
      parameters.yaml    effective parameters (names and paths only, never secret values)
      NN_<phase>.ipynb / .html
      phases/<phase>.json  each notebook's results
      results.json       merged, schema_version'ed
      summary.md         success declaration for the tracking issue
      evidence/<phase>/  raw, redacted evidence (replayable)
      run.log
"""
from __future__ import annotations

import json
import os
import secrets as _random
from pathlib import Path
from typing import Any

from runbook_lib.evidence import atomic_write_json
from runbook_lib.results import SCHEMA_VERSION, run_status
from runbook_lib.util import clock

PHASES = ("diagnose", "remediate", "validate")
NOTEBOOKS = {"diagnose": "01_diagnose", "remediate": "02_remediate", "validate": "03_validate_handback"}
PHASE_NUMBERS = {"1": "diagnose", "2": "remediate", "3": "validate"}


def new_run_dir(root: Path, target: str) -> Path:
    """Create a fresh folder; the random suffix and exclusive mkdir make collisions impossible."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = clock.stamp_now()
    while True:
        run_dir = root / f"{stamp}-{target}-{_random.token_hex(3)}"
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        write_status(run_dir, "INCOMPLETE", reason="run started; not finished (yet)")
        return run_dir


def write_status(run_dir: Path, state: str, **fields: Any) -> None:
    current = read_status(run_dir)
    current.update(fields, state=state, updated_at=clock.iso_now())
    current.setdefault("started_at", current["updated_at"])
    atomic_write_json(run_dir / "status.json", current)


def read_status(run_dir: Path) -> dict[str, Any]:
    """``status.json``, or ``{}`` when it is missing or corrupt (never raises: a bad old folder
    must not break later runs)."""
    try:
        doc = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_phase(report_dir: Path, phase: str, fragment: dict[str, Any]) -> None:
    atomic_write_json(report_dir / "phases" / f"{phase}.json", fragment)


def read_phase(report_dir: Path, phase: str) -> dict[str, Any] | None:
    try:
        doc = json.loads((report_dir / "phases" / f"{phase}.json").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("verdict"), dict) else None


def read_phases(report_dir: Path) -> dict[str, dict[str, Any]]:
    return {p: f for p in PHASES if (f := read_phase(report_dir, p)) is not None}


def final_verdict(phases: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The last evaluated phase's verdict (remediation re-checks a subset, so it never decides)."""
    return next((phases[p]["verdict"] for p in ("validate", "diagnose") if p in phases), None)


def merge_results(report_dir: Path, target: dict[str, Any]) -> dict[str, Any]:
    """results.json from the phase fragments: the final verdict is the last evaluated phase's."""
    phases = read_phases(report_dir)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "target": target,
        "run": {k: v for k, v in read_status(report_dir).items() if k != "verdict"},
        "phases": phases,
        "verdict": final_verdict(phases),
        # decided once by the results model; every view (HTML, summary, terminal, index) renders it
        "status": run_status(phases).model_dump(mode="json"),
    }
    atomic_write_json(report_dir / "results.json", doc)
    return doc




def relpath(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)
