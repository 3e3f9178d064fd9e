"""`runbook fleet run` end to end (issue 15's acceptance): three sandboxes and two replays.

Five ordinary run folders, a roll-up whose every row is what that folder's results.json says,
exit 1 (one healthy target, four unhealthy), progress as lines.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = Path(__file__).resolve().parent / "manifests"
pytestmark = [pytest.mark.e2e, pytest.mark.sandbox, pytest.mark.timeout(900)]

EXPECTED = {"healthy": "HEALTHY", "incident": "UNHEALTHY", "sql-stopped": "UNHEALTHY",
            "replay": "UNHEALTHY", "replay-strict": "UNHEALTHY"}


def fleet(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", "fleet", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    proc = fleet("run", "--manifest", str(MANIFESTS / "five.yaml"), "--parallel", "2", "--phase", "1",
                 "--out", str(out))
    return proc, out


def run_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink() and (p / "status.json").exists())


def test_exit_code_is_1_and_the_last_line_is_the_fleet_line(five):
    proc, out = five
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = json.loads((out / "fleet-latest" / "fleet.json").read_text())
    assert proc.stdout.strip().splitlines()[-1] == doc["line"]
    assert doc["line"] == "Fleet Status: UNHEALTHY, Targets: 5, Healthy: 1, Unhealthy: 4, Runbook failed: 0"
    assert doc["exit_code"] == 1


def test_five_ordinary_run_folders_named_by_target(five):
    proc, out = five
    folders = run_folders(out)
    assert len(folders) == 5
    names = {f.name.split("-", 1)[1].rsplit("-", 1)[0] for f in folders}
    assert names == set(EXPECTED)
    for f in folders:
        for name in ("results.json", "summary.md", "run.log", "parameters.yaml", "01_diagnose.ipynb", "01_diagnose.html"):
            assert (f / name).exists(), f"{f.name}/{name}"
        assert json.loads((f / "status.json").read_text())["state"] == "COMPLETE"
    index = (out / "index.html").read_text()
    assert all(f.name in index for f in folders)


def test_every_row_is_what_its_folder_says(five):
    proc, out = five
    fdir = out / "fleet-latest"
    doc = json.loads((fdir / "fleet.json").read_text())
    assert [r["name"] for r in doc["targets"]] == list(EXPECTED)
    for r in doc["targets"]:
        results = json.loads((fdir / r["run_dir"] / "results.json").read_text())
        assert r["status"] == EXPECTED[r["name"]], r
        assert r["verdict"] == results["verdict"]
        assert r["verdict_line"] == results["verdict"]["line"]
        assert r["root_causes"] == results["phases"]["diagnose"]["faults"]
        assert results["target"]["name"] == r["name"]
        assert r["exit_code"] == (0 if r["status"] == "HEALTHY" else 1)
    rows = {r["name"]: r for r in doc["targets"]}
    assert rows["healthy"]["root_causes"] == []
    assert [f["component"] for f in rows["sql-stopped"]["root_causes"]][0] == "cloudsql"
    assert {"connector", "cloudsql", "certificates"} <= {f["component"] for f in rows["incident"]["root_causes"]}


def test_markdown_and_html_show_every_row(five):
    proc, out = five
    fdir = out / "fleet-latest"
    doc = json.loads((fdir / "fleet.json").read_text())
    md, page = (fdir / "fleet.md").read_text(), (fdir / "fleet.html").read_text()
    for r in doc["targets"]:
        row = next(line for line in md.splitlines() if line.startswith(f"| {r['name']} |"))
        assert f"**{r['status']}**" in row and r["verdict_line"] in row and r["run_dir"] in row
        assert f'<td>{r["name"]}</td><td class="{r["status"]}">' in page
        assert f'href="{r["run_dir"]}/01_diagnose.html"' in page
    assert doc["line"] in md and doc["line"] in page


def test_progress_is_lines_of_done_running_failed(five):
    proc, out = five
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("fleet: ")]
    assert len(lines) == 10                                   # a start and a finish per target
    assert lines[-1].startswith("fleet: 5/5 done, 0 running (-), 0 failed | finished ")
    running = [int(ln.split(" done, ")[1].split(" running")[0]) for ln in lines]
    assert max(running) == 2                                  # --parallel 2 (2 cores), never more
