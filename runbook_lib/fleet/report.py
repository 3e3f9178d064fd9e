"""The fleet roll-up: fleet.json, fleet.md and fleet.html, one row per target.

Every row is read from the target's own run folder (results.json, status.json) as that run
wrote it: the verdict, the root causes (the faults of the phase whose verdict results.json
reports) and, when the history is there, the ``since_last_run`` block. Nothing is re-evaluated
here; a target with no folder or no verdict is FAILED with the reason.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from runbook_lib.evidence import atomic_write_json, atomic_write_text
from runbook_lib.fleet.execute import marker_path
from runbook_lib.fleet.manifest import Fleet
from runbook_lib.util import clock

SCHEMA_VERSION = 1
EXIT = {"HEALTHY": 0, "UNHEALTHY": 1, "FAILED": 2}


def row(fdir: Path, target_name: str, index: int) -> dict[str, Any]:
    """One target's row, from its marker and its run folder's results.json."""
    base: dict[str, Any] = {"name": target_name, "index": index}
    marker = _read_json(marker_path(fdir, target_name))
    if marker is None:
        return {**base, "status": "FAILED", "state": "NOT RUN", "verdict": None, "verdict_line": "",
                "root_causes": [], "run_dir": None, "exit_code": None,
                "error": "no marker: the target did not run (or its task died before recording)"}
    base.update(exit_code=marker.get("exit_code"), run_dir=marker.get("run_dir"), wall_s=marker.get("wall_s"),
                runner=marker.get("runner", {}), error=marker.get("error", ""))
    doc = _read_json(fdir / marker["run_dir"] / "results.json") if marker.get("run_dir") else None
    if doc is None:
        return {**base, "status": "FAILED", "state": "NO REPORT", "verdict": None, "verdict_line": "",
                "root_causes": [], "error": base["error"] or "the run left no results.json"}
    verdict = doc.get("verdict") or None
    # status.json is the run's state (COMPLETE is written last, after results.json and the secret scan)
    from runbook_lib.run.report import read_status

    run_status = read_status(fdir / marker["run_dir"])
    state = run_status.get("state") or (doc.get("run") or {}).get("state", "INCOMPLETE")
    if state == "COMPLETE" and verdict and verdict.get("healthy") is not None and marker.get("exit_code") in (0, 1):
        status = "HEALTHY" if verdict["healthy"] else "UNHEALTHY"
    else:
        status = "FAILED"
    out = {**base, "status": status, "state": state, "verdict": verdict,
           "verdict_line": (verdict or {}).get("line", ""), "root_causes": _root_causes(doc),
           "target": doc.get("target", {})}
    if status == "FAILED" and not out["error"]:
        out["error"] = run_status.get("reason") or (doc.get("run") or {}).get("reason", "the run did not complete")
    if "since_last_run" in doc:
        out["since_last_run"] = doc["since_last_run"]
    return out


def _root_causes(doc: dict) -> list[dict]:
    """The faults of the phase whose verdict results.json reports (validate wins over diagnose)."""
    phases = doc.get("phases") or {}
    for name in ("validate", "diagnose"):
        if name in phases and phases[name].get("verdict") == doc.get("verdict"):
            return phases[name].get("faults", [])
    return []


def build(fleet: Fleet, fdir: Path, *, fleet_id: str, wall_s: float | None = None) -> dict[str, Any]:
    """Write fleet.json / fleet.md / fleet.html in ``fdir`` and return the fleet.json document."""
    rows = [row(fdir, t.name, t.index) for t in fleet.targets]
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in EXIT}
    status = "FAILED" if counts["FAILED"] else "UNHEALTHY" if counts["UNHEALTHY"] else "HEALTHY"
    doc = {
        "schema_version": SCHEMA_VERSION,
        "fleet_id": fleet_id,
        "manifest": str(fleet.path),
        "built_at": clock.iso_now(),
        "status": status,
        "exit_code": EXIT[status],
        "line": line(counts, len(rows)),
        "counts": counts,
        "wall_s": wall_s,
        "targets": rows,
    }
    atomic_write_json(fdir / "fleet.json", doc)
    atomic_write_text(fdir / "fleet.md", markdown(doc))
    atomic_write_text(fdir / "fleet.html", page(doc))
    return doc


def line(counts: dict[str, int], total: int) -> str:
    status = "FAILED" if counts["FAILED"] else "UNHEALTHY" if counts["UNHEALTHY"] else "HEALTHY"
    return (f"Fleet Status: {status}, Targets: {total}, Healthy: {counts['HEALTHY']}, "
            f"Unhealthy: {counts['UNHEALTHY']}, Runbook failed: {counts['FAILED']}")


def causes_text(r: dict) -> str:
    return "; ".join(f"{f['component']} ({f['severity']})" for f in r.get("root_causes") or []) or "-"


def since_text(r: dict) -> str:
    """A short reading of the history's ``since_last_run`` block, whatever detail it carries."""
    s = r.get("since_last_run")
    if not s:
        return "-"
    if not isinstance(s, dict):
        return str(s)[:120]
    for key in ("headline", "line", "summary", "note"):  # history's block carries a one-line headline
        if isinstance(s.get(key), str):
            return s[key][:160]
    parts = [f"{k}: {len(v)}" if isinstance(v, (list, dict)) else f"{k}: {v}" for k, v in s.items()
             if isinstance(v, (list, dict, str, int, float, bool))]
    return ", ".join(parts[:5])[:160] or "-"


