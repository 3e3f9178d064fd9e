"""HTML fragments for the phase pages, in the order a person reads them.

Verdict banner (status, counts, time, target, time scale, links back), "what to do now" (root
causes with one full fix each), component sections (failing checks open, passing ones collapsed),
the plan as a list of actions, the audit log as before -> after. Statuses come from the results
model (``results.phase_status`` / ``component_status``); nothing here judges a check. Long values
wrap (``pre-wrap``); nothing is truncated.
"""
from __future__ import annotations

import html
import json
from typing import Any, Iterable

from runbook_lib.render.style import COLOURS, ICONS, PHASE_COLOURS, STATUS_WORDS
from runbook_lib.results import CheckResult, ComponentStatus, PhaseStatus, Status, component_status

CSS = """<style>
.rb{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:14px;line-height:1.45;max-width:1100px}
.rb pre,.rb code{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;border-radius:4px;font-size:12.5px}
.rb pre{padding:.4em .6em;margin:.2em 0}
.rb details{margin:.35em 0;border:1px solid #dadce0;border-radius:6px;padding:.3em .7em}
.rb summary{cursor:pointer;font-weight:600}
.rb .kv{display:grid;grid-template-columns:9em 1fr;gap:.15em .8em;margin:.3em 0}
.rb .kv>div:nth-child(odd){color:#5f6368}
.rb .banner{border-radius:8px;padding:.8em 1.1em;color:#fff}
.rb .banner h2{margin:.1em 0 .3em 0;color:#fff;font-size:1.5em}
.rb .banner a{color:#fff;text-decoration:underline}
.rb .muted{color:#5f6368}
.rb ol>li{margin:.5em 0}
</style>"""

PHASE_TITLES = {"diagnose": "Phase 1: Diagnosis", "remediate": "Phase 2: Remediation",
                "validate": "Phase 3: Validation & hand-back"}


def _e(text: Any) -> str:
    return html.escape(str(text))


def _pre(text: str) -> str:
    return f"<pre>{_e(text)}</pre>" if text else ""


def nav() -> str:
    """Links back to the run index and the summary (the report folder layout: see report.py)."""
    return ('<a href="../index.html">all runs</a> · <a href="summary.html">summary</a> · '
            '<a href="summary.md">summary.md</a> · <a href="results.json">results.json</a>')


def banner(status: PhaseStatus, *, target: dict[str, Any], evidence_now: str | None, counts: dict[str, int]) -> str:
    colour = PHASE_COLOURS.get(status.status, "#5f6368")
    title = PHASE_TITLES.get(status.phase, status.phase)
    facts = [f"target <b>{_e(target.get('name'))}</b> ({_e(target.get('mode'))}"
             + (f", scenario {_e(target['scenario'])}" if target.get("scenario") else "") + ")",
             f"project {_e(target.get('project'))}, region {_e(target.get('region'))}"]
    if evidence_now:
        facts.append(f"evidence gathered {_e(evidence_now[:19].replace('T', ' '))} UTC")
    scale = target.get("time_scale") or 1
    if scale != 1:
        facts.append(f"time scale {scale:g}: one sandbox second stands for {1 / scale:g} real seconds; "
                     "every duration shown is in real-world seconds")
    checks = " · ".join(f"{ICONS[s]} {n} {STATUS_WORDS[s]}" for s, n in counts.items() if n)
    return (f'{CSS}<div class="rb"><div class="banner" style="background:{colour}">'
            f'<div style="font-size:.9em">{title}</div><h2>{_e(status.status)}</h2>'
            f'<div>{_e(_detail(status))}</div>'
            + (f'<div style="margin-top:.3em">checks: {checks}</div>' if checks else "")
            + f'<div style="margin-top:.3em;font-size:.9em">{" · ".join(facts)}</div>'
            f'<div style="margin-top:.4em;font-size:.9em">{nav()}</div></div></div>')


def _detail(status: PhaseStatus) -> str:
    """The phase line without its "phase: STATUS" head (the banner shows those in large)."""
    rest = status.line.split(": ", 1)[-1]
    for head in (status.status + ", ", status.status + ": ", status.status):
        if rest.startswith(head):
            return rest[len(head):]
    return rest


