"""summary.md: the hand-back posted on the tracking issue (and the CI job page).

It renders the run status the results model decided (``results.run_status``): it never judges a
check itself. Written for GitHub comments, job summaries and plain Markdown viewers alike: every
line is a list item or a paragraph of its own (no reliance on single newlines), details sit in
``<details>`` blocks with a blank line after ``<summary>``, and it stays far below GitHub's
65,536-character comment limit.

The healthy case keeps the incident's success-declaration shape (one line per component, the
health check line, the business value); each ✅ is a component whose checks all passed in this
run. Unhealthy, it is short: the root causes, each with one fix (the plan's actions for it), and
everything else collapsed.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runbook_lib.evidence import atomic_write_text
from runbook_lib.params import Params
from runbook_lib.render.style import ICONS, RUN_ICONS, STATUS_WORDS
from runbook_lib.results import ComponentStatus, RunStatus, Status, run_status

MAX_CHARS = 60_000          # GitHub refuses comment bodies over 65,536 characters
PAGES = (("diagnose", "01_diagnose.html", "diagnosis"), ("remediate", "02_remediate.html", "remediation"),
         ("validate", "03_validate_handback.html", "validation & hand-back"))


def _success_texts(params: Params, records: dict[str, dict] | None = None) -> dict[str, tuple[str, str]]:
    """component -> (title, what a pass proves), in the incident template's order. The load-balancer
    line says what was verified for the backends this run found (serverless NEGs or instance groups)."""
    c, s = params.connector, params.cloudsql
    domains = f"{params.domains.frontend}, {params.domains.api}"
    n = len(params.secrets.required)
    return {
        "connector": ("VPC connector", f"VPC connector operational: {c.name} READY ({c.min_instances}-{c.max_instances} instances)"),
        "cloudsql": ("Cloud SQL", f"Cloud SQL restored: {s.instance} RUNNABLE with <{params.thresholds.db_connect_s:g}s connections"),
        "certificates": ("SSL certificates", f"SSL certificates deployed: {domains} valid"),
        "load_balancer": ("Load balancer", _lb_text(params, records or {})),
        "secrets": ("Secret Manager", f"All secrets validated: {n}/{n} required secrets available"),
        "cloud_run": ("Cloud Run services", f"Cloud Run services ready: {', '.join(params.cloud_run.services)}"),
        "golden_path": ("Golden path", "Golden path: login -> WebSocket -> AI response with all agent events -> history saved"),
        "clock": ("Local clock", "Local clock agrees with Google's (expiry dates judged correctly)"),
    }


def _lb_text(params: Params, records: dict[str, dict]) -> str:
    if "lb.serverless" in records:
        return ("Load balancer: serverless NEG backends verified (each names an existing Cloud Run service, nothing "
                "Google refuses attached); request timeout and startup probe verified per Cloud Run service")
    return (f"Load balancer: health checks tolerate a {params.load_balancer.startup_s}s startup, backend timeout "
            f">= {params.load_balancer.backend_timeout_s}s")


def status_of(doc: dict[str, Any]) -> RunStatus:
    """The run status recorded in results.json (or computed by the results model from its phases)."""
    if doc.get("status"):
        return RunStatus.model_validate(doc["status"])
    return run_status(doc.get("phases", {}))


def build_summary(doc: dict[str, Any], params: Params, *, links: bool = True, base_url: str | None = None) -> str:
    st = status_of(doc)
    phases = doc.get("phases", {})
    final = phases.get(st.final_phase or "", {})
    records = {r["id"]: r for r in final.get("results", [])}
    incident = params.handback.incident
    out: list[str] = []
    head = st.title if st.status in ("COMPLETE", "NO VERDICT") else f"{st.title}: {st.status}"
    out += [f"## {RUN_ICONS[st.status]} {head} - {incident}", ""]
    out += [_target_line(doc, params, st, final), ""]

    lines = [f"{RUN_ICONS[st.status]} **{st.headline}**"]
    verdict = final.get("verdict") or {}
    lines.append(f"{'✅' if st.healthy else '❌'} Health check: `{verdict.get('line', 'no verdict recorded')}`")
    if st.actions and st.actions.planned + st.actions.skipped:
        lines.append(f"{'🛠️'} Remediation: {_counts_text(st)}")
    out += [f"- {line}" for line in lines] + [""]

    comps = st.phases[st.final_phase].components if st.final_phase else []
    if comps:
        out += ["### Components", ""]
        texts = _success_texts(params, records)
        for c in _ordered(comps, texts):
            out.append("- " + _component_line(c, texts.get(c.component), records, brief=st.status == "UNHEALTHY"))
        out.append("")

    if st.status == "UNHEALTHY":
        audit = ((phases.get("remediate") or {}).get("apply_report") or {}).get("audit", [])
        done = {e["action"] for e in audit if e.get("outcome") in ("applied", "unchanged")}
        out += _root_causes(final, _plan_of(phases), records, done)
    if st.open_items and st.status != "UNHEALTHY":  # unhealthy: the root causes say what to do
        out += [f"### Open items ({len(st.open_items)})", ""]
        for i, item in enumerate(st.open_items, 1):
            fixes = f" (fixes {', '.join(f'`{c}`' for c in item.checks)})" if item.checks and item.checks != [item.id] else ""
            out.append(f"{i}. **{_kind_word(item.kind)}** `{item.id}`: {item.text}{fixes}" + (f"<br>\n   How: {_how(('manual: ' if item.kind == 'manual' else '') + item.how).removeprefix('Manual: ')}"
                  if item.how else ""))
        out.append("")
    if st.skipped_checks:
        out += [f"<details><summary>Skipped checks ({len(st.skipped_checks)}): not verified by this run, with why</summary>", ""]
        out += [f"- ⏭️ `{k}`: {v}" for k, v in st.skipped_checks.items()] + ["", "</details>", ""]

    failing = [r for r in final.get("results", []) if r["status"] in ("FAIL", "ERROR", "WARN")]
    if failing and st.status == "UNHEALTHY":
        out += [f"<details><summary>All {len(failing)} failing or warning checks</summary>", ""]
        out += [f"- {ICONS[r['status']]} `{r['id']}` ({r['severity']}): {r['reason'] or r['observed']}" for r in failing]
        out += ["", "</details>", ""]
    plan = _plan_of(phases)
    if plan and plan.get("actions") and st.status == "HEALTHY":
        out += _plan_details(plan, phases.get("remediate"))

    if st.status == "COMPLETE" or (st.healthy and st.kind == "validation"):
        out += [("🚀 Development team: ready for service deployment." if st.status == "COMPLETE"
                 else "🚀 Development team: the environment is healthy; the open items above remain."), ""]
    out += _impact(params, bool(st.healthy) and st.kind != "diagnosis", short=st.status == "UNHEALTHY")
    from runbook_lib.history import summary_lines

    if since := summary_lines(doc):
        out += [""] + since[:-1]
    if links:
        out += ["", _links(phases, base_url)]
    text = "\n".join(out).rstrip() + "\n"
    if base_url:
        text = absolute_links(text, base_url)
    if len(text) > MAX_CHARS:  # never expected (the long parts are collapsed and bounded); stay postable anyway
        text = text[:MAX_CHARS].rsplit("\n", 1)[0] + "\n\n_(truncated to fit a GitHub comment: see the full report)_\n"
    return text


def _target_line(doc: dict, params: Params, st: RunStatus, final: dict) -> str:
    t = doc.get("target", {})
    bits = [f"Target `{t.get('name')}` ({t.get('mode')}{', scenario ' + t['scenario'] if t.get('scenario') else ''})",
            f"project `{params.project}`", f"verdict from phase **{st.final_phase or 'none'}**"]
    if final.get("evidence_now"):
        bits.append(f"evidence gathered {final['evidence_now'][:19].replace('T', ' ')} UTC")
    scale = t.get("time_scale", 1) or 1
    if scale != 1:
        bits.append(f"time scale {scale:g} (one sandbox second stands for {1 / scale:g} real seconds; thresholds scaled)")
    return " · ".join(bits)


def _counts_text(st: RunStatus) -> str:
    n = st.actions
    assert n is not None
    if n.mode == "dry-run":
        return f"dry run, nothing changed: {n.automatic} automatic and {n.manual} manual actions planned"
    parts = [f"{n.applied} applied", f"{n.unchanged} already done", f"{n.failed} failed",
             f"{n.manual_pending} manual pending", f"{n.skipped} skipped"]
    if n.not_applied:
        parts.insert(3, f"{n.not_applied} not applied")
    return f"{n.planned} actions: " + ", ".join(parts)


def _ordered(comps: list[ComponentStatus], texts: dict) -> list[ComponentStatus]:
    order = list(texts)
    return sorted(comps, key=lambda c: order.index(c.component) if c.component in order else len(order))


def _component_line(c: ComponentStatus, text: tuple[str, str] | None, records: dict[str, dict], *,
                    brief: bool = False) -> str:
    title, proves = text or (c.component.replace("_", " "), f"{c.component.replace('_', ' ')}: all checks pass")
    ran = c.checks - len(c.skipped)
    if brief and c.status is not Status.PASS:  # unhealthy: the root causes below say why and what to do
        return (f"{ICONS[c.status.value]} {title}: {STATUS_WORDS[c.status.value]} ({c.passed}/{ran} checks pass"
                + (f", {len(c.skipped)} skipped" if c.skipped else "") + ")")
    skipped = ""
    if c.skipped:
        skipped = f"; {len(c.skipped)} skipped: " + "; ".join(f"`{k}` {v}" for k, v in list(c.skipped.items())[:2])
    if c.status is Status.PASS:
        return f"✅ {proves} ({c.passed}/{ran} checks pass{skipped})"
    if c.status is Status.SKIP:
        return f"⏭️ {title}: skipped, not verified ({skipped.lstrip('; ')})"
    shown = [records[i] for i in c.problems if i in records]
    why = "; ".join(f"`{r['id']}` {r['reason'] or r['observed']}" for r in shown[:2])
    more = f" (+{len(shown) - 2} more)" if len(shown) > 2 else ""
    return f"{ICONS[c.status.value]} {title}: {STATUS_WORDS[c.status.value]}, {c.passed}/{ran} checks pass: {why}{more}{skipped}"


def _plan_of(phases: dict) -> dict | None:
    for p in ("remediate", "diagnose"):
        if (phases.get(p) or {}).get("plan"):
            return phases[p]["plan"]
    return None


def fixes_for(checks: list[str], plan: dict | None, records: dict[str, dict], done: set[str] = frozenset()) -> list[str]:
    """One fix for a root cause: the plan's actions that answer its checks (and were not already
    applied: those did not fix it), else the first failing check's own remediation."""
    actions = [a for a in (plan or {}).get("actions", [])
               if set(a.get("answers", [])) & set(checks) and a["id"] not in done]
    if actions:
        return [_action_fix(a) for a in actions]
    first = next((records[c]["remediation"] for c in checks if records.get(c, {}).get("remediation")), "")
    return [first] if first else []


