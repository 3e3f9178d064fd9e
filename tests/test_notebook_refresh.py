"""JupyterLab: re-running the cell that builds the phase refreshes every view below it.

Executed with nbclient, which applies ``update_display_data`` messages to the outputs that carry
the same display id, as JupyterLab does.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
REPLAY = ROOT / "parameters" / "replay.yaml"


def text_of(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") + o.get("text", "") for o in cell.outputs)


@pytest.mark.e2e
def test_rerunning_the_phase_cell_refreshes_the_views_below(tmp_path):
    cells = [
        f"import runbook_lib as rb\nphase = rb.Phase('diagnose', {str(REPLAY)!r}, {{}}, {str(tmp_path)!r})\nphase.run()",
        "phase.show('connector')",
        # what a person does: change overrides and re-run the phase cell (here: a copy of it, run later)
        f"phase = rb.Phase('diagnose', {str(REPLAY)!r}, {{'connector.max_instances': 3, "
        f"'cloudsql.probe_samples': 3}}, {str(tmp_path)!r})\nphase.run()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    shown = text_of(nb.cells[1])
    assert "connector.instances" in shown
    # after the re-run the section below shows the new evaluation: max 3 is what is asked for now
    assert "max &gt;= 3" in shown or "max >= 3" in shown, shown[:3000]
    assert "max &gt;= 10" not in shown and "max >= 10" not in shown
    # and the sampling override on replay says it has no effect
    assert "has no effect on a replay target" in text_of(nb.cells[2])
