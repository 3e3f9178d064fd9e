"""Diagnosis: Phase 1 alone on the sandbox scenarios, in-process (what ``runbook check`` does).

Per repetition: start the sandbox (``sandbox.manager.running``), gather the diagnosis evidence
(``open_environment(params).gather("diagnose")``), evaluate (``checks.evaluate_all``), stop. The
sandbox start-up is reported apart from time-to-verdict (gather + evaluate). For ``blackout``
(nothing answers) time-to-verdict is compared with the largest single configured deadline: a
runbook that waits for its deadlines one after another would take a multiple of it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .report import Row
from .stats import median

PARAMS_FILE = Path(__file__).resolve().parent.parent / "parameters" / "sandbox.yaml"


def one(scenario: str) -> dict[str, Any]:
    from runbook_lib.checks import evaluate_all
    from runbook_lib.gather.environment import open_environment
    from runbook_lib.sandbox.manager import running
    from runbook_lib.util.aio import run_sync

    t0 = time.perf_counter()
    with running(PARAMS_FILE, scenario) as sb:
        t1 = time.perf_counter()
        env = open_environment(sb.params)
        ev = run_sync(env.gather("diagnose"))
        t2 = time.perf_counter()
        results = evaluate_all(ev, sb.params)
        t3 = time.perf_counter()
        verdict = results.verdict
    t4 = time.perf_counter()
    return {**_timings(t0, t1, t2, t3, t4), "verdict": verdict.line, "checks": len(results.results),
            "probe_timeouts": _timeouts(ev), "last_to_finish": last_to_finish(ev)}


def _timings(t0: float, t1: float, t2: float, t3: float, t4: float) -> dict[str, float]:
    return {"sandbox_start_s": t1 - t0, "gather_s": t2 - t1, "evaluate_s": t3 - t2, "time_to_verdict_s": t3 - t1,
            "phase1_s": t3 - t0, "sandbox_stop_s": t4 - t3}


def _timeouts(ev: Any) -> int:
    return sum(1 for recs in ev.probes.values() for r in recs if r.reason and r.reason.value == "timeout")


def last_to_finish(ev: Any, n: int = 4) -> list[dict[str, Any]]:
    """The evidence items that ended last: what the time-to-verdict waited for, with the start
    times of their samples (samples started in waves mean deadlines paid one after another)."""
    items = []
    for key, recs in ev.probes.items():
        ends = [r.started_s + r.total_s for r in recs]
        items.append({"key": key, "samples": len(recs), "end_s": round(max(ends), 3),
                      "start_waves_s": sorted({round(r.started_s, 1) for r in recs})})
    for key, rec in ev.api.items():
        items.append({"key": key, "samples": 1, "end_s": round(rec.elapsed_s, 3), "start_waves_s": []})
    return sorted(items, key=lambda x: -x["end_s"])[:n]


def run(scenarios: list[str], reps: int) -> tuple[dict[str, Any], list[Row]]:
    from runbook_lib.params import load_params

    d = load_params(PARAMS_FILE).deadlines
    deadlines = {"api_s": d.api_s, "probe_s": d.probe_s, "monitoring_s": d.monitoring_s}
    largest = max(deadlines.values())
    data: dict[str, Any] = {"params": str(PARAMS_FILE.name), "deadlines": {**deadlines, "retries": d.retries},
                            "largest_deadline_s": largest, "scenarios": {}}
    for scenario in scenarios:
        runs = [one(scenario) for _ in range(reps)]
        for r in runs:
            r["ratio_to_largest_deadline"] = r["time_to_verdict_s"] / largest
        data["scenarios"][scenario] = {
            "runs": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in runs],
            "median": {k: round(median(r[k] for r in runs), 4) for k in runs[0] if isinstance(runs[0][k], (int, float))},
        }
    return data, _rows(data)


def _rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    largest = data["largest_deadline_s"]
    for scenario, s in data["scenarios"].items():
        m = s["median"]
        verdict = s["runs"][0]["verdict"]
        split = (f"sandbox start {m['sandbox_start_s']:.2f} s + gather {m['gather_s']:.2f} s + evaluate "
                 f"{m['evaluate_s'] * 1000:.0f} ms (stop {m['sandbox_stop_s']:.2f} s, not counted); {verdict}")
        if scenario == "issue-1278":
            rows.append(Row("diagnosis", "Phase 1 on issue-1278 (sandbox start + gather + evaluate)",
                            f"{m['phase1_s']:.2f} s", "<= 10 s", m["phase1_s"] <= 10, split, profile="demo_phases"))
        else:
            rows.append(Row("diagnosis", f"Phase 1 on {scenario} (sandbox start + gather + evaluate)",
                            f"{m['phase1_s']:.2f} s", "", None, split))
        if scenario == "blackout":
            ratio = m["ratio_to_largest_deadline"]
            last = s["runs"][0]["last_to_finish"][0]
            waves = last["start_waves_s"]
            why = (f"the last item to finish is {last['key']} ({last['samples']} samples, ending at {last['end_s']:.1f} s"
                   + (f"; its samples started in {len(waves)} waves, at {', '.join(f'{w:g}' for w in waves)} s: "
                      "each wave waits out a full deadline before the next starts"
                      if len(waves) > 1 and last["end_s"] > 1.2 * largest else "") + ")")
            rows.append(Row(
                "diagnosis", "blackout: time-to-verdict / largest configured deadline",
                f"{m['time_to_verdict_s']:.2f} s / {largest:g} s = {ratio:.2f}", "<= 1.2", ratio <= 1.2,
                f"deadlines api {data['deadlines']['api_s']:g} s, probe {data['deadlines']['probe_s']:g} s, monitoring "
                f"{data['deadlines']['monitoring_s']:g} s, {data['deadlines']['retries']} retries; summed they would be "
                f"{sum(v for k, v in data['deadlines'].items() if k.endswith('_s')):g} s; {m['probe_timeouts']:.0f} probe timeouts; "
                + why, profile="blackout_gather"))
    return rows