def _action_fix(a: dict) -> str:
    if a.get("kind") == "manual":
        return f"manual: {a.get('instructions') or a.get('title')}"
    return " && ".join(c["gcloud"] for c in a.get("calls", []) if c.get("gcloud")) or a.get("title", a["id"])


def _root_causes(final: dict, plan: dict | None, records: dict[str, dict], done: set[str]) -> list[str]:
    faults = final.get("faults", [])
    if not faults:
        return []
    out = ["### Root causes and what to do now", ""]
    for i, f in enumerate(faults, 1):
        why = records.get(f["checks"][0], {}).get("reason") or (f["reasons"][0] if f["reasons"] else "")
        extra = f" (+{len(f['checks']) - 1} more failing checks)" if len(f["checks"]) > 1 else ""
        out.append(f"{i}. **{f['component']}** ({f['severity']}): {why}{extra}"
                   + (f"; also explains {len(f['symptoms'])} symptoms elsewhere" if f.get("symptoms") else ""))
        for fix in fixes_for(f["checks"], plan, records, done):
            out.append(f"   - Fix: {_how(fix)}")
    return out + [""]


def _plan_details(plan: dict, rem: dict | None) -> list[str]:
    audit = {e["action"]: e for e in ((rem or {}).get("apply_report") or {}).get("audit", [])}
    out = [f"<details><summary>Remediation plan <code>{plan.get('id', '?')}</code>: {len(plan['actions'])} actions</summary>", ""]
    for i, a in enumerate(plan["actions"], 1):
        outcome = audit.get(a["id"], {}).get("outcome", "planned" if a.get("kind") != "manual" else "manual")
        out.append(f"{i}. `{a['id']}` ({outcome}): {a.get('title', '')}; fixes {', '.join(f'`{c}`' for c in a.get('answers', []))}"
                   + f"<br>\n   {_how(_action_fix(a))}")
    return out + ["", "</details>", ""]


