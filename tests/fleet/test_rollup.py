"""The roll-up reads rows from the run folders as they are (no re-evaluation), and is posted as
one comment that later fleets update."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib.fleet import load_manifest
from runbook_lib.fleet import report as rollup_mod
from runbook_lib.fleet.attach import attach_fleet, fleet_marker
from runbook_lib.fleet.execute import marker_path
from runbook_lib.handback import github as github_client
from tests.github_fake import FakeGitHub

ROOT = Path(__file__).resolve().parents[2]


def verdict(healthy: bool, critical: int) -> dict:
    status = "HEALTHY" if healthy else "UNHEALTHY"
    return {"healthy": healthy, "critical_failures": critical, "status": status,
            "line": f"Overall Status: {status}, Critical Failures: {critical}"}


def write_run(out: Path, name: str, *, phases: dict, final: dict | None, state: str = "COMPLETE",
              reason: str = "all phases ran", **extra) -> str:
    run = out / f"20260101T000000Z-{name}-abc123"
    run.mkdir(parents=True)
    doc = {"schema_version": 1, "target": {"name": name}, "run": {"state": state, "reason": reason},
           "phases": phases, "verdict": final, **extra}
    (run / "results.json").write_text(json.dumps(doc))
    return run.name


@pytest.fixture
def fleet_dir(tmp_path):
    manifest = tmp_path / "fleet.yaml"
    replay = ROOT / "parameters" / "replay.yaml"
    manifest.write_text("targets:\n" + "".join(f"  - {{name: {n}, params: {replay}}}\n"
                                               for n in ("fixed", "broken", "dead", "never")))
    out = tmp_path / "reports"
    fdir = out / "fleet-f1"
    (fdir / "targets").mkdir(parents=True)
    before, after = verdict(False, 2), verdict(True, 0)
    fault = {"component": "connector", "severity": "critical", "checks": ["connector.state"], "reasons": ["x"],
             "symptoms": []}
    runs = {
        # diagnose found a fault, validate (after the fix) is healthy: the row is validate's.
        "fixed": write_run(out, "fixed", phases={"diagnose": {"verdict": before, "faults": [fault]},
                                                 "validate": {"verdict": after, "faults": []}}, final=after,
                           since_last_run={"headline": "1 fixed since 20251231T000000Z", "counts": {"fixed": 1},
                                           "fixed": [{"id": "connector.state"}]}),
        "broken": write_run(out, "broken", phases={"diagnose": {"verdict": before, "faults": [fault]}}, final=before),
        "dead": write_run(out, "dead", phases={}, final=None, state="INCOMPLETE",
                          reason="phase diagnose failed in cell 4: ApiError"),
    }
    codes = {"fixed": 0, "broken": 1, "dead": 2}
    for n, run in runs.items():
        marker_path(fdir, n).write_text(json.dumps({"name": n, "exit_code": codes[n], "run_dir": f"../{run}",
                                                    "runner": {"engine": "local"}, "error": ""}))
    return load_manifest(manifest), fdir


def test_rows_are_what_the_folders_say(fleet_dir):
    fleet, fdir = fleet_dir
    doc = rollup_mod.build(fleet, fdir, fleet_id="f1")
    rows = {r["name"]: r for r in doc["targets"]}
    assert rows["fixed"]["status"] == "HEALTHY" and rows["fixed"]["root_causes"] == []
    assert rows["fixed"]["since_last_run"]["headline"] == "1 fixed since 20251231T000000Z"   # as the run wrote it
    assert rows["broken"]["status"] == "UNHEALTHY"
    assert [f["component"] for f in rows["broken"]["root_causes"]] == ["connector"]
    assert rows["dead"]["status"] == "FAILED" and rows["dead"]["error"] == "phase diagnose failed in cell 4: ApiError"
    assert rows["never"]["status"] == "FAILED" and rows["never"]["state"] == "NOT RUN"
    assert doc["line"] == "Fleet Status: FAILED, Targets: 4, Healthy: 1, Unhealthy: 1, Runbook failed: 2"
    assert doc["exit_code"] == 2
    md = (fdir / "fleet.md").read_text()
    assert "| fixed | **HEALTHY** | Overall Status: HEALTHY, Critical Failures: 0 | - | 1 fixed since" in md
    assert "| never | **FAILED** | no marker: the target did not run" in md


def test_the_fleet_comment_is_posted_once_then_updated(fleet_dir, monkeypatch):
    fleet, fdir = fleet_dir
    rollup_mod.build(fleet, fdir, fleet_id="f1")
    monkeypatch.setattr(github_client, "RETRY_BACKOFF_S", 0.0)
    with FakeGitHub(page_size=2, token="test-token-1234") as gh:
        gh.add_issue("acme/app", 1278, comments=["unrelated"])
        monkeypatch.setenv("GITHUB_API_URL", gh.url)
        monkeypatch.setenv("GITHUB_TOKEN", "test-token-1234")
        attach_fleet(fdir, repo="acme/app", issue=1278, report_url="https://ci/run/1", dry_run=False)
        attach_fleet(fdir, repo="acme/app", issue=1278, report_url="https://ci/run/2", dry_run=False)
        assert gh.count("POST", "/comments") == 1 and gh.count("PATCH") == 1
        bodies = [c["body"] for c in gh.comments.values() if c["body"].startswith("<!--")]
        assert len(bodies) == 1
        assert bodies[0].startswith(fleet_marker(1278, str(fleet.path)))
        assert "Fleet Status: FAILED" in bodies[0] and "https://ci/run/2" in bodies[0]
