"""summary.md: the success declaration posted on the tracking issue.

Every ✅ is backed by passing checks of *this* run (their ids are listed); anything else is ❌
with the reason. Nothing is claimed without evidence: a component whose checks did not run is ❌.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evidence import atomic_write_text
from ..params import Params

GOOD = {"PASS", "WARN"}  # WARN is advice, not failure; it is still listed below the line


def _lines(params: Params) -> list[tuple[str, str, str]]:
    """(component, success text, failure text) in the incident template's order."""
    c, s, lb = params.connector, params.cloudsql, params.load_balancer
    domains = f"{params.domains.frontend}, {params.domains.api}"
    n = len(params.secrets.required)
    return [
        ("connector", f"VPC connector operational: {c.name} READY ({c.min_instances}-{c.max_instances} instances)",
         f"VPC connector {c.name} not healthy"),
        ("cloudsql", f"Cloud SQL restored: {s.instance} RUNNABLE with <{params.thresholds.db_connect_s:g}s connections",
         f"Cloud SQL {s.instance} not healthy"),
        ("certificates", f"SSL certificates deployed: {domains} valid", f"SSL certificates not valid for {domains}"),
        ("load_balancer", f"Load balancer optimized: health checks and backends configured for {lb.startup_s}s startup",
         "Load balancer health checks/backends not configured for the startup time"),
        ("secrets", f"All secrets validated: {n}/{n} required secrets available",
         "Required secrets missing or disabled"),
        ("cloud_run", f"Cloud Run services ready: {', '.join(params.cloud_run.services)}", "Cloud Run services need attention"),
        ("golden_path", "Golden path: login -> WebSocket -> AI response with all agent events -> history saved",
         "Golden path broken"),
    ]


def build_summary(doc: dict[str, Any], params: Params, *, links: bool = True) -> str:
    phases = doc.get("phases", {})
    final_phase = "validate" if "validate" in phases else "diagnose"
    frag = phases.get(final_phase, {})
    results = frag.get("results", [])
    verdict = doc.get("verdict") or {}
    healthy = bool(verdict.get("healthy"))
    incident = params.handback.incident
    out: list[str] = []
    title = "Infrastructure Team Success Declaration" if healthy else "Infrastructure Status: remediation not complete"
    out.append(f"## {title} - {incident}")
    out.append("")
    t = doc.get("target", {})
    scale = t.get("time_scale", 1)
    where = f"`{t.get('name')}` ({t.get('mode')}{', scenario ' + t['scenario'] if t.get('scenario') else ''})"
    out.append(f"Target {where}, project `{params.project}`, results of phase **{final_phase}**"
               + (f", evidence gathered {frag['evidence_now']}" if frag.get("evidence_now") else "") + ".")
    if scale != 1:
        out.append(f"Sandbox time scale {scale:g}: one sandbox second stands for {1 / scale:g} real seconds; "
                   "thresholds were scaled accordingly.")
    out.append("")
    out.append(f"{'✅' if healthy else '❌'} {'INFRASTRUCTURE REMEDIATION COMPLETE' if healthy else 'INFRASTRUCTURE NOT YET HEALTHY'}")
    out.append(f"{'✅' if healthy else '❌'} Health check: `{verdict.get('line', 'no verdict recorded')}`")
    for component, ok_text, bad_text in _lines(params):
        rs = [r for r in results if r["component"] == component]
        if component == "golden_path" and not rs:
            continue  # only phase 3 walks the golden path
        good = bool(rs) and all(r["status"] in GOOD for r in rs)
        if good:
            out.append(f"✅ {ok_text} <sub>({len(rs)} checks: {_ids(rs)})</sub>")
        else:
            bad = [r for r in rs if r["status"] in ("FAIL", "ERROR")]
            unverified = [r for r in rs if r["status"] == "SKIP"]
            shown = bad or unverified
            why = "; ".join(f"`{r['id']}` {r['status']}: {r['reason'] or r['observed']}" for r in shown[:4]) or "no checks ran"
            more = f" (+{len(shown) - 4} more)" if len(shown) > 4 else ""
            skipped = f" ({len(unverified)} not verified)" if bad and unverified else ""
            out.append(f"❌ {bad_text}: {why}{more}{skipped}")
    out.append("")
    if healthy:
        out.append("🚀 Development team: ready for service deployment.")
    else:
        faults = frag.get("faults", [])
        if faults:
            out.append("### What is still broken")
            for f in faults:
                out.append(f"- **{f['component']}** ({f['severity']}): " + "; ".join(f["reasons"][:3])
                           + (f" — also explains {', '.join(f['symptoms'])}" if f.get("symptoms") else ""))
            out.append("")
        fixes = [r for r in results if r["status"] in ("FAIL", "ERROR") and r.get("remediation")]
        if fixes:
            out.append("<details><summary>Remediations</summary>\n")
            for r in fixes:
                out.append(f"- `{r['id']}`: {r['remediation']}")
            out.append("\n</details>")
            out.append("")
    out.extend(_impact(params, healthy))
    rem = phases.get("remediate")
    if rem:
        plan = rem.get("plan", {})
        out.append("")
        out.append(f"Remediation plan `{plan.get('id', '?')}`: {len(plan.get('actions', []))} actions, "
                   f"{'applied' if rem.get('applied') else 'dry run (nothing changed)'}.")
    from ..history import summary_lines

    if since := summary_lines(doc):
        out += [""] + since[:-1]
    if links:
        out.append("")
        out.append("Report files: [results.json](results.json) · [diagnosis](01_diagnose.html)"
                   + (" · [remediation](02_remediate.html)" if "remediate" in phases else "")
                   + (" · [validation & hand-back](03_validate_handback.html)" if "validate" in phases else "")
                   + " · [evidence](evidence/)")
    return "\n".join(out) + "\n"


def _ids(rs: list[dict]) -> str:
    ids = [r["id"] for r in rs]
    return ", ".join(ids[:3]) + (f" +{len(ids) - 3}" if len(ids) > 3 else "")


def _impact(params: Params, healthy: bool) -> list[str]:
    streams = params.handback.business_impact
    if not streams:
        return []
    total = sum(s.arr_usd for s in streams)
    state = "restored" if healthy else "at risk"
    out = [f"### Business impact: ${total / 1000:,.0f}K ARR {state}", "",
           "| stream | ARR | staging-dependent | status |", "|---|---:|---:|---|"]
    for s in streams:
        out.append(f"| {s.name} | ${s.arr_usd / 1000:,.0f}K | {s.staging_dependency_pct:g} % | "
                   f"{'✅ restored' if healthy else '❌ at risk'} |")
    dependent = sum(s.arr_usd * s.staging_dependency_pct / 100 for s in streams)
    out.append(f"| **total** | **${total / 1000:,.0f}K** | ${dependent / 1000:,.0f}K | "
               f"{'✅ restored' if healthy else '❌ at risk'} |")
    return out


def write_summary(report_dir: Path, doc: dict[str, Any], params: Params) -> Path:
    path = report_dir / "summary.md"
    atomic_write_text(path, build_summary(doc, params))
    return path
