"""``python -m bench.fleet``: fleets of replay and sandbox targets, --parallel 1 and 4.

For each fleet: the wall time of ``runbook fleet run`` against one plain ``runbook run`` of the
same kind of target (the ratio says what running N costs compared with one), and the peak
memory of the whole process tree (fleet, target runs, kernels, sandboxes), summed RSS sampled
every 0.2 s with psutil. Each fleet runs once (a fleet of 20 is already 20 runs). ``--phase``
defaults to 1 (diagnosis) to keep the matrix under ~15 minutes on a 2-core machine; the phase is
recorded with the figures. Writes ``bench/results/fleet-<date>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from . import machine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MATRIX = [("replay", 1), ("replay", 5), ("replay", 20), ("sandbox", 1), ("sandbox", 3)]
PARALLEL = (1, 4)
TARGET = {
    "replay": {"params": str(ROOT / "parameters" / "replay.yaml"), "overrides": {}},
    "sandbox": {"params": str(ROOT / "parameters" / "sandbox.yaml"), "overrides": {"target.scenario": "issue-1278"}},
}


def measure(argv: list[str]) -> dict:
    """Run ``argv``; wall time, exit code, and the peak summed RSS of its process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = {"rss": 0, "procs": 0}
    done = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.wait(0.2):
            total, n = 0, 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in tree:
                try:
                    total += p.memory_info().rss
                    n += 1
                except psutil.Error:
                    pass
            if total > peak["rss"]:
                peak.update(rss=total, procs=n)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate(timeout=3600)
    done.set()
    t.join()
    return {"wall_s": round(time.perf_counter() - started, 2), "exit_code": proc.returncode,
            "peak_rss_mb": round(peak["rss"] / 2**20, 1), "peak_processes": peak["procs"],
            "stderr_tail": err[-400:] if proc.returncode not in (0, 1) else ""}


def manifest(kind: str, n: int, folder: Path) -> Path:
    import yaml

    t = TARGET[kind]
    targets = [{"name": f"{kind}-{i:02d}", "params": t["params"], "overrides": t["overrides"]} for i in range(n)]
    path = folder / f"{kind}-{n}.yaml"
    path.write_text(yaml.safe_dump({"targets": targets}, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--phase", default="1", choices=["1", "2", "3", "all"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, metavar="JSON", help="only rewrite the Markdown next to a results JSON")
    args = parser.parse_args(argv)
    if args.render:
        args.render.with_suffix(".md").write_text(render(json.loads(args.render.read_text())))
        return 0
    cli = [sys.executable, "-m", "runbook_lib.cli"]
    rows, single = [], {}
    load_start = list(os.getloadavg())  # a shared machine: the load says how much the figures compete
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        tmp = Path(tmp)
        for kind, t in TARGET.items():  # one ordinary run: the yardstick
            overrides = [x for k, v in t["overrides"].items() for x in ("-p", f"{k}={v}")]
            single[kind] = measure([*cli, "run", "--params", t["params"], *overrides, "--phase", args.phase,
                                    "--no-progress", "--out", str(tmp / f"single-{kind}")])
            print(f"single {kind}: {single[kind]}", file=sys.stderr, flush=True)
        for kind, n in MATRIX:
            m = manifest(kind, n, tmp)
            for parallel in PARALLEL:
                r = measure([*cli, "fleet", "run", "--manifest", str(m), "--parallel", str(parallel),
                             "--phase", args.phase, "--out", str(tmp / f"fleet-{kind}-{n}-{parallel}")])
                r.update(kind=kind, targets=n, parallel=parallel,
                         vs_one=round(r["wall_s"] / single[kind]["wall_s"], 2),
                         per_target_s=round(r["wall_s"] / n, 2))
                rows.append(r)
                print(f"{kind} x{n} --parallel {parallel}: {r}", file=sys.stderr, flush=True)
    doc = {"benchmark": "fleet", "date": dt.date.today().isoformat(), "phase": args.phase,
           "machine": machine.describe(), "load_average": {"start": load_start, "end": list(os.getloadavg())},
           "single": single, "fleets": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"fleet-{doc['date']}"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    stem.with_suffix(".md").write_text(render(doc))
    print(stem.with_suffix(".md").read_text())
    return 0


def render(doc: dict) -> str:
    lines = [f"# Fleet benchmark, {doc['date']} (phase {doc['phase']})", "",
             "One plain `runbook run` of each kind is the yardstick; `x one` = fleet wall time / that run's.",
             "Peak memory = the summed RSS of the whole process tree (fleet, target runs, kernels, sandboxes).", "",
             "| target | wall (s) | peak memory (MB) | processes at peak |", "|---|---|---|---|"]
    for kind, s in doc["single"].items():
        lines.append(f"| one {kind} run | {s['wall_s']} | {s['peak_rss_mb']} | {s['peak_processes']} |")
    lines += ["", "| fleet | --parallel | wall (s) | x one | s per target | peak memory (MB) | processes at peak | exit |",
              "|---|---|---|---|---|---|---|---|"]
    for r in doc["fleets"]:
        lines.append(f"| {r['targets']} {r['kind']} | {r['parallel']} | {r['wall_s']} | {r['vs_one']} | "
                     f"{r['per_target_s']} | {r['peak_rss_mb']} | {r['peak_processes']} | {r['exit_code']} |")
    load = {k: ", ".join(f"{x:.1f}" for x in v) for k, v in doc["load_average"].items()}
    lines += ["", f"Machine: {machine.one_line(doc['machine']).split(', load average')[0]}",
              f"Load average (1, 5, 15 min): {load['start']} at start, {load['end']} at end.", "",
              "Reading: each figure is one run on a machine shared with other work (the load average says how",
              "much); compare rows measured close together (the two --parallel values of one fleet) rather",
              "than a fleet with the yardstick measured minutes earlier. A sandbox run of issue-1278 mostly",
              "waits (its faults are timeouts), so several overlap almost for free; replays are CPU-bound",
              "(kernels, nbconvert), so on 2 cores --parallel 4 gains about 3x over --parallel 1, not 4x.",
              "Memory grows with the targets running at once (about 250 MB per replay run, 500 MB per",
              "sandbox run with its PostgreSQL and servers), not with the fleet's size."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