def where_text(r: dict) -> str:
    runner = r.get("runner") or {}
    text = runner.get("engine", "")
    if runner.get("vantage"):
        text += f" ({runner['vantage']})"
    return text or "-"


def markdown(doc: dict) -> str:
    lines = [f"# Fleet {doc['fleet_id']}", "", f"**{doc['line']}**", "",
             "| target | status | verdict | root causes | since last run | ran on | report |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["targets"]:
        verdict = r["verdict_line"] or r.get("error", "")
        report = f"[{r['run_dir']}]({r['run_dir']}/summary.md)" if r.get("run_dir") else "-"
        cells = [r["name"], f"**{r['status']}**", verdict, causes_text(r), since_text(r), where_text(r), report]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.HEALTHY{color:#137333;font-weight:600}.UNHEALTHY{color:#c5221f;font-weight:600}.FAILED{color:#b06000;font-weight:600}"""


def page(doc: dict) -> str:
    e = html.escape
    rows = []
    for r in doc["targets"]:
        report = (f'<a href="{e(r["run_dir"])}/">{e(Path(r["run_dir"]).name)}</a>' if r.get("run_dir") else "-")
        pages = ""
        if r.get("run_dir"):
            pages = " ".join(f'<a href="{e(r["run_dir"])}/{n}.html">{n}</a>'
                             for n in ("01_diagnose", "02_remediate", "03_validate_handback"))
        rows.append(f'<tr><td>{e(r["name"])}</td><td class="{e(r["status"])}">{e(r["status"])}</td>'
                    f'<td>{e(r["verdict_line"] or r.get("error", ""))}</td><td>{e(causes_text(r))}</td>'
                    f'<td>{e(since_text(r))}</td><td>{e(where_text(r))}</td><td>{report}<br>{pages}</td></tr>')
    return (f"<!doctype html><meta charset=utf-8><title>fleet {e(doc['fleet_id'])}</title><style>{CSS}</style>"
            f"<h1>Fleet {e(doc['fleet_id'])}</h1><p class=\"{e(doc['status'])}\">{e(doc['line'])}</p>"
            "<table><tr><th>target</th><th>status</th><th>verdict</th><th>root causes</th><th>since last run</th>"
            "<th>ran on</th><th>report</th></tr>" + "".join(rows) + "</table>\n")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
