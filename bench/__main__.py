"""``python -m bench [--quick] [--only SECTION...] [--out DIR]``: run the benchmarks, write results.

Sections run one after another (never two at once: they share 2 cores), each bounded; a section
that fails is recorded as failed (with the reason) and the others still run. Where a target is
missed, the matching pyinstrument profile runs afterwards and goes into the Markdown.
Full run: ``bench/results/<date>.json`` and ``.md``; ``--quick`` (a smoke run, small sizes,
one repetition, no profiles) writes ``<date>-quick.*`` under the temp folder unless ``--out``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from . import accuracy, concurrency, diagnosis, end_to_end, machine, markdown, profiling, sampling
from .report import Row, rows_to_dicts, write_json

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "runbook-bench-quick"  # smoke runs never touch bench/results

FULL: dict[str, dict[str, Any]] = {
    "end_to_end": {"reps": 3, "kernel_reps": 3},
    "diagnosis": {"scenarios": ["healthy", "issue-1278", "blackout"], "reps": 3},
    "concurrency": {"counts": [1, 10, 100], "reps": 5, "sequential_reps": 2},
    "accuracy": {"delays_ms": [0, 50, 200, 1000], "reps_for": {0: 9, 50: 9, 200: 5, 1000: 3}},
    "sampling": {"counts": [10, 100, 1000], "reps": 3},
}
QUICK: dict[str, dict[str, Any]] = {
    "end_to_end": {"reps": 1, "kernel_reps": 1},
    "diagnosis": {"scenarios": ["issue-1278"], "reps": 1},
    "concurrency": {"counts": [1, 10], "reps": 1, "sequential_reps": 1},
    "accuracy": {"delays_ms": [0, 50], "reps_for": {0: 1, 50: 1}},
    "sampling": {"counts": [10], "reps": 1},
}
SECTIONS: dict[str, Callable[..., tuple[dict[str, Any], list[Row]]]] = {
    "end_to_end": end_to_end.run,
    "diagnosis": diagnosis.run,
    "concurrency": concurrency.run,
    "accuracy": accuracy.run,
    "sampling": sampling.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repetition, no profiles")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--no-profile", action="store_true", help="skip the pyinstrument profiles")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only rewrite the Markdown next to an existing results JSON (no measurement)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results folder (default {RESULTS}; --quick: {QUICK_RESULTS})")
    args = parser.parse_args(argv)
    args.out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    if args.render:
        doc = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(markdown.render(doc, [Row(**r) for r in doc["rows"]]))
        return 0

    config = QUICK if args.quick else FULL
    chosen = args.only or list(SECTIONS)
    started, started_at = time.perf_counter(), dt.datetime.now().astimezone()
    doc: dict[str, Any] = {"started_at": started_at.isoformat(timespec="seconds"), "mode": "quick" if args.quick else "full",
                           "machine": machine.describe(), "config": {k: config[k] for k in chosen}, "sections": {},
                           "failures": {}, "profiles": {}}
    repo = Path(__file__).resolve().parent.parent
    doc["code"] = machine.code_state(repo)
    print(f"bench: {machine.one_line(doc['machine'])}; code {doc['code']['commit']}"
          + (f" + {len(doc['code']['uncommitted'])} uncommitted files" if doc["code"]["uncommitted"] else ""),
          file=sys.stderr)
    rows: list[Row] = []
    for name in chosen:
        t = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            data, section_rows = SECTIONS[name](**config[name])
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others' figures
            doc["failures"][name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            rows.append(Row(name.replace("_", " "), f"{name} section", "FAILED", "runs", False, f"{type(exc).__name__}: {exc}"))
            print(f"bench: {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        data["section_wall_s"] = round(time.perf_counter() - t, 1)
        if not machine.same_code(doc["code"], machine.code_state(repo)):
            doc["code"].setdefault("changed_by_end_of", []).append(name)
        doc["sections"][name] = data
        rows += section_rows
        print(f"bench: {name} done in {data['section_wall_s']:.0f} s", file=sys.stderr, flush=True)

    if not args.quick and not args.no_profile:
        _profiles(doc, rows)
    end_state = machine.code_state(repo)
    doc["code"]["changed_during_run"] = not machine.same_code(doc["code"], end_state)
    if doc["code"]["changed_during_run"]:
        doc["code"]["at_end"] = end_state
        print("bench: WARNING: the code changed while the bench ran; figures may mix versions", file=sys.stderr)
    doc["rows"] = rows_to_dicts(rows)
    doc["duration_s"] = round(time.perf_counter() - started, 1)
    doc["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]  # other sessions share the machine
    stem = started_at.date().isoformat() + ("-quick" if args.quick else "")
    write_json(args.out / f"{stem}.json", doc)
    (args.out / f"{stem}.md").write_text(markdown.render(doc, rows))
    missed = [r for r in rows if r.met is False]
    print(f"bench: {len(rows)} measurements, {sum(r.met is True for r in rows)} targets met, {len(missed)} missed; "
          f"{doc['duration_s']:.0f} s; wrote {args.out / stem}.json and .md", file=sys.stderr)
    return 0 if not doc["failures"] else 2


def _profiles(doc: dict[str, Any], rows: list[Row]) -> None:
    wanted = {r.profile for r in rows if r.met is False and r.profile}
    # The phases' own work, against their notebook time, explains the demo's split even when it is met.
    if "end_to_end" in doc["sections"]:
        wanted.add("demo_phases")
    if not profiling.available():
        doc["profiles"]["skipped"] = "pyinstrument is not installed (pip install -e '.[bench]'): no time profiles"
        wanted &= {"import_footprint"}  # a memory measurement, no pyinstrument needed
    for name in sorted(wanted):
        t = time.perf_counter()
        print(f"bench: profile {name} ...", file=sys.stderr, flush=True)
        try:
            doc["profiles"][name] = profiling.PROFILERS[name]()
        except Exception as exc:  # noqa: BLE001 - a profile is an explanation; its failure is recorded
            doc["profiles"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        found = profiling.finding(name, doc["profiles"][name])
        doc["profiles"][name]["finding"] = found
        for r in rows:
            if r.profile == name and r.met is False:
                r.explanation += f" Profile ({name}): {found}."
        print(f"bench: profile {name} done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
