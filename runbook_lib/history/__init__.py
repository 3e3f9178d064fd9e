"""Memory across runs: the run catalog, "since the last run", ``runbook diff`` and trends.

    runs.py     one report folder -> RunRecord (the folders are the source of truth)
    catalog.py  reports/.catalog.sqlite, kept in step with the folders (rebuilt when missing/stale)
    compare.py  two RunRecords -> Comparison (newly failing, fixed, still failing since, moved numbers)
    text.py     a Comparison as text / Markdown / HTML
    trends.py   per target: verdict over time, check-by-run grid, key numbers; svg.py draws them

The hooks other modules call are here and stay small: ``since_last_run`` (runner, at the end of
a run), ``summary_lines`` (summary.md), ``index_sections`` (index.html), ``since_last_run_view``
(the phase-1 notebook). Each of them reads; none decides a check's status.
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from runbook_lib.history.catalog import Catalog, SyncReport, open_synced
from runbook_lib.history.compare import Comparison, compare
from runbook_lib.history.runs import RunRecord, UnreadableRun, checks_of, read_run
from runbook_lib.util import clock

log = logging.getLogger("runbook.history")

__all__ = ["Catalog", "Comparison", "RunRecord", "SyncReport", "UnreadableRun", "compare", "index_sections",
           "read_run", "since_last_run", "since_last_run_view", "summary_lines"]


def compare_with_previous(cat: Catalog, current: RunRecord) -> Comparison:
    """``current`` against the previous COMPLETE run (with a verdict) of the same target."""
    base = cat.previous_completed(current.target, before=current.dir)
    if base is None:
        return compare(None, current, note=f"no earlier completed run of target `{current.target}` to compare with")

    def since(cid: str):
        streak = cat.failing_since(current.target, cid, base.dir)
        return (streak[0], streak[1], streak[2] + 1) if streak else None   # + this run

    return compare(base, current, failing_since=since)


def since_last_run(root: Path, run_dir: Path, doc: dict[str, Any]) -> Comparison:
    """At the end of a run: compare, put ``since_last_run`` into ``doc`` and results.json, catalog it.

    A catalog problem is reported in the block's ``note`` (and the log), never as "no change".
    """
    from runbook_lib.evidence import atomic_write_json

    try:
        with Catalog(root) as cat:
            cat.sync()
            current = read_run(run_dir)
            if current is None or current.final_phase is None:
                cmp = compare(None, _empty(run_dir, doc), note="this run recorded no results to compare")
            else:
                cmp = compare_with_previous(cat, current)
            doc["since_last_run"] = cmp.to_dict()
            atomic_write_json(run_dir / "results.json", doc)
            cat.update(run_dir)
    except (sqlite3.Error, OSError, UnreadableRun) as exc:
        log.error("since the last run: could not compare: %s", exc)
        cmp = compare(None, _empty(run_dir, doc), note=f"could not compare with the last run ({exc})")
        doc["since_last_run"] = cmp.to_dict()
        atomic_write_json(run_dir / "results.json", doc)
    return cmp


def _empty(run_dir: Path, doc: dict[str, Any]) -> RunRecord:
    target = (doc.get("target") or {}).get("name", "unknown")
    return RunRecord(dir=run_dir.name, target=target, started=str((doc.get("run") or {}).get("started_at", "")),
                     state="INCOMPLETE", phases=[], final_phase=None, verdict=None, line="", critical=None,
                     time_scale=1.0)


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """summary.md's "Since the last run" section (nothing when the run has not been compared)."""
    block = doc.get("since_last_run")
    if not isinstance(block, dict):
        return []
    from runbook_lib.history.text import as_markdown

    return as_markdown(Comparison.from_dict(block))


def since_last_run_view(phase) -> Any:
    """The phase-1 page: this phase's results against the previous completed run of the target."""
    from runbook_lib.history.text import as_html, as_text

    results = phase.results.to_records() if phase.results is not None else []
    target = phase.params.target.name
    current = RunRecord(dir=Path(phase.report_dir).name, target=target, started=_evidence_time(phase),
                        state="INCOMPLETE", phases=[phase.name], final_phase=phase.name, verdict=None,
                        line="", critical=None, time_scale=phase.params.target.time_scale,
                        checks=checks_of(results, f"phase {phase.name}"))
    if phase.results is not None:
        current.verdict = phase.results.verdict.status
    with Catalog(Path(phase.report_dir).parent) as cat:
        cat.sync()
        cmp = compare_with_previous(cat, current)

    class _View:
        def _repr_html_(self) -> str:
            return as_html(cmp)

        def __repr__(self) -> str:
            return as_text(cmp)

    print(cmp.headline())
    return _View()


def _evidence_time(phase) -> str:
    """When the phase's evidence was collected (the recorded time on replay), not the wall clock."""
    ev = getattr(phase, "evidence", None)
    return clock.iso(ev.now, "auto") if ev is not None else ""


INDEX_RUNS = 200   # the all-runs table of index.html lists the newest ones; the catalog keeps them all


def index_sections(root: Path, *, last: int = 20, limit: int = INDEX_RUNS) -> tuple[list[RunRecord], str, list[str]]:
    """For reports/index.html: the newest ``limit`` runs (newest first), the trend sections per
    target, and notes (unreadable folders; how many older runs the table leaves out)."""
    try:
        return _index_sections(root, last, limit)
    except sqlite3.Error as exc:   # a locked or broken catalog must not stop a run; the page says so
        log.error("index: run catalog unavailable: %s", exc)
        return [], "", [f"the run catalog {Path(root) / '.catalog.sqlite'} is unavailable ({exc}); "
                        "delete it to have it rebuilt from the run folders"]


def _index_sections(root: Path, last: int, limit: int) -> tuple[list[RunRecord], str, list[str]]:
    from runbook_lib.history.trends import as_html, db_line_of, trend

    cat, report = open_synced(root)
    with cat:
        runs = cat.runs(limit=limit)
        total = cat.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        sections = []
        for target in cat.targets():
            newest = next(iter(cat.runs(target, limit=1)), None)
            sections.append(as_html(trend(cat, target, last=last,
                                          db_line_s=db_line_of(Path(root), newest.dir if newest else None))))
        notes = cat.notes()
        if total > len(runs):
            notes.append(f"the table lists the newest {len(runs)} of {total} runs; `runbook history --target T` "
                         "and the report folders have the rest")
        return runs, "".join(sections), notes
