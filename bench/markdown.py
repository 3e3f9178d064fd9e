"""The Markdown results: the measurement table first, then each section's detail and the profiles."""
from __future__ import annotations

from typing import Any

from . import machine
from .report import Row, rows_table, table
from .stats import mb


def render(doc: dict[str, Any], rows: list[Row]) -> str:
    m = doc["machine"]
    met = sum(r.met is True for r in rows)
    missed = sum(r.met is False for r in rows)
    parts = [
        f"# runbook benchmarks, {doc['started_at'][:10]} ({doc['mode']} run)",
        "",
        f"**Machine:** {machine.one_line(m)}. PostgreSQL: {m['postgres']}. "
        f"Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        "",
        _code_line(doc.get("code", {})),
        "",
        f"**Run:** started {doc['started_at']}, took {doc['duration_s']:.0f} s"
        + (f", load average at the end {doc['load_average_at_end']}" if doc.get("load_average_at_end") else "")
        + ". Figures are medians over the "
        "repetitions stated; ratios are taken within one repetition, then their median is reported. "
        f"{met} targets met, {missed} missed. How each figure is measured: `bench/README.md`.",
        "",
        rows_table(rows),
        "",
    ]
    if doc["failures"]:
        parts += ["## Failed sections", ""]
        parts += [f"- **{name}**: {f['error']}" for name, f in doc["failures"].items()]
        parts.append("")
    s = doc["sections"]
    for name, fn in (("end_to_end", _end_to_end), ("diagnosis", _diagnosis), ("concurrency", _concurrency),
                     ("accuracy", _accuracy), ("sampling", _sampling)):
        if name in s:
            parts += fn(s[name]) + [""]
    parts += _profiles(doc.get("profiles", {}))
    return "\n".join(parts).rstrip() + "\n"


def _code_line(code: dict[str, Any]) -> str:
    if not code:
        return ""
    line = f"**Code:** commit {code.get('commit') or 'unknown'}"
    if code.get("uncommitted"):
        line += f" with uncommitted changes to {', '.join(code['uncommitted'])}"
    if code.get("changed_during_run"):
        during = code.get("changed_by_end_of") or []
        line += (". **Warning: the code changed while the bench ran"
                 + (f" (first seen after the {during[0]} section: the sections before it measured the commit above)"
                    if during else "") + "; figures may mix versions.**")
    return line + ("" if line.endswith("**") else ".")


def _end_to_end(d: dict[str, Any]) -> list[str]:
    lines = [f"## End to end (the demo, {d['reps']} repetitions)", ""]
    phases = list(d["runs"][0]["phases_s"])
    header = ["rep", "demo s", "plan s", "run s", "sandbox start s", *[f"{p} s" for p in phases], "rendering s",
              "other s", "peak RSS MB", "peak PSS MB", "verdict"]
    body = [[i + 1, f"{r['demo_s']:.1f}", f"{r['plan_s']:.1f}", f"{r['run_s']:.1f}", f"{r['sandbox_start_s']:.2f}",
             *[f"{r['phases_s'].get(p, 0):.1f}" for p in phases], f"{r['rendering_s']:.2f}", f"{r['run_other_s']:.2f}",
             f"{mb(r['peak_rss_bytes']):.0f}", f"{mb(r['peak_pss_bytes']):.0f}",
             r["verdict"] + (f" ({len(r['problems'])} FAIL/ERROR in the last phase)" if r.get("problems") else "")]
            for i, r in enumerate(d["runs"])]
    lines += [table(header, body), ""]
    k = d["kernels"]
    lines += [f"Kernel starts (papermill, one trivial cell, as `runner._execute` calls it): "
              f"{', '.join(f'{x:.2f}' for x in k['trivial_s'])} s; with `import runbook_lib`: "
              f"{', '.join(f'{x:.2f}' for x in k['with_runbook_import_s'])} s. Memory: {d['memory_method']}.", ""]
    peak = max(d["runs"], key=lambda r: r["peak_rss_bytes"])
    grouped: dict[str, list[int]] = {}
    for name, rss in peak.get("peak_breakdown", []):
        grouped.setdefault(name.split(":")[0] if name.startswith("postgres") else name, []).append(rss)
    if grouped:
        lines += ["Processes at the highest RSS peak (RSS each; shared pages counted in every process):", ""]
        lines += [table(["process", "count", "RSS MB"],
                        [[n, len(v), f"{mb(sum(v)):.0f}"] for n, v in sorted(grouped.items(), key=lambda x: -sum(x[1]))]), ""]
    return lines


def _diagnosis(d: dict[str, Any]) -> list[str]:
    lines = [f"## Diagnosis (Phase 1 in-process, {d['params']}; largest deadline {d['largest_deadline_s']:g} s)", ""]
    header = ["scenario", "sandbox start s", "gather s", "evaluate ms", "time to verdict s", "phase 1 s", "stop s",
              "verdict", "last to finish"]
    body = []
    for name, sc in d["scenarios"].items():
        m, last = sc["median"], sc["runs"][0]["last_to_finish"][0]
        body.append([name, f"{m['sandbox_start_s']:.2f}", f"{m['gather_s']:.2f}", f"{m['evaluate_s'] * 1000:.1f}",
                     f"{m['time_to_verdict_s']:.2f}", f"{m['phase1_s']:.2f}", f"{m['sandbox_stop_s']:.2f}",
                     sc["runs"][0]["verdict"], f"{last['key']} at {last['end_s']:.2f} s"])
    return lines + [table(header, body)]


