"""A key that was a parameter once: refused with what to use instead, except in a report's own
archived parameters.yaml, which was valid when written and must still attach."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook_lib.errors import ParameterError
from runbook_lib.params import load_params

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "parameters" / "sandbox.yaml"


def _with_removed_key(tmp_path: Path) -> Path:
    doc = yaml.safe_load(SANDBOX.read_text())
    doc["extends"] = str(SANDBOX.parent / doc["extends"])  # an archived file is self-contained; this one layers
    doc.setdefault("cloudsql", {})["connect_threshold_s"] = 20
    out = tmp_path / "parameters.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def test_an_override_of_a_removed_key_says_what_replaced_it():
    with pytest.raises(ParameterError) as err:
        load_params(SANDBOX, ["cloudsql.connect_threshold_s=20"])
    line = str(err.value)
    assert "\n" not in line
    assert "cloudsql.connect_threshold_s" in line and "was removed" in line and "thresholds.db_connect_s" in line


def test_a_file_setting_a_removed_key_is_refused_naming_it(tmp_path):
    with pytest.raises(ParameterError, match="connect_threshold_s: was removed"):
        load_params(_with_removed_key(tmp_path))


def test_an_archived_report_with_a_removed_key_still_loads(tmp_path):
    params = load_params(_with_removed_key(tmp_path), archived=True)
    assert params.cloudsql == load_params(SANDBOX).cloudsql
