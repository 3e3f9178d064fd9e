"""Result tables for notebooks and HTML reports."""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from runbook_lib.render.style import COLOURS, ICONS
from runbook_lib.results import CheckResult, ResultSet, Status


def results_frame(results: ResultSet | Iterable[CheckResult]) -> pd.DataFrame:
    rs = results if isinstance(results, ResultSet) else ResultSet(results=list(results))
    df = rs.to_dataframe()
    if not df.empty:
        df.insert(0, "", df["status"].map(lambda s: ICONS.get(s, "")))
    return df


def styled(results: ResultSet | Iterable[CheckResult], *, columns: list[str] | None = None):
    """A colour-coded table: one row per check, status first, then what to do about it."""
    df = results_frame(results)
    if columns:
        df = df[["", *columns]] if "" in df.columns else df[columns]
    if df.empty:
        return df
    return (
        df.style.hide(axis="index")
        .apply(lambda row: [f"background-color: {COLOURS.get(row['status'], '')}"] * len(row), axis=1)
        .set_properties(**{"text-align": "left", "white-space": "pre-wrap", "font-size": "0.9em"})
    )


def show(results: ResultSet | Iterable[CheckResult], component: str | None = None, *,
         problems_only: bool = False) -> None:
    """Display the results (of one component, or only the problems) with reasons and remediations."""
    from IPython.display import display

    rs = results if isinstance(results, ResultSet) else ResultSet(results=list(results))
    if component:
        rs = rs.for_component(component)
    if problems_only:
        if not rs.problems():
            print(f"all {len(rs)} checks pass")
            return
        rs = ResultSet(results=rs.problems())
    if not len(rs):
        print(f"no checks ran for {component or 'this phase'}")
        return
    display(styled(rs, columns=["id", "status", "severity", "observed", "expected", "reason", "remediation"]))


def failures_text(results: ResultSet) -> str:
    """Plain-text list of what is wrong and what to do, for terminals and cron mail."""
    lines = []
    for r in results:
        if r.status in (Status.FAIL, Status.ERROR, Status.WARN):
            lines.append(f"{ICONS[r.status.value]} {r.status.value:5} {r.id}: {r.reason or r.observed}")
            if r.remediation:
                lines.append(f"      fix: {r.remediation}")
    return "\n".join(lines)


def served_certificates(ev) -> pd.DataFrame:
    """What each domain's TLS endpoint actually presented (from the TLS probes)."""
    rows = []
    for key, samples in ev.probes.items():
        if not key.startswith("tls."):
            continue
        r = samples[0]
        cert = r.info.get("cert") or {}
        rows.append({
            "domain": key.removeprefix("tls."),
            "handshake": "ok" if r.ok else (r.reason.value if r.reason else "failed"),
            "names on certificate": ", ".join(cert.get("sans", [])) or cert.get("subject", ""),
            "issuer": cert.get("issuer", ""),
            "not after": cert.get("not_after", ""),
            "detail": r.detail,
        })
    return pd.DataFrame(rows)


def probe_frame(samples) -> pd.DataFrame:
    """Probe samples as rows: outcome, reason, every phase in milliseconds, detail."""
    rows = []
    for r in samples:
        rows.append({"target": r.target, "ok": r.ok, "reason": r.reason.value if r.reason else "",
                     **{f"{k} ms": round(v * 1000, 1) for k, v in r.phases.items()},
                     "total ms": round(r.total_s * 1000, 1), "detail": r.detail})
    return pd.DataFrame(rows)
