"""Two real sandbox runs in a row: issue-1278 (dry run), then the remediation plan applied.

The second run's terminal output, results.json and summary.md say what was fixed and what remains;
``runbook diff`` on the two folders agrees; index.html shows both in the grid and a trend plot; the
catalog rebuilds to the same content; a corrupt older run is skipped with a note.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.history import Catalog
from runbook_lib.history.catalog import FILENAME

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]
BAD = ("FAIL", "ERROR")


def runbook(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def final(doc: dict) -> dict[str, str]:
    phases = doc["phases"]
    frag = phases.get("validate") or phases["diagnose"]
    return {r["id"]: r["status"] for r in frag["results"]}


@pytest.fixture(scope="module")
def two_runs(demo_runs):
    # the runs are the session's (tests/plugins/runs.py): tests/e2e/test_remediation_flow.py's demo flow too
    out, first, plan, second = demo_runs.out, demo_runs.dry, demo_runs.plan, demo_runs.applied
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-3000:]
    d1 = Path(re.search(r"^Report: (.+)$", first.stdout, re.M)[1])
    doc1 = json.loads((d1 / "results.json").read_text())
    assert doc1["since_last_run"]["base"] is None
    assert doc1["phases"]["remediate"]["applied"] is False
    # as `make demo` does: the plan id from a dry run just before, then apply exactly that plan
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert second.returncode in (0, 1) and "INCOMPLETE" not in second.stderr, second.stdout[-2000:] + second.stderr[-3000:]
    d2 = Path(re.search(r"^Report: (.+)$", second.stdout, re.M)[1])
    return out, d1, d2, doc1, json.loads((d2 / "results.json").read_text()), second.stdout


@pytest.mark.timeout(1800)
def test_the_second_run_says_what_was_fixed_and_what_remains(two_runs):
    out, d1, d2, doc1, doc2, stdout = two_runs
    before, after = final(doc1), final(doc2)
    fixed = sorted(c for c, s in before.items() if s in BAD and after.get(c) in ("PASS", "WARN"))
    remain = sorted(c for c, s in before.items() if s in BAD and after.get(c) in BAD)
    assert fixed, "the applied plan fixed nothing?"
    block = doc2["since_last_run"]
    assert block["base"]["dir"] == d1.name and block["current"]["dir"] == d2.name
    assert sorted(c["id"] for c in block["fixed"]) == fixed
    assert sorted(c["id"] for c in block["still_failing"]) == remain
    headline = block["headline"]
    assert headline.startswith(f"Since the last run ({d1.name}, ") and f"{len(fixed)} fixed" in headline
    # terminal: the headline and the lists, before the verdict line (still the last line)
    assert headline in stdout and stdout.strip().splitlines()[-1].startswith("Overall Status: ")
    missing = [c for c in fixed if f"    {c} {before[c]} -> {after[c]}\n" not in stdout]
    assert not missing, stdout[-4000:]
    summary = (d2 / "summary.md").read_text()
    assert f"### {headline}" in summary
    fixed_line = next(line for line in summary.splitlines() if line.startswith("- **Fixed:** "))
    if len(fixed) <= 25:   # Markdown lists 25 per kind, then "... and N more"
        assert all(f"{c} {before[c]} -> {after[c]}" in fixed_line for c in fixed)
    if remain:
        still_line = next(line for line in summary.splitlines() if line.startswith("- **Still failing:** "))
        assert all(f"{c} {after[c]} (since " in still_line for c in remain)


@pytest.mark.timeout(300)
def test_diff_on_the_two_folders_agrees(two_runs):
    out, d1, d2, doc1, doc2, _ = two_runs
    diff = runbook("diff", str(d1), str(d2), "--json", timeout=120)
    assert diff.returncode == 0, diff.stderr
    got = json.loads(diff.stdout)
    for key in ("newly_failing", "fixed", "still_failing", "changed", "counts", "headline"):
        assert got[key] == doc2["since_last_run"][key], key


@pytest.mark.timeout(300)
def test_index_shows_both_runs_in_the_grid_and_a_trend_plot(two_runs):
    out, d1, d2, *_ = two_runs
    page = (out / "index.html").read_text()
    grid = page[page.index("check by run"):]
    assert f'title="{d1.name}"' in grid and f'title="{d2.name}"' in grid
    assert "<svg" in page and "Database connect" in page and "35 s threshold" in page and "<script" not in page


@pytest.mark.timeout(300)
def test_the_catalog_rebuilds_the_same_and_a_corrupt_old_run_is_skipped(two_runs):
    out, d1, *_ = two_runs
    with Catalog(out) as cat:
        cat.sync()
        before = cat.dump()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out / FILENAME}{suffix}").unlink(missing_ok=True)
    history = runbook("history", "--reports", str(out), "--json", timeout=120)
    assert history.returncode == 0, history.stderr
    with Catalog(out) as cat:
        assert cat.dump() == before
    old = out / d1.name.replace(d1.name[:8], "20200101", 1)
    shutil.copytree(d1, old)
    (old / "results.json").write_text((d1 / "results.json").read_text()[:5000])   # cut short
    history = runbook("history", "--reports", str(out), timeout=120)
    assert history.returncode == 0, history.stderr
    assert f"note: {old.name}: skipped: results.json is not valid JSON" in history.stderr
    assert "sql.connect" in history.stdout
