"""Fleets: the runbook over many targets, each an ordinary run, plus one roll-up.

    load_manifest(F)   validate the manifest and every target's parameters (one line, exit 2)
    run(F, ...)        ``runbook fleet run``: every target at most N at once, then the roll-up
    run_some(F, ...)   ``runbook fleet target``: the targets of one task (Airflow, Cloud Run, CI matrix)
    rollup(F, ...)     ``runbook fleet rollup``: the roll-up from the targets' markers and folders

Layout, under the reports folder (``--out``)::

    <UTC>-<target>-<id>/            one ordinary run folder per target (index.html lists them)
    fleet-<fleet id>/
      fleet.json fleet.md fleet.html   the roll-up, one row per target read from its results.json
      targets/<name>.json              marker: exit code, run folder, where it ran
      targets/<name>.log               the target's `runbook run` output
    fleet-latest -> fleet-<fleet id>

This package starts processes and reads folders; it judges nothing (verdicts come from the runs).
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from runbook_lib.evidence import atomic_write_json
from runbook_lib.fleet import report as _report
from runbook_lib.fleet.execute import assigned, fleet_dir, new_fleet_id, run_all
from runbook_lib.fleet.manifest import Fleet, load_manifest

__all__ = ["load_manifest", "run", "run_some", "rollup", "assigned"]


def run(manifest: str | Path, *, parallel: int = 2, phase: str = "all", out: str | Path = "reports",
        overrides: Sequence[str] = (), echo: Callable[[str], None] = print) -> dict:
    """Validate, run every target (at most ``parallel`` at once), build the roll-up; return fleet.json."""
    fleet = load_manifest(manifest)                                      # 1. everything valid, or exit 2
    root = Path(out).resolve()
    fleet_id = new_fleet_id()
    fdir = _prepare(fleet, root, fleet_id)                               # 2. the fleet folder
    echo(f"fleet {fleet_id}: {len(fleet.targets)} targets, at most {parallel} at once")
    started = time.monotonic()
    run_all(fleet, fleet.targets, fdir=fdir, out=root, parallel=parallel, phase=phase,   # 3. the runs
            extra_overrides=overrides, echo=echo)
    doc = _report.build(fleet, fdir, fleet_id=fleet_id, wall_s=round(time.monotonic() - started, 2))  # 4.
    _latest(root, fdir)
    return doc


def run_some(manifest: str | Path, *, fleet_id: str, names: Sequence[str] = (), indexes: Sequence[int] = (),
             task: tuple[int, int] | None = None, phase: str = "all", out: str | Path = "reports",
             overrides: Sequence[str] = (), parallel: int = 1, rollup_when_complete: bool = False,
             echo: Callable[[str], None] = print) -> tuple[list, dict | None]:
    """The targets of one distributed task, chosen by name, index or (task index, task count)."""
    fleet = load_manifest(manifest)
    root = Path(out).resolve()
    fdir = _prepare(fleet, root, fleet_id)
    chosen = [fleet.by_name(n) for n in names] + [fleet.by_index(i) for i in indexes]
    if task is not None:
        chosen += [fleet.targets[i] for i in assigned(task[0], task[1], len(fleet.targets))]
    if not chosen:
        echo(f"fleet {fleet_id}: nothing to run for this task")
    runs = run_all(fleet, chosen, fdir=fdir, out=root, parallel=parallel, phase=phase,
                   extra_overrides=overrides, echo=echo) if chosen else []
    doc = None
    if rollup_when_complete and _all_recorded(fleet, fdir):
        doc = _report.build(fleet, fdir, fleet_id=fleet_id)
        _latest(root, fdir)
        echo(f"fleet {fleet_id}: every target recorded, roll-up built: {doc['line']}")
    return runs, doc


def rollup(manifest: str | Path, *, fleet_id: str, out: str | Path = "reports") -> dict:
    """Build the roll-up from what the targets recorded (a target that did not run is FAILED)."""
    fleet = load_manifest(manifest)
    root = Path(out).resolve()
    fdir = _prepare(fleet, root, fleet_id)
    doc = _report.build(fleet, fdir, fleet_id=fleet_id)
    _latest(root, fdir)
    _index(root)  # run folders gathered from elsewhere (CI artifacts) get listed too
    return doc


def _index(root: Path) -> None:
    from runbook_lib.render.index import write_index

    write_index(root)


def _prepare(fleet: Fleet, root: Path, fleet_id: str) -> Path:
    fdir = fleet_dir(root, fleet_id)
    (fdir / "targets").mkdir(parents=True, exist_ok=True)
    atomic_write_json(fdir / "manifest.json", {"manifest": str(fleet.path),
                                              "targets": [t.describe() for t in fleet.targets]})
    return fdir


def _all_recorded(fleet: Fleet, fdir: Path) -> bool:
    from runbook_lib.fleet.execute import marker_path

    return all(marker_path(fdir, t.name).exists() for t in fleet.targets)


def _latest(root: Path, fdir: Path) -> None:
    link, tmp = root / "fleet-latest", root / f".fleet-latest.{os.getpid()}"
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(fdir.name)
        os.replace(tmp, link)
