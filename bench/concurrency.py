"""Concurrency: 1, 10 and 100 endpoints that each answer after 200 ms of injected latency.

Each endpoint is its own fault proxy (its own port) in front of a tiny HTTP server, delaying
every chunk 100 ms each way: one HTTP round trip = 200 ms. They are probed with
``runbook_lib.probes.http.probe`` all at once (``asyncio.gather``, as the runbook's gather does)
and one after another (what the incident's sequential script would cost). Ratios are taken
within one repetition against the single-endpoint time of that repetition.

Variants: HTTPS (50 ms each way, so TLS's round trip + the request's = 200 ms), and HTTP with
the default trust store (no ``ca_bundle``: the probe loads certifi's bundle for each probe, as a
live run does).
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from .report import Row
from .servers import Spec, bench_servers
from .stats import median, summary

DEADLINE_S = 10.0


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _probe_all(urls: list[str], net, *, concurrent: bool) -> tuple[float, list[Any]]:
    from runbook_lib.probes import http

    started = time.perf_counter()
    if concurrent:
        results = list(await asyncio.gather(*(http.probe(u, net, DEADLINE_S) for u in urls)))
    else:
        results = [await http.probe(u, net, DEADLINE_S) for u in urls]
    wall = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(urls)} probes failed: {failed[0].reason} {failed[0].detail}")
    return wall, results


def run(counts: list[int], reps: int, *, sequential_reps: int | None = None) -> tuple[dict[str, Any], list[Row]]:
    from runbook_lib.probes.base import NetContext

    n_max = max(counts)
    spec = Spec(http_proxies=n_max, http_proxy_delay_ms=100, https_proxies=n_max, https_proxy_delay_ms=50)
    sequential_reps = reps if sequential_reps is None else sequential_reps
    data: dict[str, Any] = {"counts": counts, "reps": reps, "sequential_reps": sequential_reps,
                            "injected_ms": 200, "variants": {}}
    with bench_servers(spec) as ports, asyncio.Runner() as loop:
        ca = ports["ca"]
        variants = {
            "http": ([f"http://127.0.0.1:{p}/health" for p in ports["http_proxies"]], NetContext(ca_bundle=ca)),
            "https": ([f"https://127.0.0.1:{p}/health" for p in ports["https_proxies"]], NetContext(ca_bundle=ca)),
            "http_default_trust": ([f"http://127.0.0.1:{p}/health" for p in ports["http_proxies"]], NetContext()),
        }
        for name, (urls, net) in variants.items():
            loop.run(_probe_all(urls[:1], net, concurrent=True))  # warm-up: imports, first contexts
            v = data["variants"][name] = {"concurrent": {str(n): [] for n in counts},
                                          "sequential": {str(n): [] for n in counts if n > 1},
                                          "ratio_concurrent": {str(n): [] for n in counts},
                                          "ratio_sequential": {str(n): [] for n in counts if n > 1},
                                          "per_probe_total_s": {}, "cpu_s": {}}
            seq_now = name == "http"  # the sequential cost is the same story for every variant
            for rep in range(reps):
                one = None
                for n in counts:
                    cpu_client, cpu_servers = time.process_time(), _cpu_s(ports["pid"])
                    wall, results = loop.run(_probe_all(urls[:n], net, concurrent=True))
                    one = wall if n == 1 else one
                    v["concurrent"][str(n)].append(round(wall, 4))
                    if n == max(counts):
                        v.setdefault("breakdown_ms", []).append(_breakdown(results, started=min(r.started_s for r in results)))
                    if rep == 0:
                        v["per_probe_total_s"][str(n)] = summary([r.total_s for r in results])
                        v["cpu_s"][str(n)] = {"probes (this process)": round(time.process_time() - cpu_client, 3),
                                              "servers + proxies": round(_cpu_s(ports["pid"]) - cpu_servers, 3)}
                for n in counts:
                    if one:
                        v["ratio_concurrent"][str(n)].append(round(v["concurrent"][str(n)][-1] / one, 3))
                if seq_now and rep < sequential_reps:
                    for n in counts:
                        if n == 1:
                            continue
                        wall, _ = loop.run(_probe_all(urls[:n], net, concurrent=False))
                        v["sequential"][str(n)].append(round(wall, 4))
                        if one:
                            v["ratio_sequential"][str(n)].append(round(wall / one, 3))
    return data, _rows(data, counts)


def _rows(data: dict[str, Any], counts: list[int]) -> list[Row]:
    rows = []
    v = data["variants"]["http"]
    one = median(v["concurrent"]["1"])
    rows.append(Row("concurrency", "1 HTTP endpoint, 200 ms injected (100 ms each way)", f"{one * 1000:.0f} ms",
                    "", None, "the reference for the ratios below (median)"))
    for n in counts:
        if n == 1:
            continue
        ratio = median(v["ratio_concurrent"][str(n)])
        wall = median(v["concurrent"][str(n)])
        per = v["per_probe_total_s"].get(str(n), {})
        target = "<= 2 x one" if n == max(counts) else ""
        rows.append(Row("concurrency", f"{n} HTTP endpoints probed concurrently", f"{wall * 1000:.0f} ms = {ratio:.2f} x one",
                        target, (ratio <= 2.0) if target else None, profile="concurrent_probes",
                        explanation=f"per-probe total median {per.get('median', 0) * 1000:.0f} ms, max {per.get('max', 0) * 1000:.0f} ms; "
                        f"CPU {_cpu_text(v['cpu_s'].get(str(n), {}))}"
                        + (f"; {_breakdown_text(v)}; ratios over the repetitions "
                           + ", ".join(f"{x:.2f}" for x in v["ratio_concurrent"][str(n)]) if n == max(counts) else "")))
        if v["sequential"].get(str(n)):
            seq = median(v["sequential"][str(n)])
            rows.append(Row("concurrency", f"{n} HTTP endpoints one after another (the sequential script)",
                            f"{seq:.2f} s = {median(v['ratio_sequential'][str(n)]):.1f} x one", "", None,
                            f"concurrency saves {seq / wall:.0f}x here"))
    for name, label in (("https", "HTTPS (TLS + request, 50 ms each way = 200 ms)"),
                        ("http_default_trust", "HTTP, default trust store (certifi loaded per probe, as live)")):
        w = data["variants"][name]
        n = str(max(counts))
        ratio = median(w["ratio_concurrent"][n])
        rows.append(Row("concurrency", f"{n} endpoints concurrently, {label}",
                        f"{median(w['concurrent'][n]) * 1000:.0f} ms = {ratio:.2f} x one ({median(w['concurrent']['1']) * 1000:.0f} ms)",
                        "<= 2 x one", ratio <= 2.0,
                        f"CPU during the {n}-probe run: {_cpu_text(w['cpu_s'].get(n, {}))} on {os.cpu_count()} cores; "
                        f"{_breakdown_text(w)}; ratios " + ", ".join(f"{x:.2f}" for x in w["ratio_concurrent"][n]),
                        profile="concurrent_probes"))
    return rows


def _breakdown(results: list[Any], *, started: float) -> dict[str, float]:
    """Where a probe's time went, median over the probes of one run (ms): its phases, the time
    outside them (set-up before resolve, teardown), and how late the last probe started."""
    import statistics

    med = lambda xs: round(statistics.median(xs) * 1000, 1)  # noqa: E731
    out = {ph: med([r.phases.get(ph, 0.0) for r in results]) for ph in ("resolve", "connect", "tls", "processing")}
    out["outside phases"] = med([r.total_s - sum(r.phases.values()) for r in results])
    out["last start"] = round((max(r.started_s for r in results) - started) * 1000, 1)
    return out


def _breakdown_text(v: dict[str, Any]) -> str:
    runs = v.get("breakdown_ms") or []
    if not runs:
        return ""
    keys = [k for k in runs[0] if median(r[k] for r in runs) >= 0.5]
    return "per probe (medians, ms): " + ", ".join(f"{k} {median(r[k] for r in runs):.0f}" for k in keys)


def _cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{who} {s:.2f} s" for who, s in cpu.items()) or "not measured"
