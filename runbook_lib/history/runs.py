"""One run folder read as a record: target, time, phases, verdict and its final checks.

The run folders are the source of truth; this module is the only place that reads them for the
history. A folder that is not a run (no ``status.json``) is ``None``; a folder that is a run but
cannot be read (corrupt or half-written JSON, a COMPLETE run without results) raises
``UnreadableRun`` with the reason, so the catalog can skip it *with a note*.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAILING = ("FAIL", "ERROR")
_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<target>.+)-(?P<id>[0-9a-f]{6})$")


class UnreadableRun(Exception):
    """A run folder whose files cannot be read; ``str()`` says which file and why."""


@dataclass(frozen=True)
class Check:
    id: str
    component: str
    status: str
    severity: str
    measurements: dict[str, float] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        return self.status in FAILING


@dataclass
class RunRecord:
    dir: str
    target: str
    started: str
    state: str                      # COMPLETE | INCOMPLETE (as status.json says)
    phases: list[str]
    final_phase: str | None         # the phase whose results are the run's (validate, else diagnose)
    verdict: str | None             # HEALTHY | UNHEALTHY | None (no verdict recorded)
    line: str
    critical: int | None
    time_scale: float
    checks: dict[str, Check] = field(default_factory=dict)
    finished: str = ""
    pages: list[str] = field(default_factory=list)
    status: str | None = None       # the run status results.json records (COMPLETE / HEALTHY / UNHEALTHY)

    @property
    def failing(self) -> set[str]:
        return {c.id for c in self.checks.values() if c.failing}

    def brief(self) -> dict[str, Any]:
        return {"dir": self.dir, "target": self.target, "started": self.started, "state": self.state,
                "verdict": self.verdict, "line": self.line, "phase": self.final_phase}


def target_from_name(name: str) -> str | None:
    m = _NAME.match(name)
    return m["target"] if m else None


def signature(run_dir: Path | str) -> str | None:
    """What says "this folder changed": status.json and results.json modification time and size.

    ``None`` when the folder is not a run (no status.json). Plain ``os.stat`` on strings: the
    catalog calls this for every folder on every sync.
    """
    parts = []
    base = os.fspath(run_dir)
    for name in ("status.json", "results.json"):
        try:
            st = os.stat(os.path.join(base, name))
        except FileNotFoundError:
            if name == "status.json":
                return None
            parts.append("-")
            continue
        parts.append(f"{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts)


def _load(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read())
    except UnicodeDecodeError as exc:
        raise UnreadableRun(f"{path.name} is not text ({exc.reason})") from None
    except ValueError as exc:
        raise UnreadableRun(f"{path.name} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise UnreadableRun(f"{path.name} cannot be read ({exc.strerror or exc})") from None


def checks_of(results: Any, where: str) -> dict[str, Check]:
    """Check records (results.json / phases/<phase>.json ``results``) as ``Check``s."""
    if not isinstance(results, list):
        raise UnreadableRun(f"{where}: results is not a list")
    out: dict[str, Check] = {}
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) or not isinstance(r.get("status"), str):
            raise UnreadableRun(f"{where}: result #{i + 1} has no id/status")
        raw = r.get("measurements") or {}
        numbers = {k: float(v) for k, v in raw.items()
                   if isinstance(raw, dict) and isinstance(v, (int, float)) and not isinstance(v, bool)}
        out[r["id"]] = Check(r["id"], str(r.get("component", "")), r["status"], str(r.get("severity", "")), numbers)
    return out


def read_run(run_dir: Path) -> RunRecord | None:
    run_dir = Path(run_dir)
    if not (run_dir / "status.json").exists():
        return None
    status = _load(run_dir / "status.json")
    if not isinstance(status, dict) or "state" not in status:
        raise UnreadableRun("status.json has no state")
    doc: dict[str, Any] = {}
    if (run_dir / "results.json").exists():
        doc = _load(run_dir / "results.json")
        if not isinstance(doc, dict):
            raise UnreadableRun("results.json is not a JSON object")
    elif status["state"] == "COMPLETE":
        raise UnreadableRun("status.json says COMPLETE but there is no results.json")
    return from_doc(run_dir.name, status, doc, pages=sorted(p.name for p in run_dir.glob("*.html")))


def read_results(path: Path) -> RunRecord:
    """A run from its results.json alone (a run folder or the file itself, e.g. the last CI artifact)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise UnreadableRun(f"{file}: no such results.json")
    doc = _load(file)
    if not isinstance(doc, dict):
        raise UnreadableRun(f"{file}: not a JSON object")
    status = doc.get("run") if isinstance(doc.get("run"), dict) else {}
    status = {"state": "COMPLETE" if doc.get("verdict") else "INCOMPLETE", **status}
    return from_doc(file.parent.name, status, doc)


def from_doc(name: str, status: dict[str, Any], doc: dict[str, Any], *, pages: list[str] = ()) -> RunRecord:
    phases = doc.get("phases") or {}
    if not isinstance(phases, dict):
        raise UnreadableRun("results.json: phases is not an object")
    final = next((p for p in ("validate", "diagnose") if p in phases), None)
    checks: dict[str, Check] = {}
    if final:
        frag = phases[final]
        if not isinstance(frag, dict):
            raise UnreadableRun(f"results.json: phases.{final} is not an object")
        checks = checks_of(frag.get("results", []), f"results.json phases.{final}")
    verdict = doc.get("verdict") if isinstance(doc.get("verdict"), dict) else None
    target = doc.get("target") if isinstance(doc.get("target"), dict) else {}
    tname = target.get("name") or target_from_name(name) or "unknown"
    decided = doc.get("status") if isinstance(doc.get("status"), dict) else {}
    shown = None
    if verdict is not None:
        shown = verdict.get("status") or ("HEALTHY" if verdict.get("healthy") else "UNHEALTHY")
    return RunRecord(
        dir=name, target=str(tname), started=str(status.get("started_at", "")), state=str(status["state"]),
        phases=[str(p) for p in status.get("phases_done", []) or []], final_phase=final, verdict=shown,
        line=(f"{decided['headline']}; " if decided.get("headline") else "")
        + str((verdict or {}).get("line") or status.get("reason", "")),
        status=str(decided["status"]) if decided.get("status") else None,
        critical=(verdict or {}).get("critical_failures"),
        time_scale=float(target.get("time_scale") or 1.0), checks=checks,
        finished=str(status.get("finished_at", "")), pages=list(pages),
    )
