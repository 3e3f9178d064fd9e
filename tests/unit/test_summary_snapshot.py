"""The success declaration, rendered from the recorded evidence, is snapshot-tested (gcpdiag style).

After a deliberate change to the wording or to the recorded evidence, refresh the snapshots with
`RUNBOOK_UPDATE_SNAPSHOTS=1 make test` and review the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from runbook_lib.checks import evaluate_all
from runbook_lib.evidence import Evidence
from runbook_lib.params import load_params
from runbook_lib.render.summary import build_summary
from runbook_lib.results import ResultSet, root_causes

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "tests" / "snapshots"


def fragment(results: ResultSet, ev: Evidence) -> dict:
    v = results.verdict
    return {"verdict": {**v.model_dump(), "line": v.line, "status": v.status}, "results": results.to_records(),
            "faults": [f.model_dump(mode="json") for f in root_causes(results)], "evidence_now": ev.now.isoformat()}


@pytest.fixture(scope="module")
def replay():
    params = load_params(ROOT / "parameters" / "replay.yaml")
    folder = Path(params.target.evidence_dir)
    return params, {phase: Evidence.load(folder / phase) for phase in ("diagnose", "validate")}


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("RUNBOOK_UPDATE_SNAPSHOTS"):
        path.write_text(text)
    # a missing snapshot fails: it is never silently recreated (a new one is written on purpose)
    assert path.exists(), f"{name} is missing: write it with RUNBOOK_UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(), f"{name} changed: review, then refresh with RUNBOOK_UPDATE_SNAPSHOTS=1"


def test_unhealthy_declaration_from_the_recorded_incident(replay):
    params, ev = replay
    phases = {p: fragment(evaluate_all(e, params), e) for p, e in ev.items()}
    doc = {"target": {"name": "replay", "mode": "replay", "scenario": "issue-1278", "time_scale": 0.05},
           "phases": phases, "verdict": phases["validate"]["verdict"]}
    text = build_summary(doc, params)
    check_snapshot("summary-issue-1278.md", text)
    assert "❌ **INFRASTRUCTURE NOT YET HEALTHY**" in text
    assert "$575K ARR at risk" in text
    assert "✅ Golden path" not in text                  # never claimed without evidence


def test_every_tick_is_backed_by_passing_checks(replay):
    params, ev = replay
    frag = fragment(evaluate_all(ev["validate"], params), ev["validate"])
    # pretend only the secrets component passed: exactly that line may carry a tick
    for r in frag["results"]:
        if r["component"] != "secrets":
            r["status"], r["remediation"] = "FAIL", r["remediation"] or "fix it"
        else:
            r["status"] = "PASS"
    doc = {"target": {}, "phases": {"validate": frag}, "verdict": frag["verdict"]}
    ticks = [l for l in build_summary(doc, params).splitlines() if l.startswith("- ✅") and "checks pass" in l]
    assert len(ticks) == 1 and "secrets" in ticks[0]
