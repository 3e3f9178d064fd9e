"""Refusals before any kernel starts: combinations a run cannot honour, in one line, exit 2.

Parameters are already valid when this runs (``load_params``); these rules are about the run as a
whole (target + phases + remediation settings). Phase 2 itself still checks that ``confirm`` is
the id of the plan it built (``remediate.apply.check_confirmation``) before sending anything.
"""
from __future__ import annotations

import re
from typing import Sequence

from .errors import RemediationError, RunError
from .params import Params
from .report import PHASES

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
