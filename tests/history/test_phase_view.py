"""The phase-1 page's "since the last run": this phase's results against the last completed run."""
from __future__ import annotations

import json
from types import SimpleNamespace

from runbook_lib import since_last_run
from runbook_lib.history.synthetic import write_run
from runbook_lib.results import CheckResult, ResultSet


def test_phase_one_compares_its_results_with_the_last_completed_run(tmp_path, capsys):
    before = write_run(tmp_path, 0, failing={"sql.connect", "connector.saturation"})
    records = json.loads((before / "results.json").read_text())["phases"]["diagnose"]["results"]
    for r in records:
        if r["id"] == "connector.saturation":
            r.update(status="PASS", reason="", remediation="")
    results = ResultSet(results=[CheckResult.model_validate(r) for r in records])
    here = tmp_path / "20260301T041700Z-sandbox-abcdef"
    here.mkdir()
    phase = SimpleNamespace(name="diagnose", results=results, report_dir=here, evidence=None,
                            params=SimpleNamespace(target=SimpleNamespace(name="sandbox", time_scale=0.05)))

    view = since_last_run(phase)

    printed = capsys.readouterr().out
    assert printed.startswith(f"Since the last run ({before.name}, 2026-01-01 04:17 UTC, UNHEALTHY -> UNHEALTHY): "
                              "0 newly failing, 1 fixed, 1 still failing")
    page = view._repr_html_()
    assert "<li>connector.saturation FAIL -&gt; PASS</li>" in page and "Still failing" in page
    assert "sql.connect FAIL (since 2026-01-01 04:17 UTC, 2 runs in a row)" in repr(view)