def _kind_word(kind: str) -> str:
    return {"manual": "manual pending", "skipped": "skipped", "failed": "failed", "not-applied": "not applied",
            "warning": "warning", "failing": "failing"}.get(kind, kind)


def _how(text: str) -> str:
    """A command as inline code; a person's instructions as text."""
    if text.startswith("manual: "):
        return "Manual: " + text.removeprefix("manual: ")
    return _code(text) if text.startswith(("gcloud", "printf", "kubectl", "curl")) else text


def _code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _impact(params: Params, restored: bool, *, short: bool) -> list[str]:
    streams = params.handback.business_impact
    if not streams:
        return []
    total = sum(s.arr_usd for s in streams)
    dependent = sum(s.arr_usd * s.staging_dependency_pct / 100 for s in streams)
    state = "restored" if restored else "at risk"
    if short:
        return [f"**Business impact:** ${total / 1000:,.0f}K ARR at risk (${dependent / 1000:,.0f}K staging-dependent)."]
    mark = "✅ restored" if restored else "❌ at risk"
    out = [f"### Business impact: ${total / 1000:,.0f}K ARR {state}", "",
           "| stream | ARR | staging-dependent | status |", "|---|---:|---:|---|"]
    for s in streams:
        out.append(f"| {s.name} | ${s.arr_usd / 1000:,.0f}K | {s.staging_dependency_pct:g} % | {mark} |")
    out.append(f"| **total** | **${total / 1000:,.0f}K** | ${dependent / 1000:,.0f}K | {mark} |")
    return out


