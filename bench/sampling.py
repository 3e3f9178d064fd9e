"""Sample scaling: 10, 100 and 1000 PostgreSQL connection samples (``probes.postgres.sample``).

Against a real PostgreSQL behind the sandbox's TLS front (sslmode=require, SCRAM), concurrency
10, no injected delay: what the samples themselves cost. Time is measured without tracing; peak
memory in a separate run under ``tracemalloc`` (Python allocations of this process: the probes
and the results they return).
"""
from __future__ import annotations

import asyncio
import secrets
import time
import tracemalloc
from typing import Any

from .report import Row
from .servers import PG_DATABASE, PG_USER, Spec, bench_servers
from .stats import mb, median

CONCURRENCY = 10
DEADLINE_S = 30.0


def run(counts: list[int], reps: int) -> tuple[dict[str, Any], list[Row]]:
    from runbook_lib.probes import postgres
    from runbook_lib.probes.base import NetContext

    password = secrets.token_urlsafe(24)
    data: dict[str, Any] = {"counts": counts, "reps": reps, "concurrency": CONCURRENCY, "runs": {}}
    with bench_servers(Spec(postgres=True, pg_max_connections=CONCURRENCY + 20), pg_password=password) as ports, \
            asyncio.Runner() as loop:
        target = f"127.0.0.1:{ports['pg_front']}"

        def sample(n: int):
            return loop.run(postgres.sample(target, NetContext(), DEADLINE_S, n, CONCURRENCY, user=PG_USER,
                                            password=password, database=PG_DATABASE, sslmode="require"))

        sample(2)  # warm-up
        for n in counts:
            walls, results = [], []
            for _ in range(reps):
                started = time.perf_counter()
                results = sample(n)
                walls.append(time.perf_counter() - started)
                failed = [r for r in results if not r.ok]
                if failed:
                    raise RuntimeError(f"{len(failed)} of {n} samples failed: {failed[0].reason} {failed[0].detail}")
            phases = {ph: round(median(r.phases[ph] for r in results) * 1000, 3) for ph in ("connect", "tls", "auth", "query")}
            del results
            tracemalloc.start()
            results = sample(n)
            retained, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            data["runs"][str(n)] = {
                "wall_s": [round(w, 4) for w in walls], "median_s": round(median(walls), 4),
                "per_sample_ms": round(median(walls) / n * 1000, 3),
                "tracemalloc_peak_bytes": peak, "tracemalloc_retained_bytes": retained,
                "phase_medians_ms": phases,  # from the last untraced run
            }
            del results
    return data, _rows(data, counts)


def _rows(data: dict[str, Any], counts: list[int]) -> list[Row]:
    rows = []
    first = data["runs"][str(counts[0])]
    for n in counts:
        r = data["runs"][str(n)]
        growth = r["per_sample_ms"] / first["per_sample_ms"] if first["per_sample_ms"] else float("nan")
        rows.append(Row(
            "sampling", f"{n} PostgreSQL samples, concurrency {data['concurrency']} (TLS + SCRAM, no delay)",
            f"{r['median_s']:.2f} s, {r['per_sample_ms']:.1f} ms/sample; peak {mb(r['tracemalloc_peak_bytes'])} MB Python allocations",
            "", None,
            f"per-sample cost {growth:.2f} x the {counts[0]}-sample run's; {mb(r['tracemalloc_retained_bytes'])} MB "
            f"kept in the results ({r['tracemalloc_retained_bytes'] / n / 1000:.1f} kB per sample; the peak adds "
            f"~{data['concurrency']} connections in flight, asyncio's TLS buffers); phase medians "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in r["phase_medians_ms"].items())))
    return rows
