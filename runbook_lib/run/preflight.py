"""Refusals before any kernel starts: combinations a run cannot honour, in one line, exit 2.

Parameters are already valid when this runs (``load_params``); these rules are about the run as a
whole (target + phases + remediation settings). Phase 2 itself still checks that ``confirm`` is
the id of the plan it built (``remediate.apply.check_confirmation``) before sending anything.
"""
from __future__ import annotations

import re
from typing import Sequence

from runbook_lib.errors import RemediationError, RunError
from runbook_lib.params import Params
from runbook_lib.run.report import PHASES

PLAN_ID = re.compile(r"^[0-9a-f]{12}$")


def check_run(params: Params, phases: Sequence[str]) -> None:
    """Raise a one-line RunbookError (exit 2) for a run that cannot do what it was asked."""
    if list(phases) != [p for p in PHASES if p in phases]:
        raise RunError(f"refused: phases must run in order without repeats ({', '.join(PHASES)}), got {', '.join(phases)}")
    r = params.remediation
    if not r.apply:
        return
    if params.target.mode == "replay":
        raise RemediationError(
            "refused: remediation.apply=true on a replay target: recorded evidence cannot be changed. "
            "Run the plan against the sandbox or live target it was recorded from (--params), or drop apply")
    if "remediate" not in phases:
        raise RemediationError(
            f"refused: remediation.apply=true but phase 2 (remediate) is not in this run ({', '.join(phases)}): "
            "nothing would be applied. Use --phase 2 or --phase all")
    if not PLAN_ID.match(r.confirm):
        raise RemediationError(
            f"refused: remediation.confirm={r.confirm!r} is not a plan id (12 hex digits): "
            "run `runbook plan` (a dry run) and confirm the id it prints")


def check_plan(run_dir, params: Params) -> None:
    """Before phase 2's kernel: the plan phase 2 will build (from phase 1's recorded results and
    evidence, exactly as ``Phase.diagnosis`` reads them) must have the id that was confirmed.

    A mismatch (the environment changed since the dry run) is refused here in one line, instead
    of as a traceback inside the remediation notebook. Without phase 1 results in this report
    folder, phase 2 diagnoses by itself and checks the id there, before sending anything.
    """
    from pathlib import Path

    from runbook_lib.evidence import Evidence
    from runbook_lib.remediate import build_plan
    from runbook_lib.results import CheckResult, ResultSet
    from runbook_lib.run.report import read_phase

    if not params.remediation.apply:
        return
    recorded = read_phase(Path(run_dir), "diagnose")
    folder = Path(run_dir) / "evidence" / "diagnose"
    if recorded is None or not (folder / "manifest.json").exists():
        return
    results = ResultSet(results=[CheckResult.model_validate(r) for r in recorded["results"]])
    plan = build_plan(results, Evidence.load(folder), params)
    if plan.id != params.remediation.confirm:
        raise RemediationError(
            f"refused before phase 2: remediation.confirm is {params.remediation.confirm!r} but the plan for what phase 1 "
            f"found now has id {plan.id!r} (the environment changed since the dry run): review the plan in "
            f"01_diagnose.html or `runbook plan`, then confirm its id")
