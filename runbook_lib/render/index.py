"""reports/index.html: every run, newest first, with its verdict. Rebuilt from the folders."""
from __future__ import annotations

import html
import json
from pathlib import Path

from ..evidence import atomic_write_text
from ..report import read_status

CSS = """body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.COMPLETE,.HEALTHY{color:#137333;font-weight:600}.UNHEALTHY{color:#c5221f;font-weight:600}
.INCOMPLETE,.FAILED{color:#b06000;font-weight:600}"""


def runs(root: Path) -> list[dict]:
    out = []
    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and (p / "status.json").exists()),
                    key=lambda p: p.name, reverse=True):
        try:
            out.append(_run_row(d))
        except (AttributeError, KeyError, TypeError, ValueError, OSError) as exc:
            # one corrupt old folder must not break the index (and so every later run): note it, go on
            out.append({"dir": d.name, "state": "CORRUPT", "shown": "CORRUPT", "started": "", "phases": [], "files": [],
                        "line": f"skipped: unreadable status.json/results.json ({type(exc).__name__})"})
    return out


def _run_row(d: Path) -> dict:
    status = read_status(d)
    verdict, decided = None, None
    try:
        doc = json.loads((d / "results.json").read_text())
        verdict, decided = doc.get("verdict"), doc.get("status")
    except (OSError, ValueError):
        pass
    state = status.get("state", "INCOMPLETE")
    # the run status the results model recorded (COMPLETE / HEALTHY with open items / UNHEALTHY)
    shown = ((decided or {}).get("status") or (verdict or {}).get("status", state)) if state == "COMPLETE" else state
    line = str((verdict or {}).get("line", status.get("reason", "")))
    if decided and state == "COMPLETE" and decided.get("headline"):
        line = f"{decided['headline']}; {line}"
    return {"dir": d.name, "state": state, "shown": str(shown), "line": line,
            "started": str(status.get("started_at", "")), "phases": [str(p) for p in status.get("phases_done", [])],
            "files": sorted(p.name for p in d.glob("*.html"))}


def write_index(root: Path) -> Path:
    rows = []
    for r in runs(root):
        links = " ".join(f'<a href="{html.escape(r["dir"])}/{html.escape(f)}">{html.escape(f)}</a>' for f in r["files"])
        rows.append(
            f'<tr><td><a href="{html.escape(r["dir"])}/">{html.escape(r["dir"])}</a></td>'
            f'<td>{html.escape(r["started"])}</td><td class="{html.escape(r["shown"])}">{html.escape(r["shown"])}</td>'
            f'<td>{html.escape(r["line"])}</td><td>{", ".join(map(html.escape, r["phases"]))}</td><td>{links}</td></tr>'
        )
    page = (f"<!doctype html><meta charset=utf-8><title>runbook reports</title><style>{CSS}</style>"
            "<h1>Runbook reports</h1><table><tr><th>run</th><th>started (UTC)</th><th>status</th>"
            "<th>verdict</th><th>phases</th><th>pages</th></tr>" + "".join(rows) + "</table>\n")
    path = root / "index.html"
    atomic_write_text(path, page)
    return path
