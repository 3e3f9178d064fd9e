"""``python -m bench.history [--sizes 100 1000 10000] [--out DIR]``: the run catalog as runs accumulate.

For each size N, N synthetic report folders (runbook_lib/history/synthetic.py: status.json +
results.json of 25 checks, the shape ``runbook run`` writes) are generated in a temp folder, spread
over 5 targets (a year of nightly runs for several targets is thousands of folders). Measured:

- rebuild: no catalog, ``Catalog.sync()`` reads every folder; and ``write_index`` from scratch;
- incremental: one new run folder appears; ``Catalog.sync()`` (scan + read the one new folder) and
  ``write_index`` (what ``runbook run`` does at the end of a run: sync, trends, all-runs table);
- since the last run: the new run compared with the previous completed run of its target;
- history: ``runbook history --target T`` (last 20 runs) rendered to text; ``diff --last 2``.

Wall-clock medians over ``--reps`` repetitions (each incremental repetition adds one more run).
Results: ``<out>/history-<date>.json`` and ``.md``. Generating the folders is not timed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from runbook_lib.history import Catalog, compare_with_previous, read_run
from runbook_lib.history.catalog import FILENAME
from runbook_lib.history.diff import diff_last, print_history
from runbook_lib.history.synthetic import CHECKS, START, write_run
from runbook_lib.render.index import write_index

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ("sandbox", "staging", "staging-eu", "staging-us", "preprod")
INCREMENTAL_TARGET_S = 1.0   # the bar: "well under a second" at 10,000 runs


def _failing(i: int) -> set[str]:
    # a plausible history: an incident for a while, then healthy, then a flapping check
    if i % 97 < 20:
        return {"connector.saturation", "sql.connect", "tls.api-staging.hostname"}
    return {"golden.api_latency"} if i % 13 == 0 else set()


def generate(root: Path, n: int) -> None:
    for i in range(n):
        t = TARGETS[i % len(TARGETS)]
        when = START + dt.timedelta(hours=24 * (i // len(TARGETS)), minutes=i % len(TARGETS))
        write_run(root, i, target=t, failing=_failing(i // len(TARGETS)), when=when)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(n: int, reps: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"runbook-history-{n}-"))
    try:
        generate(root, n)
        out: dict = {"runs": n, "checks_per_run": len(CHECKS)}
        out["rebuild_catalog_s"] = _time(lambda: Catalog(root).sync())
        (root / FILENAME).unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{root / FILENAME}{suffix}").unlink(missing_ok=True)
        out["rebuild_index_s"] = _time(lambda: write_index(root))
        out["index_html_bytes"] = (root / "index.html").stat().st_size
        sync_s, index_s, since_s = [], [], []
        for k in range(reps):
            i = n + k
            new = write_run(root, i, target="sandbox", failing={"sql.connect"},
                            when=START + dt.timedelta(days=3650, minutes=k))
            with Catalog(root) as cat:
                sync_s.append(_time(cat.sync))
                rec = read_run(new)
                since_s.append(_time(lambda rec=rec: compare_with_previous(cat, rec)))
            write_run(root, i + 10_000_000, target="sandbox", when=START + dt.timedelta(days=3650, minutes=k, seconds=30))
            index_s.append(_time(lambda: write_index(root)))
        out["incremental_sync_s"] = statistics.median(sync_s)
        out["incremental_index_s"] = statistics.median(index_s)
        out["since_last_run_s"] = statistics.median(since_s)
        out["history_s"] = statistics.median(
            _time(lambda: print_history(root, "sandbox", out=io.StringIO(), err=io.StringIO())) for _ in range(reps))
        out["diff_last_s"] = statistics.median(_time(lambda: diff_last(root, "sandbox", 2)) for _ in range(reps))
        out["catalog_bytes"] = (root / FILENAME).stat().st_size
        out["incremental_met"] = out["incremental_index_s"] < INCREMENTAL_TARGET_S
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def render(doc: dict) -> str:
    rows = doc["sizes"]
    cols = [("runs", "runs", "{:,}"), ("rebuild catalog", "rebuild_catalog_s", "{:.2f} s"),
            ("rebuild index", "rebuild_index_s", "{:.2f} s"), ("incremental sync", "incremental_sync_s", "{:.3f} s"),
            ("incremental index", "incremental_index_s", "{:.3f} s"), ("since last run", "since_last_run_s", "{:.4f} s"),
            ("history", "history_s", "{:.3f} s"), ("diff --last 2", "diff_last_s", "{:.3f} s"),
            ("index.html", "index_html_bytes", "{:,} B"), ("catalog", "catalog_bytes", "{:,} B")]
    out = [f"# Run catalog benchmark, {doc['started_at'][:10]}", "",
           f"Machine: {doc['machine']}. {doc['reps']} repetitions, medians. How: `bench/history.py` docstring.", "",
           "| " + " | ".join(c[0] for c in cols) + " |", "|" + "---:|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f.format(r[k]) for _, k, f in cols) + " |")
    out.append("")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        grow = b["runs"] / a["runs"]
        out.append(f"Growth from {a['runs']:,} to {b['runs']:,} runs (x{grow:g}): rebuild x"
                   f"{b['rebuild_catalog_s'] / a['rebuild_catalog_s']:.1f}, incremental index x"
                   f"{b['incremental_index_s'] / a['incremental_index_s']:.1f}, history x"
                   f"{b['history_s'] / a['history_s']:.1f}.")
    last = rows[-1]
    out.append(f"Target: incremental index update at {last['runs']:,} runs under {INCREMENTAL_TARGET_S:g} s: "
               f"{'met' if last['incremental_met'] else 'MISSED'} ({last['incremental_index_s']:.3f} s).")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    doc = {"started_at": started.isoformat(timespec="seconds"), "reps": args.reps,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                      f"load {os.getloadavg()[0]:.1f}",
           "sizes": []}
    for n in args.sizes:
        print(f"history bench: {n} runs ...", file=sys.stderr, flush=True)
        doc["sizes"].append(measure(n, args.reps))
        print(json.dumps(doc["sizes"][-1]), file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"history-{started:%Y-%m-%d}"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    stem.with_suffix(".md").write_text(render(doc))
    print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