def todo(faults: list[dict], fixes: dict[str, list[str]], records: dict[str, dict], *, healthy: bool,
         open_items: Iterable[Any] = ()) -> str:
    """Root causes, each with its full fix (the plan's actions for it), in the order to do them."""
    items = []
    for f in faults:
        first = records.get(f["checks"][0], {})
        why = first.get("reason") or "; ".join(f.get("reasons", [])[:1])
        sym = (f'<div class="muted">also explains: {_e(", ".join(f["symptoms"]))}</div>' if f.get("symptoms") else "")
        fx = "".join(_pre(x) for x in fixes.get(f["component"], [])) or '<div class="muted">no automatic fix: see the checks below</div>'
        items.append(f'<li><b>{_e(f["component"])}</b> ({_e(f["severity"])}): {_e(why)}'
                     f'<div class="muted">failing checks: {_e(", ".join(f["checks"]))}</div>{sym}{fx}</li>')
    if items:
        body = f"<ol>{''.join(items)}</ol>"
    elif healthy:
        body = "<p>✅ Nothing blocking: no check at critical or high severity fails.</p>"
    else:
        body = "<p>No root cause could be named; see the failing checks below.</p>"
    extra = [f"<li>{_e(i.kind)}: <code>{_e(i.id)}</code> {_e(i.text)}</li>" for i in open_items]
    if extra:
        body += f"<p>Open items ({len(extra)}):</p><ul>{''.join(extra)}</ul>"
    return f'{CSS}<div class="rb">{body}</div>'


def _check(r: CheckResult, *, open_: bool) -> str:
    rows = [("status", f"{ICONS[r.status.value]} {r.status.value} ({r.severity.value})"), ("observed", r.observed),
            ("expected", r.expected), ("why", r.reason)]
    kv = "".join(f"<div>{k}</div><div>{_e(v)}</div>" for k, v in rows if v)
    fix = (f"<div>fix</div><div>{_pre(r.remediation.replace(chr(96), ''))}</div>"  # Markdown backticks: plain here
           if r.remediation and r.status is not Status.PASS else "")
    ev = f"<div>evidence</div><div>{_e(', '.join(r.evidence))}</div>" if r.evidence else ""
    return (f'<details{" open" if open_ else ""} style="background:{COLOURS[r.status.value]}">'
            f'<summary>{ICONS[r.status.value]} <code>{_e(r.id)}</code> {_e(r.title)}</summary>'
            f'<div class="kv">{kv}{fix}{ev}</div></details>')


def component_section(results: Iterable[CheckResult], component: str) -> str:
    rs = [r for r in results if r.component == component]
    if not rs:
        return f'{CSS}<div class="rb"><p class="muted">No checks ran for {_e(component)} in this phase.</p></div>'
    st: ComponentStatus = component_status(component, rs)
    head = (f'<p><b>{ICONS[st.status.value]} {_e(component)}: {STATUS_WORDS[st.status.value]}</b> '
            f'<span class="muted">({st.passed} of {st.checks - len(st.skipped)} checks pass'
            + (f", {len(st.skipped)} skipped" if st.skipped else "") + ")</span></p>")
    problems = [r for r in rs if r.status in (Status.FAIL, Status.ERROR, Status.WARN)]
    passing = [r for r in rs if r.status is Status.PASS]
    skipped = [r for r in rs if r.status is Status.SKIP]
    body = "".join(_check(r, open_=True) for r in problems)
    body += "".join(_check(r, open_=False) for r in skipped)
    if passing:
        inner = "".join(_check(r, open_=False) for r in passing)
        body += f"<details><summary>✅ {len(passing)} passing checks</summary>{inner}</details>"
    return f'{CSS}<div class="rb">{head}{body}</div>'


