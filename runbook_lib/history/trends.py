"""Trends per target from the catalog: verdict over time, a check-by-run status grid, key numbers.

``trend(catalog, target, last=N)`` gathers; ``as_html`` (reports/index.html), ``as_text``
(``runbook history``) and ``Trend.to_dict`` (``--json``) only render what it gathered. The grid
lists checks failing in the newest run first, then those failing most often, then the rest.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from runbook_lib.history.catalog import Catalog
from runbook_lib.history.runs import FAILING, RunRecord
from runbook_lib.history.svg import line_chart

LAST = 20
DB_CONNECT_LINE_S = 35.0   # the incident's threshold (thresholds.db_connect_s default); the run's own value wins

# (title, unit, [(check id pattern, measurement, series label)]): the numbers the incident is about.
PLOTS = (
    ("Database connect (real-world s)", "s", [("sql.connect", "p50_s", "p50"), ("sql.connect", "p95_s", "p95")]),
    ("Certificate days left", "", [("tls.*.expiry", "days_left", "{middle}")]),
    ("VPC connector instances", "", [("connector.saturation", "instances", "running"),
                                     ("connector.saturation", "peak", "peak"),
                                     ("connector.saturation", "max_instances", "max")]),
    ("Golden path (real-world s)", "s", [("golden.login", "login_s", "login"),
                                         ("golden.api_latency", "p50_s", "API p50"),
                                         ("golden.api_latency", "p95_s", "API p95")]),
)
LETTER = {"PASS": ".", "WARN": "w", "FAIL": "F", "ERROR": "E", "SKIP": "s", None: " "}
# one-letter CSS classes for the grid cells: 10,000 cells of a busy index stay small
CELL = {"PASS": "p", "WARN": "w", "FAIL": "f", "ERROR": "e", "SKIP": "s", None: "n"}


@dataclass
class Plot:
    title: str
    unit: str
    series: dict[str, list[float | None]]
    lines: dict[str, float] = field(default_factory=dict)


@dataclass
class Trend:
    target: str
    total_runs: int
    runs: list[RunRecord]                      # oldest first, the last N
    grid: list[tuple[str, list[str | None]]]   # (check id, status per run)
    plots: list[Plot]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "total_runs": self.total_runs,
            "runs": [{**r.brief(), "failing": sorted(r.failing)} for r in self.runs],
            "grid": [{"check": cid, "statuses": statuses} for cid, statuses in self.grid],
            "plots": [{"title": p.title, "unit": p.unit, "series": p.series, "lines": p.lines} for p in self.plots],
        }


def shown(r: RunRecord) -> str:
    return (r.verdict or "NO VERDICT") if r.state == "COMPLETE" else r.state


def trend(cat: Catalog, target: str, *, last: int = LAST, db_line_s: float = DB_CONNECT_LINE_S) -> Trend:
    runs = list(reversed(cat.with_checks(cat.runs(target, limit=last))))
    total = cat.db.execute("SELECT COUNT(*) FROM runs WHERE target = ?", (target,)).fetchone()[0]
    ids = list(dict.fromkeys(cid for r in reversed(runs) for cid in r.checks))
    rows = [(cid, [r.checks[cid].status if cid in r.checks else None for r in runs]) for cid in ids]
    newest = next((r for r in reversed(runs) if r.checks), None)

    def order(row: tuple[str, list[str | None]]):
        cid, statuses = row
        failing_now = bool(newest and cid in newest.checks and newest.checks[cid].failing)
        return (not failing_now, -sum(s in FAILING for s in statuses), cid)

    rows.sort(key=order)
    plots = []
    measured = sorted({cid for r in runs for cid, c in r.checks.items() if c.measurements})
    for title, unit, wanted in PLOTS:
        series: dict[str, list[float | None]] = {}
        for pattern, name, label in wanted:
            matching = [cid for cid in measured if fnmatchcase(cid, pattern)]
            for cid in matching:
                values = [r.checks[cid].measurements.get(name) if cid in r.checks else None for r in runs]
                if any(v is not None for v in values):
                    series[label.format(check=cid, middle=".".join(cid.split(".")[1:-1]) or cid)] = values
        if series:
            plots.append(Plot(title, unit, series, {f"{db_line_s:g} s threshold": db_line_s}
                              if title.startswith("Database") else {}))
    return Trend(target, total, runs, rows, plots)


def _label(r: RunRecord) -> str:
    return (r.started or r.dir)[5:16].replace("T", " ")


def as_html(t: Trend) -> str:
    if not t.runs:
        return ""
    labels = [_label(r) for r in t.runs]
    esc = html.escape
    strip = "".join(
        f'<td class="cell {esc(shown(r))}" title="{esc(r.dir)}: {esc(r.line)}">'
        f'<a href="{esc(r.dir)}/">{esc(shown(r)[:1])}</a></td>' for r in t.runs)
    head = "".join(f'<th class="rot" title="{esc(r.dir)}">{esc(lab)}</th>' for r, lab in zip(t.runs, labels, strict=True))
    grid = "".join(
        f"<tr><td><code>{esc(cid)}</code></td>"
        + "".join(f'<td class={CELL.get(s, "n")}>{LETTER.get(s, "?")}</td>' for s in statuses) + "</tr>"
        for cid, statuses in t.grid)
    charts = "".join(line_chart(p.title, labels, p.series, p.lines, p.unit) for p in t.plots)
    return (f'<section class="trend"><h2>Target <code>{esc(t.target)}</code>: last {len(t.runs)} of {t.total_runs} runs</h2>'
            f"<details open><summary>Verdict and check by run (failing first)</summary><table class=grid>"
            f"<tr><th>check</th>{head}</tr><tr><th>verdict</th>{strip}</tr>{grid}</table></details>"
            f'<div class="plots">{charts}</div></section>')


TREND_CSS = """.grid td.cell,.grid td.p,.grid td.w,.grid td.f,.grid td.e,.grid td.s,.grid td.n{width:1.4em;text-align:center;
padding:.1em;font-family:monospace;border:1px solid #fff}
.grid td.p,.cell.HEALTHY{background:#e6f4ea}.grid td.w{background:#fef7e0}
.grid td.f,.grid td.e,.cell.UNHEALTHY{background:#fce8e6;color:#c5221f}
.grid td.s,.grid td.n{background:#f1f3f4}.cell.INCOMPLETE,.cell.FAILED{background:#feefc3}
th.rot{font-size:.7em;font-weight:400;writing-mode:vertical-rl;padding:.2em}.plots svg{margin:.5em 1em .5em 0}
.notes{color:#b06000}"""


def as_text(t: Trend) -> str:
    if not t.runs:
        return f"Target {t.target}: no runs in the catalog\n"
    width = max([len(cid) for cid, _ in t.grid] + [8])
    out = [f"Target {t.target}: last {len(t.runs)} of {t.total_runs} runs (oldest -> newest)",
           f"{'verdict':<{width}}  " + " ".join(shown(r)[:1] for r in t.runs),
           f"{'':<{width}}  (H healthy, U unhealthy, I incomplete; checks: . pass, w warn, F fail, E error, s skip)"]
    for cid, statuses in t.grid:
        out.append(f"{cid:<{width}}  " + " ".join(LETTER.get(s, "?") for s in statuses))
    for p in t.plots:
        out.append(f"{p.title}:" + "".join(f"  [{k}: {v:g}]" for k, v in p.lines.items()))
        for name, values in p.series.items():
            out.append(f"  {name:<24} " + " ".join("-" if v is None else f"{v:.4g}" for v in values))
    out.append("runs: " + ", ".join(r.dir for r in t.runs))
    return "\n".join(out) + "\n"


def db_line_of(root: Path, run_dir: str | None) -> float:
    """The run's own database threshold (parameters.yaml), or the incident's 35 s."""
    if not run_dir:
        return DB_CONNECT_LINE_S
    import yaml

    try:
        doc = yaml.safe_load((root / run_dir / "parameters.yaml").read_text()) or {}
        return float(doc.get("thresholds", {}).get("db_connect_s", DB_CONNECT_LINE_S))
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):
        return DB_CONNECT_LINE_S
