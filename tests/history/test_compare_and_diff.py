"""Since the last run, ``runbook diff`` and ``runbook history`` on synthetic run folders."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from runbook_lib import cli
from runbook_lib.history import Catalog, compare, compare_with_previous, read_run
from runbook_lib.history.compare import moved_beyond_noise
from runbook_lib.history.synthetic import START, write_run
from runbook_lib.render.index import write_index

BROKEN = {"connector.saturation", "sql.connect", "tls.api-staging.hostname"}


@pytest.fixture
def five(tmp_path):
    """Three broken nights, one healthy, then sql.connect fails again; another target in between."""
    dirs = [write_run(tmp_path, i, failing=BROKEN if i < 3 else ({"sql.connect"} if i == 4 else set()))
            for i in range(5)]
    write_run(tmp_path, 50, target="staging", failing={"golden.login"}, when=START + timedelta(days=3, hours=1))
    return tmp_path, dirs


def test_still_failing_says_since_when_and_fixed_and_newly_failing_are_named(tmp_path):
    d = [write_run(tmp_path, i, failing=BROKEN if i < 3 else {"sql.connect", "golden.login"}) for i in range(4)]
    with Catalog(tmp_path) as cat:
        cat.sync()
        cmp = compare_with_previous(cat, read_run(d[3]))
    assert cmp.base["dir"] == d[2].name
    assert [c.id for c in cmp.newly_failing] == ["golden.login"]
    assert sorted(c.id for c in cmp.fixed) == ["connector.saturation", "tls.api-staging.hostname"]
    [still] = cmp.still_failing
    assert (still.id, still.since_dir, still.runs) == ("sql.connect", d[0].name, 4)
    assert cmp.headline() == (f"Since the last run ({d[2].name}, 2026-01-03 04:17 UTC, UNHEALTHY -> UNHEALTHY): "
                              "1 newly failing, 2 fixed, 1 still failing, 2 numbers moved")
    assert [(m.check, m.name, m.before, m.after) for m in cmp.moved] == [
        ("connector.saturation", "instances", 3.0, 2.0), ("connector.saturation", "max_instances", 3.0, 10.0)]


def test_the_previous_run_is_the_last_completed_one_of_the_same_target(five):
    root, dirs = five
    write_run(root, 60, state="INCOMPLETE", when=START + timedelta(days=3, hours=12))   # died half-way
    with Catalog(root) as cat:
        cat.sync()
        cmp = compare_with_previous(cat, read_run(dirs[4]))
        first = compare_with_previous(cat, read_run(dirs[0]))
    assert cmp.base["dir"] == dirs[3].name and cmp.base["target"] == "sandbox"
    assert [c.id for c in cmp.newly_failing] == ["sql.connect"] and cmp.verdict_changed
    assert [(m.check, m.name, m.before, m.after) for m in cmp.moved] == [
        ("sql.connect", "p50_s", 1.0, 30.0), ("sql.connect", "p95_s", pytest.approx(1.8), 41.0)]
    assert first.base is None and first.headline() == (
        "Since the last run: no earlier completed run of target `sandbox` to compare with")


@pytest.mark.parametrize("name, before, after, days, moved", [
    ("p95_s", 1.2, 1.9, 1, False),          # sandbox jitter
    ("p95_s", 1.5, 41.0, 1, True),          # the database became slow
    ("p95_s", 40.0, 45.0, 1, False),        # slow and a little slower: within 20 %
    ("days_left", 60, 59, 1, False),        # one day passed
    ("days_left", 60, 89, 1, True),         # renewed
    ("days_left", 60, 50, 1, True),         # a different (shorter-lived) certificate is served
    ("instances", 3, 3, 1, False), ("max_instances", 3, 10, 1, True),
    ("error_pct", 0.0, 0.4, 1, False), ("error_pct", 0.0, 12.5, 1, True),
])
def test_numbers_move_only_beyond_their_noise(name, before, after, days, moved):
    assert moved_beyond_noise(name, before, after, days) is moved


def test_fail_to_skip_is_not_fixed(tmp_path):
    a = write_run(tmp_path, 0, failing={"sql.connect"})
    b = write_run(tmp_path, 1)
    doc = json.loads((b / "results.json").read_text())
    r = next(r for r in doc["phases"]["diagnose"]["results"] if r["id"] == "sql.connect")
    r.update(status="SKIP", reason="no samples", measurements={})
    (b / "results.json").write_text(json.dumps(doc))
    cmp = compare(read_run(a), read_run(b))
    assert cmp.fixed == [] and [(c.id, c.before, c.after) for c in cmp.changed] == [("sql.connect", "FAIL", "SKIP")]


def test_diff_cli_text_json_markdown_and_last(five, capsys):
    root, dirs = five
    assert cli.main(["diff", str(dirs[3]), str(dirs[4])]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].endswith("HEALTHY -> UNHEALTHY): 1 newly failing, 0 fixed, 0 still failing, 2 numbers moved")
    assert "  Newly failing:\n    sql.connect PASS -> FAIL\n" in text
    assert cli.main(["diff", str(dirs[3]), str(dirs[4]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"newly_failing": 1, "fixed": 0, "still_failing": 0, "changed": 0, "moved": 2}
    assert cli.main(["diff", str(dirs[0]), str(dirs[3]), "--markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith(f"### Since the last run ({dirs[0].name}") and "- **Fixed:** connector.saturation FAIL -> PASS" in md
    assert cli.main(["diff", "--last", "2", "--target", "sandbox", "--reports", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == doc


def test_diff_errors_say_what_to_pass(five, tmp_path, capsys):
    root, dirs = five
    assert cli.main(["diff", str(dirs[0])]) == 2
    assert "expected two report folders (A B) or --last N, got 1 folders" in capsys.readouterr().err
    assert cli.main(["diff", "--last", "2", "--reports", str(root)]) == 2
    assert "holds runs of 2 targets (sandbox, staging): pass --target" in capsys.readouterr().err
    assert cli.main(["diff", str(dirs[0]), str(tmp_path / "nope")]) == 2
    assert "not a report folder (no status.json)" in capsys.readouterr().err


def test_history_shows_verdicts_a_grid_failing_first_and_the_numbers(five, capsys):
    root, dirs = five
    assert cli.main(["history", "--target", "sandbox", "--reports", str(root), "--json"]) == 0
    [t] = json.loads(capsys.readouterr().out)["targets"]
    assert [r["verdict"] for r in t["runs"]] == ["UNHEALTHY"] * 3 + ["HEALTHY", "UNHEALTHY"]   # oldest first
    assert t["grid"][0] == {"check": "sql.connect", "statuses": ["FAIL", "FAIL", "FAIL", "PASS", "FAIL"]}
    assert [g["check"] for g in t["grid"][1:3]] == ["connector.saturation", "tls.api-staging.hostname"]
    db = next(p for p in t["plots"] if p["title"].startswith("Database"))
    assert db["lines"] == {"35 s threshold": 35.0} and db["series"]["p95"][0] == 41.0
    assert cli.main(["history", "--target", "sandbox", "--reports", str(root)]) == 0
    text = capsys.readouterr().out
    assert "verdict" in text and "sql.connect" in text and "F F F . F" in text
    assert cli.main(["history", "--target", "prod", "--reports", str(root)]) == 2
    assert "no runs of target 'prod'" in capsys.readouterr().err


def test_index_shows_the_grid_and_trend_plots_inline(five):
    root, dirs = five
    (dirs[1] / "results.json").write_text("{not json")
    page = write_index(root).read_text()
    assert "<script" not in page and page.count("<svg") >= 4
    assert "Target <code>sandbox</code>: last 4 of 4 runs" in page and "Target <code>staging</code>" in page
    grid = page[page.index("check by run"):page.index("</table>", page.index("check by run"))]
    assert grid.index("<code>sql.connect</code>") < grid.index("<code>connector.state</code>")
    assert "35 s threshold" in page and "Certificate days left" in page
    assert f"{dirs[1].name}: skipped: results.json is not valid JSON" in page