def plan_view(plan) -> str:
    """The plan as an ordered list of actions: what, fixes, gcloud, API request, risk, rollback, verified by."""
    if not plan.actions:
        return f'{CSS}<div class="rb"><p>No actions: nothing in the playbook applies to the failing checks.</p></div>'
    items = []
    for i, a in enumerate(plan.actions, 1):
        rows = [("fixes", _e(", ".join(a.answers))), ("kind", "manual (a person does it)" if a.manual else "automatic")]
        if a.manual:
            rows.append(("instructions", _pre(a.instructions)))
        else:
            rows.append(("gcloud", "".join(_pre(c.gcloud) for c in a.calls)))
            rows.append(("API request", "".join(_pre(_request(c)) for c in a.calls)))
        rows += [("risk", _e(a.risk)), ("rollback", _pre(a.rollback) or "—"),
                 ("verified by", _e(", ".join(a.verify)) or "—"),
                 ("order", f"step {i} of {len(plan.actions)}" + (f"; after {_e(', '.join(a.depends_on))}"
                                                                  if getattr(a, "depends_on", None) else ""))]
        kv = "".join(f"<div>{k}</div><div>{v}</div>" for k, v in rows)
        items.append(f'<li><b>{_e(a.title)}</b> <code>{_e(a.id)}</code><div class="kv">{kv}</div></li>')
    skipped = (f'<p class="muted">Left out by remediation.skip: {_e(", ".join(plan.skipped))}</p>' if plan.skipped else "")
    return (f'{CSS}<div class="rb"><p>Plan <code>{_e(plan.id)}</code>: {len(plan.actions)} actions '
            f'({len(plan.automatic)} automatic, {len(plan.manual)} manual), applied in this order.</p>'
            f'<ol>{"".join(items)}</ol>{skipped}</div>')


def _request(call) -> str:
    q = "&".join(f"{k}={v}" for k, v in sorted((call.query or {}).items()))
    body = json.dumps(call.body, sort_keys=True, indent=1) if call.body else ""
    return f"{call.method} {call.api}:{call.path}" + (f"?{q}" if q else "") + (f"\n{body}" if body else "")


def changes(before: Any, after: Any, prefix: str = "") -> list[str]:
    """'field: old -> new' for every leaf that differs (lists compared whole)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for k in sorted(set(before) | set(after)):
            if k in ("etag", "fingerprint", "updateTime", "selfLinkWithId"):
                continue
            out += changes(before.get(k), after.get(k), f"{prefix}{k}.")
        return out
    if before != after:
        fmt = lambda v: "(absent)" if v is None else json.dumps(v, sort_keys=True)
        return [f"{prefix.rstrip('.')}: {fmt(before)} -> {fmt(after)}"]
    return []


def audit_view(report) -> str:
    if not report.audit:
        return f'{CSS}<div class="rb"><p>{_e(report.message)}</p></div>'
    items = []
    for e in report.audit:
        diff = []
        for b, a in zip(e.before or [None] * len(e.after), e.after, strict=False):
            if isinstance(b, dict) and b.get("absent"):  # a read that found nothing: the action created it
                diff.append("(did not exist) -> created")
                b = {}
            diff += changes(b, a)
        rows = [("outcome", _e(e.outcome)), ("at", _e(e.at))]
        if e.requests:
            rows.append(("requests", _pre("\n".join(e.requests))))
        if diff:
            rows.append(("before -> after", _pre("\n".join(diff))))
        elif e.outcome == "unchanged":
            rows.append(("before -> after", "already in the wanted state: nothing sent"))
        if e.error:
            rows.append(("error", _pre(e.error)))
        if e.rollback and e.outcome == "applied":
            rows.append(("rollback", _pre(e.rollback)))
        kv = "".join(f"<div>{k}</div><div>{v}</div>" for k, v in rows)
        items.append(f"<li><code>{_e(e.action)}</code><div class=\"kv\">{kv}</div></li>")
    return f'{CSS}<div class="rb"><p>{_e(report.message)}</p><ol>{"".join(items)}</ol></div>'


def evidence_links(phase: str, keys: Iterable[str]) -> str:
    keys = sorted(keys)
    return (f'{CSS}<div class="rb"><p>Raw, redacted evidence of this phase: '
            f'<a href="evidence/{_e(phase)}/">evidence/{_e(phase)}/</a> '
            f'(<a href="evidence/{_e(phase)}/manifest.json">manifest.json</a>); {len(keys)} records.</p>'
            f'<details><summary>Evidence keys</summary><pre>{_e(chr(10).join(keys))}</pre></details></div>')


def verification(results: Iterable[CheckResult]) -> str:
    """Every component of a (sub)set of results, one section each."""
    rs = list(results)
    if not rs:
        return f'{CSS}<div class="rb"><p>Nothing was changed, so nothing was re-verified here; phase 3 re-checks everything.</p></div>'
    comps = list(dict.fromkeys(r.component for r in rs))
    return "".join(component_section(rs, c) for c in comps)
