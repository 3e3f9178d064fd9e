"""Fleet manifest validation: every rule with its exact one-line message, before anything starts."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runbook_lib.errors import ParameterError
from runbook_lib.fleet import assigned, load_manifest

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "parameters"


def manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(text).replace("PARAMS", str(PARAMS)))
    return path


INVALID = {
    "not-a-mapping": ("- a\n- b\n", "(top level): expected a mapping with a targets: list"),
    "no-targets": ("targets: []\n", "targets: List should have at least 1 item after validation, not 0"),
    "unknown-top-key": ("targets: [{name: a, params: PARAMS/replay.yaml}]\nparallel: 3\n",
                        "parallel: unknown key (expected one of: targets)"),
    "unknown-target-key": ("targets: [{name: a, params: PARAMS/replay.yaml, scenario: healthy}]\n",
                           "targets.0.scenario: unknown key (expected one of: name, params, overrides)"),
    "bad-name": ("targets: [{name: Staging_EU, params: PARAMS/replay.yaml}]\n",
                 "targets.0.name: expected to match pattern '^[a-z0-9][a-z0-9-]*$', got 'Staging_EU'"),
    "duplicate-names": ("targets: [{name: a, params: PARAMS/replay.yaml}, {name: a, params: PARAMS/replay.yaml, "
                        "overrides: {region: us-east1}}]\n", "targets: expected unique target names, a repeated"),
    "missing-params": ("targets: [{name: a}]\n", "targets.0.params: required key is missing"),
    "bad-override-key": ("targets: [{name: a, params: PARAMS/replay.yaml, overrides: {'Region!': x}}]\n",
                         "targets.0.overrides: expected dotted parameter keys like cloudsql.probe_samples, got 'Region!'"),
    "target-name-override": ("targets: [{name: a, params: PARAMS/replay.yaml, overrides: {target.name: b}}]\n",
                             "targets.0.overrides: target.name is the fleet target's name; rename the target instead"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_manifest_exact_message(tmp_path, case):
    text, expected = INVALID[case]
    path = manifest(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        load_manifest(path)
    assert str(err.value) == f"{path}: {expected}"


def test_a_bad_target_parameter_names_the_target_and_the_key(tmp_path):
    path = manifest(tmp_path, """\
        targets:
          - {name: good, params: PARAMS/replay.yaml}
          - {name: eu, params: PARAMS/replay.yaml, overrides: {region: Europe}}
        """)
    with pytest.raises(ParameterError) as err:
        load_manifest(path)
    assert str(err.value) == (f"{path}: targets.1 (eu): region: expected a GCP region like us-central1, "
                              "got 'Europe' (override region=Europe)")


def test_a_missing_parameters_file_is_relative_to_the_manifest(tmp_path):
    path = manifest(tmp_path, "targets: [{name: a, params: nowhere.yaml}]\n")
    with pytest.raises(ParameterError) as err:
        load_manifest(path)
    assert str(err.value) == f"{path}: targets.0 (a): (file): file not found (in {tmp_path / 'nowhere.yaml'})"


def test_relative_params_and_path_overrides_resolve_against_the_manifest(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.yaml").write_text(f"extends: {PARAMS / 'replay.yaml'}\n")
    path = manifest(tmp_path, """\
        targets:
          - {name: a, params: sub/p.yaml, overrides: {target.evidence_dir: ev}}
        """)
    fleet = load_manifest(path)
    t = fleet.targets[0]
    assert t.params_file == tmp_path / "sub" / "p.yaml"
    assert t.params.target.evidence_dir == str(tmp_path / "ev")
    assert t.params.target.name == "a"      # the fleet name is the run's target name
    assert t.cli_overrides() == [f'target.evidence_dir="{tmp_path / "ev"}"', 'target.name="a"']


def test_same_parameters_different_overrides_get_different_target_names():
    fleet = load_manifest(ROOT / "tests" / "fleet" / "manifests" / "five.yaml")
    assert [t.params.target.name for t in fleet.targets] == ["healthy", "incident", "sql-stopped", "replay",
                                                               "replay-strict"]
    assert fleet.targets[4].params.thresholds.db_connect_s == 20


def test_the_example_manifest_is_valid():
    fleet = load_manifest(PARAMS / "fleet.example.yaml")
    assert {t.mode for t in fleet.targets} == {"sandbox", "replay"}


@pytest.mark.parametrize("index,count,n,expected", [
    (0, 3, 3, [0]), (2, 3, 3, [2]),          # one task per target
    (0, 2, 5, [0, 2, 4]), (1, 2, 5, [1, 3]),  # fewer tasks than targets: strided
    (4, 6, 3, []),                            # more tasks than targets: the extra ones idle
])
def test_task_to_target_mapping(index, count, n, expected):
    assert assigned(index, count, n) == expected


def test_cli_bad_manifest_is_one_line_exit_2_and_starts_nothing(tmp_path):
    path = manifest(tmp_path, "targets: [{name: a, params: PARAMS/replay.yaml, overides: {}}]\n")
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "fleet", "run", "--manifest", str(path),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"runbook: {path}: targets.0.overides: unknown key (expected one of: name, params, overrides)"]
    assert proc.stdout == ""
    assert not out.exists()
