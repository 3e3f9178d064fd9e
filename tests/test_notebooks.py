"""The notebooks: thin, paired with their py:percent twins, output-free, and verdict-checked by nbval.

nbval compares stored outputs, but notebooks are committed without outputs; so the checked cells'
expected outputs live in tests/notebooks/expected_outputs.yaml and are put into copies of the
notebooks, which ``pytest --nbval-lax`` then executes on their default parameters (replay).
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = yaml.safe_load((ROOT / "tests" / "notebooks" / "expected_outputs.yaml").read_text())
CHECK_TAG = "nbval-check-output"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_three_phase_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["01_diagnose", "02_remediate", "03_validate_handback"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_parameters_cell_comes_first_and_outputs_are_stripped(path):
    nb = nbformat.read(path, as_version=4)
    first = code_cells(nb)[0]
    assert "parameters" in first.metadata.get("tags", [])
    names = {t.id for node in ast.parse(first.source).body for t in node.targets}
    assert names == {"params_file", "overrides", "report_dir"}
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code_cells(nb))
    assert any(CHECK_TAG in c.metadata.get("tags", []) for c in code_cells(nb))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_thin(path):
    """Narrate and call the library: no functions, classes or loops in a notebook."""
    nb = nbformat.read(path, as_version=4)
    for cell in code_cells(nb):
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For,
                                         ast.While, ast.Lambda)), f"logic in {path.name}: {cell.source[:80]}"
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_py_percent_twin_matches(path):
    twin = path.with_suffix(".py")
    nb, py = nbformat.read(path, as_version=4), jupytext.read(twin)
    assert [(c.cell_type, c.source.strip()) for c in nb.cells] == [(c.cell_type, c.source.strip()) for c in py.cells], (
        f"{path.name} and {twin.name} differ: run `make sync-notebooks`")


def prepared_copies(tmp_path: Path, expected: dict[str, str]) -> list[Path]:
    """Copies that run on replay.yaml into tmp_path/reports, with the expected checked outputs."""
    out = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        params = code_cells(nb)[0]
        params.source = (f"params_file = {str(ROOT / 'parameters' / 'replay.yaml')!r}\n"
                         f"overrides = {{}}\nreport_dir = {str(tmp_path / 'reports')!r}\n")
        for cell in code_cells(nb):
            if CHECK_TAG in cell.metadata.get("tags", []):
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=expected[path.stem])]
                cell.execution_count = 1  # nbval only compares cells that ran
        copy = tmp_path / path.name
        nbformat.write(nb, copy)
        out.append(copy)
    return out


def run_nbval(paths: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--timeout", "300",
         "--rootdir", str(cwd), "-c", os.devnull, *map(str, paths)],
        capture_output=True, text=True, cwd=cwd, timeout=600, env=env,
    )


@pytest.mark.e2e
def test_notebooks_run_on_replay_and_verdicts_hold(tmp_path):
    proc = run_nbval(prepared_copies(tmp_path, EXPECTED), tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert (tmp_path / "reports" / "results.json").exists()


@pytest.mark.e2e
def test_a_changed_verdict_fails_nbval(tmp_path):
    wrong = {**EXPECTED, "01_diagnose": "Overall Status: HEALTHY, Critical Failures: 0\n"}
    proc = run_nbval(prepared_copies(tmp_path, wrong)[:1], tmp_path)
    assert proc.returncode != 0
    assert "Overall Status: HEALTHY" in proc.stdout