def _concurrency(d: dict[str, Any]) -> list[str]:
    from .stats import median

    lines = [f"## Concurrency ({d['reps']} repetitions; sequential {d['sequential_reps']})", ""]
    header = ["variant", "endpoints", "concurrent ms", "x one", "sequential s", "x one", "per-probe median ms",
              "CPU (this process / servers) s"]
    body = []
    for name, v in d["variants"].items():
        for n in map(str, d["counts"]):
            seq = v["sequential"].get(n) or []
            cpu = v["cpu_s"].get(n, {})
            body.append([name, n, f"{median(v['concurrent'][n]) * 1000:.0f}", f"{median(v['ratio_concurrent'][n]):.2f}",
                         f"{median(seq):.2f}" if seq else "", f"{median(v['ratio_sequential'][n]):.1f}" if seq else "",
                         f"{v['per_probe_total_s'].get(n, {}).get('median', 0) * 1000:.0f}",
                         " / ".join(f"{x:.2f}" for x in cpu.values())])
    return lines + [table(header, body)]


def _accuracy(d: dict[str, Any]) -> list[str]:
    reps = ", ".join(f"{k} ms: {v}" for k, v in d["reps"].items())
    lines = [f"## Measurement accuracy (repetitions per delay: {reps})", "",
             "Expected = round trips x 2 x delay. Error = measured - expected. Excess = measured(d) - measured(0) - "
             "expected (what the delay added beyond the model). Spread = run-to-run range (max - min) of probe or "
             "peer, at least 1 ms: how far the probe may trail the peer. Medians; ms.", ""]
    header = ["protocol", "figure", "delay ms", "k", "expected", "probe", "probe error", "probe excess", "peer",
              "peer error", "peer excess", "tolerance", "spread"]
    body = []
    f = lambda x: "" if x is None else f"{x * 1000:.2f}"  # noqa: E731
    for x in d["errors"]:
        body.append([x["protocol"], x["figure"], f"{x['delay_ms']:g}", x["round_trips"], f(x["expected_s"]),
                     f(x["probe_s"]), f(x["probe_err_s"]), f(x.get("probe_excess_s")), x.get("peer", ""),
                     f(x.get("peer_err_s")), f(x.get("peer_excess_s")), f(x["tolerance_s"]), f(x.get("slack_vs_peer_s"))])
    return lines + [table(header, body)]


def _sampling(d: dict[str, Any]) -> list[str]:
    lines = [f"## Sample scaling (concurrency {d['concurrency']}, {d['reps']} repetitions)", ""]
    header = ["samples", "median s", "ms/sample", "tracemalloc peak MB", "retained MB", "phase medians ms"]
    body = [[n, f"{r['median_s']:.2f}", f"{r['per_sample_ms']:.2f}", f"{mb(r['tracemalloc_peak_bytes'])}",
             f"{mb(r['tracemalloc_retained_bytes'])}",
             ", ".join(f"{k} {v:.1f}" for k, v in r["phase_medians_ms"].items())] for n, r in d["runs"].items()]
    return lines + [table(header, body)]


def _profiles(profiles: dict[str, Any]) -> list[str]:
    if not profiles:
        return []
    lines = ["## Where the time (and memory) goes", ""]
    if "skipped" in profiles:
        lines += [profiles["skipped"], ""]
    for name, p in profiles.items():
        if not isinstance(p, dict):
            continue
        if "error" in p:
            lines += [f"### {name}", "", f"profile failed: {p['error']}", ""]
            continue
        if "imports" in p:
            lines += _imports(p)
            continue
        from .profiling import finding

        lines += [f"**{name}**: {finding(name, p)}.", ""]
        for sub in ([p] if "what" in p else [v for v in p.values() if isinstance(v, dict) and "what" in v]):
            lines += [f"### {sub['what']} ({sub['wall_s']:.2f} s, pyinstrument)", "", "Top frames by self time (s):", "",
                      "```"]
            lines += sub["top_self"] + ["```", "", "<details><summary>call tree</summary>", "", "```"]
            lines += sub["tree"] + ["```", "", "</details>", ""]
    return lines


def _imports(p: dict[str, Any]) -> list[str]:
    from .profiling import finding

    lines = ["### Memory: what each process of the demo imports before it works", "", finding("import_footprint", p) + ".", ""]
    body = []
    for role, r in p["imports"].items():
        if "error" in r:
            body.append([role, "", "", "", f"failed: {r['error'][:120]}"])
            continue
        heavy = ", ".join(f"{lib} ({via})" if via.startswith("runbook_lib") else lib for lib, via in r["heavy"].items())
        body.append([role, f"{mb(r['rss_bytes']):.0f}", f"{r['import_s']:.2f}", r["modules"], heavy])
    return lines + [table(["process role", "RSS after imports MB", "import s", "modules", "heavy libraries (first imported by)"],
                          body), ""]
