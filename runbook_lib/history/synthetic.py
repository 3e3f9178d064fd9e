"""Small synthetic report folders (status.json + results.json) for the tests and bench/history.py.

The shape is exactly what ``runbook run`` writes (report.merge_results); the check ids are the
runbook's own. Nothing here is used by a real run.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from runbook_lib.results import SCHEMA_VERSION

# (id, component, severity): a representative slice of the real check list
CHECKS = (
    [("connector.state", "connector", "critical"), ("connector.instances", "connector", "high"),
     ("connector.saturation", "connector", "critical"), ("sql.state", "cloudsql", "critical"),
     ("sql.connect", "cloudsql", "critical"), ("tls.api-staging.expiry", "certificates", "critical"),
     ("tls.app-staging.expiry", "certificates", "critical"), ("tls.api-staging.hostname", "certificates", "critical"),
     ("lb.staging-backend-service.backends", "load_balancer", "high"),
     ("secrets.jwt-secret-staging", "secrets", "critical"), ("run.netra-backend-staging.timeout", "cloud_run", "high"),
     ("golden.login", "golden_path", "critical"), ("golden.api_latency", "golden_path", "critical")]
    + [(f"run.svc-{i}.ready", "cloud_run", "medium") for i in range(12)]
)
START = datetime(2026, 1, 1, 4, 17, tzinfo=timezone.utc)


def measurements(cid: str, i: int, broken: bool) -> dict[str, float]:
    if cid == "sql.connect":
        return {"p50_s": 30.0 if broken else 1.0 + (i % 3) * 0.1, "p95_s": 41.0 if broken else 1.5 + (i % 5) * 0.1}
    if cid.endswith(".expiry"):
        return {"days_left": float(90 - i % 60)}
    if cid == "connector.saturation":
        return {"instances": 3.0 if broken else 2.0, "peak": 3.0, "max_instances": 3.0 if broken else 10.0}
    if cid == "golden.login":
        return {"login_s": 2.0 + (i % 4) * 0.1}
    return {}


def results(i: int, *, failing: set[str]) -> list[dict]:
    out = []
    for cid, comp, sev in CHECKS:
        bad = cid in failing
        out.append({"id": cid, "component": comp, "title": cid, "status": "FAIL" if bad else "PASS",
                    "severity": sev, "observed": "", "expected": "", "reason": "synthetic" if bad else "",
                    "remediation": "fix it" if bad else "", "evidence": [], "upstream": [],
                    "measurements": measurements(cid, i, bad)})
    return out


def write_run(root: Path, i: int, *, target: str = "sandbox", failing: set[str] = frozenset(),
              when: datetime | None = None, state: str = "COMPLETE") -> Path:
    when = when or START + timedelta(days=i)
    d = root / f"{when:%Y%m%dT%H%M%SZ}-{target}-{i % 0xFFFFFF:06x}"
    d.mkdir(parents=True)
    healthy = not failing
    critical = sum(1 for cid, _, sev in CHECKS if cid in failing and sev == "critical")
    verdict = {"healthy": healthy, "critical_failures": critical, "blocking_failures": len(failing), "counts": {},
               "status": "HEALTHY" if healthy else "UNHEALTHY",
               "line": f"Overall Status: {'HEALTHY' if healthy else 'UNHEALTHY'}, Critical Failures: {critical}"}
    started = when.isoformat(timespec="seconds")
    status = {"state": state, "reason": "all phases ran", "started_at": started, "updated_at": started,
              "phases_done": ["diagnose"], "finished_at": started}
    frag = {"phase": "diagnose", "verdict": verdict, "faults": [], "results": results(i, failing=failing),
            "evidence_now": started}
    doc = {"schema_version": SCHEMA_VERSION, "target": {"name": target, "mode": "sandbox", "time_scale": 0.05},
           "run": status, "phases": {"diagnose": frag}, "verdict": verdict}
    (d / "status.json").write_text(json.dumps(status))
    (d / "results.json").write_text(json.dumps(doc))
    return d