def _links(phases: dict, base_url: str | None) -> str:
    pages = [f"[{label}]({page})" for phase, page, label in PAGES if phase in phases]
    return "**Report:** " + " · ".join(pages + ["[summary](summary.html)", "[results.json](results.json)",
                                                  "[evidence](evidence/)", "[all runs](../index.html)"])


_LINK = re.compile(r"(\]\()(?!https?://|#|mailto:)([^)\s]+)(\))")


def absolute_links(text: str, base_url: str) -> str:
    """Relative report links made absolute against the published report folder (``base_url``)."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    from urllib.parse import urljoin

    return _LINK.sub(lambda m: m.group(1) + urljoin(base, m.group(2)) + m.group(3), text)


KEY_PLOTS = ("validate-db_latency.png", "diagnose-db_latency.png")


def for_comment(summary: str, report_url: str | None, run_dir: Path) -> str:
    """The summary as posted on the issue: when the report is published as a folder (a URL ending
    in "/", e.g. GitHub Pages), links become absolute and the key plot is shown inline."""
    if not report_url or not report_url.endswith("/"):
        return summary
    text = absolute_links(summary, report_url)
    plot = next((p for p in KEY_PLOTS if (run_dir / "plots" / p).exists()), None)
    if plot:
        text = text.rstrip("\n") + f"\n\n![database connections against the threshold]({report_url}plots/{plot})\n"
    return text


def write_summary(report_dir: Path, doc: dict[str, Any], params: Params) -> Path:
    path = report_dir / "summary.md"
    text = build_summary(doc, params)
    atomic_write_text(path, text)
    from runbook_lib.render.html import markdown_page

    atomic_write_text(report_dir / "summary.html", markdown_page(text, title=f"summary: {report_dir.name}"))
    return path
