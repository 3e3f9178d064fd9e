"""``runbook diff`` and ``runbook history``: which runs, then the comparison or the trend, rendered.

    runbook diff reports/A reports/B            B against A (A is the earlier run)
    runbook diff --last 2 --target sandbox      the newest completed run against the one before it
    runbook history --target sandbox [--json]   verdicts, check-by-run grid, key numbers
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from runbook_lib.errors import HistoryError
from runbook_lib.history.catalog import Catalog
from runbook_lib.history.compare import Comparison, compare
from runbook_lib.history.runs import RunRecord, UnreadableRun, read_run
from runbook_lib.history.text import as_markdown, as_text
from runbook_lib.history.trends import LAST, db_line_of, trend
from runbook_lib.history.trends import as_text as trend_text


def _read(folder: Path) -> RunRecord:
    try:
        rec = read_run(folder)
    except UnreadableRun as exc:
        raise HistoryError(f"{folder}: cannot compare this run: {exc}") from None
    if rec is None:
        raise HistoryError(f"{folder}: not a report folder (no status.json); pass folders `runbook run` printed as 'Report: ...'")
    if rec.final_phase is None:
        raise HistoryError(f"{folder}: this run recorded no results (state {rec.state}) so there is nothing to compare")
    return rec


def diff_folders(a: Path, b: Path) -> Comparison:
    base, current = _read(Path(a)), _read(Path(b))
    root = Path(a).resolve().parent
    if root != Path(b).resolve().parent or base.target != current.target:
        return compare(base, current)
    with Catalog(root) as cat:
        cat.sync()

        def since(cid: str):
            streak = cat.failing_since(current.target, cid, base.dir)
            return (streak[0], streak[1], streak[2] + 1) if streak else None

        return compare(base, current, failing_since=since)


def diff_last(root: Path, target: str | None, n: int) -> Comparison:
    if n < 2:
        raise HistoryError(f"--last: expected 2 or more (the newest run and the one N-1 runs before it), got {n}")
    with Catalog(root) as cat:
        cat.sync()
        target = _target(cat, target, root)
        runs = cat.runs(target, completed=True, limit=n)
        if len(runs) < n:
            raise HistoryError(f"target {target!r} has {len(runs)} completed runs in {root}; --last {n} needs {n}")
    return diff_folders(Path(root) / runs[-1].dir, Path(root) / runs[0].dir)


def _target(cat: Catalog, target: str | None, root: Path) -> str:
    targets = cat.targets()
    if target is None:
        if len(targets) == 1:
            return targets[0]
        raise HistoryError(f"{root} holds runs of {len(targets)} targets ({', '.join(targets) or 'none'}): pass --target")
    if target not in targets:
        raise HistoryError(f"no runs of target {target!r} in {root} (targets: {', '.join(targets) or 'none'})")
    return target


def print_diff(cmp: Comparison, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(json.dumps(cmp.to_dict(), indent=2) + "\n")
    elif fmt == "markdown":
        out.write("\n".join(as_markdown(cmp)))
    else:
        out.write(as_text(cmp))


def print_history(root: Path, target: str | None, *, last: int = LAST, as_json: bool = False,
                  out: TextIO, err: TextIO, verify: bool = False) -> None:
    if not Path(root).is_dir():
        raise HistoryError(f"{root}: no reports folder (runbook run --out writes one)")
    with Catalog(root) as cat:
        cat.sync(verify=verify)
        targets = [_target(cat, target, root)] if target is not None else cat.targets()
        if not targets:
            raise HistoryError(f"no runs in {root}")
        trends = []
        for t in targets:
            newest = next(iter(cat.runs(t, limit=1)), None)
            trends.append(trend(cat, t, last=last, db_line_s=db_line_of(Path(root), newest.dir if newest else None)))
        notes = cat.notes()
    if as_json:
        out.write(json.dumps({"targets": [t.to_dict() for t in trends], "notes": notes}, indent=2) + "\n")
        return
    for t in trends:
        out.write(trend_text(t))
    for note in notes:
        err.write(f"note: {note}\n")
