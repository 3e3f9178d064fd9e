"""Every bad input: one line on stderr, exit 2, no traceback, nothing half-written (issue 11, item 3).

Each input below is refused before any kernel starts (so no report folder appears), except the
replay evidence, which is read by the kernel: that run is INCOMPLETE with one line naming the file.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runbook_lib import redact
from runbook_lib.evidence import Evidence, EvidenceError
from runbook_lib.params import load_params
from runbook_lib.run import runner
from tests.plugins.runs import REPLAY, ROOT, cli_argv, runbook

EXAMPLES = ROOT / "examples" / "evidence" / "issue-1278"


def one_line_exit_2(proc: subprocess.CompletedProcess, *expected: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("runbook:")]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def _params_copy(tmp_path: Path, **changes) -> Path:
    """parameters/replay.yaml as a standalone file (its extends and evidence resolved)."""
    data = yaml.safe_load(load_params(REPLAY).model_dump_json())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --- parameters files -----------------------------------------------------------------------------

def test_non_utf8_parameters(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(REPLAY.read_bytes().replace(b"name: replay", b"name: r\xe9play"))
    out = tmp_path / "out"
    line = one_line_exit_2(runbook("run", "--params", str(bad), "--out", str(out)), "expected UTF-8 text", "0xe9")
    assert str(bad) in line and not out.exists()


@pytest.mark.parametrize("kind", ["fifo", "device", "huge", "directory"])
def test_parameters_that_are_not_small_regular_files(tmp_path, kind):
    path = tmp_path / f"params-{kind}"
    if kind == "fifo":
        os.mkfifo(path)                    # reading it would block forever
    elif kind == "device":
        path = Path("/dev/zero")           # reading it would never end
    elif kind == "huge":
        path.write_text("# padding\n" * 200_000 + REPLAY.read_text())   # 2 MB
    else:
        path.mkdir()
    proc = runbook("params", "--params", str(path), timeout=30)
    one_line_exit_2(proc, {"fifo": "FIFO", "device": "character device", "huge": "at most 1.0 MiB",
                           "directory": "a directory"}[kind])


def test_extends_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "base.yaml")
    top = tmp_path / "top.yaml"
    top.write_text("extends: base.yaml\n")
    one_line_exit_2(runbook("params", "--params", str(top), timeout=30), "extends base.yaml", "FIFO")


@pytest.mark.parametrize("override, key", [
    ("thresholds.db_connect_s=.inf", "thresholds.db_connect_s"),
    ("cloudsql.connect_threshold_s=.nan", "cloudsql.connect_threshold_s"),
    ("remediation.wait_s=1e400", "remediation.wait_s"),
    ("deadlines.operation_s=.inf", "deadlines.operation_s"),
    ("thresholds.startup_s=100000", "thresholds.startup_s"),
])
def test_thresholds_and_waits_are_finite_and_bounded(override, key):
    one_line_exit_2(runbook("params", "--params", str(REPLAY), "-p", override), key)


def test_a_300_character_target_name_is_refused_before_any_folder(tmp_path):
    out = tmp_path / "out"
    one_line_exit_2(runbook("run", "--params", str(REPLAY), "--out", str(out), "-p", "target.name=" + "a" * 300),
                    "target.name", "at most 63")
    assert not out.exists()


def test_an_override_that_is_not_utf8(tmp_path):
    proc = subprocess.run([*cli_argv(
        "params", "--params", str(REPLAY)), os.fsencode("-p"), b"target.name=\xff"],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    one_line_exit_2(proc, "expected UTF-8 text")


@pytest.mark.parametrize("plan_id", ["0012345678", "123456789012", "0e12"])
def test_a_plan_id_of_digits_is_kept_as_typed(plan_id):
    params = load_params(REPLAY, [f"remediation.confirm={plan_id}"])
    assert params.remediation.confirm == plan_id


# --- --out ------------------------------------------------------------------------------------------

def test_out_that_is_a_file(tmp_path):
    target = tmp_path / "reports"
    target.write_text("not a folder")
    one_line_exit_2(runbook("run", "--params", str(REPLAY), "--out", str(target)), "it is a file")


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, *, read_only: bool = False):
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): " + mounted.stderr.decode()[-200:])
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_out_on_a_full_disk(tmp_path):
    with _tmpfs(tmp_path / "small", "512k") as mnt:
        one_line_exit_2(runbook("run", "--params", str(REPLAY), "--out", str(mnt / "reports")), "free")
        assert not (mnt / "reports").exists() or not list((mnt / "reports").iterdir())


def test_out_on_a_read_only_disk(tmp_path, monkeypatch):
    with _tmpfs(tmp_path / "ro", "128m", read_only=True) as mnt:
        one_line_exit_2(runbook("run", "--params", str(REPLAY), "--out", str(mnt)), "--out", "Read-only")


# --- replay evidence ----------------------------------------------------------------------------------

@pytest.fixture
def evidence_copy(tmp_path) -> Path:
    dest = tmp_path / "evidence"
    shutil.copytree(EXAMPLES, dest)
    return dest


def test_recorded_examples_verify():
    for phase in ("diagnose", "validate"):
        Evidence.load(EXAMPLES / phase)


@pytest.mark.parametrize("damage, expected", [
    ("edit", "changed since it was recorded"),
    ("broken", "changed since it was recorded"),
    ("missing", "listed in the manifest but missing"),
    ("manifest", "not valid JSON"),
    ("unhashed", "no 'files' section"),
])
def test_damaged_evidence_is_refused_with_one_line(evidence_copy, damage, expected):
    folder = evidence_copy / "diagnose"
    record = folder / "api" / "compute.backendServices.json"
    if damage == "edit":   # an edited verdict-changing value, still valid JSON
        record.write_text(record.read_text().replace('"timeoutSec": 30', '"timeoutSec": 600'))
    elif damage == "broken":
        record.write_text(record.read_text()[:-40])
    elif damage == "missing":
        record.unlink()
    elif damage == "manifest":
        (folder / "manifest.json").write_text("{ not json")
    else:
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["files"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EvidenceError, match=expected) as err:
        Evidence.load(folder)
    assert "\n" not in str(err.value)


def test_a_run_on_edited_evidence_is_refused(tmp_path, evidence_copy):
    record = evidence_copy / "diagnose" / "api" / "sqladmin.instance.json"
    text = record.read_text()
    assert '"activationPolicy": "NEVER"' in text
    record.write_text(text.replace('"activationPolicy": "NEVER"', '"activationPolicy": "ALWAYS"', 1))   # heals it, silently
    params = _params_copy(tmp_path, **{"target.evidence_dir": str(evidence_copy)})
    proc = runbook("check", "--params", str(params))
    one_line_exit_2(proc, "sqladmin.instance.json", "changed since it was recorded")


# --- report folders -------------------------------------------------------------------------------------

def test_corrupt_old_report_folders_never_break_later_runs(tmp_path):
    from runbook_lib.render.index import write_index

    out = tmp_path / "reports"
    for name, status, results in (("20200101T000000Z-old-aaaaaa", "{ cut", None),
                                  ("20200101T000001Z-old-bbbbbb", "[1, 2]", '{"verdict": "not a dict"}'),
                                  ("20200101T000002Z-old-cccccc", '{"state": "COMPLETE"}', "\x00\xff")):
        (out / name).mkdir(parents=True)
        (out / name / "status.json").write_text(status)
        if results is not None:
            (out / name / "results.json").write_text(results)
    page = write_index(out).read_text()
    for name in ("aaaaaa", "bbbbbb", "cccccc"):
        assert name in page
    assert "CORRUPT" in page or "INCOMPLETE" in page


def test_a_phase_without_its_html_is_never_complete(tmp_path, monkeypatch):
    import nbformat
    import papermill

    def fake_execute(source, output, **kwargs):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
        Path(output).write_text(nbformat.writes(nb))

    def broken_render(notebook, html=None):
        raise RuntimeError("nbconvert broke")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr("runbook_lib.render.html.notebook_to_html", broken_render)
    outcome = runner.run(REPLAY, phases=("diagnose",), out=tmp_path / "out", progress=False, echo=lambda s: None)
    assert outcome.state != "COMPLETE" and outcome.exit_code == 2
    assert "01_diagnose.html could not be rendered" in outcome.error
    assert json.loads((outcome.run_dir / "status.json").read_text())["state"] == "INCOMPLETE"


def test_a_secret_left_in_an_artifact_fails_the_run_naming_file_and_line(tmp_path, monkeypatch):
    import papermill

    leaked = "rbkscan" + "Q" * 12

    def leaky_execute(source, output, **kwargs):
        # a writer that bypasses redaction (e.g. a future plugin writing its own file)
        (Path(output).parent / "extra.log").write_text(f"first line\nPGPASSWORD={leaked} psql\n")
        Path(output).write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')

    monkeypatch.setattr(papermill, "execute_notebook", leaky_execute)
    monkeypatch.setattr("runbook_lib.render.html.notebook_to_html",
                        lambda nb, html=None: Path(nb).with_suffix(".html").write_text("<p>ok</p>"))
    outcome = runner.run(REPLAY, phases=("diagnose",), out=tmp_path / "out", progress=False, echo=lambda s: None)
    assert outcome.state != "COMPLETE" and outcome.exit_code == 2
    assert "extra.log:2: secret assignment" in outcome.error and leaked not in outcome.error
    status = json.loads((outcome.run_dir / "status.json").read_text())
    assert status["state"] == "INCOMPLETE" and "secret scan" in status["reason"]


def test_notebook_saves_are_atomic_and_redacted(tmp_path):
    from papermill.iorw import papermill_io

    target = tmp_path / "nb.ipynb"
    with runner._atomic_notebook_writes():
        papermill_io.write('{"x": "DB_PASS=hunter2-secret"}', str(target))
        assert not list(tmp_path.glob(".nb.ipynb.*"))          # no temporary left behind
        with pytest.raises(FileNotFoundError):
            papermill_io.write("{}", str(tmp_path / "missing" / "nb.ipynb"))
    assert "hunter2-secret" not in target.read_text() and redact.MASK in target.read_text()


def test_kernels_get_a_minimal_environment(monkeypatch):
    from runbook_lib.util.childenv import minimal_env, names_from_params

    params = load_params(REPLAY, ["cloudsql.password_env=RB_DB_PW"])
    env = minimal_env(names_from_params(params), {"PATH": "/bin", "GITHUB_TOKEN": "t", "RB_DB_PW": "p", "AWS_SECRET": "s"})
    assert env == {"PATH": "/bin", "RB_DB_PW": "p"}
