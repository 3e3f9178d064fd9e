"""One truth, many views: every view renders the status the results model decided.

For result sets built from each sandbox scenario's shape (the recorded issue-1278 evidence, a
healthy run, a run with a skipped golden-path step, a run with manual steps left, a dry run),
the summary, the phase pages, the terminal lines and the index all agree with results.json
(``status``: COMPLETE / HEALTHY with N open items / UNHEALTHY; component statuses).
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from runbook_lib.checks import evaluate_all
from runbook_lib.evidence import Evidence
from runbook_lib.params import load_params
from runbook_lib.render import page
from runbook_lib.render.index import write_index
from runbook_lib.render.summary import absolute_links, build_summary
from runbook_lib.render.terminal import phase_line
from runbook_lib.results import ResultSet, Status, phase_status, root_causes, run_status
from runbook_lib.run.report import NOTEBOOKS, merge_results, read_phase, write_phase, write_status

ROOT = Path(__file__).resolve().parents[2]


def fragment(phase: str, results: ResultSet, ev: Evidence | None = None, **extra) -> dict:
    v = results.verdict
    frag = {"phase": phase, "verdict": {**v.model_dump(), "line": v.line, "status": v.status},
            "results": results.to_records(), "faults": [f.model_dump(mode="json") for f in root_causes(results)],
            "evidence_now": ev.now.isoformat() if ev else None, **extra}
    frag["status"] = phase_status(frag).model_dump(mode="json")
    return frag


@pytest.fixture(scope="module")
def recorded():
    params = load_params(ROOT / "parameters" / "replay.yaml")
    folder = Path(params.target.evidence_dir)
    ev = {p: Evidence.load(folder / p) for p in ("diagnose", "validate")}
    return params, ev, {p: evaluate_all(e, params) for p, e in ev.items()}


def healed(results: ResultSet, *, keep_skip: bool = True, warn: bool = False) -> ResultSet:
    """The recorded results with every problem fixed (what a healed sandbox reports)."""
    out = []
    for r in results:
        if r.status is Status.SKIP and keep_skip and r.component == "golden_path":
            out.append(r)
            continue
        status = Status.WARN if (warn and r.component == "cloud_run" and r.status is not Status.PASS) else Status.PASS
        out.append(r.model_copy(update={"status": status}))
    return ResultSet(results=out)


def apply_report(plan: dict, *, manual_done: bool = False) -> dict:
    audit = [{"action": a["id"], "at": "2026-01-01T00:00:00Z",
              "outcome": "manual" if a["kind"] == "manual" else "applied", "requests": [], "before": [], "after": []}
             for a in plan["actions"]]
    return {"plan_id": plan["id"], "mode": "applied", "message": "applied", "audit": audit, "rollback": []}


def the_plan(recorded):
    from runbook_lib.remediate import build_plan

    params, ev, res = recorded
    return build_plan(res["diagnose"], ev["diagnose"], params).model_dump(mode="json")


def cases(recorded):
    params, ev, res = recorded
    plan = the_plan(recorded)
    automatic = copy.deepcopy(plan)
    automatic["actions"] = [a for a in plan["actions"] if a["kind"] != "manual"]
    diag = fragment("diagnose", res["diagnose"], ev["diagnose"], plan=plan)
    return {
        "diagnosis-only": {"diagnose": diag},
        "dry-run-unhealthy": {"diagnose": diag, "remediate": fragment("remediate", ResultSet(), plan=plan,
                              applied=False, apply_report={"plan_id": plan["id"], "mode": "dry-run", "message": "dry run", "audit": []}),
                              "validate": fragment("validate", res["validate"], ev["validate"])},
        "healthy-with-manual-left": {"diagnose": diag, "remediate": fragment("remediate", ResultSet(), plan=plan, applied=True,
                                     apply_report=apply_report(plan)),
                                     "validate": fragment("validate", healed(res["validate"], warn=True), ev["validate"])},
        "complete": {"diagnose": diag, "remediate": fragment("remediate", ResultSet(), plan=automatic, applied=True,
                     apply_report=apply_report(automatic)),
                     "validate": fragment("validate", healed(res["validate"]), ev["validate"])},
    }


def report_folder(tmp_path: Path, name: str, phases: dict) -> tuple[Path, dict]:
    run_dir = tmp_path / "reports" / f"20260101T000000Z-{name}-abcdef"
    run_dir.mkdir(parents=True)
    write_status(run_dir, "COMPLETE")
    for p, frag in phases.items():
        write_phase(run_dir, p, frag)
    doc = merge_results(run_dir, {"name": name, "mode": "sandbox", "scenario": "issue-1278", "time_scale": 0.05,
                                  "project": "netra-staging", "region": "us-central1"})
    return run_dir, doc


EXPECTED = {"diagnosis-only": "UNHEALTHY", "dry-run-unhealthy": "UNHEALTHY",
            "healthy-with-manual-left": "HEALTHY", "complete": "COMPLETE"}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_every_view_agrees_with_results_json(recorded, tmp_path, case):
    params = recorded[0]
    run_dir, doc = report_folder(tmp_path, case, cases(recorded)[case])
    st = json.loads((run_dir / "results.json").read_text())["status"]
    assert st["status"] == EXPECTED[case]
    summary = build_summary(doc, params)
    final = st["phases"][st["final_phase"]]

    # summary: headline, ticks only for PASS components, skips shown as skipped, counts exact
    assert st["headline"] in summary
    ticks = {c["component"] for c in final["components"] if c["status"] == "PASS"}
    comp_lines = [l for l in summary.splitlines() if l.startswith("- ") and "checks pass" in l]
    assert len(comp_lines) == len(final["components"])
    assert sum(l.startswith("- ✅") for l in comp_lines) == len(ticks)
    for c in final["components"]:
        if c["status"] != "PASS":
            assert not any(l.startswith("- ✅") and f"{c['passed']}/" in l and c["component"].split("_")[0] in l.lower()
                           for l in comp_lines if "❌" in l)
        for sid in c["skipped"]:
            assert f"`{sid}`" in summary and "skipped" in summary
    if st["status"] == "COMPLETE":
        assert "❌" not in summary and "⚠️" not in summary and "INFRASTRUCTURE REMEDIATION COMPLETE" in summary
    else:
        assert "REMEDIATION COMPLETE" not in summary
    if st["status"] == "HEALTHY":
        assert "❌" not in summary
        assert f"### Open items ({len(st['open_items'])})" in summary
        n = st["actions"]
        assert f"{n['applied']} applied" in summary and f"{n['manual_pending']} manual pending" in summary
        assert f"{n['skipped']} skipped" in summary
    if st["kind"] == "diagnosis":
        assert summary.startswith("## ❌ Infrastructure diagnosis")
    assert len(summary) < 65_536

    # terminal: one line per phase, exactly the recorded status line
    for p in doc["phases"]:
        line = phase_line(p, read_phase(run_dir, p), NOTEBOOKS[p])
        assert line.endswith(st["phases"][p]["line"])
        assert st["phases"][p]["status"] in line

    # phase page: banner and sections render the same statuses
    for p, frag in doc["phases"].items():
        banner = page.banner(phase_status(frag), target=doc["target"], evidence_now=frag.get("evidence_now"), counts={})
        assert f"<h2>{st['phases'][p]['status']}</h2>" in banner
        assert 'href="../index.html"' in banner and 'href="summary.html"' in banner
    results = ResultSet.model_validate({"results": doc["phases"][st["final_phase"]]["results"]})
    for c in final["components"]:
        html = page.component_section(results, c["component"])
        assert {"PASS": "passing", "WARN": "warning", "FAIL": "failing", "ERROR": "could not be checked",
                "SKIP": "skipped"}[c["status"]] in html
        assert len(re.findall(r"<details open", html)) == len(c["problems"])  # failing open, passing collapsed

    # index: the run's status as recorded
    index = write_index(run_dir.parent).read_text()
    assert f">{st['status']}<" in index


def test_summary_renders_as_separate_lines_in_gfm(recorded, tmp_path):
    """GitHub renders single newlines as spaces in Markdown files: each line must be its own block/item."""
    params = recorded[0]
    for case, phases in cases(recorded).items():
        _, doc = report_folder(tmp_path / case, case, phases)
        md = build_summary(doc, params)
        html = MarkdownIt("commonmark", {"breaks": False, "html": True}).enable("table").render(md)
        # the status lines and component lines are list items, never one run-together paragraph
        assert html.count("<li>") >= len(doc["status"]["phases"][doc["status"]["final_phase"]]["components"]) + 2
        for para in re.findall(r"<p>(.*?)</p>", html, flags=re.S):
            assert para.count("✅") + para.count("❌") <= 1, para[:200]


def test_links_become_absolute_when_the_report_url_is_known(recorded, tmp_path):
    params = recorded[0]
    _, doc = report_folder(tmp_path, "x", cases(recorded)["complete"])
    md = build_summary(doc, params, base_url="https://o.github.io/r/runs/20260101T000000Z-x-abcdef/")
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert links and all(l.startswith("https://o.github.io/r/runs/") for l in links)
    assert "](https://o.github.io/r/runs/index.html)" in md  # ../index.html resolved
    assert absolute_links("[a](https://x/y)", "https://z/") == "[a](https://x/y)"


def test_a_skip_is_never_shown_as_broken(recorded):
    params, ev, res = recorded
    phases = cases(recorded)["complete"]
    st = run_status(phases)
    golden = next(c for c in st.phases["validate"].components if c.component == "golden_path")
    assert golden.status is Status.PASS and golden.skipped  # passes, with its skip listed
    assert st.status == "COMPLETE" and not st.open_items


def test_the_issue_comment_links_the_published_report_and_shows_the_key_plot(recorded, tmp_path):
    from runbook_lib.render.summary import for_comment

    params = recorded[0]
    run_dir, doc = report_folder(tmp_path, "x", cases(recorded)["complete"])
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "validate-db_latency.png").write_bytes(b"\x89PNG")
    text = build_summary(doc, params)
    url = f"https://o.github.io/r/runs/{run_dir.name}/"
    posted = for_comment(text, url, run_dir)
    assert f"![database connections against the threshold]({url}plots/validate-db_latency.png)" in posted
    assert f"]({url}01_diagnose.html)" in posted
    assert for_comment(text, "https://github.com/o/r/actions/runs/1/artifacts/2", run_dir) == text  # not a folder
