"""reports/index.html: trends per target, then every run, newest first, with its verdict.

Rebuilt from the folders through the run catalog (runbook_lib.history)."""
from __future__ import annotations

import html
from pathlib import Path

from runbook_lib.evidence import atomic_write_text

CSS = """body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.COMPLETE,.HEALTHY{color:#137333;font-weight:600}.UNHEALTHY{color:#c5221f;font-weight:600}
.INCOMPLETE,.FAILED{color:#b06000;font-weight:600}"""


def runs(root: Path, records=None) -> list[dict]:
    """Every run, newest first, from the run catalog (runbook_lib.history: it re-reads only new or
    changed folders, so the index stays fast with thousands of runs)."""
    if records is None:
        from runbook_lib.history import index_sections

        records = index_sections(root)[0]
    out = []
    for r in records:
        # the run status the results model recorded (COMPLETE / HEALTHY with open items / UNHEALTHY)
        shown = (r.status or r.verdict or r.state) if r.state == "COMPLETE" else r.state
        out.append({"dir": r.dir, "state": r.state, "shown": shown, "line": r.line,
                    "started": r.started, "phases": r.phases, "files": r.pages})
    return out


def write_index(root: Path) -> Path:
    from runbook_lib.history import index_sections
    from runbook_lib.history.trends import TREND_CSS

    records, trends, notes = index_sections(root)
    rows = []
    for r in runs(root, records):
        links = " ".join(f'<a href="{html.escape(r["dir"])}/{html.escape(f)}">{html.escape(f)}</a>' for f in r["files"])
        rows.append(
            f'<tr><td><a href="{html.escape(r["dir"])}/">{html.escape(r["dir"])}</a></td>'
            f'<td>{html.escape(r["started"])}</td><td class="{html.escape(r["shown"])}">{html.escape(r["shown"])}</td>'
            f'<td>{html.escape(r["line"])}</td><td>{", ".join(map(html.escape, r["phases"]))}</td><td>{links}</td></tr>'
        )
    skipped = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    page = (f"<!doctype html><meta charset=utf-8><title>runbook reports</title><style>{CSS}\n{TREND_CSS}</style>"
            "<h1>Runbook reports</h1>" + trends
            + (f'<div class="notes"><p>Notes:</p><ul>{skipped}</ul></div>' if notes else "")
            + "<h2>All runs</h2><table><tr><th>run</th><th>started (UTC)</th><th>status</th>"
            "<th>verdict</th><th>phases</th><th>pages</th></tr>" + "".join(rows) + "</table>\n")
    path = root / "index.html"
    atomic_write_text(path, page)
    return path
